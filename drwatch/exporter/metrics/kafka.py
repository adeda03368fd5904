"""Kafka: MSK Replicator and MirrorMaker 2 flows, their topics and partitions, MSK Connect."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric

from drwatch.core.model import (
    KafkaConnectorState,
    KafkaFlowRef,
    KafkaPartitionLag,
    KafkaReplicatorState,
    KafkaTopicState,
    Observations,
)
from drwatch.exporter.metrics.common import add, gauge, timestamp

KAFKA_FLOW_LABELS = ("account_id", "region", "kind", "replicator", "source", "target")
KAFKA_TOPIC_LABELS = (*KAFKA_FLOW_LABELS, "topic")
KAFKA_CONNECTOR_LABELS = ("account_id", "region", "connector")


def kafka_flow_labels(flow: KafkaFlowRef) -> list[str]:
    return [flow.account_id, flow.region, flow.kind, flow.replicator, flow.source, flow.target]


def kafka_families(observed: Sequence[Observations]) -> Iterator[Metric]:
    """MSK Replicator and MirrorMaker 2 flows, their topics (and partitions), MSK Connect."""
    yield from kafka_replicator_families(
        sorted((r for o in observed for r in o.kafka_replicators), key=lambda r: r.flow)
    )
    yield from kafka_topic_families(
        sorted((t for o in observed for t in o.kafka_topics), key=lambda t: (t.flow, t.topic))
    )
    yield from kafka_partition_families(
        sorted(
            (p for o in observed for p in o.kafka_partitions),
            key=lambda p: (p.flow, p.topic, p.partition),
        )
    )
    yield from kafka_connector_families(
        sorted(
            (c for o in observed for c in o.kafka_connectors),
            key=lambda c: (c.account_id, c.region, c.connector),
        )
    )


def kafka_replicator_families(replicators: Sequence[KafkaReplicatorState]) -> Iterator[Metric]:
    info = gauge(
        "drwatch_kafka_replicator_info",
        "A Kafka replication flow (MSK Replicator, MirrorMaker 2) with its state (MSK: "
        "RUNNING, FAILED...; MirrorMaker 2: RUNNING, or STALLED without a heartbeat in 5 "
        "minutes); always 1.",
        (*KAFKA_FLOW_LABELS, "state"),
    )
    topics = gauge(
        "drwatch_kafka_replicator_topics",
        "Topics with replication figures in the flow.",
        KAFKA_FLOW_LABELS,
    )
    lag = gauge(
        "drwatch_kafka_replicator_lag_messages",
        "Messages not yet replicated, over all topics of the flow (MSK: MessageLag, Sum of "
        "the newest 5 minutes; MirrorMaker 2: log-end offsets minus replicated positions).",
        KAFKA_FLOW_LABELS,
    )
    latency = gauge(
        "drwatch_kafka_replicator_latency_seconds",
        "Replication latency of the flow (MSK: ReplicationLatency, Maximum of the newest 5 "
        "minutes; MirrorMaker 2: poll time minus the newest replicated heartbeat).",
        KAFKA_FLOW_LABELS,
    )
    heartbeat = gauge(
        "drwatch_kafka_replicator_heartbeat_timestamp_seconds",
        "MirrorMaker 2: emit time of the newest heartbeat replicated to the target.",
        KAFKA_FLOW_LABELS,
    )
    failures = gauge(
        "drwatch_kafka_replicator_failures",
        "MSK ReplicatorFailure in the newest 5 minutes (Sum).",
        KAFKA_FLOW_LABELS,
    )
    auth_errors = gauge(
        "drwatch_kafka_replicator_auth_errors",
        "MSK AuthError in the newest 5 minutes (Sum); topic-level auth errors are not in it.",
        KAFKA_FLOW_LABELS,
    )
    throttle = gauge(
        "drwatch_kafka_replicator_throttle_seconds",
        "MSK ThrottleTime, Maximum of the newest 5 minutes.",
        KAFKA_FLOW_LABELS,
    )
    for replicator in replicators:
        labels = kafka_flow_labels(replicator.flow)
        info.add_metric([*labels, replicator.state], 1)
        topics.add_metric(labels, replicator.topics)
        add(lag, labels, replicator.message_lag)
        add(latency, labels, replicator.latency_seconds)
        add(heartbeat, labels, timestamp(replicator.latest_replicated_point))
        add(failures, labels, replicator.failures)
        add(auth_errors, labels, replicator.auth_errors)
        add(throttle, labels, replicator.throttle_seconds)
    yield from (info, topics, lag, latency, heartbeat, failures, auth_errors, throttle)


def kafka_topic_families(topic_states: Sequence[KafkaTopicState]) -> Iterator[Metric]:
    lag = gauge(
        "drwatch_kafka_replication_lag_messages",
        "Messages of the topic not yet replicated (MSK: topic MessageLag; MirrorMaker 2: sum "
        "over partitions of log-end offset minus replicated position); absent when unknown.",
        KAFKA_TOPIC_LABELS,
    )
    latency = gauge(
        "drwatch_kafka_replication_latency_seconds",
        "MSK: topic ReplicationLatency, Maximum of the newest 5 minutes; absent when unknown.",
        KAFKA_TOPIC_LABELS,
    )
    zero = gauge(
        "drwatch_kafka_replication_latency_zero_while_producing",
        "1 if the topic's latency is 0 while messages wait at the source (MessageLag > 0): "
        "AWS's documented sign of a topic-level authorisation failure.",
        KAFKA_TOPIC_LABELS,
    )
    for state in topic_states:
        labels = [*kafka_flow_labels(state.flow), state.topic]
        add(lag, labels, state.message_lag)
        add(latency, labels, state.latency_seconds)
        if state.flow.kind == "msk_replicator":
            zero.add_metric(labels, float(state.zero_latency_while_producing))
    yield from (lag, latency, zero)


def kafka_partition_families(partitions: Sequence[KafkaPartitionLag]) -> Iterator[Metric]:
    lag = gauge(
        "drwatch_kafka_partition_lag_messages",
        "MirrorMaker 2: messages of one partition not yet replicated (only with "
        "kafka.partition_detail).",
        (*KAFKA_TOPIC_LABELS, "partition"),
    )
    for item in partitions:
        lag.add_metric(
            [*kafka_flow_labels(item.flow), item.topic, str(item.partition)], item.message_lag
        )
    yield lag


def kafka_connector_families(connectors: Sequence[KafkaConnectorState]) -> Iterator[Metric]:
    info = gauge(
        "drwatch_kafka_connector_info",
        "An MSK Connect connector with its state (RUNNING, FAILED...); always 1.",
        (*KAFKA_CONNECTOR_LABELS, "state"),
    )
    workers = gauge(
        "drwatch_kafka_connector_workers",
        "Workers of the connector (provisioned count, or the autoscaling minimum).",
        KAFKA_CONNECTOR_LABELS,
    )
    tasks = gauge(
        "drwatch_kafka_connector_tasks_max",
        "tasks.max of the connector's configuration (MSK Connect reports no running count).",
        KAFKA_CONNECTOR_LABELS,
    )
    for connector in connectors:
        labels = [connector.account_id, connector.region, connector.connector]
        info.add_metric([*labels, connector.state], 1)
        add(workers, labels, connector.workers)
        add(tasks, labels, connector.tasks_max)
    yield from (info, workers, tasks)
