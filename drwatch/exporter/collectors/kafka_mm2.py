"""MirrorMaker 2: offset lag per replicated partition and end-to-end latency from heartbeats.

For each configured flow source -> target (`kafka.mirrormaker2`), read from the unit whose
account and region the flow names:

- source: the topics to watch (configured, or every non-internal topic) and each
  partition's log-start and log-end offsets;
- what MirrorMaker has replicated, whichever the deployment exposes (`position`):
  `consumer_group`: the offsets committed by MirrorMaker's consumer group on the source;
  `offset_syncs`: the newest record per partition of the offset-syncs topic on the source
  (`mm2-offset-syncs.<target>.internal`), whose upstream offset U says the record at U has
  been written to the target. MirrorMaker writes a sync only every `offset.lag.max` records
  (100 by default), so that lag is an upper bound that may read up to that much too high;
- target: the newest record of the replicated heartbeats topic (`<source>.heartbeats`).
  MirrorMaker emits a heartbeat every second (`emit.heartbeats.interval.seconds`), so poll
  time minus the newest replicated heartbeat's time is the end-to-end latency (plus at most
  one interval).

Everything that is arithmetic (lag, positions, decoding MirrorMaker's binary records) is a
pure function here; the client I/O is exporter/kafka_client.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from drwatch.config import KafkaClusterConfig, MirrorMaker2Flow
from drwatch.core.model import (
    KafkaFlowRef,
    KafkaPartitionLag,
    KafkaReplicatorState,
    KafkaTopicState,
    Observations,
)
from drwatch.exporter.kafka_client import KafkaReader, KafkaRecord, TopicPartition, partitions_of

KIND = "mirrormaker2"
STATE_RUNNING = "RUNNING"
# No heartbeat replicated at all, or none for longer than this: the flow is not moving.
STALLED_AFTER_SECONDS = 300.0
ReaderFactory = Callable[[KafkaClusterConfig], KafkaReader]


@dataclass(frozen=True, slots=True)
class OffsetSync:
    """One record of MirrorMaker's offset-syncs topic: upstream offset U is downstream D."""

    topic: str
    partition: int
    upstream_offset: int
    downstream_offset: int


@dataclass(frozen=True, slots=True)
class FlowRecords:
    """What one flow's reads returned (the input of the pure mapping)."""

    flow: MirrorMaker2Flow
    start_offsets: Mapping[TopicPartition, int]
    end_offsets: Mapping[TopicPartition, int]
    replicated: Mapping[TopicPartition, int]  # position: next offset still to replicate
    newest_heartbeat: datetime | None
    topics: tuple[str, ...] = ()


# --- pure arithmetic ---------------------------------------------------------------------


def partition_lag(start_offset: int, end_offset: int, replicated: int | None) -> int:
    """Messages of a partition not yet replicated: log-end offset minus replicated position.

    A position below the log start (records deleted by retention before replication) counts
    from the log start: deleted records can no longer be replicated or lag. No position at
    all means nothing was replicated: every retained record lags.
    """
    position = start_offset if replicated is None else max(replicated, start_offset)
    return max(0, end_offset - position)


def heartbeat_latency_seconds(newest: datetime | None, now: datetime) -> float | None:
    """Poll time minus the newest replicated heartbeat (never negative: clocks drift)."""
    if newest is None:
        return None
    return max(0.0, (now - newest).total_seconds())


def decode_heartbeat_time(record: KafkaRecord) -> datetime | None:
    """The time a heartbeat was emitted.

    The value is MirrorMaker's Heartbeat struct: int16 version, then int64 epoch millis
    (big-endian). Anything else falls back to the record's timestamp, which MirrorMaker
    copies from the upstream record.
    """
    millis: int | None = None
    value = record.value or b""
    if len(value) == 10:
        millis = struct.unpack(">hq", value)[1]
    elif len(value) == 8:
        millis = struct.unpack(">q", value)[0]
    if millis is None:
        millis = record.timestamp_ms
    if millis is None or millis <= 0:
        return None
    return datetime.fromtimestamp(millis / 1000.0, UTC)


def decode_offset_sync(key: bytes, value: bytes) -> OffsetSync:
    """An offset-syncs record: key = (string topic, int32 partition), value = two int64.

    Strings are Kafka protocol strings: int16 length then UTF-8 bytes; all big-endian.
    """
    (length,) = struct.unpack_from(">h", key, 0)
    if length < 0 or len(key) != 2 + length + 4:
        raise ValueError(f"not an offset-sync key: {len(key)} bytes")
    topic = key[2 : 2 + length].decode("utf-8")
    (partition,) = struct.unpack_from(">i", key, 2 + length)
    if len(value) != 16:
        raise ValueError(f"not an offset-sync value: {len(value)} bytes")
    upstream, downstream = struct.unpack(">qq", value)
    return OffsetSync(topic, partition, upstream, downstream)


def encode_offset_sync(sync: OffsetSync) -> tuple[bytes, bytes]:
    """The inverse of decode_offset_sync (tests and the sandbox write syncs with it)."""
    topic = sync.topic.encode("utf-8")
    key = struct.pack(">h", len(topic)) + topic + struct.pack(">i", sync.partition)
    return key, struct.pack(">qq", sync.upstream_offset, sync.downstream_offset)


def encode_heartbeat(source_alias: str, target_alias: str, millis: int) -> tuple[bytes, bytes]:
    """A heartbeat record as MirrorMaker writes it: key (source, target), value (v0, ms)."""
    source, target = source_alias.encode(), target_alias.encode()
    key = struct.pack(">h", len(source)) + source + struct.pack(">h", len(target)) + target
    return key, struct.pack(">hq", 0, millis)


