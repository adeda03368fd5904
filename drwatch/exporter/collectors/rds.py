"""RDS and Aurora: PITR, automated and manual snapshots, cross-region backup replication.

Five list calls per account and region cover everything, whatever the fleet size: the
instance and cluster lists already carry retention, LatestRestorableTime, encryption,
deletion protection and tags, so there is no per-resource call.

Snapshot sizes: `FullSnapshotSizeInBytes` where AWS reports it, otherwise the allocated
storage of the snapshot. RDS snapshots are incremental and billed on changed blocks, so the
allocated figure is an upper bound, not the bill.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from drwatch.core.model import (
    Mechanism,
    Observations,
    RecoveryState,
    ReplicationState,
    Resource,
    ResourceRef,
)
from drwatch.core.units import GIB
from drwatch.exporter.collectors.base import CollectContext, ObserveContext, sorted_tags, tags_of
from drwatch.exporter.collectors.isolation import MISSING_FIELD, RecordError, require

SERVICE = "rds"
Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RdsRecords:
    """Raw API items of one account and region, as botocore parsed them."""

    instances: tuple[Record, ...] = ()
    clusters: tuple[Record, ...] = ()
    snapshots: tuple[Record, ...] = ()
    cluster_snapshots: tuple[Record, ...] = ()
    automated_backups: tuple[Record, ...] = ()


class RdsCollector:
    """Core: the instance, cluster and snapshot lists. Optional: automated backups (feature
    `automated_backups`: restore windows and cross-region backup replication)."""

    name: ClassVar[str] = "rds"
    iam_actions: ClassVar[tuple[str, ...]] = (
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters",
        "rds:DescribeDBSnapshots",
        "rds:DescribeDBClusterSnapshots",
        "rds:DescribeDBInstanceAutomatedBackups",
    )

    def collect(self, ctx: CollectContext) -> Observations:
        return observe(fetch(ctx), ctx.observe)


def fetch(ctx: CollectContext) -> RdsRecords:
    client = ctx.client(SERVICE)
    return RdsRecords(
        instances=tuple(ctx.paginate(client, "describe_db_instances", "DBInstances")),
        clusters=tuple(ctx.paginate(client, "describe_db_clusters", "DBClusters")),
        snapshots=tuple(ctx.paginate(client, "describe_db_snapshots", "DBSnapshots")),
        cluster_snapshots=tuple(
            ctx.paginate(client, "describe_db_cluster_snapshots", "DBClusterSnapshots")
        ),
        automated_backups=ctx.optional(
            "automated_backups",
            lambda: tuple(
                ctx.paginate(
                    client, "describe_db_instance_automated_backups", "DBInstanceAutomatedBackups"
                )
            ),
            (),
        ),
    )


@dataclass(frozen=True, slots=True)
class DatabaseKind:
    resource_type: str
    id_key: str
    arn_key: str


DB_INSTANCE = DatabaseKind("db_instance", "DBInstanceIdentifier", "DBInstanceArn")
DB_CLUSTER = DatabaseKind("db_cluster", "DBClusterIdentifier", "DBClusterArn")


def observe(records: RdsRecords, ctx: ObserveContext) -> Observations:
    skips = ctx.collection
    located = list(
        skips.each(
            records.automated_backups,
            lambda b: b.get("DBInstanceAutomatedBackupsArn") or b.get("DbiResourceId"),
            lambda b: (b, backup_source_region(b)),
        )
    )
    local = [b for b, region in located if region == ctx.region]
    window_starts = local_restore_window_starts(local)
    # A cluster member's backups belong to its cluster.
    standalone = [i for i in records.instances if not i.get("DBClusterIdentifier")]
    snapshots = skips.keep(records.snapshots, snapshot_id, check_snapshot)
    cluster_snapshots = skips.keep(
        (normalise_cluster_snapshot(s) for s in records.cluster_snapshots),
        snapshot_id,
        check_snapshot,
    )
    instances = observe_databases(
        DB_INSTANCE,
        standalone,
        snapshots,
        lambda item: window_starts.get(str(item.get("DbiResourceId", ""))),
        ctx,
    )
    clusters = observe_databases(
        DB_CLUSTER,
        records.clusters,
        cluster_snapshots,
        lambda item: item.get("EarliestRestorableTime"),
        ctx,
    )
    replicated = list(
        skips.each(
            [b for b, region in located if region != ctx.region],
            lambda b: b.get("DBInstanceAutomatedBackupsArn") or b.get("DbiResourceId"),
            lambda b: (replicated_backup_state(b, ctx), replication_of(b, ctx)),
        )
    )
    return Observations(
        resources=instances.resources + clusters.resources,
        recovery_states=(
            *instances.recovery_states,
            *clusters.recovery_states,
            *snapshot_copies(snapshots, DB_INSTANCE.resource_type, ctx),
            *snapshot_copies(cluster_snapshots, DB_CLUSTER.resource_type, ctx),
            *(state for state, _ in replicated),
        ),
        replication_states=tuple(replication for _, replication in replicated),
    )


def backup_source_region(backup: Record) -> str:
    """The region of the instance an automated backup belongs to.

    `Region` is optional in the API model; the source instance's ARN names the region too.
    With neither, the record cannot be placed: it is skipped, not taken for a replica.
    """
    region = backup.get("Region")
    if region:
        return str(region)
    arn = backup.get("DBInstanceArn")
    if not arn:
        raise RecordError(MISSING_FIELD, "Region and DBInstanceArn absent")
    return arn_region(str(arn))


def snapshot_id(snapshot: Record) -> Any:
    return (
        snapshot.get("DBSnapshotArn")
        or snapshot.get("DBClusterSnapshotArn")
        or snapshot.get("DBSnapshotIdentifier", snapshot.get("DBClusterSnapshotIdentifier"))
    )


def check_snapshot(snapshot: Record) -> None:
    """Raises for a snapshot the mapping cannot use: a restorable one without its time, or a
    copy whose source ARN does not parse."""
    if snapshot.get("Status") == "available":
        point_time(snapshot)
    source = snapshot.get("SourceDBSnapshotIdentifier", "")
    if isinstance(source, str) and source.startswith("arn:"):
        arn_account(source)
        arn_region(source)


def observe_databases(
    kind: DatabaseKind,
    items: Iterable[Record],
    snapshots: Iterable[Record],
    earliest_restorable: Callable[[Record], datetime | None],
    ctx: ObserveContext,
) -> Observations:
    """Resources and their local recovery states, for instances or for clusters."""
    by_identifier = group_by(snapshots, "DBInstanceIdentifier")
    resources: list[Resource] = []
    states: list[RecoveryState] = []

    def mapped(item: Record) -> tuple[Resource, list[RecoveryState]]:
        resource = resource_of(item, kind, ctx)
        own_snapshots = local_snapshots(by_identifier, resource, ctx)
        return resource, recovery_states(
            resource.ref, item, earliest_restorable(item), own_snapshots, ctx
        )

    for resource, own_states in ctx.collection.each(
        items, lambda item: item.get(kind.arn_key) or item.get(kind.id_key), mapped
    ):
        resources.append(resource)
        states.extend(own_states)
    return Observations(resources=tuple(resources), recovery_states=tuple(states))


def resource_of(item: Record, kind: DatabaseKind, ctx: ObserveContext) -> Resource:
    tags = tags_of(item.get("TagList"))
    identifier = str(require(item, kind.id_key))
    return Resource(
        ref=ResourceRef(ctx.account_id, ctx.region, SERVICE, kind.resource_type, identifier),
        name=identifier,
        tier=ctx.tiers.tier_for(tags),
        arn=str(item.get(kind.arn_key, "")),
        tags=sorted_tags(tags),
        deletion_protection=bool(item.get("DeletionProtection", False)),
    )


def recovery_states(
    ref: ResourceRef,
    item: Record,
    earliest_restorable: datetime | None,
    snapshots: Sequence[Record],
    ctx: ObserveContext,
) -> list[RecoveryState]:
    """PITR, automated snapshots and manual snapshots of one instance or cluster."""
    retention = int(item.get("BackupRetentionPeriod") or 0)
    backups_on = retention > 0
    states = [
        RecoveryState(
            ref=ref,
            mechanism=Mechanism.PITR,
            location_account_id=ctx.account_id,
            location_region=ctx.region,
            enabled=backups_on,
            newest_point=item.get("LatestRestorableTime") if backups_on else None,
            oldest_point=earliest_restorable if backups_on else None,
            retention_min_days=retention,
            retention_max_days=retention,
            encrypted=bool(item.get("StorageEncrypted", False)),
        )
    ]
    # Snapshots of type "awsbackup" belong to the AWS Backup collector's recovery points.
    automated = [s for s in snapshots if s.get("SnapshotType") == "automated"]
    if backups_on or automated:
        states.append(
            snapshot_state(
                ref, Mechanism.SNAPSHOT, automated, ctx.account_id, ctx.region
            ).with_retention(retention, backups_on)
        )
    manual = [s for s in snapshots if s.get("SnapshotType") == "manual"]
    if manual:
        # Manual snapshots are restorable points but no protection policy: they are kept
        # until someone deletes them, so every one of them "never expires".
        state = snapshot_state(ref, Mechanism.MANUAL_SNAPSHOT, manual, ctx.account_id, ctx.region)
        states.append(state.never_expiring())
    return states


@dataclass(frozen=True, slots=True)
class SnapshotSummary:
    """Aggregate of a group of snapshots of one resource, before it becomes a RecoveryState."""

    ref: ResourceRef
    mechanism: Mechanism
    location_account_id: str
    location_region: str
    newest: datetime | None
    oldest: datetime | None
    available: int
    failed: int
    size_bytes: int
    encrypted: bool | None

    def with_retention(self, retention_days: int, enabled: bool) -> RecoveryState:
        return self._state(enabled, retention_days, retention_days, never_expire=0)

    def never_expiring(self) -> RecoveryState:
        return self._state(False, None, None, never_expire=self.available)

    def as_copy(self) -> RecoveryState:
        return self._state(True, None, None, never_expire=0)

    def _state(
        self, enabled: bool, min_days: int | None, max_days: int | None, never_expire: int
    ) -> RecoveryState:
        return RecoveryState(
            ref=self.ref,
            mechanism=self.mechanism,
            location_account_id=self.location_account_id,
            location_region=self.location_region,
            enabled=enabled,
            newest_point=self.newest,
            oldest_point=self.oldest,
            point_count=self.available,
            failed_count=self.failed,
            size_bytes=self.size_bytes,
            retention_min_days=min_days,
            retention_max_days=max_days,
            never_expire_count=never_expire,
            encrypted=self.encrypted,
        )


def snapshot_state(
    ref: ResourceRef,
    mechanism: Mechanism,
    snapshots: Sequence[Record],
    location_account_id: str,
    location_region: str,
) -> SnapshotSummary:
    """Only `available` snapshots are restorable points; `failed` ones are counted apart."""
    available = [s for s in snapshots if s.get("Status") == "available"]
    times = [point_time(s) for s in available]
    return SnapshotSummary(
        ref=ref,
        mechanism=mechanism,
        location_account_id=location_account_id,
        location_region=location_region,
        newest=max(times, default=None),
        oldest=min(times, default=None),
        available=len(available),
        failed=sum(1 for s in snapshots if s.get("Status") == "failed"),
        size_bytes=sum(snapshot_bytes(s) for s in available),
        encrypted=all(bool(s.get("Encrypted")) for s in available) if available else None,
    )


def point_time(snapshot: Record) -> datetime:
    """The moment the data is from: a copy keeps its source's creation time."""
    original = snapshot.get("OriginalSnapshotCreateTime")
    created: datetime = original or snapshot["SnapshotCreateTime"]
    return created


