"""MirrorMaker 2 lag: pure offset/heartbeat arithmetic, and end to end against two real brokers."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drwatch.config import KafkaClusterConfig, MirrorMaker2Flow
from drwatch.exporter.collectors.kafka_mm2 import (
    FlowRecords,
    OffsetSync,
    decode_heartbeat_time,
    decode_offset_sync,
    encode_heartbeat,
    encode_offset_sync,
    heartbeat_latency_seconds,
    is_internal_topic,
    observe_flow,
    observe_flows,
    partition_lag,
    positions_from_syncs,
    watched_topics,
)
from drwatch.exporter.kafka_client import (
    KafkaReader,
    KafkaReadError,
    KafkaRecord,
    TopicPartition,
    client_settings,
)
from drwatch.sandbox.kafka_brokers import Broker, Copier, brokers
from drwatch.sandbox.ports import free_port

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def flow(
    source: str = "127.0.0.1:1",
    target: str = "127.0.0.1:2",
    position: str = "consumer_group",
    topics: tuple[str, ...] = (),
) -> MirrorMaker2Flow:
    return MirrorMaker2Flow(
        account_id="111111111111",
        region="eu-west-1",
        source=KafkaClusterConfig("primary", (source,)),
        target=KafkaClusterConfig("dr", (target,)),
        topics=topics,
        position=position,
        consumer_group="mm2-primary-dr",
        offset_syncs_topic="mm2-offset-syncs.dr.internal",
        heartbeats_topic="primary.heartbeats",
    )


# --- pure arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "replicated", "lag"),
    [
        (0, 10, 10, 0),  # caught up
        (0, 10, 4, 6),
        (0, 10, None, 10),  # nothing replicated yet: every record lags
        (8, 10, 3, 2),  # retention deleted 3..7 before replication: they cannot lag
        (8, 10, None, 2),
        (0, 10, 12, 0),  # position past the end (log truncated on the source): no lag
        (0, 0, None, 0),  # empty partition
    ],
)
def test_partition_lag(start: int, end: int, replicated: int | None, lag: int) -> None:
    assert partition_lag(start, end, replicated) == lag


@given(
    start=st.integers(0, 10**12),
    size=st.integers(0, 10**6),
    done=st.integers(0, 10**6),
)
def test_partition_lag_is_what_remains(start: int, size: int, done: int) -> None:
    done = min(done, size)
    assert partition_lag(start, start + size, start + done) == size - done


def test_heartbeat_latency() -> None:
    assert heartbeat_latency_seconds(NOW - timedelta(seconds=7.5), NOW) == 7.5
    assert heartbeat_latency_seconds(None, NOW) is None
    # A heartbeat "from the future" (clock skew) is latency 0, never negative.
    assert heartbeat_latency_seconds(NOW + timedelta(seconds=2), NOW) == 0.0


def test_heartbeat_value_decodes_to_emit_time() -> None:
    millis = int(NOW.timestamp() * 1000) + 123
    key, value = encode_heartbeat("primary", "dr", millis)
    assert value == struct.pack(">hq", 0, millis)
    assert key == b"\x00\x07primary\x00\x02dr"
    record = KafkaRecord(0, 5, timestamp_ms=1, key=key, value=value)
    assert decode_heartbeat_time(record) == NOW + timedelta(milliseconds=123)


def test_heartbeat_without_struct_value_uses_record_timestamp() -> None:
    millis = int(NOW.timestamp() * 1000)
    assert decode_heartbeat_time(KafkaRecord(0, 0, millis, None, b"?")) == NOW
    assert decode_heartbeat_time(KafkaRecord(0, 0, None, None, b"?")) is None


@given(
    topic=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=100),
    partition=st.integers(0, 2**31 - 1),
    upstream=st.integers(0, 2**63 - 1),
    downstream=st.integers(0, 2**63 - 1),
)
def test_offset_sync_round_trip(topic: str, partition: int, upstream: int, downstream: int) -> None:
    sync = OffsetSync(topic, partition, upstream, downstream)
    assert decode_offset_sync(*encode_offset_sync(sync)) == sync


def test_offset_sync_rejects_other_records() -> None:
    key, value = encode_offset_sync(OffsetSync("orders", 1, 5, 5))
    with pytest.raises(ValueError, match="key"):
        decode_offset_sync(key + b"x", value)
    with pytest.raises(ValueError, match="value"):
        decode_offset_sync(key, value[:8])


def test_newest_sync_wins_over_highest_offset() -> None:
    syncs = [
        OffsetSync("orders", 0, 99, 99),
        OffsetSync("orders", 1, 10, 10),
        OffsetSync("orders", 0, 49, 0),  # MirrorMaker restarted from an earlier position
    ]
    assert positions_from_syncs(syncs) == {
        TopicPartition("orders", 0): 50,
        TopicPartition("orders", 1): 11,
    }


def test_internal_topics_are_not_watched() -> None:
    names = [
        "orders",
        "__consumer_offsets",
        "heartbeats",
        "dr.heartbeats",
        "mm2-offset-syncs.dr.internal",
        "dr.checkpoints.internal",
        "connect-offsets",
        "user-heartbeats",  # an application topic, only named like MirrorMaker's
    ]
    assert [n for n in names if not is_internal_topic(n)] == ["orders", "user-heartbeats"]
    assert watched_topics(flow(), names) == ("orders", "user-heartbeats")
    # Configured topics are watched as given, when they exist.
    assert watched_topics(flow(topics=("payments", "orders")), names) == ("orders",)


def test_observe_flow_sums_partitions_and_flags_a_stalled_flow() -> None:
    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    records = FlowRecords(
        flow=flow(),
        start_offsets={a0: 0, a1: 0, b0: 0},
        end_offsets={a0: 10, a1: 5, b0: 1500},
        replicated={a0: 7, b0: 0},
        newest_heartbeat=NOW - timedelta(minutes=10),
        topics=("a", "b"),
    )
    observed = observe_flow(records, NOW, partition_detail=False)
    assert {t.topic: t.message_lag for t in observed.kafka_topics} == {"a": 8.0, "b": 1500.0}
    assert observed.kafka_partitions == ()
    (replicator,) = observed.kafka_replicators
    assert replicator.message_lag == 1508.0
    assert replicator.latency_seconds == 600.0
    assert replicator.state == "STALLED"
    detailed = observe_flow(records, NOW, partition_detail=True)
    assert [(p.topic, p.partition, p.message_lag) for p in detailed.kafka_partitions] == [
        ("a", 0, 3),
        ("a", 1, 5),
        ("b", 0, 1500),
    ]


def test_client_settings_security() -> None:
    cluster = KafkaClusterConfig(
        "primary",
        ("b-1.example:9096", "b-2.example:9096"),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="drwatch",
        sasl_password_env="KAFKA_PASSWORD",
        ca_file="/etc/ssl/ca.pem",
    )
    settings = client_settings(cluster, "eu-west-1", environ={"KAFKA_PASSWORD": "s3cret"})
    assert settings["bootstrap.servers"] == "b-1.example:9096,b-2.example:9096"
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings["sasl.password"] == "s3cret"
    assert settings["ssl.ca.location"] == "/etc/ssl/ca.pem"
    with pytest.raises(RuntimeError, match="KAFKA_PASSWORD is not set"):
        client_settings(cluster, "eu-west-1", environ={})


def test_msk_iam_uses_a_signed_oauthbearer_token() -> None:
    cluster = KafkaClusterConfig(
        "msk", ("b-1.msk.example:9098",), "SASL_SSL", sasl_mechanism="AWS_MSK_IAM"
    )
    asked: list[str] = []

    def provider(region: str) -> tuple[str, float]:
        asked.append(region)
        return "signed-token", 1_800_000_000.0

    settings = client_settings(cluster, "eu-central-1", environ={}, token_provider=provider)
    assert settings["sasl.mechanism"] == "OAUTHBEARER"
    assert settings["oauth_cb"](None) == ("signed-token", 1_800_000_000.0)
    assert asked == ["eu-central-1"]


# --- end to end against two real brokers --------------------------------------------------


@pytest.fixture(scope="module")
def clusters() -> Iterator[list[Broker]]:
    yield from brokers(2)


def seed_flow(source: Broker, target: Broker, emitted_ms: int) -> None:
    """Orders (3 partitions) and payments (2) produced, partly copied, one heartbeat."""
    for name, partitions in (("orders", 3), ("payments", 2)):
        source.create_topic(name, partitions)
        target.create_topic(f"primary.{name}", partitions)
    source.create_topic("mm2-offset-syncs.dr.internal", 1)
    target.create_topic("primary.heartbeats", 1)
    producer = source.producer()
    produced = {("orders", 0): 5, ("orders", 1): 3, ("payments", 0): 4, ("payments", 1): 2}
    for (topic, partition), count in produced.items():
        for index in range(count):
            source.produce_one(producer, topic, partition, f"{topic}-{index}".encode())
    copier = Copier(source, target, "primary", "dr", group="mm2-primary-dr")
    copier.copy("orders", 0, 2)
    copier.copy("orders", 1, 3)
    copier.copy("payments", 0, 4)
    copier.heartbeat(emitted_ms - 60_000)
    copier.heartbeat(emitted_ms)


def reader_factory(cluster: KafkaClusterConfig) -> KafkaReader:
    return KafkaReader(client_settings(cluster, "eu-west-1"), timeout=5.0)


@pytest.mark.parametrize("position", ["consumer_group", "offset_syncs"])
def test_lag_and_latency_match_what_was_produced(clusters: list[Broker], position: str) -> None:
    source, target = clusters
    emitted = NOW - timedelta(seconds=7)
    if not _seeded(source):
        seed_flow(source, target, int(emitted.timestamp() * 1000))
    started = time.monotonic()
    (observed,) = observe_flows(
        [flow(source.bootstrap, target.bootstrap, position)],
        reader_factory,
        NOW,
        partition_detail=True,
    )
    assert time.monotonic() - started < 10
    # orders: p0 5 produced / 2 copied, p1 3/3, p2 none; payments: p0 4/4, p1 2/0.
    assert {t.topic: t.message_lag for t in observed.kafka_topics} == {
        "orders": 3.0,
        "payments": 2.0,
    }
    assert {(p.topic, p.partition): p.message_lag for p in observed.kafka_partitions} == {
        ("orders", 0): 3,
        ("orders", 1): 0,
        ("orders", 2): 0,
        ("payments", 0): 0,
        ("payments", 1): 2,
    }
    (replicator,) = observed.kafka_replicators
    assert replicator.latest_replicated_point == emitted
    assert replicator.latency_seconds == 7.0
    assert replicator.message_lag == 5.0
    assert replicator.state == "RUNNING"


def test_a_flow_without_heartbeats_is_stalled(clusters: list[Broker]) -> None:
    source, target = clusters
    missing = MirrorMaker2Flow(
        **{**_fields(flow(source.bootstrap, target.bootstrap)), "heartbeats_topic": "none"}
    )
    (observed,) = observe_flows([missing], reader_factory, NOW, partition_detail=False)
    (replicator,) = observed.kafka_replicators
    assert replicator.latency_seconds is None
    assert replicator.state == "STALLED"


def _fields(value: MirrorMaker2Flow) -> dict[str, object]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def _seeded(source: Broker) -> bool:
    return "orders" in source.admin().list_topics(timeout=5).topics


def test_an_unreachable_cluster_is_an_error_not_zero_lag() -> None:
    port = free_port()  # nothing listens there
    reader = KafkaReader(
        client_settings(flow().source, "eu-west-1") | {"bootstrap.servers": f"127.0.0.1:{port}"},
        timeout=1.0,
    )
    with reader, pytest.raises(KafkaReadError):
        reader.topics()


def test_librdkafka_asks_the_msk_iam_signer_for_a_token() -> None:
    """The real client calls the token callback (here a fake signer) before it connects."""
    asked: list[str] = []

    def provider(region: str) -> tuple[str, float]:
        asked.append(region)
        return "signed-token", time.time() + 900

    cluster = KafkaClusterConfig(
        "msk", (f"127.0.0.1:{free_port()}",), "SASL_PLAINTEXT", sasl_mechanism="AWS_MSK_IAM"
    )
    settings = client_settings(cluster, "eu-west-1", environ={}, token_provider=provider)
    with KafkaReader(settings, timeout=1.0) as reader, pytest.raises(KafkaReadError):
        reader.topics()  # nothing listens: only the token request is observable
    assert asked
    assert set(asked) == {"eu-west-1"}
