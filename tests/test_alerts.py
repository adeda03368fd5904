"""Alert rules and Alertmanager example, checked by the real promtool and amtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
RULES = ROOT / "alerts" / "drwatch.rules.yml"
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.test.yml"))
ALERTMANAGER = ROOT / "alerts" / "alertmanager.example.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/drwatch/drwatch/blob/main/docs/runbooks.md#"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required: make system-deps installs it"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    result = run(tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_is_labelled_annotated_and_has_a_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url", "dashboard_url"}
    anchor = annotations["runbook_url"].removeprefix(RUNBOOK_BASE)
    assert anchor == rule["alert"].lower()
    headings = re.findall(r"^## (\S+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    assert rule["alert"] in headings


def test_every_alert_has_a_unit_test_where_it_fires() -> None:
    tests = [t for path in RULE_TESTS for t in yaml.safe_load(path.read_text())["tests"]]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert {rule["alert"] for rule in alerts()} == firing


def test_alertmanager_example_is_valid() -> None:
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=DrwatchRPOBreached", "severity=critical", "tier=premium"], "dr-oncall-pager"),
        (["alertname=DrwatchRPOBreached", "severity=critical", "tier=basic"], "dr-oncall-pager"),
        (["alertname=DrwatchCollectorFailing", "severity=warning"], "platform-team"),
        (["alertname=DrwatchResourceUnprotected", "severity=warning"], "dr-team"),
        (["alertname=DrwatchVaultNotLocked", "severity=info"], "dr-digest"),
    ],
)
def test_alertmanager_routes_by_severity_and_tier(labels: list[str], receiver: str) -> None:
    result = run(
        tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver
