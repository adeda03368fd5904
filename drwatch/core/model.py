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
    # A continuously replicated copy (S3 replication): its point is poll time minus the lag.
    REPLICATION = "replication"


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
    # Restorable only after a tier restore that takes hours (EBS archive): an RTO concern.
    archived_count: int = 0
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
class VaultState:
    """One AWS Backup vault: lock, key and what its recovery points add up to."""

    account_id: str
    region: str
    vault: str
    vault_type: str
    encryption_key_type: str
    locked: bool
    lock_min_retention_days: int | None = None
    lock_max_retention_days: int | None = None
    warm_points: int = 0
    cold_points: int = 0
    warm_bytes: int = 0
    cold_bytes: int = 0
    incomplete_points: int = 0  # PARTIAL, EXPIRED, STOPPED: not restorable as a whole
    never_expire_points: int = 0
    unencrypted_points: int = 0
    oldest_point: datetime | None = None


@dataclass(frozen=True, slots=True, order=True)
class JobCount:
    """Jobs of one kind by vault, resource type, state and message category in a window."""

    account_id: str
    region: str
    kind: str  # backup | copy | restore
    vault: str
    resource_type: str
    state: str
    message_category: str
    count: int


@dataclass(frozen=True, slots=True)
class ResourceJobState:
    """The newest finished jobs of one kind for one resource (per destination or test plan)."""

    ref: ResourceRef
    kind: str  # backup | copy | restore
    last_success: datetime | None = None  # completion time
    last_failure: datetime | None = None
    last_duration_seconds: float | None = None  # of the newest finished job
    last_size_bytes: int | None = None
    destination_account_id: str = ""  # copy jobs
    destination_region: str = ""  # copy jobs
    restore_testing_plan: str = ""  # restore jobs; "" for restores started by hand
    last_validated: bool | None = None  # restore jobs: newest validation SUCCESSFUL


@dataclass(frozen=True, slots=True)
class BackupCoverage:
    """A resource AWS Backup holds points of, and whether a plan's selection still names it.

    `selected` is None when a selection uses tag conditions drwatch cannot evaluate.
    """

    ref: ResourceRef
    selected: bool | None
    last_backup: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlanRuleState:
    """One rule of an AWS Backup plan."""

    account_id: str
    region: str
    plan: str
    rule: str
    vault: str
    schedule: str
    continuous: bool
    delete_after_days: int | None = None
    cold_after_days: int | None = None
    copy_destinations: tuple[tuple[str, str], ...] = ()  # (account_id, region)
    selections: int = 0


@dataclass(frozen=True, slots=True)
class S3BucketState:
    """Data-protection settings of one S3 bucket (versioning and object lock)."""

    ref: ResourceRef
    versioning: str  # Enabled | Suspended | "" (never enabled)
    object_lock: bool
    replication_rules: int


@dataclass(frozen=True, slots=True)
class S3ReplicationRule:
    """One replication rule of a bucket, as configured (its lag is in ReplicationState)."""

    source: ResourceRef
    rule_id: str
    status: str  # Enabled | Disabled
    destination_account_id: str
    destination_region: str  # "" when the destination bucket's region cannot be read
    destination: str  # destination bucket name
    storage_class: str  # "" = the source object's class
    replication_time_control: bool
    metrics_enabled: bool  # without metrics S3 publishes no lag: "lag unknown", never 0
    delete_marker_replication: bool


@dataclass(frozen=True, slots=True)
class BackupFileSetState:
    """A configured bucket/prefix of backup files: its newest file's size and cadence."""

    ref: ResourceRef
    newest_bytes: int | None  # None when the prefix holds no file
    expected_interval_seconds: float | None = None


@dataclass(frozen=True, slots=True, order=True)
class KafkaFlowRef:
    """One Kafka replication flow: a replicator copying a source cluster to a target.

    `replicator` is the MSK Replicator's name, or "<source>-><target>" for MirrorMaker 2;
    `source`/`target` are the cluster aliases the replicator uses. Watched from the unit of
    `account_id`/`region` (MSK: the replicator's, i.e. the target cluster's region).
    """

    account_id: str
    region: str
    kind: str  # msk_replicator | mirrormaker2
    replicator: str
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class KafkaReplicatorState:
    """A replicator as a whole: its state and its replicator-level figures (None = unknown)."""

    flow: KafkaFlowRef
    state: str  # MSK: RUNNING | CREATING | UPDATING | DELETING | FAILED; MM2: RUNNING | STALLED
    topics: int = 0
    message_lag: float | None = None
    latency_seconds: float | None = None
    latest_replicated_point: datetime | None = None  # MM2: newest replicated heartbeat
    failures: float | None = None  # MSK ReplicatorFailure
    auth_errors: float | None = None  # MSK AuthError
    throttle_seconds: float | None = None  # MSK ThrottleTime