def snapshot_bytes(snapshot: Record) -> int:
    full = snapshot.get("FullSnapshotSizeInBytes")
    if full is not None:
        return int(full)
    return int(snapshot.get("AllocatedStorage") or 0) * GIB


def normalise_cluster_snapshot(snapshot: Record) -> dict[str, Any]:
    """Cluster snapshots under the instance-snapshot field names, so one path serves both."""
    normalised = dict(snapshot)
    normalised["DBInstanceIdentifier"] = snapshot.get("DBClusterIdentifier", "")
    normalised["Encrypted"] = snapshot.get("StorageEncrypted", False)
    source_arn = snapshot.get("SourceDBClusterSnapshotArn")
    if source_arn:
        normalised["SourceDBSnapshotIdentifier"] = source_arn
        normalised["SourceRegion"] = arn_region(source_arn)
    return normalised


def is_copy_from_elsewhere(snapshot: Record, ctx: ObserveContext) -> bool:
    source = snapshot.get("SourceDBSnapshotIdentifier", "")
    if not source.startswith("arn:"):
        return False
    return (arn_account(source), arn_region(source)) != (ctx.account_id, ctx.region)


def local_snapshots(
    by_identifier: Mapping[str, list[Record]], resource: Resource, ctx: ObserveContext
) -> list[Record]:
    """The resource's own snapshots; copies that arrived from elsewhere are not its points."""
    group = by_identifier.get(resource.ref.resource_id, ())
    return [s for s in group if not is_copy_from_elsewhere(s, ctx)]


