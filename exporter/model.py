"""The one data model: what collectors observe, what metrics render and what history stores.

Every record is a frozen dataclass holding plain values (str, int, float, bool, tz-aware
datetime, tuples), so records can be shared between threads without locks and serialised
to JSON without special cases. Timestamps are always timezone-aware UTC.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Mechanism(enum.StrEnum):
    """How a resource can be brought back. PITR usually wins over snapshots for RPO."""

    AWS_BACKUP = "aws_backup"
    SNAPSHOT = "snapshot"  # automated snapshots taken by the service itself
    MANUAL_SNAPSHOT = "manual_snapshot"  # kept until someone deletes them: a retention/cost risk
    PITR = "pitr"
    EXPORT = "export"


@dataclass(frozen=True, slots=True, order=True)
class ResourceRef:
    """Identity of a protected resource; the labels every per-resource series carries."""

    account_id: str
    region: str
    service: str
    resource_type: str
    resource_id: str


@dataclass(frozen=True, slots=True)
class Resource:
    ref: ResourceRef
    name: str
    tier: str
    arn: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    deletion_protection: bool | None = None


@dataclass(frozen=True, slots=True)
class RecoveryState:
    """What one mechanism can restore for one resource.

    `location_account_id`/`location_region` say where the points are stored: equal to the
    resource's own account and region for local points, different for cross-region or
    cross-account copies. Copies are observed by the unit of the region that holds them.
    """

    ref: ResourceRef
    mechanism: Mechanism
    location_account_id: str
    location_region: str
    enabled: bool
    newest_point: datetime | None = None
    oldest_point: datetime | None = None
    point_count: int = 0
    failed_count: int = 0
    size_bytes: int = 0
    retention_min_days: int | None = None
    retention_max_days: int | None = None
    never_expire_count: int = 0
    encrypted: bool | None = None
    immutable: bool | None = None

    @property
    def is_copy(self) -> bool:
        return (self.location_account_id, self.location_region) != (
            self.ref.account_id,
            self.ref.region,
        )


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A backup, copy or restore job. History keys on `job_id`, so re-reading never duplicates."""

    job_id: str
    kind: str  # backup | copy | restore
    state: str
    ref: ResourceRef | None
    created: datetime
    completed: datetime | None = None
    message_category: str = ""
    size_bytes: int = 0
    vault: str = ""
    restore_testing_plan: str = ""
    validation_status: str = ""


@dataclass(frozen=True, slots=True)
class ReplicationState:
    """Replication of one source to one destination (S3, Kafka, RDS cross-region backups...)."""

    kind: str  # s3 | msk_replicator | mirrormaker2 | rds_cross_region_backup | elasticache_global
    source: ResourceRef
    destination_account_id: str
    destination_region: str
    destination: str
    state: str
    latest_replicated_point: datetime | None = None
    latency_seconds: float | None = None
    pending_operations: float | None = None
    pending_bytes: float | None = None
    failed_operations: float | None = None
    message_lag: float | None = None


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything one unit run saw. Collectors return it; metrics and history consume it."""

    resources: tuple[Resource, ...] = ()
    recovery_states: tuple[RecoveryState, ...] = ()
    job_events: tuple[JobEvent, ...] = ()
    replication_states: tuple[ReplicationState, ...] = ()

    def __len__(self) -> int:
        return (
            len(self.resources)
            + len(self.recovery_states)
            + len(self.job_events)
            + len(self.replication_states)
        )


@dataclass(frozen=True, slots=True, order=True)
class UnitKey:
    """A unit of polling work: one collector in one account and region."""

    collector: str
    account_id: str
    region: str


@dataclass(frozen=True, slots=True)
class UnitRun:
    """The outcome of one unit run: the evidence of monitoring coverage."""

    unit: UnitKey
    started: datetime
    duration_seconds: float
    success: bool
    error_code: str = ""
    error_message: str = ""
    api_calls: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnitResult:
    run: UnitRun
    observations: Observations


def to_jsonable(value: Any) -> Any:
    """Plain JSON-compatible structure for any model record (datetimes become ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_jsonable(v) for v in value]
    return value
