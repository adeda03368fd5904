"""Seeding the RDS part of a fleet plan (`fleet.plan_fleet`) into the sandbox.

`seed_databases(sandbox, plan)` creates the databases and cross-region snapshot copies
through boto3 (one assumed-role client per account and region, in a small thread pool), and
edits moto's in-process backends for what the API cannot express: creation times, snapshots
with their types, times and statuses, restorable times, replicated automated backups and
copy provenance.

Databases, Aurora members and cross-region copies are created through boto3, so the API
path (assumed-role keys, SigV4, presigned CopyDBSnapshot) is what builds the estate.
Snapshots in their own region are created in-process: every one of them needs its time,
type and status edited there anyway, and a daily history is ~20 per database.

Cost: ~10 ms per request, nearly all CPU (botocore on one side, moto's Flask dispatch and
XML serialisation on the other) under one GIL, so the thread pool overlaps only the socket
waits. 200 instances take ~250 requests, a few seconds; 10,000 would take ~12,500 requests,
about two minutes, and that request path is the bottleneck (the in-process part is linear
and takes well under a second per 10,000 snapshots). Running moto in a second process
would lift the GIL limit but lose the in-process edits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from moto.rds.models import DBClusterSnapshot, DBSnapshot, RDSBackend, rds_backends

from drwatch.sandbox.fleet import FleetPlan, PlannedDatabase, PlannedSnapshot
from drwatch.sandbox.moto_extensions import (
    install_moto_extensions,
    plan_latest_restorable_time,
    register_backup_replication,
)
from drwatch.sandbox.server import Sandbox

MAINTENANCE_WINDOW = "sun:22:30-sun:23:00"  # after every backup window, which end by 22:20
INSTANCE_CLASS = {"db_instance": "db.m6g.large", "db_cluster": "db.r6g.large"}
SEED_WORKERS = 4
MASTER_USERNAME = "drwatch"
MASTER_PASSWORD = "sandbox-only-password"  # noqa: S105 - a fake database in a fake AWS


def seed_databases(sandbox: Sandbox, plan: FleetPlan) -> None:
    """The RDS part of `seed.seed_fleet` alone (benchmarks size the other services themselves)."""
    install_moto_extensions()
    clients = {unit: sandbox.client("rds", unit[1], account_id=unit[0]) for unit in plan.spec.units}
    with ThreadPoolExecutor(max_workers=SEED_WORKERS) as pool:
        _run_all(pool.map(lambda db: _create_through_api(clients, db), plan.databases))
        _align_backends(plan)
        _run_all(pool.map(lambda db: _copy_through_api(clients, db), plan.databases))
    for db in plan.databases:
        _align_copies(db)


def _run_all(results: Iterator[None]) -> None:
    # Consuming the iterator re-raises the first failure of the pool.
    for _ in results:
        pass


def _create_through_api(clients: dict[tuple[str, str], Any], db: PlannedDatabase) -> None:
    rds = clients[(db.account_id, db.region)]
    tags = [{"Key": key, "Value": value} for key, value in db.tags]
    common = {
        "Engine": db.engine,
        "EngineVersion": db.engine_version,
        "MasterUsername": MASTER_USERNAME,
        "MasterUserPassword": MASTER_PASSWORD,
        "BackupRetentionPeriod": db.backup_retention_days,
        "PreferredBackupWindow": db.preferred_backup_window,
        "PreferredMaintenanceWindow": MAINTENANCE_WINDOW,
        "StorageEncrypted": db.storage_encrypted,
        "DeletionProtection": db.deletion_protection,
        "AllocatedStorage": db.allocated_gib,
        "Tags": tags,
    }
    if db.kind == "db_instance":
        rds.create_db_instance(
            DBInstanceIdentifier=db.identifier,
            DBInstanceClass=INSTANCE_CLASS[db.kind],
            **common,
        )
        return
    rds.create_db_cluster(DBClusterIdentifier=db.identifier, **common)
    rds.create_db_instance(
        DBInstanceIdentifier=db.member_identifier,
        DBClusterIdentifier=db.identifier,
        DBInstanceClass=INSTANCE_CLASS[db.kind],
        Engine=db.engine,
    )


def _copy_through_api(clients: dict[tuple[str, str], Any], db: PlannedDatabase) -> None:
    for copy in db.snapshots:
        if copy.copy_of_region is None or copy.copied_from is None:
            continue
        rds = clients[(db.account_id, copy.copy_of_region)]
        source_arn = db.snapshot_arn(_snapshot_named(db, copy.copied_from))
        if db.kind == "db_instance":
            rds.copy_db_snapshot(
                SourceDBSnapshotIdentifier=source_arn,
                TargetDBSnapshotIdentifier=copy.identifier,
                SourceRegion=db.region,
            )
        else:
            rds.copy_db_cluster_snapshot(
                SourceDBClusterSnapshotIdentifier=source_arn,
                TargetDBClusterSnapshotIdentifier=copy.identifier,
                SourceRegion=db.region,
            )


def _snapshot_named(db: PlannedDatabase, identifier: str) -> PlannedSnapshot:
    return next(s for s in db.snapshots if s.identifier == identifier)


def _moto_time(value: datetime) -> datetime:
    """moto keeps naive UTC datetimes."""
    return value.astimezone(UTC).replace(tzinfo=None)


def _optional_moto_time(value: datetime | None) -> datetime | None:
    return None if value is None else _moto_time(value)


def _align_backends(plan: FleetPlan) -> None:
    for (account, region), databases in _by_unit(plan.databases).items():
        backend = rds_backends[account][region]
        _drop_unplanned_snapshots(backend, databases)
        for db in databases:
            if db.kind == "db_instance":
                _align_instance(backend, db)
            else:
                _align_cluster(backend, db)


def _by_unit(databases: Iterable[PlannedDatabase]) -> dict[tuple[str, str], list[PlannedDatabase]]:
    units: dict[tuple[str, str], list[PlannedDatabase]] = {}
    for db in databases:
        units.setdefault((db.account_id, db.region), []).append(db)
    return units


def _drop_unplanned_snapshots(backend: RDSBackend, databases: list[PlannedDatabase]) -> None:
    """moto takes an automated snapshot on every create; the plan has its own history."""
    planned = {s.identifier.lower() for db in databases for s in db.snapshots_in(db.region)}
    owners = {db.identifier for db in databases}
    owners |= {db.member_identifier for db in databases if db.member_identifier}
    stores: tuple[tuple[Any, str], ...] = (
        (backend.database_snapshots, "db_instance_identifier"),
        (backend.cluster_snapshots, "db_cluster_identifier"),
    )
    for store, owner_attribute in stores:
        doomed = [
            key
            for key, snapshot in store.items()
            if getattr(snapshot, owner_attribute) in owners and key.lower() not in planned
        ]
        for key in doomed:
            del store[key]


def _align_instance(backend: RDSBackend, db: PlannedDatabase) -> None:
    instance: Any = backend.databases[db.identifier]
    instance.created = instance.instance_create_time = _moto_time(db.created)
    plan_latest_restorable_time(instance, _optional_moto_time(db.latest_restorable_time))
    # Not an output member of DBInstance: read by DescribeDBInstanceAutomatedBackups.
    instance.earliest_restorable_time = _optional_moto_time(db.earliest_restorable_time)
    for planned in db.snapshots_in(db.region):
        snapshot: Any = backend.database_snapshots.get(planned.identifier)
        if snapshot is None:
            snapshot = DBSnapshot(backend, instance, planned.identifier, planned.snapshot_type)
            backend.database_snapshots[planned.identifier] = snapshot
        _align_snapshot(snapshot, planned, instance.created)
    if db.backup_replication_region and db.replica_earliest_restorable_time:
        register_backup_replication(
            instance,
            db.backup_replication_region,
            _moto_time(db.replica_earliest_restorable_time),
            _moto_time(db.replica_latest_restorable_time or db.replica_earliest_restorable_time),
        )


def _align_cluster(backend: RDSBackend, db: PlannedDatabase) -> None:
    cluster: Any = backend.clusters[db.identifier]
    cluster.created = cluster.cluster_create_time = _moto_time(db.created)
    cluster.status = "available"  # moto reports "creating" on the first read
    plan_latest_restorable_time(cluster, _optional_moto_time(db.latest_restorable_time))
    cluster.earliest_restorable_time = _optional_moto_time(db.earliest_restorable_time)
    if db.member_identifier:
        member: Any = backend.databases[db.member_identifier]
        member.created = member.instance_create_time = cluster.created
        plan_latest_restorable_time(member, _optional_moto_time(db.latest_restorable_time))
    for planned in db.snapshots_in(db.region):
        snapshot: Any = backend.cluster_snapshots.get(planned.identifier)
        if snapshot is None:
            snapshot = DBClusterSnapshot(
                backend, cluster, planned.identifier, planned.snapshot_type
            )
            backend.cluster_snapshots[planned.identifier] = snapshot
        _align_snapshot(snapshot, planned, cluster.created)
        snapshot.cluster_create_time = cluster.created


def _align_snapshot(snapshot: Any, planned: PlannedSnapshot, resource_created: datetime) -> None:
    snapshot.snapshot_type = planned.snapshot_type
    snapshot.created = _moto_time(planned.created)
    snapshot.original_snapshot_create_time = snapshot.created
    snapshot.status = planned.status
    snapshot.allocated_storage = planned.allocated_gib
    snapshot.encrypted = snapshot.storage_encrypted = planned.encrypted
    snapshot.instance_create_time = resource_created


def _align_copies(db: PlannedDatabase) -> None:
    for copy in db.snapshots:
        if copy.copy_of_region is None or copy.copied_from is None:
            continue
        backend = rds_backends[db.account_id][copy.copy_of_region]
        source = _snapshot_named(db, copy.copied_from)
        if db.kind == "db_instance":
            snapshot: Any = backend.database_snapshots[copy.identifier]
            snapshot.source_region = db.region
            snapshot.source_db_snapshot_identifier = db.snapshot_arn(source)
        else:
            snapshot = backend.cluster_snapshots[copy.identifier]
            snapshot.source_db_cluster_snapshot_arn = db.snapshot_arn(source)
        _align_snapshot(snapshot, copy, _moto_time(db.created))
        # A copy keeps the time its source was taken (AWS: OriginalSnapshotCreateTime).
        snapshot.original_snapshot_create_time = _moto_time(source.created)
