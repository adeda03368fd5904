"""Real Prometheus and Alertmanager (Debian packages) on loopback, scraping the exporter.

Prometheus scrapes the exporter serving the sandbox fleet, evaluates the shipped rules and
sends to Alertmanager configured with the shipped example; the test reads Alertmanager's v2
API. `for:` durations are set to 0s in the copy Prometheus loads: they are tested by
`promtool test rules`; this test proves the wiring and the expressions on real data.

The same Prometheus answers every Grafana panel query (variables set to "All"), so each
dashboard panel is proven to show data on the sandbox fleet.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drwatch.cli.drill import record_demo_drills, with_drill_metrics
from drwatch.exporter.service import Exporter
from drwatch.sandbox.backfill import BackfillSpec, demo_drill_rows
from drwatch.sandbox.backup_fleet import plan_backup_fleet, spec_for
from drwatch.sandbox.demo import sandbox_config, sandbox_exporter
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.fleet import FleetPlan, FleetSpec, plan_fleet
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stack import StackSettings, start_stack
from drwatch.sandbox.stores_fleet import plan_stores, stores_spec_for
from tests.test_grafana import dashboard_files, load, query_panels

ROOT = Path(__file__).parent.parent
RESOURCE_HEALTH_ALERTS = {
    "DrwatchRPOBreached",
    "DrwatchNoRecentBackup",
    "DrwatchResourceUnprotected",
    "DrwatchRDSBackupFailed",
}
# What Grafana substitutes for its built-in interval variables in these tests; every
# dashboard variable is "All", i.e. its allValue `.*`.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(condition: Any, processes: list[subprocess.Popen[bytes]], timeout: float = 300) -> Any:
    """Re-checks `condition` until it returns a truthy value; fails fast on exit. The
    deadline is a safety net for a loaded machine, not an estimate of how long it takes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
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


@dataclass(frozen=True)
class Stack:
    """What the running Prometheus and Alertmanager showed once the rules had evaluated."""

    alerts: list[dict[str, Any]]
    prometheus_url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = get_json(url)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def poll_with_a_failed_round(sandbox: Sandbox, exporter: Exporter, plan: FleetPlan) -> None:
    """One round with RDS throttled in one account and region, then a clean round.

    The failure leaves what the error panels show (poll errors, AWS API errors and throttling
    by code); the clean round restores every unit, so no exporter-health alert fires.
    """
    sandbox.faults.add(
        FaultRule(
            error_code="Throttling",
            service="rds",
            account_id=plan.spec.accounts[0],
            region=plan.spec.regions[0],
        )
    )
    try:
        exporter.poller.run_round()
    finally:
        sandbox.faults.clear()
    exporter.poller.run_round()


