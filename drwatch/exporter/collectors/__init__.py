"""The collectors drwatch ships, as an explicit tuple (no import-time registration).

Their names and scheduling defaults live in the config's collector catalogue
(`drwatch.config.catalogue`); the tuple must name exactly the catalogued collectors, which
is checked on import so a collector cannot exist on one side only.
"""

from __future__ import annotations

from drwatch.config.catalogue import KNOWN_COLLECTORS
from drwatch.exporter.collectors.backup import BackupCollector
from drwatch.exporter.collectors.base import Collector
from drwatch.exporter.collectors.dynamodb import DynamoDbCollector
from drwatch.exporter.collectors.ebs import EbsCollector
from drwatch.exporter.collectors.elasticache import ElastiCacheCollector
from drwatch.exporter.collectors.kafka import KafkaCollector
from drwatch.exporter.collectors.rds import RdsCollector
from drwatch.exporter.collectors.s3_freshness import S3FreshnessCollector
from drwatch.exporter.collectors.s3_replication import S3ReplicationCollector

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


def _check_against_catalogue(collectors: tuple[type[Collector], ...]) -> None:
    names = [c.name for c in collectors]
    if sorted(names) != sorted(KNOWN_COLLECTORS):
        raise RuntimeError(
            f"collector classes {sorted(names)} do not match the config's collector catalogue "
            f"{sorted(KNOWN_COLLECTORS)} (drwatch.config.catalogue)"
        )


_check_against_catalogue(COLLECTORS)


def collector_classes(names: tuple[str, ...] | None = None) -> tuple[type[Collector], ...]:
    """The implemented collectors, optionally only those named (in COLLECTORS order)."""
    if names is None:
        return COLLECTORS
    return tuple(c for c in COLLECTORS if c.name in names)