@dataclass(frozen=True, slots=True)
class KafkaTopicState:
    """Replication of one topic of a flow (summed over its partitions)."""

    flow: KafkaFlowRef
    topic: str  # the source topic's name
    message_lag: float | None = None
    latency_seconds: float | None = None
    # Latency 0 while messages still wait at the source: AWS's sign of a topic auth error.
    zero_latency_while_producing: bool = False


@dataclass(frozen=True, slots=True)
class KafkaPartitionLag:
    """Offsets of one partition (only with `kafka.partition_detail`)."""

    flow: KafkaFlowRef
    topic: str
    partition: int
    source_end_offset: int
    replicated_offset: int | None  # None: nothing replicated / committed yet
    message_lag: int


@dataclass(frozen=True, slots=True)
class KafkaConnectorState:
    """An MSK Connect connector (MirrorMaker 2 often runs on it)."""

    account_id: str
    region: str
    connector: str
    state: str  # RUNNING | FAILED | ...
    workers: int | None = None
    tasks_max: int | None = None


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything one unit run saw. Collectors return it; metrics and history consume it."""

    resources: tuple[Resource, ...] = ()
    recovery_states: tuple[RecoveryState, ...] = ()
    job_events: tuple[JobEvent, ...] = ()
    replication_states: tuple[ReplicationState, ...] = ()
    vault_states: tuple[VaultState, ...] = ()
    job_counts: tuple[JobCount, ...] = ()  # jobs finished in the collector's window
    job_summaries: tuple[JobCount, ...] = ()  # AWS's own summary counts (vault "")
    resource_job_states: tuple[ResourceJobState, ...] = ()
    backup_coverage: tuple[BackupCoverage, ...] = ()
    plan_rules: tuple[PlanRuleState, ...] = ()
    s3_buckets: tuple[S3BucketState, ...] = ()
    s3_replication_rules: tuple[S3ReplicationRule, ...] = ()
    backup_file_sets: tuple[BackupFileSetState, ...] = ()
    kafka_replicators: tuple[KafkaReplicatorState, ...] = ()
    kafka_topics: tuple[KafkaTopicState, ...] = ()
    kafka_partitions: tuple[KafkaPartitionLag, ...] = ()
    kafka_connectors: tuple[KafkaConnectorState, ...] = ()

    def __len__(self) -> int:
        return (
            len(self.resources)
            + len(self.recovery_states)
            + len(self.job_events)
            + len(self.replication_states)
            + len(self.vault_states)
            + len(self.job_counts)
            + len(self.job_summaries)
            + len(self.resource_job_states)
            + len(self.backup_coverage)
            + len(self.plan_rules)
            + len(self.s3_buckets)
            + len(self.s3_replication_rules)
            + len(self.backup_file_sets)
            + len(self.kafka_replicators)
            + len(self.kafka_topics)
            + len(self.kafka_partitions)
            + len(self.kafka_connectors)
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
    # Records the mapping skipped, by reason, and optional features by state ("available",
    # "unavailable" here, "failed" this poll): a successful run may still be partial.
    records_skipped: Mapping[str, int] = field(default_factory=dict)
    features: Mapping[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """Succeeded without some records or some optional feature (failed this poll)."""
        return self.success and (
            any(self.records_skipped.values()) or "failed" in self.features.values()
        )


@dataclass(frozen=True, slots=True)
class UnitResult:
    run: UnitRun
    observations: Observations


@dataclass(frozen=True, slots=True)
class DrillScenarioStatus:
    """The newest recorded DR drill of one scenario (times as UNIX seconds)."""

    scenario: str
    last_timestamp: float  # incident start of the newest drill
    last_passed: bool
    last_success_timestamp: float | None = None  # incident start of the newest passed drill
    last_rto_seconds: float | None = None
    last_rto_target_seconds: float | None = None
    last_rpo_seconds: float | None = None
    last_rpo_target_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class RestoreClassStatus:
    """Restore tests of one resource class in one account and region (DRW-11 cadence)."""

    account_id: str
    region: str
    resource_class: str
    last_success_timestamp: float | None = None  # completion of the newest validated restore
    last_failure_timestamp: float | None = None
    last_duration_seconds: float | None = None  # of the newest finished restore


@dataclass(frozen=True, slots=True)
class DrillStatus:
    """What the history says about drills and restore tests, for the metrics view."""

    scenarios: tuple[DrillScenarioStatus, ...] = ()
    restore_classes: tuple[RestoreClassStatus, ...] = ()


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
