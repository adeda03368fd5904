"""A deterministic S3 estate: replicated buckets with CloudWatch lag, and backup-file prefixes.

`plan_s3_fleet(spec)` is pure. Per account and region it plans buckets whose verdicts differ:

- `orders` (premium): replicated with RTC and metrics to the other region, 45 s behind,
  delete markers replicated;
- `ledger` (standard): replicated with metrics, lagging two hours with a backlog;
- `media` (basic): replicated without replication metrics: lag unknown, never zero;
- `archive` (untagged, default tier): replicated to the same region in the other account,
  with failed operations and object lock;
- `logs`: neither versioned nor replicated;
- `exports`: backup files under prefixes: `db-dumps/` fresh, `redis/` two days old, and
  nothing under `config/` (see `freshness_targets`).

Replica buckets are versioned and not replicated themselves. `seed_s3_fleet` creates it
all through the S3 API and writes the replication metrics with PutMetricData: latency,
pending bytes and operations in the destination's region, failed operations in the
source's, as S3 publishes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from moto.s3.models import s3_backends

from drwatch.sandbox.server import Sandbox

METRIC_NAMESPACE = "AWS/S3"
REPLICATION_ROLE = "drwatch-sandbox-replication"
EXPORT_OBJECT_BYTES = 4096
PUT_METRIC_DATA_LIMIT = 1000  # metrics per PutMetricData call


@dataclass(frozen=True, slots=True)
class PlannedRule:
    rule_id: str
    destination_account_id: str
    destination_region: str
    destination: str
    storage_class: str | None
    rtc: bool
    metrics: bool
    delete_markers: bool
    latency_seconds: float | None = None  # None: no datapoint published
    pending_bytes: float | None = None
    pending_operations: float | None = None
    failed_operations: float | None = None


@dataclass(frozen=True, slots=True)
class PlannedBucket:
    account_id: str
    region: str
    name: str
    tier: str | None  # value of the dr-tier tag; None = untagged
    versioned: bool
    object_lock: bool = False
    rules: tuple[PlannedRule, ...] = ()
    objects: tuple[tuple[str, datetime], ...] = ()  # key, last modified


@dataclass(frozen=True, slots=True)
class FreshnessTarget:
    account_id: str
    region: str
    bucket: str
    prefix: str
    tier: str
    newest: datetime | None  # newest object under the prefix; None = empty prefix
    objects: int


@dataclass(frozen=True, slots=True)
class S3FleetPlan:
    now: datetime
    buckets: tuple[PlannedBucket, ...]
    freshness_targets: tuple[FreshnessTarget, ...]


def bucket_name(account_id: str, region: str, app: str) -> str:
    return f"drw-{account_id[-4:]}-{region}-{app}"


def plan_s3_fleet(
    now: datetime, accounts: tuple[str, ...], regions: tuple[str, ...]
) -> S3FleetPlan:
    buckets: list[PlannedBucket] = []
    targets: list[FreshnessTarget] = []
    for index, account in enumerate(accounts):
        # The next account, cyclically: with more than two accounts every source then has its
        # own cross-account destination, so replica bucket names (global in S3) never clash.
        other_account = accounts[(index + 1) % len(accounts)]
        for region in regions:
            other_region = next((r for r in regions if r != region), region)
            buckets.extend(unit_buckets(now, account, region, other_account, other_region))
            targets.extend(unit_targets(now, account, region))
    return S3FleetPlan(now=now, buckets=tuple(buckets), freshness_targets=tuple(targets))


def replicated(
    account: str,
    region: str,
    app: str,
    tier: str | None,
    rule: PlannedRule,
    object_lock: bool = False,
) -> list[PlannedBucket]:
    source = PlannedBucket(
        account, region, bucket_name(account, region, app), tier, True, object_lock, (rule,)
    )
    replica = PlannedBucket(
        rule.destination_account_id, rule.destination_region, rule.destination, None, True
    )
    return [source, replica]


def unit_buckets(
    now: datetime, account: str, region: str, other_account: str, other_region: str
) -> list[PlannedBucket]:
    def replica(app: str, dest_account: str = account, dest_region: str = other_region) -> str:
        return bucket_name(dest_account, dest_region, f"{app}-replica-from-{region}")

    return [
        *replicated(
            account,
            region,
            "orders",
            "premium",
            PlannedRule(
                "orders-all",
                account,
                other_region,
                replica("orders"),
                "STANDARD_IA",
                rtc=True,
                metrics=True,
                delete_markers=True,
                latency_seconds=45.0,
                pending_bytes=1_048_576.0,
                pending_operations=12.0,
                failed_operations=0.0,
            ),
        ),
        *replicated(
            account,
            region,
            "ledger",
            "standard",
            PlannedRule(
                "ledger-all",
                account,
                other_region,
                replica("ledger"),
                None,
                rtc=False,
                metrics=True,
                delete_markers=False,
                latency_seconds=7200.0,
                pending_bytes=5_368_709_120.0,
                pending_operations=1200.0,
                failed_operations=0.0,
            ),
        ),
        *replicated(
            account,
            region,
            "media",
            "basic",
            PlannedRule(
                "media-all",
                account,
                other_region,
                replica("media"),
                "GLACIER",
                rtc=False,
                metrics=False,
                delete_markers=False,
            ),
        ),
        *replicated(
            account,
            region,
            "archive",
            None,
            PlannedRule(
                "archive-to-vault-account",
                other_account,
                region,
                replica("archive", other_account, region),
                "DEEP_ARCHIVE",
                rtc=False,
                metrics=True,
                delete_markers=False,
                latency_seconds=300.0,
                pending_bytes=0.0,
                pending_operations=0.0,
                failed_operations=3.0,
            ),
            object_lock=True,
        ),
        PlannedBucket(account, region, bucket_name(account, region, "logs"), None, False),
        PlannedBucket(
            account,
            region,
            bucket_name(account, region, "exports"),
            None,
            True,
            objects=(
                ("db-dumps/2026-11-01T1100.sql.gz", now - timedelta(minutes=65)),
                ("db-dumps/2026-11-01T1130.sql.gz", now - timedelta(minutes=35)),
                ("redis/dump-2026-10-30.rdb", now - timedelta(days=2)),
            ),
        ),
    ]


def unit_targets(now: datetime, account: str, region: str) -> list[FreshnessTarget]:
    exports = bucket_name(account, region, "exports")
    return [
        FreshnessTarget(
            account, region, exports, "db-dumps/", "basic", now - timedelta(minutes=35), 2
        ),
        FreshnessTarget(account, region, exports, "redis/", "basic", now - timedelta(days=2), 1),
        FreshnessTarget(account, region, exports, "config/", "basic", None, 0),
    ]


# --- seeding ------------------------------------------------------------------------------


def seed_s3_fleet(sandbox: Sandbox, plan: S3FleetPlan) -> None:
    """Create the buckets, their settings, objects and replication metrics of `plan`."""
    # Replicas first: a replication rule may only name an existing, versioned bucket.
    ordered = sorted(plan.buckets, key=lambda b: bool(b.rules))
    for bucket in ordered:
        create_bucket(sandbox.client("s3", bucket.region, account_id=bucket.account_id), bucket)
    batches: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for bucket in plan.buckets:
        for rule in bucket.rules:
            for region, datum in metric_data(plan.now, bucket, rule):
                # Metrics belong to the source bucket's account, whichever region they are in.
                batches[(bucket.account_id, region)].append(datum)
    for (account, region), data in sorted(batches.items()):
        cloudwatch = sandbox.client("cloudwatch", region, account_id=account)
        for start in range(0, len(data), PUT_METRIC_DATA_LIMIT):
            cloudwatch.put_metric_data(
                Namespace=METRIC_NAMESPACE, MetricData=data[start : start + PUT_METRIC_DATA_LIMIT]
            )


def create_bucket(s3: Any, bucket: PlannedBucket) -> None:
    params: dict[str, Any] = {
        "Bucket": bucket.name,
        "ObjectLockEnabledForBucket": bucket.object_lock,
    }
    if bucket.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
        params["CreateBucketConfiguration"] = {"LocationConstraint": bucket.region}
    s3.create_bucket(**params)
    if bucket.versioned:
        s3.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})
    if bucket.tier is not None:
        s3.put_bucket_tagging(
            Bucket=bucket.name,
            Tagging={
                "TagSet": [
                    {"Key": "dr-tier", "Value": bucket.tier},
                    {"Key": "team", "Value": "data"},
                ]
            },
        )
    if bucket.rules:
        s3.put_bucket_replication(
            Bucket=bucket.name,
            ReplicationConfiguration={
                "Role": f"arn:aws:iam::{bucket.account_id}:role/{REPLICATION_ROLE}",
                "Rules": [
                    rule_config(rule, priority) for priority, rule in enumerate(bucket.rules, 1)
                ],
            },
        )
    for key, _modified in bucket.objects:
        s3.put_object(Bucket=bucket.name, Key=key, Body=b"\0" * EXPORT_OBJECT_BYTES)
    set_last_modified(bucket)


def rule_config(rule: PlannedRule, priority: int) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "Bucket": f"arn:aws:s3:::{rule.destination}",
        "Account": rule.destination_account_id,
    }
    if rule.storage_class is not None:
        destination["StorageClass"] = rule.storage_class
    if rule.rtc:
        destination["ReplicationTime"] = {"Status": "Enabled", "Time": {"Minutes": 15}}
    if rule.metrics:
        destination["Metrics"] = {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}
    return {
        "ID": rule.rule_id,
        "Priority": priority,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Enabled" if rule.delete_markers else "Disabled"},
        "Destination": destination,
    }


def set_last_modified(bucket: PlannedBucket) -> None:
    """PutObject stamps the server's clock; the plan's times are set in moto's backend."""
    if not bucket.objects:
        return
    backend = s3_backends[bucket.account_id]["aws"]
    stored = backend.get_bucket(bucket.name)
    for key, modified in bucket.objects:
        stored.keys[key].last_modified = modified.replace(tzinfo=None)


def metric_data(
    now: datetime, bucket: PlannedBucket, rule: PlannedRule
) -> list[tuple[str, dict[str, Any]]]:
    """(region, datum) of the rule's replication metrics, as S3 publishes them."""
    dimensions = [
        {"Name": "SourceBucket", "Value": bucket.name},
        {"Name": "DestinationBucket", "Value": rule.destination},
        {"Name": "RuleId", "Value": rule.rule_id},
    ]
    planned = [
        (rule.destination_region, "ReplicationLatency", rule.latency_seconds, "Seconds"),
        (rule.destination_region, "BytesPendingReplication", rule.pending_bytes, "Bytes"),
        (rule.destination_region, "OperationsPendingReplication", rule.pending_operations, "Count"),
        (bucket.region, "OperationsFailedReplication", rule.failed_operations, "Count"),
    ]
    at = now - timedelta(minutes=2)
    return [
        (
            region,
            {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": at,
                "Value": value,
                "Unit": unit,
            },
        )
        for region, name, value, unit in planned
        if value is not None
    ]
