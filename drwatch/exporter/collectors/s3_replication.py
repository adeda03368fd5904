"""S3 replication: bucket versioning and object lock, replication rules and their lag.

Buckets are global, but each has one home region. The unit of region R watches the buckets
whose home is R, so every bucket is observed by exactly one unit and no series is emitted
twice, and its per-bucket calls go to the bucket's own regional endpoint (no redirects).

Calls per account and region and poll:

- ListBuckets (paginated, 1000 a page): every bucket of the account with its `BucketRegion`,
  so no GetBucketLocation per bucket. Each region's unit reads the whole list: it also
  names the region of same-account destination buckets.
- Per bucket of this region, S3 having no batch describe: GetBucketReplication,
  GetBucketVersioning, GetObjectLockConfiguration, GetBucketTagging. Four calls a bucket:
  the dominant cost (500 buckets: 2,000 calls a poll).
- GetBucketLocation only for a destination bucket outside the listing (another account),
  once per collector lifetime: a bucket never changes region. If the other account's
  bucket policy refuses it, the destination region and the rule's lag are unknown.
- CloudWatch GetMetricData (`AWS/S3`, dimensions SourceBucket, DestinationBucket, RuleId)
  for rules with replication metrics on, up to 500 queries a call: ReplicationLatency,
  BytesPendingReplication and OperationsPendingReplication in the destination's region,
  OperationsFailedReplication in the source's. Results are cached for `metrics_ttl`, so a
  poll shortly after another (a restart, a second round) does not pay again.

A rule without replication metrics has no lag figure: it is "lag unknown" (no latency
sample and `drwatch_s3_replication_metrics_enabled 0`), never zero lag.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from drwatch.core.model import (
    Mechanism,
    Observations,
    RecoveryState,
    ReplicationState,
    Resource,
    ResourceRef,
    S3BucketState,
    S3ReplicationRule,
)
from drwatch.exporter.collectors.base import CollectContext, ObserveContext, sorted_tags, tags_of
from drwatch.exporter.collectors.cloudwatch import (
    DEFAULT_METRICS_TTL,
    METRIC_PERIOD_SECONDS,
    METRIC_QUERIES_PER_CALL,
    METRIC_WINDOW,
    MetricCache,
    newest_metric_values,
)
from drwatch.exporter.collectors.isolation import require

SERVICE = "s3"
RESOURCE_TYPE = "bucket"
LIST_BUCKETS_PAGE = 1000
METRIC_NAMESPACE = "AWS/S3"
# Where each replication metric lives and how its newest period is summarised.
DESTINATION_METRICS = (
    ("ReplicationLatency", "Maximum"),
    ("BytesPendingReplication", "Maximum"),
    ("OperationsPendingReplication", "Maximum"),
)
SOURCE_METRICS = (("OperationsFailedReplication", "Sum"),)
# "Not configured" answers: the setting is absent, which is a fact, not a failure.
NO_REPLICATION = "ReplicationConfigurationNotFoundError"
NO_OBJECT_LOCK = "ObjectLockConfigurationNotFoundError"
NO_TAGS = "NoSuchTagSet"
Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BucketRecord:
    """One bucket of this region and its per-bucket Get* answers (None = not configured)."""

    name: str
    replication: Record | None
    versioning: Record
    object_lock: Record | None
    tags: tuple[Record, ...]


@dataclass(frozen=True, slots=True, order=True)
class MetricKey:
    """One CloudWatch series of one replication rule."""

    region: str
    metric: str
    stat: str
    source_bucket: str
    destination_bucket: str
    rule_id: str


@dataclass(frozen=True, slots=True)
class S3Records:
    buckets: tuple[BucketRecord, ...] = ()
    bucket_regions: Mapping[str, str] = field(default_factory=dict)  # destination -> region
    metrics: Mapping[MetricKey, float] = field(default_factory=dict)  # newest value


class S3ReplicationCollector:
    name: ClassVar[str] = "s3_replication"
    iam_actions: ClassVar[tuple[str, ...]] = (
        "s3:ListAllMyBuckets",
        "s3:GetBucketLocation",
        "s3:GetReplicationConfiguration",
        "s3:GetBucketVersioning",
        "s3:GetBucketObjectLockConfiguration",
        "s3:GetBucketTagging",
        "cloudwatch:GetMetricData",
    )

    def __init__(self, metrics_ttl: timedelta = DEFAULT_METRICS_TTL) -> None:
        self._lock = threading.Lock()  # units of several regions share the bucket regions
        self._bucket_regions: dict[tuple[str, str], str] = {}
        self._metric_cache: MetricCache[MetricKey] = MetricCache(metrics_ttl)

    def collect(self, ctx: CollectContext) -> Observations:
        return observe(self.fetch(ctx), ctx.observe)

    def fetch(self, ctx: CollectContext) -> S3Records:
        s3 = ctx.client(SERVICE)
        listed = ctx.observe.collection.keep(
            ctx.paginate(s3, "list_buckets", "Buckets", page_size=LIST_BUCKETS_PAGE),
            lambda b: b.get("Name"),
            lambda b: require(b, "Name"),
        )
        regions = {str(b["Name"]): self._region_of(ctx, s3, b) for b in listed}
        local = [name for name, region in regions.items() if region == ctx.observe.region]
        buckets = tuple(read_bucket(s3, name) for name in sorted(local))
        for destination in destination_buckets(buckets):
            if destination not in regions:
                regions[destination] = self._destination_location(ctx, s3, destination)
        keys = metric_keys(buckets, regions, ctx.observe.region)
        # Optional: replication metrics (CloudWatch) can fail alone; lag is then unknown.
        metrics: dict[MetricKey, float] = ctx.optional(
            "replication_metrics", lambda: self._metrics(ctx, keys), {}
        )
        return S3Records(buckets=buckets, bucket_regions=regions, metrics=metrics)

    def _region_of(self, ctx: CollectContext, s3: Any, bucket: Record) -> str:
        region = bucket.get("BucketRegion")
        return str(region) if region else self._location(ctx, s3, str(bucket["Name"]))

    def _destination_location(self, ctx: CollectContext, s3: Any, bucket: str) -> str:
        """Region of a destination bucket outside the account's listing, "" if unreadable.

        Another account's bucket policy may refuse GetBucketLocation. That rule's destination
        region (and so its lag) is then unknown, shown as destination_region="", rather
        than failing the whole unit for one bucket drwatch does not own. Not cached, so a
        fixed policy shows on the next poll.
        """
        try:
            return self._location(ctx, s3, bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "AccessDenied":
                return ""
            raise

    def _location(self, ctx: CollectContext, s3: Any, bucket: str) -> str:
        key = (ctx.observe.account_id, bucket)
        with self._lock:
            cached = self._bucket_regions.get(key)
        if cached is None:
            answer = s3.get_bucket_location(Bucket=bucket)
            # us-east-1 buckets answer an empty LocationConstraint (a historic quirk).
            cached = str(answer.get("LocationConstraint") or "us-east-1")
            with self._lock:
                self._bucket_regions[key] = cached
        return cached

    def _metrics(self, ctx: CollectContext, keys: Sequence[MetricKey]) -> dict[MetricKey, float]:
        unit = (ctx.observe.account_id, ctx.observe.region)
        return self._metric_cache.values(
            unit, keys, ctx.observe.now, lambda stale: fetch_metrics(ctx, stale)
        )


def read_bucket(s3: Any, name: str) -> BucketRecord:
    return BucketRecord(
        name=name,
        replication=absent_if(NO_REPLICATION, lambda: s3.get_bucket_replication(Bucket=name)),
        versioning=s3.get_bucket_versioning(Bucket=name),
        object_lock=absent_if(
            NO_OBJECT_LOCK, lambda: s3.get_object_lock_configuration(Bucket=name)
        ),
        tags=tuple(
            (absent_if(NO_TAGS, lambda: s3.get_bucket_tagging(Bucket=name)) or {}).get("TagSet", ())
        ),
    )


def absent_if(code: str, call: Any) -> Record | None:
    """The call's answer, or None when S3 says the setting is not configured (`code`)."""
    try:
        answer: Record = call()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == code:
            return None
        raise
    return answer


