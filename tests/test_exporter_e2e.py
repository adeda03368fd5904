"""The exporter against the moto sandbox: values, failures, read-only proof, golden output."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from drwatch.exporter.aws import is_read_only
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.iam import required_actions
from drwatch.exporter.server import HttpServer
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.fleet import FleetPlan, PlannedDatabase
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW, OperationRecorder, sandbox_config, sandbox_exporter
from tests.helpers import FakeClock
from tests.test_metrics import samples, value

GOLDEN = Path(__file__).parent / "golden" / "rds.prom"


def scrape(
    plan: FleetPlan,
    sandbox: Sandbox,
    recorder: OperationRecorder | None = None,
    only: str | None = None,
) -> str:
    """One round and its exposition; `only` keeps a single collector enabled."""
    enabled = {c.name: {"enabled": c.name == only, "interval": 60} for c in COLLECTORS}
    extra = {"collectors": enabled} if only else {}
    exporter = sandbox_exporter(sandbox_config(sandbox, plan, **extra), recorder)
    exporter.poller.run_round()
    return exporter.metrics.render().decode()


def watched(plan: FleetPlan) -> list[PlannedDatabase]:
    return list(plan.databases)


def labels_of(db: PlannedDatabase) -> dict[str, str]:
    return {
        "account_id": db.account_id,
        "region": db.region,
        "resource": db.identifier,
        "resource_type": db.kind,
    }


def tier_of(db: PlannedDatabase) -> str:
    return dict(db.tags).get("dr-tier", "standard")


def test_every_seeded_database_is_exported_with_its_tier_and_pitr_point(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    text = scrape(fleet, sandbox)
    infos = samples(text, "drwatch_resource_info")
    assert len([k for k in infos if ("service", "rds") in k]) == len(fleet.databases)
    for db in watched(fleet):
        labels = labels_of(db)
        assert value(text, "drwatch_resource_info", **labels) == 1
        enabled = value(text, "drwatch_recovery_mechanism_enabled", mechanism="pitr", **labels)
        assert enabled == (1 if db.backup_retention_days else 0)
        pitr = samples(text, "drwatch_recovery_point_timestamp_seconds")
        matching = [
            v for k, v in pitr.items() if set(labels.items()) | {("mechanism", "pitr")} <= set(k)
        ]
        expected = [db.latest_restorable_time.timestamp()] if db.latest_restorable_time else []
        assert matching == expected, db.identifier


def test_stale_and_unprotected_resources_are_visible(sandbox: Sandbox, fleet: FleetPlan) -> None:
    text = scrape(fleet, sandbox)
    rpo = {k[0][1]: v for k, v in samples(text, "drwatch_rpo_target_seconds").items()}
    newest = samples(text, "drwatch_resource_recovery_point_timestamp_seconds")
    breached = {
        dict(k)["resource"] for k, v in newest.items() if NOW.timestamp() - v > rpo[dict(k)["tier"]]
    }
    stale = {db.identifier for db in fleet.databases if db.scenario == "stale"}
    healthy = {db.identifier for db in fleet.databases if db.scenario == "healthy"}
    assert stale
    assert stale <= breached
    assert not healthy & breached
    disabled = [db for db in fleet.databases if db.scenario == "backups_disabled"]
    assert disabled
    for db in disabled:
        assert (
            value(text, "drwatch_recovery_mechanism_enabled", mechanism="pitr", **labels_of(db))
            == 0
        )


def test_access_denied_in_one_region_fails_only_that_unit(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    account, region = fleet.spec.accounts[0], fleet.spec.regions[1]
    sandbox.faults.add(
        FaultRule("AccessDenied", 403, service="rds", region=region, account_id=account)
    )
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet))
    exporter.poller.run_round()
    text = exporter.metrics.render().decode()
    success = {
        (dict(k)["account_id"], dict(k)["region"]): v
        for k, v in samples(text, "drwatch_collector_success").items()
        if dict(k)["collector"] == "rds"
    }
    assert success.pop((account, region)) == 0
    assert set(success.values()) == {1}
    assert (
        value(
            text,
            "drwatch_collector_errors_total",
            collector="rds",
            account_id=account,
            region=region,
            error_code="AccessDenied",
        )
        == 1
    )
    served_regions = {
        (dict(k)["account_id"], dict(k)["region"])
        for k in samples(text, "drwatch_resource_info")
        if ("service", "rds") in k
    }
    assert (account, region) not in served_regions
    assert len(served_regions) == len(fleet.spec.accounts) * len(fleet.spec.regions) - 1

    sandbox.faults.clear()
    exporter.poller.run_round()
    text = exporter.metrics.render().decode()
    assert (
        value(text, "drwatch_collector_success", collector="rds", account_id=account, region=region)
        == 1
    )


# S3 names some IAM actions differently from the API operations they allow.
IAM_ACTION_OF_OPERATION = {
    "s3:ListBuckets": "s3:ListAllMyBuckets",
    "s3:GetBucketReplication": "s3:GetReplicationConfiguration",
    "s3:GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "s3:ListObjectsV2": "s3:ListBucket",
}


def test_only_read_only_calls_and_the_iam_policy_is_exactly_what_is_called(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    recorder = OperationRecorder()
    scrape(fleet, sandbox, recorder)
    # Assuming the per-account role is the one call that is not a read: it is made with the
    # exporter's own identity (which needs sts:AssumeRole), never inside a watched account.
    credentials = {op for op in recorder.operations if op[0] == "sts"}
    assert credentials == {("sts", "AssumeRole")}
    watched_calls = recorder.operations - credentials
    assert all(is_read_only(operation) for _, operation in watched_calls)
    called = {f"{service}:{operation}" for service, operation in watched_calls}
    actions = {IAM_ACTION_OF_OPERATION.get(call, call) for call in called}
    assert actions == set(required_actions(COLLECTORS))


def test_http_endpoints_and_promtool_on_live_output(sandbox: Sandbox, fleet: FleetPlan) -> None:
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet))
    exporter.poller.run_round()  # then nothing is due for the poller thread on the fake clock
    server = exporter.serve("127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.port}"
    try:
        with urllib.request.urlopen(f"{base}/-/ready") as ready:
            assert ready.status == 200
        with urllib.request.urlopen(f"{base}/metrics") as response:
            body = response.read().decode()
        with urllib.request.urlopen(f"{base}/") as landing:
            page = landing.read().decode()
        request = urllib.request.Request(f"{base}/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request) as compressed:
            assert compressed.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(compressed.read()).decode() == body
    finally:
        server.stop()
        exporter.close()
    assert "drwatch_resource_recovery_point_timestamp_seconds" in body
    assert page.count("<td>rds</td>") == len(fleet.spec.accounts) * len(fleet.spec.regions)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: make system-deps installs it"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, text=True, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_not_ready_before_the_first_round(sandbox: Sandbox, fleet: FleetPlan) -> None:
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet))
    server = HttpServer(exporter.app, "127.0.0.1", 0)  # no poller started
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/-/ready")
        assert raised.value.code == 503
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/-/healthy") as healthy:
            assert healthy.status == 200
    finally:
        server.stop()


def test_golden_exposition(sandbox: Sandbox, fleet: FleetPlan, update_golden: bool) -> None:
    lines = [
        line
        for line in scrape(fleet, sandbox, only="rds").splitlines()
        if not line.startswith("drwatch_build_info{")
    ]  # carries the Python version
    text = "\n".join(lines) + "\n"
    if update_golden:
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "run pytest --update-golden and review the diff"


class SteppingClock(FakeClock):
    """Every monotonic reading is 100 s after the previous one: paging outlives any timeout."""

    def monotonic(self) -> float:
        self.advance(100)
        return super().monotonic()


def test_a_unit_past_its_timeout_stops_paging_and_fails(sandbox: Sandbox, fleet: FleetPlan) -> None:
    collectors: dict[str, dict[str, object]] = {
        c.name: {"enabled": False} for c in COLLECTORS if c.name != "rds"
    }
    collectors["rds"] = {"interval": 60, "timeout": 90}
    config = sandbox_config(sandbox, fleet, collectors=collectors)
    exporter = sandbox_exporter(config, clock=SteppingClock(NOW))
    exporter.poller.run_round()
    statuses = exporter.poller.snapshot()
    assert {s.last_run.error_code for s in statuses if s.last_run} == {"UnitDeadlineError"}
    for status in statuses:
        assert status.last_run is not None
        rds_calls = {k: v for k, v in status.last_run.api_calls.items() if k.startswith("rds:")}
        assert rds_calls == {"rds:DescribeDBInstances": 1}  # stopped after the first page


PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def wsgi_get(app: Any, environ: dict[str, str]) -> tuple[dict[str, str], bytes]:
    headers: dict[str, str] = {}

    def start_response(status: str, given: list[tuple[str, str]]) -> None:
        assert status == "200 OK"
        headers.update(given)

    request = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", **environ}
    return headers, b"".join(app(request, start_response))


def test_metrics_speak_openmetrics_when_asked_like_prometheus_asks(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet))
    exporter.poller.run_round()
    headers, body = wsgi_get(
        exporter.app, {"HTTP_ACCEPT": PROMETHEUS_ACCEPT, "HTTP_ACCEPT_ENCODING": "deflate, gzip"}
    )
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    openmetrics = gzip.decompress(body).decode()
    assert openmetrics.endswith("\n# EOF\n")
    assert openmetrics.count("# EOF") == 1
    assert "\ndrwatch_collector_runs_total{" in openmetrics
    plain_headers, plain = wsgi_get(exporter.app, {"HTTP_ACCEPT_ENCODING": "gzipx"})
    assert plain_headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Content-Encoding" not in plain_headers  # "gzipx" is not gzip
    text = plain.decode()
    assert "# EOF" not in text
    # The same families, and the strict OpenMetrics parser accepts the whole body.
    strict = {f.name for f in openmetrics_parser.text_string_to_metric_families(openmetrics)}
    assert strict == {f.name for f in text_string_to_metric_families(text)}