def positions_from_syncs(syncs: Iterable[OffsetSync]) -> dict[TopicPartition, int]:
    """Replicated position per partition: the newest synced upstream offset plus one.

    The topic is compacted per partition but may still hold older syncs (and a restarted
    MirrorMaker may sync lower offsets again after a reset), so the newest record wins
    rather than the highest offset: callers pass syncs in log order.
    """
    positions: dict[TopicPartition, int] = {}
    for sync in syncs:
        positions[TopicPartition(sync.topic, sync.partition)] = sync.upstream_offset + 1
    return positions


def is_internal_topic(name: str) -> bool:
    """Kafka's and MirrorMaker's own topics, never replicated data."""
    return (
        name.startswith(("__", "_confluent", "mm2-", "connect-"))
        or name.endswith((".internal", ".heartbeats"))
        or name == "heartbeats"
    )


def watched_topics(flow: MirrorMaker2Flow, source_topics: Iterable[str]) -> tuple[str, ...]:
    """The configured topics that exist on the source, or every non-internal one."""
    existing = set(source_topics)
    if flow.topics:
        return tuple(t for t in flow.topics if t in existing)
    return tuple(sorted(t for t in existing if not is_internal_topic(t)))


def flow_ref(flow: MirrorMaker2Flow) -> KafkaFlowRef:
    return KafkaFlowRef(
        account_id=flow.account_id,
        region=flow.region,
        kind=KIND,
        replicator=f"{flow.source.alias}->{flow.target.alias}",
        source=flow.source.alias,
        target=flow.target.alias,
    )


def observe_flow(records: FlowRecords, now: datetime, partition_detail: bool) -> Observations:
    """Topic lag (sum over partitions), optional partition rows, and the flow's state."""
    ref = flow_ref(records.flow)
    partitions: list[KafkaPartitionLag] = []
    lag_by_topic: dict[str, int] = {topic: 0 for topic in records.topics}
    for tp, end in sorted(records.end_offsets.items()):
        start = records.start_offsets.get(tp, 0)
        replicated = records.replicated.get(tp)
        lag = partition_lag(start, end, replicated)
        lag_by_topic[tp.topic] = lag_by_topic.get(tp.topic, 0) + lag
        if partition_detail:
            partitions.append(KafkaPartitionLag(ref, tp.topic, tp.partition, end, replicated, lag))
    latency = heartbeat_latency_seconds(records.newest_heartbeat, now)
    topics = tuple(
        KafkaTopicState(flow=ref, topic=topic, message_lag=float(lag))
        for topic, lag in sorted(lag_by_topic.items())
    )
    stalled = latency is None or latency > STALLED_AFTER_SECONDS
    replicator = KafkaReplicatorState(
        flow=ref,
        state="STALLED" if stalled else STATE_RUNNING,
        topics=len(topics),
        message_lag=float(sum(lag_by_topic.values())),
        latency_seconds=latency,
        latest_replicated_point=records.newest_heartbeat,
    )
    return Observations(
        kafka_replicators=(replicator,), kafka_topics=topics, kafka_partitions=tuple(partitions)
    )


# --- thin I/O ----------------------------------------------------------------------------


def fetch_flow(flow: MirrorMaker2Flow, reader_for: ReaderFactory) -> FlowRecords:
    """Every read one flow needs: source offsets, replicated positions, newest heartbeat."""
    with reader_for(flow.source) as source:
        source_topics = source.topics()
        topics = watched_topics(flow, source_topics)
        partitions = partitions_of(source_topics, topics)
        start = source.offsets(partitions, latest=False)
        end = source.offsets(partitions, latest=True)
        replicated = replicated_positions(flow, source, source_topics)
    watched = set(topics)
    with reader_for(flow.target) as target:
        newest = newest_heartbeat(target, flow.heartbeats_topic)
    return FlowRecords(
        flow=flow,
        start_offsets=start,
        end_offsets=end,
        replicated={tp: o for tp, o in replicated.items() if tp.topic in watched},
        newest_heartbeat=newest,
        topics=topics,
    )


def replicated_positions(
    flow: MirrorMaker2Flow, source: KafkaReader, source_topics: Mapping[str, int]
) -> dict[TopicPartition, int]:
    if flow.position == "consumer_group":
        return source.committed(flow.consumer_group)
    if flow.offset_syncs_topic not in source_topics:
        return {}  # no sync written yet: nothing known to be replicated
    partitions = partitions_of(source_topics, [flow.offset_syncs_topic])
    start = source.offsets(partitions, latest=False)
    end = source.offsets(partitions, latest=True)
    records = source.read({tp: (start[tp], end[tp]) for tp in partitions})
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    return positions_from_syncs(
        decode_offset_sync(r.key or b"", r.value or b"") for r in ordered if r.value is not None
    )


def newest_heartbeat(target: KafkaReader, topic: str) -> datetime | None:
    """Time of the newest heartbeat over the topic's partitions; None if none replicated."""
    topics = target.topics()
    if topic not in topics:
        return None
    partitions = partitions_of(topics, [topic])
    start = target.offsets(partitions, latest=False)
    end = target.offsets(partitions, latest=True)
    # Only the last record of each partition: the newest heartbeat is among them.
    ranges = {tp: (max(start[tp], end[tp] - 1), end[tp]) for tp in partitions}
    times = [decode_heartbeat_time(record) for record in target.read(ranges)]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def observe_flows(
    flows: Sequence[MirrorMaker2Flow],
    reader_for: ReaderFactory,
    now: datetime,
    partition_detail: bool,
) -> list[Observations]:
    return [observe_flow(fetch_flow(f, reader_for), now, partition_detail) for f in flows]