def snapshot_copies(
    snapshots: Iterable[Record], resource_type: str, ctx: ObserveContext
) -> list[RecoveryState]:
    """Snapshots copied here from another region or account, attributed to their source."""
    copies: dict[tuple[ResourceRef, Mechanism], list[Record]] = defaultdict(list)
    for snapshot in snapshots:
        if not is_copy_from_elsewhere(snapshot, ctx):
            continue
        source = snapshot["SourceDBSnapshotIdentifier"]
        ref = ResourceRef(
            arn_account(source),
            arn_region(source),
            SERVICE,
            resource_type,
            str(snapshot.get("DBInstanceIdentifier", "")),
        )
        copies[(ref, Mechanism.SNAPSHOT)].append(snapshot)
    return [
        snapshot_state(ref, mechanism, group, ctx.account_id, ctx.region).as_copy()
        for (ref, mechanism), group in sorted(copies.items())
    ]


def local_restore_window_starts(local_backups: Iterable[Record]) -> dict[str, datetime]:
    """Earliest restorable time per DbiResourceId, from this region's own automated backups."""
    starts: dict[str, datetime] = {}
    for backup in local_backups:
        earliest = (backup.get("RestoreWindow") or {}).get("EarliestTime")
        if earliest is not None:
            starts[str(backup.get("DbiResourceId", ""))] = earliest
    return starts


