"""The S3 replication collector against the sandbox: values match the seeded estate, lag
comes from batched and cached GetMetricData, and a rule without metrics is "lag unknown"."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from drwatch.config import TierConfig
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.s3_replication import (
    BucketRecord,
    MetricKey,
    S3Records,
    observe,
)
from drwatch.sandbox import demo
from drwatch.sandbox.fleet import FleetPlan, FleetSpec
from drwatch.sandbox.s3_fleet import (
    PlannedBucket,
    PlannedRule,
    S3FleetPlan,
    plan_s3_fleet,
    seed_s3_fleet,
)
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW, sandbox_config, sandbox_exporter
from tests.helpers import FakeClock
from tests.test_metrics import samples, value

GOLDEN = Path(__file__).parent / "golden" / "s3_replication.prom"
MANY_RULES = 300
SOURCE, DESTINATION = "eu-west-1", "us-east-1"
ACCOUNT = "111111111111"


def only(name: str) -> dict[str, dict[str, object]]:
    return {c.name: {"enabled": c.name == name, "interval": 60} for c in COLLECTORS}


@pytest.fixture(scope="module")
def s3_plan(fleet: FleetPlan) -> S3FleetPlan:
    return plan_s3_fleet(fleet.spec.now, fleet.spec.accounts, fleet.spec.regions)


@pytest.fixture(scope="module")
def text(sandbox: Sandbox, fleet: FleetPlan) -> str:
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet, collectors=only("s3_replication")))
    exporter.poller.run_round()
    return exporter.metrics.render().decode()


def api_requests(text: str, operation: str) -> float:
    return value(text, "drwatch_aws_api_requests_total", operation=operation)


def source_labels(bucket: PlannedBucket) -> dict[str, str]:
    return {"account_id": bucket.account_id, "region": bucket.region, "resource": bucket.name}


def test_every_rule_matches_the_seeded_configuration(text: str, s3_plan: S3FleetPlan) -> None:
    replicated = [b for b in s3_plan.buckets if b.rules]
    for bucket in replicated:
        (rule,) = bucket.rules
        labels = {**source_labels(bucket), "rule": rule.rule_id}
        info = value(
            text,
            "drwatch_s3_replication_rule_info",
            destination=rule.destination,
            destination_region=rule.destination_region,
            destination_account_id=rule.destination_account_id,
            storage_class=rule.storage_class or "",
            **labels,
        )
        assert info == 1
        assert value(text, "drwatch_s3_replication_metrics_enabled", **labels) == rule.metrics
        assert value(text, "drwatch_s3_replication_time_control_enabled", **labels) == rule.rtc
        assert (
            value(text, "drwatch_s3_replication_delete_marker_replication_enabled", **labels)
            == rule.delete_markers
        )
        tier = value(text, "drwatch_resource_info", service="s3", **source_labels(bucket))
        assert tier == 1
    assert len(samples(text, "drwatch_s3_replication_rule_info")) == len(replicated)
    assert len(samples(text, "drwatch_resource_info")) == len(replicated)


def test_lag_backlog_and_failures_come_from_cloudwatch(text: str, s3_plan: S3FleetPlan) -> None:
    families = {
        "drwatch_replication_latency_seconds": "latency_seconds",
        "drwatch_replication_pending_bytes": "pending_bytes",
        "drwatch_replication_pending_operations": "pending_operations",
        "drwatch_replication_failed_operations": "failed_operations",
    }
    for bucket in (b for b in s3_plan.buckets if b.rules):
        (rule,) = bucket.rules
        labels = {**source_labels(bucket), "kind": "s3", "destination": rule.destination}
        for family, attribute in families.items():
            found = [v for k, v in samples(text, family).items() if set(labels.items()) <= set(k)]
            expected = getattr(rule, attribute)
            assert found == ([] if expected is None else [expected]), (family, bucket.name)
    latencies = samples(text, "drwatch_replication_latency_seconds").values()
    assert 7200.0 in latencies, "the fleet has a lagging rule"


def test_a_rule_without_metrics_is_lag_unknown_never_zero(text: str) -> None:
    unknown = {
        dict(k)["resource"]
        for k, v in samples(text, "drwatch_s3_replication_metrics_enabled").items()
        if v == 0
    }
    assert unknown
    lagged = {dict(k)["resource"] for k in samples(text, "drwatch_replication_latency_seconds")}
    assert not unknown & lagged


def test_bucket_versioning_and_object_lock(text: str, s3_plan: S3FleetPlan) -> None:
    for bucket in s3_plan.buckets:
        labels = source_labels(bucket)
        assert value(text, "drwatch_s3_bucket_versioning_enabled", **labels) == bucket.versioned
        assert value(text, "drwatch_s3_bucket_object_lock_enabled", **labels) == bucket.object_lock
        assert value(text, "drwatch_s3_bucket_replication_rules", **labels) == len(bucket.rules)


def test_metrics_are_cached_for_the_ttl(sandbox: Sandbox, fleet: FleetPlan) -> None:
    clock = FakeClock(NOW)
    config = sandbox_config(sandbox, fleet, collectors=only("s3_replication"))
    exporter = sandbox_exporter(config, clock=clock)
    exporter.poller.run_round()
    first = api_requests(exporter.metrics.render().decode(), "GetMetricData")
    assert first > 0
    clock.advance(30)  # within the 60 s TTL: the values are reused
    exporter.poller.run_round()
    assert api_requests(exporter.metrics.render().decode(), "GetMetricData") == first
    clock.advance(60)  # past it: read again
    exporter.poller.run_round()
    assert api_requests(exporter.metrics.render().decode(), "GetMetricData") == 2 * first


def test_golden_s3_replication_exposition(text: str, update_golden: bool) -> None:
    lines = [line for line in text.splitlines() if not line.startswith("drwatch_build_info{")]
    body = "\n".join(lines) + "\n"
    if update_golden:
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "run pytest --update-golden and review the diff"
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: make system-deps installs it"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, text=True, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the pure mapping ---------------------------------------------------------------------


def rule(rule_id: str, destination: str, metrics: bool) -> dict[str, object]:
    return {
        "ID": rule_id,
        "Status": "Enabled",
        "Destination": {
            "Bucket": f"arn:aws:s3:::{destination}",
            "Metrics": {"Status": "Enabled" if metrics else "Disabled"},
        },
    }


def observe_rules(*rules: dict[str, object], metrics: dict[MetricKey, float]) -> S3Records:
    bucket = BucketRecord(
        name="src",
        replication={"ReplicationConfiguration": {"Role": "r", "Rules": list(rules)}},
        versioning={"Status": "Enabled"},
        object_lock=None,
        tags=(),
    )
    return S3Records(buckets=(bucket,), bucket_regions={"dst": "us-east-1"}, metrics=metrics)


CTX = ObserveContext(account_id=ACCOUNT, region=SOURCE, now=NOW, tiers=TierConfig())


def key(metric: str, rule_id: str) -> MetricKey:
    stat = "Sum" if metric == "OperationsFailedReplication" else "Maximum"
    region = SOURCE if stat == "Sum" else DESTINATION
    return MetricKey(region, metric, stat, "src", "dst", rule_id)


def test_rules_to_one_destination_combine_worst_lag_and_summed_backlog() -> None:
    metrics = {
        key("ReplicationLatency", "a"): 10.0,
        key("ReplicationLatency", "b"): 90.0,
        key("OperationsPendingReplication", "a"): 1.0,
        key("OperationsPendingReplication", "b"): 2.0,
    }
    records = observe_rules(rule("a", "dst", True), rule("b", "dst", True), metrics=metrics)
    (state,) = observe(records, CTX).replication_states
    assert state.latency_seconds == 90.0
    assert state.pending_operations == 3.0
    assert state.failed_operations is None  # no datapoint: unknown, not zero


def test_one_rule_without_metrics_makes_the_combined_lag_unknown() -> None:
    metrics = {key("ReplicationLatency", "a"): 10.0}
    records = observe_rules(rule("a", "dst", True), rule("b", "dst", False), metrics=metrics)
    observed = observe(records, CTX)
    (state,) = observed.replication_states
    assert state.latency_seconds is None
    assert [r.metrics_enabled for r in observed.s3_replication_rules] == [True, False]


def test_sandbox_list_buckets_pages_with_a_token_and_names_each_region(
    sandbox: Sandbox, fleet: FleetPlan, s3_plan: S3FleetPlan
) -> None:
    """moto truncates ListBuckets without a token and omits BucketRegion; the sandbox does not."""
    account = fleet.spec.accounts[0]
    s3 = sandbox.client("s3", fleet.spec.regions[0], account_id=account)
    pages = list(s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 3}))
    listed = {b["Name"]: b["BucketRegion"] for page in pages for b in page["Buckets"]}
    expected = {b.name: b.region for b in s3_plan.buckets if b.account_id == account}
    assert listed == expected
    assert len(pages) == -(-len(expected) // 3)


# --- CloudWatch cost: 300 rules, batched and cached ---------------------------------------


def many_rules_plan() -> S3FleetPlan:
    replica = PlannedBucket(ACCOUNT, DESTINATION, "drw-many-replica", None, True)
    sources = tuple(
        PlannedBucket(
            ACCOUNT,
            SOURCE,
            f"drw-many-{index:03d}",
            None,
            True,
            rules=(
                PlannedRule(
                    f"rule-{index:03d}",
                    ACCOUNT,
                    DESTINATION,
                    replica.name,
                    None,
                    rtc=True,
                    metrics=True,
                    delete_markers=False,
                    latency_seconds=float(index),
                    pending_bytes=0.0,
                    pending_operations=0.0,
                    failed_operations=0.0,
                ),
            ),
        )
        for index in range(MANY_RULES)
    )
    return S3FleetPlan(now=NOW, buckets=(replica, *sources), freshness_targets=())


def test_300_rules_take_one_get_metric_data_call_per_500_queries(
    sandbox: Sandbox,
) -> None:
    sandbox.reset()
    seed_s3_fleet(sandbox, many_rules_plan())
    spec = FleetSpec(now=NOW, accounts=(ACCOUNT,), regions=(SOURCE, DESTINATION))
    config = demo.sandbox_config(sandbox.endpoint_url, spec, collectors=only("s3_replication"))
    exporter = sandbox_exporter(config)
    exporter.poller.run_round()
    text = exporter.metrics.render().decode()
    # Latency, pending bytes and operations in the destination's region, failures in the
    # source's: 900 and 300 queries.
    expected_calls = math.ceil(3 * MANY_RULES / 500) + math.ceil(MANY_RULES / 500)
    assert api_requests(text, "GetMetricData") == expected_calls == 3
    latencies = samples(text, "drwatch_replication_latency_seconds")
    assert sorted(latencies.values()) == [float(i) for i in range(MANY_RULES)]


class RefusingS3:
    """A client whose GetBucketLocation is refused, as another account's bucket policy may."""

    def get_bucket_location(self, Bucket: str) -> dict[str, str]:  # noqa: N803 - boto3's name
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetBucketLocation")


def test_an_unreadable_cross_account_destination_has_an_unknown_region() -> None:
    from drwatch.exporter.collectors.base import CollectContext
    from drwatch.exporter.collectors.s3_replication import S3ReplicationCollector

    ctx = CollectContext(observe=CTX, client_for=lambda _: RefusingS3(), deadline=float("inf"))
    collector = S3ReplicationCollector()
    assert collector._destination_location(ctx, RefusingS3(), "theirs") == ""
