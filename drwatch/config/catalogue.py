"""The collector catalogue: every collector's name and scheduling defaults, in one place.

The config validates `collectors:` against it and fills in its defaults; the exporter's
tuple of collector classes (`drwatch.exporter.collectors.COLLECTORS`) must name exactly
these collectors, which that package checks when it is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class CollectorDefaults:
    """One collector as the config knows it: its name, default interval, default state."""

    name: str
    interval_seconds: float
    enabled: bool


CATALOGUE: Final[tuple[CollectorDefaults, ...]] = (
    CollectorDefaults("rds", 300.0, enabled=True),
    CollectorDefaults("backup", 300.0, enabled=True),
    CollectorDefaults("elasticache", 300.0, enabled=True),
    CollectorDefaults("s3_replication", 300.0, enabled=True),
    # Off unless MirrorMaker 2 flows are configured (MSK needs no config to be watched).
    CollectorDefaults("kafka", 60.0, enabled=False),
    CollectorDefaults("dynamodb", 300.0, enabled=True),
    # EBS snapshots and "newest object" listings change slowly and cost more API calls per
    # resource, so they are polled less often.
    CollectorDefaults("ebs", 900.0, enabled=True),
    # Nothing to do without targets, so targets are what switch it on.
    CollectorDefaults("s3_freshness", 900.0, enabled=False),
)

KNOWN_COLLECTORS: Final[tuple[str, ...]] = tuple(entry.name for entry in CATALOGUE)
DEFAULT_INTERVALS: Final[Mapping[str, float]] = MappingProxyType(
    {entry.name: entry.interval_seconds for entry in CATALOGUE}
)
DEFAULT_ENABLED_COLLECTORS: Final[frozenset[str]] = frozenset(
    entry.name for entry in CATALOGUE if entry.enabled
)

# Three missed polls before data counts as stale: one failure is routine.
DEFAULT_STALE_AFTER_INTERVALS: Final = 3
# Polling faster than once a minute mostly buys AWS throttling and API cost.
MIN_INTERVAL_SECONDS: Final = 60.0
MAX_INTERVAL_SECONDS: Final = 86400.0
