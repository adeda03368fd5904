"""Thin Kafka client I/O for the MirrorMaker 2 part of the kafka collector (confluent-kafka).

Only reads: topic metadata, earliest/latest offsets, a consumer group's committed offsets,
and records of small topics (offset syncs, the newest heartbeats). drwatch never joins a
consumer group: its consumer is assigned partitions explicitly and never commits, so it
cannot disturb MirrorMaker's own group.

Security: PLAINTEXT, SSL (optionally with a CA file), SASL PLAIN/SCRAM (password from an
environment variable, never from the config file) and MSK IAM (SASL/OAUTHBEARER with a
token signed by aws-msk-iam-sasl-signer-python from the process's AWS credentials).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from drwatch.config import KafkaClusterConfig

# Per request; a poll unit has its own deadline on top.
DEFAULT_TIMEOUT_SECONDS = 10.0
TokenProvider = Callable[[str], tuple[str, float]]  # region -> (token, expiry epoch seconds)


class KafkaReadError(RuntimeError):
    """A Kafka read failed (broker unreachable, authorisation, unknown group...)."""


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    partition: int
    offset: int
    timestamp_ms: int | None  # None when the broker reports no timestamp
    key: bytes | None
    value: bytes | None


def msk_iam_token(region: str) -> tuple[str, float]:
    """An MSK IAM auth token for `region` and its expiry (epoch seconds)."""
    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return str(token), float(expiry_ms) / 1000.0


def client_settings(
    cluster: KafkaClusterConfig,
    default_region: str,
    environ: Mapping[str, str] | None = None,
    token_provider: TokenProvider = msk_iam_token,
) -> dict[str, Any]:
    """librdkafka settings for one cluster (pure apart from reading the password variable)."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {
        "bootstrap.servers": ",".join(cluster.bootstrap_servers),
        "security.protocol": cluster.security_protocol,
        "client.id": "drwatch",
        "socket.timeout.ms": int(DEFAULT_TIMEOUT_SECONDS * 1000),
        # librdkafka logs through stderr by default; errors surface as exceptions instead.
        "log_level": 0,
    }
    if cluster.ca_file:
        settings["ssl.ca.location"] = cluster.ca_file
    mechanism = cluster.sasl_mechanism
    if mechanism == "AWS_MSK_IAM":
        region = cluster.msk_iam_region or default_region
        settings["sasl.mechanism"] = "OAUTHBEARER"
        settings["oauth_cb"] = lambda _config: token_provider(region)
    elif mechanism:
        password = env.get(cluster.sasl_password_env)
        if not password:
            raise KafkaReadError(
                f"kafka cluster {cluster.alias}: environment variable "
                f"{cluster.sasl_password_env} is not set"
            )
        settings["sasl.mechanism"] = mechanism
        settings["sasl.username"] = cluster.sasl_username
        settings["sasl.password"] = password
    return settings


class KafkaReader:
    """Read-only access to one cluster; a context manager (closes its consumer)."""

    def __init__(self, settings: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self._timeout = timeout
        self._admin = AdminClient(dict(settings))
        consumer_settings = {
            **settings,
            # Required by the client even though drwatch never subscribes or commits.
            "group.id": "drwatch-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
        self._consumer = Consumer(consumer_settings)

    def __enter__(self) -> KafkaReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def topics(self) -> dict[str, int]:
        """Every topic of the cluster with its partition count."""
        metadata = self._call(lambda: self._admin.list_topics(timeout=self._timeout))
        return {name: len(topic.partitions) for name, topic in metadata.topics.items()}

    def offsets(
        self, partitions: Iterable[TopicPartition], latest: bool
    ) -> dict[TopicPartition, int]:
        """Log-end (latest) or log-start (earliest) offset of each partition."""
        # OffsetSpec's factories carry no annotations in confluent-kafka 2.16.
        spec = OffsetSpec.latest() if latest else OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        wanted = {KafkaTopicPartition(p.topic, p.partition): spec for p in partitions}
        if not wanted:
            return {}
        futures = self._call(
            lambda: self._admin.list_offsets(wanted, request_timeout=self._timeout)
        )
        return {
            TopicPartition(tp.topic, tp.partition): int(self._call(future.result).offset)
            for tp, future in futures.items()
        }

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """Committed offsets of a consumer group (partitions without a commit are absent)."""
        futures = self._call(
            lambda: self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=self._timeout
            )
        )
        answer = self._call(futures[group].result)
        return {
            TopicPartition(tp.topic, tp.partition): int(tp.offset)
            for tp in answer.topic_partitions
            if tp.offset >= 0  # negative = no committed offset
        }

    def read(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> list[KafkaRecord]:
        """Records of each partition from its start offset up to (excluding) its end offset."""
        todo = {tp: span for tp, span in ranges.items() if span[1] > span[0]}
        if not todo:
            return []
        self._consumer.assign(
            [KafkaTopicPartition(tp.topic, tp.partition, start) for tp, (start, _) in todo.items()]
        )
        records: list[KafkaRecord] = []
        remaining = {tp: end for tp, (_, end) in todo.items()}
        try:
            while remaining:
                message = self._consumer.poll(self._timeout)
                if message is None:
                    raise KafkaReadError(f"timed out reading {sorted(remaining)[0]}")
                tp = TopicPartition(str(message.topic()), int(message.partition() or 0))
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaReadError(str(error))
                    remaining.pop(tp, None)
                    continue
                record = record_of(message)
                records.append(record)
                if record.offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
        finally:
            self._consumer.unassign()
        return records

    def _call(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except KafkaException as error:
            raise KafkaReadError(str(error)) from error


def record_of(message: Any) -> KafkaRecord:
    kind, stamp = message.timestamp()
    return KafkaRecord(
        partition=int(message.partition()),
        offset=int(message.offset()),
        timestamp_ms=int(stamp) if kind != 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
        key=message.key(),
        value=message.value(),
    )


def partitions_of(topics: Mapping[str, int], names: Sequence[str]) -> list[TopicPartition]:
    return [TopicPartition(name, p) for name in names for p in range(topics.get(name, 0))]