def rules_of(bucket: BucketRecord) -> list[Record]:
    if bucket.replication is None:
        return []
    return list(bucket.replication.get("ReplicationConfiguration", {}).get("Rules", ()))


def destination_buckets(buckets: Iterable[BucketRecord]) -> list[str]:
    return sorted(
        {bucket_name(rule["Destination"]["Bucket"]) for b in buckets for rule in rules_of(b)}
    )


def bucket_name(arn: str) -> str:
    """`arn:aws:s3:::name` -> `name`."""
    return arn.rsplit(":", 1)[-1]


def metrics_enabled(rule: Record) -> bool:
    destination = rule.get("Destination", {})
    return (destination.get("Metrics") or {}).get("Status") == "Enabled"


def metric_keys(
    buckets: Iterable[BucketRecord], regions: Mapping[str, str], region: str
) -> list[MetricKey]:
    """The CloudWatch series of every enabled rule with metrics on and a known destination."""
    keys: list[MetricKey] = []
    for bucket in buckets:
        for rule in rules_of(bucket):
            if rule.get("Status") != "Enabled" or not metrics_enabled(rule):
                continue
            destination = bucket_name(rule["Destination"]["Bucket"])
            dest_region = regions.get(destination, "")
            rule_id = str(rule.get("ID", ""))
            if dest_region:
                keys.extend(
                    MetricKey(dest_region, metric, stat, bucket.name, destination, rule_id)
                    for metric, stat in DESTINATION_METRICS
                )
            keys.extend(
                MetricKey(region, metric, stat, bucket.name, destination, rule_id)
                for metric, stat in SOURCE_METRICS
            )
    return keys