@pytest.fixture(scope="module")
def stack(
    sandbox: Sandbox, live_fleet: FleetPlan, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter = sandbox_exporter(sandbox_config(sandbox.endpoint_url, live_fleet.spec))
    # Drill and restore-test panels read the history, as `serve` and `demo` do.
    history = tmp / "history.db"
    drills = demo_drill_rows(live_fleet, BackfillSpec(end=datetime.now(UTC), days=90))
    record_demo_drills(history, drills)
    with_drill_metrics(exporter, history)
    poll_with_a_failed_round(sandbox, exporter, live_fleet)
    server = exporter.serve("127.0.0.1", 0)
    local = start_stack(
        StackSettings(
            scrape_target=f"127.0.0.1:{server.port}",
            rules_file=rules_without_for(tmp),
            alertmanager_config=ROOT / "alerts" / "alertmanager.example.yml",
            workdir=tmp,
            prometheus_port=free_port(),
            alertmanager_port=free_port(),
            scrape_interval="1s",
            evaluation_interval="1s",
        )
    )
    processes = list(local.processes)
    alerts_url = f"{local.alertmanager_url}/api/v2/alerts"
    prometheus_url = local.prometheus_url

    def rpo_alerts_arrived() -> list[dict[str, Any]] | None:
        alerts: list[dict[str, Any]] = get_json(alerts_url)
        names = {a["labels"]["alertname"] for a in alerts}
        return alerts if {"DrwatchRPOBreached", "DrwatchResourceUnprotected"} <= names else None

    try:
        wait_for(rpo_alerts_arrived, processes)
        # One more full evaluation after the first alerts, so every rule has had its turn.
        wait_for(lambda: len(get_json(alerts_url)) == len(get_json(alerts_url)), processes)
        alerts = get_json(alerts_url)
        running = Stack(alerts=alerts, prometheus_url=prometheus_url)
        # Panels use rate() and increase(): they need two samples of each counter.
        wait_for(lambda: running.query("rate(drwatch_aws_api_requests_total[1m])"), processes)
        yield running
    finally:
        local.stop()
        server.stop()
        exporter.close()


def resources_with(alerts: list[dict[str, Any]], name: str) -> set[str]:
    return {a["labels"]["resource"] for a in alerts if a["labels"]["alertname"] == name}


def test_stale_resources_breach_their_rpo_in_prometheus(
    stack: Stack, live_fleet: FleetPlan
) -> None:
    firing = stack.alerts
    stale = {db.identifier for db in live_fleet.databases if db.scenario == "stale"}
    assert stale
    assert stale <= resources_with(firing, "DrwatchRPOBreached")


def test_unprotected_resources_alert(stack: Stack, live_fleet: FleetPlan) -> None:
    firing = stack.alerts
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
    # DynamoDB tables without PITR or on-demand backups, EBS volumes without snapshots,
    # caches with a snapshot retention of 0 (Memcached cannot have any).
    stores = plan_stores(stores_spec_for(live_fleet))
    bare = {t.name for t in stores.tables if t.scenario == "unprotected"}
    bare |= {v.volume_id for v in stores.volumes if v.scenario == "unprotected"}
    bare |= {c.name for c in stores.caches if c.retention_days == 0}
    assert bare
    assert resources_with(firing, "DrwatchResourceUnprotected") == disabled | unselected | bare


def test_healthy_resources_fire_no_resource_alert(stack: Stack, live_fleet: FleetPlan) -> None:
    firing = stack.alerts
    healthy = {db.identifier for db in live_fleet.databases if db.scenario == "healthy"}
    assert healthy
    noisy = {
        (a["labels"]["alertname"], a["labels"]["resource"])
        for a in firing
        if a["labels"]["alertname"] in RESOURCE_HEALTH_ALERTS
        and a["labels"].get("resource") in healthy
    }
    assert noisy == set()


def test_exporter_health_alerts_stay_silent(stack: Stack) -> None:
    names = {a["labels"]["alertname"] for a in stack.alerts}
    assert not names & {
        "DrwatchExporterDown",
        "DrwatchExporterAbsent",
        "DrwatchCollectorFailing",
        "DrwatchDataStale",
    }


def test_alerts_carry_the_routing_labels_alertmanager_groups_by(stack: Stack) -> None:
    firing = stack.alerts
    resource_alerts = [a for a in firing if a["labels"]["alertname"] in RESOURCE_HEALTH_ALERTS]
    assert resource_alerts
    for alert in resource_alerts:
        assert {"severity", "account_id", "region"} <= set(alert["labels"])
        assert alert["annotations"]["runbook_url"].endswith(alert["labels"]["alertname"].lower())


def grafana_to_promql(expr: str, variables: set[str]) -> str:
    """The query Grafana sends with every dashboard variable set to "All" (`.*`)."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        assert name in variables, f"${name} is not a variable of the dashboard"
        return ".*"

    return re.sub(r"\$\{?(\w+)\}?", substitute, expr)


def panel_queries() -> list[Any]:
    params = []
    for path in dashboard_files():
        dashboard = load(path)
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        for panel in query_panels(dashboard):
            for target in panel["targets"]:
                params.append(
                    pytest.param(
                        grafana_to_promql(target["expr"], variables),
                        id=f"{dashboard['uid']}:{panel['id']}{target['refId']}:{panel['title']}",
                    )
                )
    return params


def variable_queries() -> list[Any]:
    """`label_values(metric{...}, label)` as an instant query with the same series."""
    params = []
    for path in dashboard_files():
        dashboard = load(path)
        names = {v["name"] for v in dashboard["templating"]["list"]}
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            selector, label = match.groups()
            params.append(
                pytest.param(
                    f"count by ({label}) ({grafana_to_promql(selector, names)})",
                    id=f"{dashboard['uid']}:${variable['name']}",
                )
            )
    return params


PANEL_QUERIES = panel_queries()


def test_every_dashboard_panel_query_is_checked() -> None:
    # 3 dashboards; a new panel shows up here and in the parametrized test below.
    assert len(PANEL_QUERIES) >= 40


@pytest.mark.parametrize("expr", PANEL_QUERIES)
def test_dashboard_panel_query_returns_series(stack: Stack, expr: str) -> None:
    assert stack.query(expr), f"no series for: {expr}"


@pytest.mark.parametrize("expr", variable_queries())
def test_dashboard_variable_has_values(stack: Stack, expr: str) -> None:
    values = stack.query(expr)
    assert values
    assert all(series["metric"] for series in values), expr


def test_every_selector_filters_by_the_dashboard_variables(stack: Stack) -> None:
    """A variable narrows every series that carries its label, checked on the real labels."""
    selector = re.compile(r"(drwatch[_:][a-z0-9_:]+)(\{[^}]*\})?")
    checked = 0
    for path in dashboard_files():
        dashboard = load(path)
        variables = {v["name"] for v in dashboard["templating"]["list"]} - {"datasource"}
        for panel in query_panels(dashboard):
            for target in panel["targets"]:
                for metric, matchers in selector.findall(target["expr"]):
                    labels = {k for series in stack.query(metric) for k in series["metric"]}
                    for name in sorted(variables & labels):
                        assert f'{name}=~"${name}"' in matchers, (
                            f"{dashboard['uid']} {panel['title']!r}: {metric} lacks ${name}"
                        )
                        checked += 1
    assert checked > 100
