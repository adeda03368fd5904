"""A deterministic Kafka estate: MSK Replicators with CloudWatch figures, MSK Connect connectors.

`plan_kafka_fleet(now, account, region)` is pure. In the DR region of the first account:

- `orders-dr` (RUNNING), primary -> dr: `orders` 120 messages and 2.5 s behind, `payments`
  lagging 1,850 messages (over the 1,000-message target) and 95 s;
- `audit-dr` (FAILED, ReplicatorFailure and AuthError): `audit` with 5,000 messages waiting
  and latency 0: the documented sign of a topic-level auth failure;
- connectors `mm2-primary-to-dr` (RUNNING) and `mm2-legacy` (FAILED).

`seed_kafka_fleet` adds them to the sandbox's kafka backend and writes the `AWS/Kafka`
metrics with PutMetricData as MSK publishes them (milliseconds for latencies), two minutes
before `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drwatch.sandbox.kafka_moto import (
    SandboxConnector,
    SandboxReplicator,
    add_connector,
    add_replicator,
)
from drwatch.sandbox.server import Sandbox

NAMESPACE = "AWS/Kafka"
PUT_METRIC_DATA_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class PlannedTopic:
    name: str
    message_lag: float
    latency_ms: float


@dataclass(frozen=True, slots=True)
class PlannedReplicator:
    replicator: SandboxReplicator
    topics: tuple[PlannedTopic, ...]
    failures: float = 0.0
    auth_errors: float = 0.0
    throttle_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class KafkaFleetPlan:
    now: datetime
    account_id: str
    region: str
    replicators: tuple[PlannedReplicator, ...]
    connectors: tuple[SandboxConnector, ...]


def cluster_arn(account_id: str, region: str, name: str) -> str:
    return f"arn:aws:kafka:{region}:{account_id}:cluster/{name}/0000-{name}"


def plan_kafka_fleet(
    now: datetime, account_id: str, region: str, source_region: str
) -> KafkaFleetPlan:
    created = now - timedelta(days=30)

    def replicator(name: str, state: str, code: str = "", message: str = "") -> SandboxReplicator:
        return SandboxReplicator(
            name=name,
            arn=f"arn:aws:kafka:{region}:{account_id}:replicator/{name}/0000-{name}",
            state=state,
            source_alias="primary",
            target_alias="dr",
            source_cluster_arn=cluster_arn(account_id, source_region, "primary"),
            target_cluster_arn=cluster_arn(account_id, region, "dr"),
            topics_to_replicate=(".*",),
            created=created,
            state_code=code,
            state_message=message,
        )

    def connector(name: str, state: str) -> SandboxConnector:
        return SandboxConnector(
            name=name,
            arn=f"arn:aws:kafkaconnect:{region}:{account_id}:connector/{name}/0000-{name}",
            state=state,
            bootstrap_servers="b-1.dr.kafka.sandbox:9098",
            workers=2,
            tasks_max=4,
            created=created,
        )

    return KafkaFleetPlan(
        now=now,
        account_id=account_id,
        region=region,
        replicators=(
            PlannedReplicator(
                replicator("orders-dr", "RUNNING"),
                topics=(
                    PlannedTopic("orders", message_lag=120, latency_ms=2_500),
                    PlannedTopic("payments", message_lag=1_850, latency_ms=95_000),
                ),
                throttle_ms=40,
            ),
            PlannedReplicator(
                replicator("audit-dr", "FAILED", "ReplicatorFailed", "Access denied to topic"),
                topics=(PlannedTopic("audit", message_lag=5_000, latency_ms=0),),
                failures=3,
                auth_errors=12,
            ),
        ),
        connectors=(connector("mm2-primary-to-dr", "RUNNING"), connector("mm2-legacy", "FAILED")),
    )


def seed_kafka_fleet(sandbox: Sandbox, plan: KafkaFleetPlan) -> None:
    for planned in plan.replicators:
        add_replicator(plan.account_id, plan.region, planned.replicator)
    for connector in plan.connectors:
        add_connector(plan.account_id, plan.region, connector)
    data = [datum for planned in plan.replicators for datum in metric_data(plan.now, planned)]
    cloudwatch = sandbox.client("cloudwatch", plan.region, account_id=plan.account_id)
    for start in range(0, len(data), PUT_METRIC_DATA_LIMIT):
        cloudwatch.put_metric_data(
            Namespace=NAMESPACE, MetricData=data[start : start + PUT_METRIC_DATA_LIMIT]
        )


def metric_data(now: datetime, planned: PlannedReplicator) -> list[dict[str, Any]]:
    """Replicator- and topic-level datapoints, as MSK Replicator publishes them."""
    at = now - timedelta(minutes=2)
    name = planned.replicator.name
    replicator_dims = [{"Name": "ReplicatorName", "Value": name}]
    worst_latency = max((t.latency_ms for t in planned.topics), default=0.0)
    total_lag = sum(t.message_lag for t in planned.topics)
    rows: list[tuple[list[dict[str, str]], str, float, str]] = [
        (replicator_dims, "ReplicationLatency", worst_latency, "Milliseconds"),
        (replicator_dims, "MessageLag", total_lag, "Count"),
        (replicator_dims, "ReplicatorFailure", planned.failures, "Count"),
        (replicator_dims, "AuthError", planned.auth_errors, "Count"),
        (replicator_dims, "ThrottleTime", planned.throttle_ms, "Milliseconds"),
    ]
    for topic in planned.topics:
        dims = [*replicator_dims, {"Name": "Topic", "Value": topic.name}]
        rows.append((dims, "ReplicationLatency", topic.latency_ms, "Milliseconds"))
        rows.append((dims, "MessageLag", topic.message_lag, "Count"))
    return [
        {"MetricName": metric, "Dimensions": dims, "Timestamp": at, "Value": value, "Unit": unit}
        for dims, metric, value, unit in rows
    ]


def plan_for_fleet(
    now: datetime, accounts: tuple[str, ...], regions: tuple[str, ...]
) -> KafkaFleetPlan:
    """The Kafka estate of a mixed fleet: replicators in the last region of the first
    account (the DR side, where MSK Replicator and its metrics live), sourced from the first."""
    return plan_kafka_fleet(now, accounts[0], regions[-1], source_region=regions[0])