def fetch_metrics(ctx: CollectContext, keys: Sequence[MetricKey]) -> dict[MetricKey, float]:
    """Newest value of each series, in batches of 500 queries per region."""
    by_region: dict[str, list[MetricKey]] = defaultdict(list)
    for key in sorted(keys):
        by_region[key.region].append(key)
    values: dict[MetricKey, float] = {}
    end = ctx.observe.now
    for region, region_keys in sorted(by_region.items()):
        cloudwatch = ctx.client_in("cloudwatch", region)
        for start in range(0, len(region_keys), METRIC_QUERIES_PER_CALL):
            batch = region_keys[start : start + METRIC_QUERIES_PER_CALL]
            values.update(metric_batch(cloudwatch, batch, end - METRIC_WINDOW, end))
    return values


def metric_batch(
    cloudwatch: Any, batch: Sequence[MetricKey], start: datetime, end: datetime
) -> dict[MetricKey, float]:
    # Query ids must start with a lower-case letter and be unique within the call.
    by_id = {f"q{index}": key for index, key in enumerate(batch)}
    queries = [metric_query(query_id, key) for query_id, key in by_id.items()]
    newest = newest_metric_values(cloudwatch, queries, start, end)
    return {by_id[query_id]: value for query_id, value in newest.items()}


def metric_query(query_id: str, key: MetricKey) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": METRIC_NAMESPACE,
                "MetricName": key.metric,
                "Dimensions": [
                    {"Name": "SourceBucket", "Value": key.source_bucket},
                    {"Name": "DestinationBucket", "Value": key.destination_bucket},
                    {"Name": "RuleId", "Value": key.rule_id},
                ],
            },
            "Period": METRIC_PERIOD_SECONDS,
            "Stat": key.stat,
        },
        "ReturnData": True,
    }


# --- the pure mapping --------------------------------------------------------------------


def observe(records: S3Records, ctx: ObserveContext) -> Observations:
    resources: list[Resource] = []
    buckets: list[S3BucketState] = []
    rules: list[S3ReplicationRule] = []
    replications: list[ReplicationState] = []
    states: list[RecoveryState] = []
    for bucket in records.buckets:
        ref = ResourceRef(ctx.account_id, ctx.region, SERVICE, RESOURCE_TYPE, bucket.name)
        name = bucket.name

        def rule_id(rule: Record, name: str = name) -> str:
            return f"{name}/{rule.get('ID', '')}"

        def mapped(rule: Record, ref: ResourceRef = ref) -> S3ReplicationRule:
            return rule_of(ref, rule, records.bucket_regions, ctx)

        bucket_rules = list(ctx.collection.each(rules_of(bucket), rule_id, mapped))
        buckets.append(bucket_state(ref, bucket, len(bucket_rules)))
        if not bucket_rules:
            continue  # only replicated buckets are DR resources of this collector
        tags = tags_of(bucket.tags)
        resources.append(
            Resource(
                ref=ref,
                name=bucket.name,
                tier=ctx.tiers.tier_for(tags),
                arn=f"arn:aws:s3:::{bucket.name}",
                tags=sorted_tags(tags),
            )
        )
        rules.extend(bucket_rules)
        bucket_replications = replication_states(bucket_rules, records.metrics, ctx.now)
        replications.extend(bucket_replications)
        states.append(replica_recovery_state(ref, bucket_replications))
    return Observations(
        resources=tuple(resources),
        recovery_states=tuple(states),
        replication_states=tuple(replications),
        s3_buckets=tuple(buckets),
        s3_replication_rules=tuple(rules),
    )


