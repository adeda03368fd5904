"""Kafka replication: MSK Replicator, MSK Connect connectors and MirrorMaker 2 flows.

Calls per account and region and poll (R replicators, C connectors):

- kafka ListReplicators (100 a page) and DescribeReplicator per replicator (topics
  and consumer groups to replicate, state and its reason): ceil(R / 100) + R.
- CloudWatch ListMetrics per replicator (namespace `AWS/Kafka`, dimension ReplicatorName):
  which topics have topic-level series (topics to replicate are patterns, so names come
  from the metrics); GetMetricData for ReplicationLatency (ms, Maximum), MessageLag (Sum),
  ReplicatorFailure, AuthError (Sum) and ThrottleTime (ms, Maximum) per replicator and
  per topic, up to 500 queries a call (the s3_replication batching), cached for
  `metrics_ttl`. MSK publishes them in the target cluster's region, where the replicator
  lives, so this unit's CloudWatch is the right one.
- kafkaconnect ListConnectors (100 a page): ceil(C / 100); its summaries carry state and
  capacity, and DescribeConnector is needed only for `tasks.max` of each connector.
- MirrorMaker 2 flows configured for this account and region: Kafka reads, no AWS calls
  (see kafka_mm2.py).

A topic whose ReplicationLatency is 0 while its MessageLag is above 0 is flagged: AWS
documents "latency dropped to 0 while the topic still receives data" as the sign of a
topic-level authorisation failure, which AuthError does not cover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from drwatch.config import KafkaClusterConfig, KafkaConfig
from drwatch.core.model import (
    KafkaConnectorState,
    KafkaFlowRef,
    KafkaReplicatorState,
    KafkaTopicState,
    Observations,
    ReplicationState,
    ResourceRef,
)
from drwatch.exporter.collectors.base import CollectContext, UnitDeadlineError
from drwatch.exporter.collectors.cloudwatch import (
    DEFAULT_METRICS_TTL,
    METRIC_PERIOD_SECONDS,
    METRIC_QUERIES_PER_CALL,
    METRIC_WINDOW,
    MetricCache,
    newest_metric_values,
)
from drwatch.exporter.collectors.isolation import Collection, require
from drwatch.exporter.collectors.kafka_mm2 import ReaderFactory, observe_flows
from drwatch.exporter.kafka_client import KafkaReader, client_settings

KIND = "msk_replicator"
NAMESPACE = "AWS/Kafka"
# (metric, statistic, scale to base units): latencies are published in milliseconds.
REPLICATOR_METRICS = (
    ("ReplicationLatency", "Maximum", 0.001),
    ("MessageLag", "Sum", 1.0),
    ("ReplicatorFailure", "Sum", 1.0),
    ("AuthError", "Sum", 1.0),
    ("ThrottleTime", "Maximum", 0.001),
)
TOPIC_METRICS = (("ReplicationLatency", "Maximum", 0.001), ("MessageLag", "Sum", 1.0))
Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class KafkaMetricKey:
    """One CloudWatch series: a replicator's, or one of its topics' (topic "")."""

    replicator: str
    topic: str
    metric: str
    stat: str


@dataclass(frozen=True, slots=True)
class MskRecords:
    replicators: tuple[Record, ...] = ()  # DescribeReplicator answers
    topics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> topics
    metrics: Mapping[KafkaMetricKey, float] = field(default_factory=dict)
    connectors: tuple[Record, ...] = ()  # DescribeConnector answers


class KafkaCollector:
    name: ClassVar[str] = "kafka"
    iam_actions: ClassVar[tuple[str, ...]] = (
        "kafka:ListReplicators",
        "kafka:DescribeReplicator",
        "kafkaconnect:ListConnectors",
        "kafkaconnect:DescribeConnector",
        "cloudwatch:ListMetrics",
        "cloudwatch:GetMetricData",
    )

    def __init__(
        self,
        metrics_ttl: timedelta = DEFAULT_METRICS_TTL,
        reader_for: ReaderFactory | None = None,
    ) -> None:
        self._reader_for = reader_for
        self._metric_cache: MetricCache[KafkaMetricKey] = MetricCache(metrics_ttl)

    def collect(self, ctx: CollectContext) -> Observations:
        kafka = ctx.config.kafka if ctx.config is not None else KafkaConfig()
        observed = observe_msk(
            self.fetch(ctx), ctx.observe.account_id, ctx.observe.region, ctx.observe.collection
        )
        flows = [
            f
            for f in kafka.mirrormaker2
            if (f.account_id, f.region) == (ctx.observe.account_id, ctx.observe.region)
        ]
        readers = self._readers(ctx.observe.region)
        parts: list[Observations] = []
        for flow in flows:
            # Kafka reads have their own timeouts; the unit's deadline is checked per flow.
            if ctx.monotonic() > ctx.deadline:
                raise UnitDeadlineError(
                    f"MirrorMaker 2 flow {flow.source.alias}->{flow.target.alias} not read "
                    "by the unit deadline"
                )
            parts.extend(observe_flows([flow], readers, ctx.observe.now, kafka.partition_detail))
        return merge(observed, *parts)

    def _readers(self, region: str) -> ReaderFactory:
        if self._reader_for is not None:
            return self._reader_for

        def reader_for(cluster: KafkaClusterConfig) -> KafkaReader:
            return KafkaReader(client_settings(cluster, region))

        return reader_for

    def fetch(self, ctx: CollectContext) -> MskRecords:
        kafka = ctx.client("kafka")
        replicators: tuple[Record, ...] = ctx.optional(
            "replicators", lambda: read_replicators(ctx, kafka), ()
        )
        cloudwatch = ctx.client("cloudwatch")
        named = [r for r in replicators if r.get("ReplicatorName")]
        topics: dict[str, tuple[str, ...]] = ctx.optional(
            "metrics",
            lambda: {
                str(r["ReplicatorName"]): topics_with_metrics(
                    ctx, cloudwatch, str(r["ReplicatorName"])
                )
                for r in named
            },
            {},
        )
        keys = metric_keys(topics)
        connect = ctx.client("kafkaconnect")
        connectors: tuple[Record, ...] = ctx.optional(
            "connect", lambda: read_connectors(ctx, connect), ()
        )
        return MskRecords(
            replicators=replicators,
            topics=topics,
            metrics=ctx.optional("metrics", lambda: self._metrics(ctx, cloudwatch, keys), {}),
            connectors=connectors,
        )

    def _metrics(
        self, ctx: CollectContext, cloudwatch: Any, keys: Sequence[KafkaMetricKey]
    ) -> dict[KafkaMetricKey, float]:
        now = ctx.observe.now
        unit = (ctx.observe.account_id, ctx.observe.region)
        return self._metric_cache.values(
            unit, keys, now, lambda stale: fetch_metrics(cloudwatch, stale, now)
        )


def read_replicators(ctx: CollectContext, kafka: Any) -> tuple[Record, ...]:
    summaries = [s for s in ctx.paginate(kafka, "list_replicators", "Replicators")]
    return tuple(
        kafka.describe_replicator(ReplicatorArn=s["ReplicatorArn"])
        for s in sorted(summaries, key=lambda s: str(s.get("ReplicatorName", "")))
        if s.get("ReplicatorArn")
    )


def read_connectors(ctx: CollectContext, connect: Any) -> tuple[Record, ...]:
    return tuple(
        connect.describe_connector(connectorArn=c["connectorArn"])
        for c in sorted(
            ctx.paginate(connect, "list_connectors", "connectors"),
            key=lambda c: str(c.get("connectorName", "")),
        )
        if c.get("connectorArn")
    )


def topics_with_metrics(ctx: CollectContext, cloudwatch: Any, replicator: str) -> tuple[str, ...]:
    """Topics with topic-level MessageLag series for the replicator (ListMetrics)."""
    # ListMetrics takes no page size (it answers 500 a page), so ctx.paginate does not fit.
    pages = cloudwatch.get_paginator("list_metrics").paginate(
        Namespace=NAMESPACE,
        MetricName="MessageLag",
        Dimensions=[{"Name": "ReplicatorName", "Value": replicator}],
    )
    topics = {
        str(d["Value"])
        for page in pages
        for m in page.get("Metrics", ())
        for d in m.get("Dimensions", ())
        if d["Name"] == "Topic"
    }
    return tuple(sorted(topics))


def metric_keys(topics: Mapping[str, Sequence[str]]) -> list[KafkaMetricKey]:
    keys: list[KafkaMetricKey] = []
    for replicator, names in sorted(topics.items()):
        keys.extend(KafkaMetricKey(replicator, "", m, s) for m, s, _ in REPLICATOR_METRICS)
        for topic in names:
            keys.extend(KafkaMetricKey(replicator, topic, m, s) for m, s, _ in TOPIC_METRICS)
    return keys


def fetch_metrics(
    cloudwatch: Any, keys: Sequence[KafkaMetricKey], now: datetime
) -> dict[KafkaMetricKey, float]:
    """Newest value of each series, 500 queries a GetMetricData call (shared helper)."""
    values: dict[KafkaMetricKey, float] = {}
    for start in range(0, len(keys), METRIC_QUERIES_PER_CALL):
        batch = keys[start : start + METRIC_QUERIES_PER_CALL]
        by_id = {f"k{index}": key for index, key in enumerate(batch)}
        queries = [metric_query(query_id, key) for query_id, key in by_id.items()]
        newest = newest_metric_values(cloudwatch, queries, now - METRIC_WINDOW, now)
        values.update({by_id[query_id]: value for query_id, value in newest.items()})
    return values


def metric_query(query_id: str, key: KafkaMetricKey) -> dict[str, Any]:
    dimensions = [{"Name": "ReplicatorName", "Value": key.replicator}]
    if key.topic:
        dimensions.append({"Name": "Topic", "Value": key.topic})
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": key.metric, "Dimensions": dimensions},
            "Period": METRIC_PERIOD_SECONDS,
            "Stat": key.stat,
        },
        "ReturnData": True,
    }


# --- the pure mapping --------------------------------------------------------------------


def observe_msk(
    records: MskRecords, account_id: str, region: str, collection: Collection | None = None
) -> Observations:
    replicators: list[KafkaReplicatorState] = []
    topics: list[KafkaTopicState] = []
    replications: list[ReplicationState] = []
    usable = (collection or Collection()).keep(
        records.replicators,
        lambda r: r.get("ReplicatorArn") or r.get("ReplicatorName"),
        lambda r: require(r, "ReplicatorName"),
    )
    for described in usable:
        name = str(described["ReplicatorName"])
        for info in described.get("ReplicationInfoList", ()):
            ref = KafkaFlowRef(
                account_id=account_id,
                region=region,
                kind=KIND,
                replicator=name,
                source=str(info.get("SourceKafkaClusterAlias", "")),
                target=str(info.get("TargetKafkaClusterAlias", "")),
            )
            state = replicator_state(ref, described, records)
            replicators.append(state)
            names = records.topics.get(name, ())
            topics.extend(topic_state(ref, topic, records.metrics) for topic in names)
            replications.append(replication_of(state))
    return Observations(
        replication_states=tuple(replications),
        kafka_replicators=tuple(replicators),
        kafka_topics=tuple(topics),
        kafka_connectors=tuple(connector_state(c, account_id, region) for c in records.connectors),
    )


def scaled(
    metrics: Mapping[KafkaMetricKey, float], replicator: str, topic: str, metric: str
) -> float | None:
    for name, stat, scale in REPLICATOR_METRICS:
        if name == metric:
            value = metrics.get(KafkaMetricKey(replicator, topic, name, stat))
            return None if value is None else value * scale
    raise KeyError(metric)


def replicator_state(
    ref: KafkaFlowRef, described: Record, records: MskRecords
) -> KafkaReplicatorState:
    m, name = records.metrics, ref.replicator
    return KafkaReplicatorState(
        flow=ref,
        state=str(described.get("ReplicatorState", "")),
        topics=len(records.topics.get(name, ())),
        message_lag=scaled(m, name, "", "MessageLag"),
        latency_seconds=scaled(m, name, "", "ReplicationLatency"),
        failures=scaled(m, name, "", "ReplicatorFailure"),
        auth_errors=scaled(m, name, "", "AuthError"),
        throttle_seconds=scaled(m, name, "", "ThrottleTime"),
    )


def topic_state(
    ref: KafkaFlowRef, topic: str, metrics: Mapping[KafkaMetricKey, float]
) -> KafkaTopicState:
    lag = scaled(metrics, ref.replicator, topic, "MessageLag")
    latency = scaled(metrics, ref.replicator, topic, "ReplicationLatency")
    return KafkaTopicState(
        flow=ref,
        topic=topic,
        message_lag=lag,
        latency_seconds=latency,
        zero_latency_while_producing=zero_latency_while_producing(latency, lag),
    )


def zero_latency_while_producing(latency: float | None, lag: float | None) -> bool:
    """AWS's documented failure sign: latency 0 although messages wait at the source."""
    return latency == 0.0 and lag is not None and lag > 0


