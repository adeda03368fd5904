"""The collectors drwatch ships, as an explicit tuple (no import-time registration)."""

from __future__ import annotations

from exporter.collectors.backup import BackupCollector
from exporter.collectors.base import Collector
from exporter.collectors.dynamodb import DynamoDbCollector
from exporter.collectors.ebs import EbsCollector
from exporter.collectors.elasticache import ElastiCacheCollector
from exporter.collectors.kafka import KafkaCollector
from exporter.collectors.rds import RdsCollector
from exporter.collectors.s3_freshness import S3FreshnessCollector
from exporter.collectors.s3_replication import S3ReplicationCollector

COLLECTORS: tuple[type[Collector], ...] = (
    BackupCollector,
    RdsCollector,
    DynamoDbCollector,
    EbsCollector,
    ElastiCacheCollector,
    S3ReplicationCollector,
    S3FreshnessCollector,
    KafkaCollector,
)


def collector_classes(names: tuple[str, ...] | None = None) -> tuple[type[Collector], ...]:
    """The implemented collectors, optionally only those named (in COLLECTORS order)."""
    if names is None:
        return COLLECTORS
    return tuple(c for c in COLLECTORS if c.name in names)