def source_ref_of_replica(backup: Record) -> ResourceRef:
    # The source's account is only in its ARN: without it the replica cannot be attributed.
    source_arn = str(require(backup, "DBInstanceArn"))
    return ResourceRef(
        arn_account(source_arn),
        backup_source_region(backup),
        SERVICE,
        "db_instance",
        str(backup.get("DBInstanceIdentifier", "")),
    )


def replicated_backup_state(backup: Record, ctx: ObserveContext) -> RecoveryState:
    """Automated backups replicated into this region: a cross-region PITR copy."""
    window = backup.get("RestoreWindow") or {}
    return RecoveryState(
        ref=source_ref_of_replica(backup),
        mechanism=Mechanism.PITR,
        location_account_id=ctx.account_id,
        location_region=ctx.region,
        enabled=backup.get("Status") == "replicating",
        newest_point=window.get("LatestTime"),
        oldest_point=window.get("EarliestTime"),
        retention_min_days=backup.get("BackupRetentionPeriod"),
        retention_max_days=backup.get("BackupRetentionPeriod"),
        encrypted=backup.get("Encrypted"),
    )


def replication_of(backup: Record, ctx: ObserveContext) -> ReplicationState:
    latest: datetime | None = (backup.get("RestoreWindow") or {}).get("LatestTime")
    return ReplicationState(
        kind="rds_cross_region_backup",
        source=source_ref_of_replica(backup),
        destination_account_id=ctx.account_id,
        destination_region=ctx.region,
        destination=str(backup.get("DBInstanceAutomatedBackupsArn", "")),
        state=str(backup.get("Status", "")),
        latest_replicated_point=latest,
        latency_seconds=(ctx.now - latest).total_seconds() if latest else None,
    )


def group_by(items: Iterable[Record], key: str) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for item in items:
        groups[str(item.get(key, ""))].append(item)
    return groups


def arn_region(arn: str) -> str:
    return arn_part(arn, 3)


def arn_account(arn: str) -> str:
    return arn_part(arn, 4)


def arn_part(arn: str, index: int) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or not parts[index]:
        raise RecordError("malformed_field", f"ARN {arn[:100]!r} lacks part {index}")
    return parts[index]
