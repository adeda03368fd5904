"""drwatch_build_info's `revision`: the build-time variable, else the checkout's commit."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from drwatch import __version__
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics import health

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def fresh_revision() -> Iterator[None]:
    health.build_revision.cache_clear()
    yield
    health.build_revision.cache_clear()


def build_info_labels() -> dict[str, str]:
    registry = CollectorRegistry()
    registry.register(health.HealthMetrics(list, ApiStats()))
    text = generate_latest(registry).decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "drwatch_build_info"]
    (sample,) = family.samples
    assert sample.value == 1
    return dict(sample.labels)


def test_the_build_argument_names_the_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRWATCH_REVISION", "1f79e73")
    labels = build_info_labels()
    assert labels["revision"] == "1f79e73"
    assert labels["version"] == __version__
    assert set(labels) == {"version", "revision", "python_version"}


@pytest.mark.parametrize("value", ["has space", "x" * 65, '1f79e73"}'])
def test_a_value_that_is_no_revision_name_is_unknown(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DRWATCH_REVISION", value)
    assert build_info_labels()["revision"] == "unknown"


def test_a_git_checkout_reports_its_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    monkeypatch.delenv("DRWATCH_REVISION", raising=False)
    head = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert ROOT.resolve() == health.CHECKOUT
    assert build_info_labels()["revision"] == head


def test_an_installed_package_without_the_variable_is_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A wheel in site-packages: no .git beside it, so git is never asked, even when the
    virtualenv itself sits inside some repository."""
    monkeypatch.delenv("DRWATCH_REVISION", raising=False)
    monkeypatch.setattr(health, "CHECKOUT", tmp_path)
    (tmp_path / "drwatch").mkdir()
    assert build_info_labels()["revision"] == "unknown"


def test_the_revision_is_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRWATCH_REVISION", "abc1234")
    assert build_info_labels()["revision"] == "abc1234"
    monkeypatch.setenv("DRWATCH_REVISION", "def5678")
    assert build_info_labels()["revision"] == "abc1234"
