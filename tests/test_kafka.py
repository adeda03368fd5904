"""The kafka collector end to end: MSK Replicator and MSK Connect from the sandbox (moto with
the in-tree kafka extension, CloudWatch AWS/Kafka datapoints), MirrorMaker 2 from two real
brokers, all through the exporter; plus the pure MSK mapping and the cardinality figures."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from drwatch.config import parse_config
from drwatch.core.model import Observations, UnitKey, UnitResult, UnitRun
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.collectors.kafka import (
    KafkaMetricKey,
    MskRecords,
    merge,
    metric_keys,
    observe_msk,
    zero_latency_while_producing,
)
from drwatch.exporter.collectors.kafka_mm2 import FlowRecords, observe_flow
from drwatch.exporter.kafka_client import TopicPartition
from drwatch.history.chain import verify_chain
from drwatch.history.store import HistoryStore
from drwatch.sandbox import demo
from drwatch.sandbox.fleet import FleetSpec
from drwatch.sandbox.kafka_brokers import Broker, brokers
from drwatch.sandbox.kafka_fleet import KafkaFleetPlan, plan_for_fleet, seed_kafka_fleet
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW, sandbox_exporter
from tests.helpers import FakeClock
from tests.test_kafka_mm2 import seed_flow
from tests.test_metrics import render, samples, status, value

GOLDEN = Path(__file__).parent / "golden" / "kafka.prom"
SPEC = FleetSpec(now=NOW)


def only_kafka() -> dict[str, dict[str, object]]:
    return {c.name: {"enabled": c.name == "kafka", "interval": 60} for c in COLLECTORS}


@pytest.fixture(scope="module")
def kafka_plan(sandbox: Sandbox) -> KafkaFleetPlan:
    """Only the Kafka part of the fleet: the other services are not needed here."""
    sandbox.reset()
    plan = plan_for_fleet(NOW, SPEC.accounts, SPEC.regions)
    seed_kafka_fleet(sandbox, plan)
    return plan


@pytest.fixture(scope="module")
def clusters() -> Iterator[list[Broker]]:
    yield from brokers(2)


def config(sandbox: Sandbox, **extra: Any) -> Any:
    return demo.sandbox_config(sandbox.endpoint_url, SPEC, collectors=only_kafka(), **extra)


@pytest.fixture(scope="module")
def text(sandbox: Sandbox, kafka_plan: KafkaFleetPlan, clusters: list[Broker]) -> str:
    source, target = clusters
    seed_flow(source, target, int((NOW - timedelta(seconds=7)).timestamp() * 1000))
    mm2 = {
        "partition_detail": True,
        "mirrormaker2": [
            {
                "account": kafka_plan.account_id,
                "region": kafka_plan.region,
                "source": {"alias": "primary", "bootstrap_servers": [source.bootstrap]},
                "target": {"alias": "dr", "bootstrap_servers": [target.bootstrap]},
                "consumer_group": "mm2-primary-dr",
            }
        ],
    }
    exporter = sandbox_exporter(config(sandbox, kafka=mm2))
    exporter.poller.run_round()
    return exporter.metrics.render().decode()


def msk(**labels: str) -> dict[str, str]:
    return {"kind": "msk_replicator", **labels}


def test_replicators_and_their_state(text: str, kafka_plan: KafkaFleetPlan) -> None:
    states = {
        dict(k)["replicator"]: dict(k)["state"]
        for k in samples(text, "drwatch_kafka_replicator_info")
    }
    assert states == {"orders-dr": "RUNNING", "audit-dr": "FAILED", "primary->dr": "RUNNING"}
    assert value(text, "drwatch_kafka_replicator_failures", replicator="audit-dr") == 3
    assert value(text, "drwatch_kafka_replicator_auth_errors", replicator="audit-dr") == 12
    assert value(text, "drwatch_kafka_replicator_throttle_seconds", replicator="orders-dr") == 0.04
    # Every flow also feeds the generic replication families (reports, DRW-10).
    assert value(text, "drwatch_replication_info", kind="msk_replicator", resource="audit-dr") == 1
    labels = dict(next(iter(samples(text, "drwatch_kafka_replicator_info"))))
    assert (labels["account_id"], labels["region"]) == (kafka_plan.account_id, kafka_plan.region)


def test_msk_topic_lag_and_latency_in_messages_and_seconds(text: str) -> None:
    lag = "drwatch_kafka_replication_lag_messages"
    latency = "drwatch_kafka_replication_latency_seconds"
    assert value(text, lag, **msk(topic="payments")) == 1850
    assert value(text, lag, **msk(topic="orders")) == 120
    assert value(text, latency, **msk(topic="payments")) == 95.0
    assert value(text, latency, **msk(topic="orders")) == 2.5
    assert value(text, "drwatch_kafka_replicator_lag_messages", replicator="orders-dr") == 1970


def test_latency_zero_while_the_source_produces_is_flagged(text: str) -> None:
    flag = "drwatch_kafka_replication_latency_zero_while_producing"
    assert value(text, flag, topic="audit") == 1
    assert value(text, flag, topic="payments") == 0


def test_mirrormaker2_lag_and_latency_match_what_was_produced(text: str) -> None:
    mm2 = {"kind": "mirrormaker2", "source": "primary", "target": "dr"}
    lag = "drwatch_kafka_replication_lag_messages"
    assert value(text, lag, **mm2, topic="orders") == 3
    assert value(text, lag, **mm2, topic="payments") == 2
    assert value(text, "drwatch_kafka_replicator_latency_seconds", **mm2) == 7.0
    heartbeat = value(text, "drwatch_kafka_replicator_heartbeat_timestamp_seconds", **mm2)
    assert heartbeat == (NOW - timedelta(seconds=7)).timestamp()
    partition = "drwatch_kafka_partition_lag_messages"
    assert value(text, partition, **mm2, topic="orders", partition="0") == 3
    assert value(text, partition, **mm2, topic="payments", partition="1") == 2


def test_connectors(text: str) -> None:
    states = {
        dict(k)["connector"]: dict(k)["state"]
        for k in samples(text, "drwatch_kafka_connector_info")
    }
    assert states == {"mm2-primary-to-dr": "RUNNING", "mm2-legacy": "FAILED"}
    assert value(text, "drwatch_kafka_connector_tasks_max", connector="mm2-legacy") == 4
    assert value(text, "drwatch_kafka_connector_workers", connector="mm2-legacy") == 2


def test_api_calls_per_poll(text: str) -> None:
    calls = {
        dict(k)["operation"]: v
        for k, v in samples(text, "drwatch_aws_api_requests_total").items()
        if dict(k)["service"] != "sts"  # assuming the read role, once per account
    }
    units = len(SPEC.accounts) * len(SPEC.regions)
    # One list call per unit; describes and ListMetrics only where replicators exist;
    # every series of the unit in one GetMetricData call.
    assert calls == {
        "ListReplicators": units,
        "ListConnectors": units,
        "DescribeReplicator": 2,
        "DescribeConnector": 2,
        "ListMetrics": 2,
        "GetMetricData": 1,
    }


def test_metrics_are_cached_for_the_ttl(sandbox: Sandbox, kafka_plan: KafkaFleetPlan) -> None:
    clock = FakeClock(NOW)
    exporter = sandbox_exporter(config(sandbox), clock=clock)

    def metric_calls() -> float:
        return value(
            exporter.metrics.render().decode(),
            "drwatch_aws_api_requests_total",
            operation="GetMetricData",
        )

    exporter.poller.run_round()
    assert metric_calls() == 1
    clock.advance(30)
    exporter.poller.run_round()
    assert metric_calls() == 1
    clock.advance(60)
    exporter.poller.run_round()
    assert metric_calls() == 2


def test_golden_kafka_exposition(text: str, update_golden: bool) -> None:
    lines = [
        line
        for line in text.splitlines()
        if not line.startswith("drwatch_build_info{")
        # Wall times of real Kafka reads vary from run to run.
        and not line.startswith("drwatch_collector_duration_seconds{")
    ]
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


def test_zero_latency_flag_needs_waiting_messages() -> None:
    assert zero_latency_while_producing(0.0, 10.0)
    assert not zero_latency_while_producing(0.0, 0.0)  # idle topic: 0 is the truth
    assert not zero_latency_while_producing(0.0, None)  # no lag figure: no evidence
    assert not zero_latency_while_producing(None, 10.0)
    assert not zero_latency_while_producing(1.5, 10.0)


def test_missing_cloudwatch_figures_are_unknown_never_zero() -> None:
    described = {
        "ReplicatorName": "r",
        "ReplicatorState": "RUNNING",
        "ReplicationInfoList": [{"SourceKafkaClusterAlias": "a", "TargetKafkaClusterAlias": "b"}],
    }
    metrics = {KafkaMetricKey("r", "t1", "MessageLag", "Sum"): 5.0}
    observed = observe_msk(
        MskRecords(replicators=(described,), topics={"r": ("t1",)}, metrics=metrics),
        "111111111111",
        "eu-west-1",
    )
    (topic,) = observed.kafka_topics
    assert (topic.message_lag, topic.latency_seconds) == (5.0, None)
    (replicator,) = observed.kafka_replicators
    assert replicator.message_lag is None
    assert replicator.failures is None


def test_metric_keys_per_replicator_and_topic() -> None:
    keys = metric_keys({"r": ("a", "b")})
    assert len(keys) == 5 + 2 * 2
    assert {k.topic for k in keys} == {"", "a", "b"}


# --- cardinality (the figure, measured by rendering) -------------------------------


TOPICS = tuple(f"topic-{i:02d}" for i in range(50))
PARTITIONS = 12


def mm2_flow_observed(partition_detail: bool) -> Observations:
    """One MirrorMaker 2 flow of 50 topics x 12 partitions, every partition 10 behind."""
    tps = [TopicPartition(t, p) for t in TOPICS for p in range(PARTITIONS)]
    flow = parse_config(
        {
            "accounts": [{"id": "111111111111"}],
            "regions": ["eu-west-1"],
            "kafka": {
                "mirrormaker2": [
                    {
                        "region": "eu-west-1",
                        "source": {"alias": "a", "bootstrap_servers": ["h:1"]},
                        "target": {"alias": "b", "bootstrap_servers": ["h:2"]},
                        "consumer_group": "g",
                    }
                ]
            },
        }
    ).kafka.mirrormaker2[0]
    records = FlowRecords(flow, {tp: 0 for tp in tps}, {tp: 10 for tp in tps}, {}, NOW, TOPICS)
    return merge(Observations(), observe_flow(records, NOW, partition_detail))


def msk_replicator_observed() -> Observations:
    """One MSK Replicator of 50 topics with every CloudWatch figure present."""
    described = {
        "ReplicatorName": "r",
        "ReplicatorState": "RUNNING",
        "ReplicationInfoList": [{"SourceKafkaClusterAlias": "a", "TargetKafkaClusterAlias": "b"}],
    }
    metrics = {k: 1.0 for k in metric_keys({"r": TOPICS})}
    records = MskRecords(replicators=(described,), topics={"r": TOPICS}, metrics=metrics)
    return observe_msk(records, "111111111111", "eu-west-1")


def kafka_series(observations: Observations) -> int:
    """Series of the Kafka families (and the generic replication families' Kafka rows)."""
    body = render(dataclasses.replace(status(), observations=observations))
    return sum(
        1
        for line in body.splitlines()
        if line.startswith("drwatch_kafka_")
        or (line.startswith("drwatch_replication_") and 'kind="m' in line)
    )


def test_cardinality_of_50_topics_by_12_partitions() -> None:
    without = kafka_series(mm2_flow_observed(partition_detail=False))
    with_detail = kafka_series(mm2_flow_observed(partition_detail=True))
    msk = kafka_series(msk_replicator_observed())
    # Per topic: lag (MirrorMaker 2); lag, latency and the zero-latency flag (MSK).
    assert without == 50 + 8
    assert msk == 3 * 50 + 9
    # Partition detail adds exactly one series per partition.
    assert with_detail - without == 50 * 12
    print(
        f"kafka series, 50 topics x 12 partitions: MirrorMaker 2 flow {without} without "
        f"partition detail, {with_detail} with; MSK Replicator {msk}"
    )


def test_history_stores_kafka_observations(tmp_path: Path) -> None:
    """Kafka records go to the evidence history like any other (set-valued per unit)."""
    observations = merge(msk_replicator_observed(), mm2_flow_observed(partition_detail=False))
    run = UnitRun(UnitKey("kafka", "111111111111", "eu-west-1"), NOW, 0.5, True)
    with HistoryStore(tmp_path / "history.db") as store:
        first = store.ingest(UnitResult(run, observations))
        again = store.ingest(
            UnitResult(dataclasses.replace(run, started=NOW + timedelta(minutes=1)), observations)
        )
        assert first.opened > 0
        assert again.opened == 0  # unchanged figures extend their intervals
        assert verify_chain(store.db).ok


def test_history_keeps_topic_lag_but_not_partition_offsets(tmp_path: Path) -> None:
    """Partition offsets move every poll; storing them would rewrite hundreds of rows a poll."""
    observations = mm2_flow_observed(partition_detail=True)
    assert observations.kafka_partitions  # the metrics get the detail
    run = UnitRun(UnitKey("kafka", "111111111111", "eu-west-1"), NOW, 0.5, True)
    with HistoryStore(tmp_path / "history.db") as store:
        store.ingest(UnitResult(run, observations))
        kinds = {row["kind"] for row in store.db.query("SELECT DISTINCT kind FROM state_keys")}
    assert "kafka_topics" in kinds
    assert "kafka_partitions" not in kinds
