"""The wheel, built from exactly what deploy/Dockerfile copies, installs one import name
(`drwatch`) and the `drwatch` script, with the templates, framework files and price table
the commands read at run time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drwatch.history.store import HistoryStore
from drwatch.sandbox.backfill import BackfillSpec, backfill_results
from drwatch.sandbox.fleet import FleetSpec, plan_fleet

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# The build stage's COPY lines: "COPY a b ./" or "COPY src ./dest".
COPY_LINE = re.compile(r"^COPY (?!--from)(.+?) (\S+)$", re.M)
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)


def dockerfile_inputs() -> list[str]:
    sources: list[str] = []
    build_stage = DOCKERFILE.read_text(encoding="utf-8").split("\nFROM ", 2)[1]
    for match in COPY_LINE.finditer(build_stage):
        sources.extend(match.group(1).split())
    return sources


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in dockerfile_inputs():
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("drwatch-*.whl")
    return built


def test_the_dockerfile_copies_the_package_and_its_metadata() -> None:
    assert dockerfile_inputs() == ["pyproject.toml", "README.md", "drwatch"]


def test_the_wheel_installs_one_import_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"drwatch"}
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "drwatch = drwatch.cli.main:cli" in text


def test_the_wheel_carries_the_run_time_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        str(path.relative_to(ROOT))
        for pattern in ("*.j2", "*.css", "*.yml")
        for path in (ROOT / "drwatch").rglob(pattern)
    }
    assert shipped, "no templates, framework files or price table found in the source"
    assert shipped <= names, sorted(shipped - names)


def test_the_installed_wheel_renders_a_report(wheel: Path, tmp_path: Path) -> None:
    """`drwatch report` from the installed wheel alone (not this checkout) writes a PDF."""
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*install, "--target", str(target), str(wheel)], check=True)
    history = tmp_path / "history.db"
    plan = plan_fleet(FleetSpec(seed=7, rds_instances=2, aurora_clusters=1, now=NOW))
    with HistoryStore(history) as store:
        for result in backfill_results(plan, BackfillSpec(end=NOW, days=3, interval=SIX_HOURS)):
            store.ingest(result)
    probe = "import drwatch, sys; print(drwatch.__file__)"
    report = ["report", "--framework", "soc2", "--from", "2026-11-19", "--until", "2026-11-21"]
    environment = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    found = subprocess.run(
        [sys.executable, "-c", probe],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(found.strip()).is_relative_to(target)
    subprocess.run(
        [sys.executable, "-m", "drwatch", *report, "--db", str(history), "--out", "r.pdf"],
        env=environment,
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
