"""The metrics view: values, staleness, self-metrics, and promtool's verdict on the output."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import subprocess
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from drwatch.config import parse_config
from drwatch.core.model import Observations, ReplicationState, ResourceRef, UnitKey, UnitRun
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.rds import RdsRecords, observe
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.poller import UnitSchedule, UnitStatus
from tests.test_rds_observe import ACCOUNT, NOW, instance, snapshot

KEY = UnitKey("rds", ACCOUNT, "eu-west-1")
SCHEDULE = UnitSchedule(KEY, 300, 900, 300)
CONFIG = parse_config({"accounts": [{"id": ACCOUNT}], "regions": ["eu-west-1"]})


def status(healthy: bool = True, with_data: bool = True) -> UnitStatus:
    ctx = ObserveContext(ACCOUNT, "eu-west-1", NOW, CONFIG.tiers)
    records = RdsRecords(
        instances=(
            instance("orders"),
            instance("legacy", retention=0, TagList=[{"Key": "dr-tier", "Value": "basic"}]),
        ),
        snapshots=(snapshot("orders", "a1", timedelta(hours=2)),),
    )
    run = UnitRun(KEY, NOW, 1.25, healthy, error_code="" if healthy else "AccessDenied")
    return UnitStatus(
        schedule=SCHEDULE,
        last_run=run,
        last_success=NOW - timedelta(minutes=5),
        observations=observe(records, ctx) if with_data else None,
        runs=3,
        skipped=1,
        errors_by_code={} if healthy else {"AccessDenied": 1},
    )


def render(*statuses: UnitStatus, stats: ApiStats | None = None) -> str:
    return MetricsView(lambda: statuses, stats or ApiStats(), CONFIG.tiers).render().decode()


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    matches = [v for k, v in samples(text, name).items() if set(labels.items()) <= set(k)]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def test_recovery_point_age_is_the_newest_point_over_all_mechanisms() -> None:
    text = render(status())
    pitr = (NOW - timedelta(minutes=3)).timestamp()
    assert (
        value(text, "drwatch_recovery_point_timestamp_seconds", resource="orders", mechanism="pitr")
        == pitr
    )
    assert (
        value(
            text,
            "drwatch_recovery_point_timestamp_seconds",
            resource="orders",
            mechanism="snapshot",
        )
        == (NOW - timedelta(hours=2)).timestamp()
    )
    assert (
        value(
            text,
            "drwatch_resource_recovery_point_timestamp_seconds",
            resource="orders",
            tier="premium",
        )
        == pitr
    )
    assert value(text, "drwatch_rpo_target_seconds", tier="premium") == 300
    assert value(text, "drwatch_rto_target_seconds", tier="basic") == 4 * 3600


def test_unprotected_resource_is_visible_but_has_no_recovery_point() -> None:
    text = render(status())
    assert value(text, "drwatch_resource_info", resource="legacy", tier="basic") == 1
    assert (
        value(text, "drwatch_recovery_mechanism_enabled", resource="legacy", mechanism="pitr") == 0
    )
    assert not [
        k
        for k in samples(text, "drwatch_resource_recovery_point_timestamp_seconds")
        if ("resource", "legacy") in k
    ]


def test_failing_unit_reports_unhealthy_and_stale_data_disappears() -> None:
    text = render(status(healthy=False, with_data=False))
    assert value(text, "drwatch_collector_success", collector="rds") == 0
    assert value(text, "drwatch_collector_data_present", collector="rds") == 0
    assert value(text, "drwatch_collector_errors_total", error_code="AccessDenied") == 1
    assert value(text, "drwatch_collector_skipped_runs_total", collector="rds") == 1
    assert (
        value(text, "drwatch_collector_last_success_timestamp_seconds", collector="rds")
        == (NOW - timedelta(minutes=5)).timestamp()
    )
    assert samples(text, "drwatch_resource_info") == {}


def test_api_counters_come_from_botocore_events() -> None:
    stats = ApiStats()
    stats.on_response_received("response-received.rds.DescribeDBInstances", {"ok": 1})
    stats.on_response_received(
        "response-received.rds.DescribeDBInstances", {"Error": {"Code": "Throttling"}}
    )
    stats.on_response_received(
        "response-received.rds.DescribeDBSnapshots", exception=TimeoutError()
    )
    text = render(status(), stats=stats)
    assert value(text, "drwatch_aws_api_requests_total", operation="DescribeDBInstances") == 2
    assert value(text, "drwatch_aws_api_errors_total", error_code="Throttling") == 1
    assert value(text, "drwatch_aws_api_errors_total", error_code="TimeoutError") == 1


def test_output_passes_promtool_check_metrics() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: make system-deps installs it"
    text = render(status(), status(healthy=False, with_data=False))
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, text=True, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "family",
    [
        "drwatch_collector_success",
        "drwatch_build_info",
        "drwatch_aws_api_requests",
        "drwatch_rpo_target_seconds",
    ],
)
def test_self_metric_families_are_always_present(family: str) -> None:
    names = {f.name for f in text_string_to_metric_families(render())}
    assert family in names


def test_cached_part_follows_every_swap_and_gzip_matches_plain() -> None:
    current = [status()]
    view = MetricsView(lambda: current, ApiStats(), CONFIG.tiers)
    first = view.render()
    assert view.render() == first
    assert gzip.decompress(view.render(gzipped=True)) == first  # two gzip members, one stream
    gone = status(with_data=False)
    current = [dataclasses.replace(gone, runs=gone.runs + 1)]
    assert b'resource="orders"' in first
    assert b'resource="orders"' not in view.render()


def test_every_replication_is_listed_with_its_state() -> None:
    source = ResourceRef(ACCOUNT, "eu-west-1", "elasticache", "replication_group", "sessions")
    global_store = ReplicationState(
        kind="elasticache_global",
        source=source,
        destination_account_id=ACCOUNT,
        destination_region="us-east-1",
        destination="ldgnf-sessions",
        state="associated",
    )
    observed = dataclasses.replace(
        status(), observations=Observations(replication_states=(global_store,))
    )
    text = render(observed)
    labels = {"kind": "elasticache_global", "resource": "sessions", "state": "associated"}
    assert value(text, "drwatch_replication_info", **labels) == 1
    assert samples(text, "drwatch_replication_latency_seconds") == {}  # unknown, not zero
