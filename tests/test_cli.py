"""The drwatch command line, run in-process with click's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from drwatch.cli.main import cli
from drwatch.config import DEFAULT_ENABLED_COLLECTORS, KNOWN_COLLECTORS
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.iam import required_actions
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox

CONFIGS = Path(__file__).parent / "configs"
EXAMPLE = Path(__file__).parent.parent / "drwatch.example.yml"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_check_config_accepts_the_example() -> None:
    code, out, _ = invoke("check-config", str(EXAMPLE))
    assert code == 0
    assert "ok" in out
    assert "collectors: rds" in out


def test_check_config_names_the_field_and_exits_2() -> None:
    bad = CONFIGS / "interval_too_short.bad.yml"
    expected = bad.read_text().splitlines()[0].removeprefix("# expect: ")
    code, out, err = invoke("check-config", str(bad))
    assert code == 2
    assert expected in err
    assert out == ""
    assert "Traceback" not in err


def test_check_config_on_a_missing_file_exits_2() -> None:
    code, _, err = invoke("check-config", "/nonexistent/drwatch.yml")
    assert code == 2
    assert "/nonexistent/drwatch.yml" in err


def test_iam_policy_lists_exactly_the_declared_read_only_actions() -> None:
    code, out, _ = invoke("iam-policy")
    assert code == 0
    (statement,) = json.loads(out)["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == list(required_actions(COLLECTORS))
    assert all(a.split(":")[1].startswith(("List", "Describe", "Get")) for a in statement["Action"])


def test_iam_policy_for_a_config_with_nothing_enabled_is_empty(tmp_path: Path) -> None:
    config = tmp_path / "none.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "accounts": [{"id": "111111111111"}],
                "regions": ["eu-west-1"],
                "collectors": {name: {"enabled": False} for name in KNOWN_COLLECTORS},
            }
        )
    )
    code, out, _ = invoke("iam-policy", "--config", str(config))
    assert code == 0
    assert json.loads(out)["Statement"][0]["Action"] == []


def sandbox_config_file(tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan) -> Path:
    path = tmp_path / "drwatch.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {"id": a, "role_arn": f"arn:aws:iam::{a}:role/drwatch-read"}
                    for a in fleet.spec.accounts
                ],
                "regions": list(fleet.spec.regions),
                "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 1},
            }
        )
    )
    return path


SANDBOX_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def test_poll_once_json_prints_every_unit(
    tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan
) -> None:
    config = sandbox_config_file(tmp_path, sandbox, fleet)
    code, out, _ = invoke("poll", "--config", str(config), "--once", "--json", env=SANDBOX_ENV)
    assert code == 0
    units = json.loads(out)["units"]
    collectors = DEFAULT_ENABLED_COLLECTORS
    assert len(units) == len(collectors) * len(fleet.spec.accounts) * len(fleet.spec.regions)
    assert all(u["run"]["success"] for u in units)
    ids = {
        r["ref"]["resource_id"]
        for u in units
        for r in u["observations"]["resources"]
        if r["ref"]["service"] == "rds"
    }
    assert ids == {db.identifier for db in fleet.databases}


def test_poll_exits_1_and_reports_the_error_when_a_unit_fails(
    tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan
) -> None:
    from drwatch.sandbox.faults import FaultRule

    sandbox.faults.add(FaultRule("AccessDenied", 403, service="rds", region="eu-west-1"))
    config = sandbox_config_file(tmp_path, sandbox, fleet)
    code, out, _ = invoke("poll", "--config", str(config), "--once", env=SANDBOX_ENV)
    assert code == 1
    assert out.count("FAILED AccessDenied") == len(fleet.spec.accounts)


@pytest.mark.parametrize("args", [["poll", "--once"], ["serve"], ["demo", "--port", "x"]])
def test_usage_errors_exit_2_without_traceback(args: list[str]) -> None:
    code, _, err = invoke(*args)
    assert code == 2
    assert "Traceback" not in err


def test_the_cli_loads_the_pdf_renderer_only_to_render() -> None:
    """WeasyPrint and Pillow cost `drwatch serve` about 40 MB it never uses."""
    probe = "import sys, drwatch.cli.main; print(sorted({'weasyprint', 'PIL'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