def bucket_state(ref: ResourceRef, bucket: BucketRecord, rule_count: int) -> S3BucketState:
    lock = (bucket.object_lock or {}).get("ObjectLockConfiguration") or {}
    return S3BucketState(
        ref=ref,
        versioning=str(bucket.versioning.get("Status", "")),
        object_lock=lock.get("ObjectLockEnabled") == "Enabled",
        replication_rules=rule_count,
    )


def rule_of(
    ref: ResourceRef, rule: Record, regions: Mapping[str, str], ctx: ObserveContext
) -> S3ReplicationRule:
    destination = rule["Destination"]
    name = bucket_name(destination["Bucket"])
    rtc = destination.get("ReplicationTime") or {}
    delete_markers = rule.get("DeleteMarkerReplication") or {}
    return S3ReplicationRule(
        source=ref,
        rule_id=str(rule.get("ID", "")),
        status=str(rule.get("Status", "")),
        destination_account_id=str(destination.get("Account") or ctx.account_id),
        destination_region=regions.get(name, ""),
        destination=name,
        storage_class=str(destination.get("StorageClass", "")),
        replication_time_control=rtc.get("Status") == "Enabled",
        metrics_enabled=metrics_enabled(rule),
        delete_marker_replication=delete_markers.get("Status") == "Enabled",
    )


def replica_recovery_state(
    ref: ResourceRef, replications: Sequence[ReplicationState]
) -> RecoveryState:
    """The replicas are the bucket's recovery point: as new as its laggiest enabled replica.

    Unknown as soon as one enabled destination's lag is unknown, so the generic RPO and
    "no recovery point" alerts cover replicated buckets with the bucket's own tier. Stored
    under the source's labels: the point describes the source's data, wherever it sits.
    """
    enabled = [r for r in replications if r.state == "Enabled"]
    points = [r.latest_replicated_point for r in enabled]
    known = [p for p in points if p is not None]
    return RecoveryState(
        ref=ref,
        mechanism=Mechanism.REPLICATION,
        location_account_id=ref.account_id,
        location_region=ref.region,
        enabled=bool(enabled),
        newest_point=min(known) if known and len(known) == len(points) else None,
    )


def replication_states(
    rules: Sequence[S3ReplicationRule], metrics: Mapping[MetricKey, float], now: datetime
) -> list[ReplicationState]:
    """One state per source and destination bucket (usually one rule each).

    Several rules to one destination are combined: the worst latency, summed backlog and
    failures, and "unknown" (None) as soon as one enabled rule has no figure, because a
    known figure for part of the traffic must not read as the lag of all of it.
    """
    index = {
        (k.metric, k.source_bucket, k.destination_bucket, k.rule_id): v for k, v in metrics.items()
    }
    groups: dict[tuple[str, str, str], list[S3ReplicationRule]] = defaultdict(list)
    for rule in rules:
        key = (rule.destination_account_id, rule.destination_region, rule.destination)
        groups[key].append(rule)
    states = []
    for (account, region, destination), group in sorted(groups.items()):
        enabled = [r for r in group if r.status == "Enabled"]
        latency = combined(enabled, index, "ReplicationLatency", max)
        states.append(
            ReplicationState(
                kind="s3",
                source=group[0].source,
                destination_account_id=account,
                destination_region=region,
                destination=destination,
                state="Enabled" if enabled else "Disabled",
                latest_replicated_point=None
                if latency is None
                else now - timedelta(seconds=latency),
                latency_seconds=latency,
                pending_bytes=combined(enabled, index, "BytesPendingReplication", sum),
                pending_operations=combined(enabled, index, "OperationsPendingReplication", sum),
                failed_operations=combined(enabled, index, "OperationsFailedReplication", sum),
            )
        )
    return states


def combined(
    rules: Sequence[S3ReplicationRule],
    metrics: Mapping[tuple[str, str, str, str], float],
    metric: str,
    reduce: Callable[[list[float]], float],
) -> float | None:
    values = []
    for rule in rules:
        value = metrics.get((metric, rule.source.resource_id, rule.destination, rule.rule_id))
        if value is None:
            return None
        values.append(value)
    return float(reduce(values)) if values else None