def replication_of(state: KafkaReplicatorState) -> ReplicationState:
    """The generic replication record (history, DRW-10): lag in messages and seconds."""
    ref = state.flow
    return ReplicationState(
        kind=ref.kind,
        source=ResourceRef(ref.account_id, ref.region, "kafka", "replicator", ref.replicator),
        destination_account_id=ref.account_id,
        destination_region=ref.region,
        destination=ref.target,
        state=state.state,
        latest_replicated_point=state.latest_replicated_point,
        latency_seconds=state.latency_seconds,
        message_lag=state.message_lag,
    )


def connector_state(described: Record, account_id: str, region: str) -> KafkaConnectorState:
    capacity = described.get("capacity") or {}
    workers = (capacity.get("provisionedCapacity") or {}).get("workerCount")
    if workers is None:
        workers = (capacity.get("autoScaling") or {}).get("minWorkerCount")
    tasks = (described.get("connectorConfiguration") or {}).get("tasks.max")
    return KafkaConnectorState(
        account_id=account_id,
        region=region,
        connector=str(described.get("connectorName", "")),
        state=str(described.get("connectorState", "")),
        workers=None if workers is None else int(workers),
        tasks_max=int(tasks) if tasks is not None and str(tasks).isdigit() else None,
    )


def merge(first: Observations, *others: Observations) -> Observations:
    """One Observations from the MSK part and each MirrorMaker 2 flow's part."""
    result = first
    for other in others:
        result = replace(
            result,
            replication_states=result.replication_states
            + tuple(replication_of(r) for r in other.kafka_replicators),
            kafka_replicators=result.kafka_replicators + other.kafka_replicators,
            kafka_topics=result.kafka_topics + other.kafka_topics,
            kafka_partitions=result.kafka_partitions + other.kafka_partitions,
        )
    return result
