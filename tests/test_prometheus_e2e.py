"""Real Prometheus and Alertmanager (Debian packages) on loopback, scraping the exporter.

Prometheus scrapes the exporter serving the sandbox fleet, evaluates the shipped rules and
sends to Alertmanager configured with the shipped example; the test reads Alertmanager's v2
API. `for:` durations are set to 0s in the copy Prometheus loads: they are tested by
`promtool test rules`; this test proves the wiring and the expressions on real data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.sandbox.backup_fleet import plan_backup_fleet, spec_for
from exporter.sandbox.demo import sandbox_config, sandbox_exporter
from exporter.sandbox.fleet import FleetPlan, FleetSpec, plan_fleet, seed_fleet
from exporter.sandbox.server import Sandbox
from tests.test_serve import free_port

ROOT = Path(__file__).parent.parent
RESOURCE_HEALTH_ALERTS = {
    "DrwatchRPOBreached",
    "DrwatchNoRecentBackup",
    "DrwatchResourceUnprotected",
    "DrwatchRDSBackupFailed",
}


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required: make system-deps installs it"
    return path


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(condition: Any, processes: list[subprocess.Popen[bytes]], attempts: int = 600) -> Any:
    """Re-checks `condition` until it returns a truthy value; bounded, and fails fast on exit."""
    for _ in range(attempts):
        try:
            result = condition()
        except (urllib.error.URLError, ConnectionError):
            result = None
        if result:
            return result
        for process in processes:
            try:
                process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"{process.args[0]} exited with {process.returncode}")
    raise AssertionError("condition never became true")


def rules_without_for(tmp_path: Path) -> Path:
    text = (ROOT / "alerts" / "drwatch.rules.yml").read_text()
    path = tmp_path / "drwatch.rules.yml"
    path.write_text(re.sub(r"^(\s+)for: \S+$", r"\1for: 0s", text, flags=re.MULTILINE))
    return path


@pytest.fixture(scope="module")
def live_fleet(sandbox: Sandbox) -> FleetPlan:
    """Seeded at the real current time: Prometheus evaluates time() on the wall clock."""
    sandbox.reset()
    plan = plan_fleet(FleetSpec(now=datetime.now(UTC)))
    seed_fleet(sandbox, plan)
    return plan


@pytest.fixture(scope="module")
def firing(
    sandbox: Sandbox, live_fleet: FleetPlan, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter = sandbox_exporter(sandbox_config(sandbox.endpoint_url, live_fleet.spec))
    exporter.poller.run_round()
    server = exporter.serve("127.0.0.1", 0)
    am_port, prom_port = free_port(), free_port()
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules_without_for(tmp))],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "drwatch",
                        "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
                    }
                ],
            }
        )
    )
    processes = [
        subprocess.Popen(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={ROOT / 'alerts' / 'alertmanager.example.yml'}",
                f"--storage.path={tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    alerts_url = f"http://127.0.0.1:{am_port}/api/v2/alerts"

    def rpo_alerts_arrived() -> list[dict[str, Any]] | None:
        alerts: list[dict[str, Any]] = get_json(alerts_url)
        names = {a["labels"]["alertname"] for a in alerts}
        return alerts if {"DrwatchRPOBreached", "DrwatchResourceUnprotected"} <= names else None

    try:
        wait_for(rpo_alerts_arrived, processes)
        # One more full evaluation after the first alerts, so every rule has had its turn.
        wait_for(lambda: len(get_json(alerts_url)) == len(get_json(alerts_url)), processes)
        yield get_json(alerts_url)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        server.stop()
        exporter.close()


def resources_with(alerts: list[dict[str, Any]], name: str) -> set[str]:
    return {a["labels"]["resource"] for a in alerts if a["labels"]["alertname"] == name}


def test_stale_resources_breach_their_rpo_in_prometheus(
    firing: list[dict[str, Any]], live_fleet: FleetPlan
) -> None:
    stale = {db.identifier for db in live_fleet.databases if db.scenario == "stale"}
    assert stale
    assert stale <= resources_with(firing, "DrwatchRPOBreached")


def test_unprotected_resources_alert(firing: list[dict[str, Any]], live_fleet: FleetPlan) -> None:
    disabled = {db.identifier for db in live_fleet.databases if db.scenario == "backups_disabled"}
    assert disabled
    # AWS Backup tables whose plan selection no longer names them are unprotected too.
    backup = plan_backup_fleet(spec_for(live_fleet))
    unselected = {
        r.arn.rsplit("/", 1)[-1]
        for unit in backup.units
        for r in unit.resources
        if r.scenario == "unselected"
    }
    assert unselected
    assert resources_with(firing, "DrwatchResourceUnprotected") == disabled | unselected


def test_healthy_resources_fire_no_resource_alert(
    firing: list[dict[str, Any]], live_fleet: FleetPlan
) -> None:
    healthy = {db.identifier for db in live_fleet.databases if db.scenario == "healthy"}
    assert healthy
    noisy = {
        (a["labels"]["alertname"], a["labels"]["resource"])
        for a in firing
        if a["labels"]["alertname"] in RESOURCE_HEALTH_ALERTS
        and a["labels"].get("resource") in healthy
    }
    assert noisy == set()


def test_exporter_health_alerts_stay_silent(firing: list[dict[str, Any]]) -> None:
    names = {a["labels"]["alertname"] for a in firing}
    assert not names & {
        "DrwatchExporterDown",
        "DrwatchExporterAbsent",
        "DrwatchCollectorFailing",
        "DrwatchDataStale",
    }


def test_alerts_carry_the_routing_labels_alertmanager_groups_by(
    firing: list[dict[str, Any]],
) -> None:
    resource_alerts = [a for a in firing if a["labels"]["alertname"] in RESOURCE_HEALTH_ALERTS]
    assert resource_alerts
    for alert in resource_alerts:
        assert {"severity", "account_id", "region"} <= set(alert["labels"])
        assert alert["annotations"]["runbook_url"].endswith(alert["labels"]["alertname"].lower())
