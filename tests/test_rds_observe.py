"""The RDS mapping from botocore-shaped records to observations, without AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drwatch.config import parse_config
from drwatch.core.model import Mechanism, RecoveryState
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.rds import RdsRecords, observe

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "111111111111"


@pytest.fixture
def ctx() -> ObserveContext:
    config = parse_config({"accounts": [{"id": ACCOUNT}], "regions": ["eu-west-1"]})
    return ObserveContext(account_id=ACCOUNT, region="eu-west-1", now=NOW, tiers=config.tiers)


def instance(identifier: str, retention: int = 7, **extra: object) -> dict[str, object]:
    item: dict[str, object] = {
        "DBInstanceIdentifier": identifier,
        "DBInstanceArn": f"arn:aws:rds:eu-west-1:{ACCOUNT}:db:{identifier}",
        "DbiResourceId": f"db-{identifier.upper()}",
        "BackupRetentionPeriod": retention,
        "StorageEncrypted": True,
        "DeletionProtection": False,
        "TagList": [{"Key": "dr-tier", "Value": "premium"}],
    }
    if retention:
        item["LatestRestorableTime"] = NOW - timedelta(minutes=3)
    item.update(extra)
    return item


def snapshot(owner: str, name: str, age: timedelta, kind: str = "automated", **extra: object):
    item: dict[str, object] = {
        "DBSnapshotIdentifier": name,
        "DBInstanceIdentifier": owner,
        "SnapshotCreateTime": NOW - age,
        "Status": "available",
        "SnapshotType": kind,
        "AllocatedStorage": 20,
        "Encrypted": True,
    }
    item.update(extra)
    return item


def by_mechanism(
    states: tuple[RecoveryState, ...], resource_id: str
) -> dict[Mechanism, RecoveryState]:
    return {s.mechanism: s for s in states if s.ref.resource_id == resource_id and not s.is_copy}


def test_instance_pitr_snapshots_and_tier(ctx: ObserveContext) -> None:
    records = RdsRecords(
        instances=(instance("orders"),),
        snapshots=(
            snapshot("orders", "a1", timedelta(days=1)),
            snapshot("orders", "a2", timedelta(days=2)),
            snapshot("orders", "a3", timedelta(hours=3), Status="failed"),
            snapshot("orders", "m1", timedelta(days=400), kind="manual", Encrypted=False),
        ),
        automated_backups=(
            {
                "DbiResourceId": "db-ORDERS",
                "Region": "eu-west-1",
                "DBInstanceArn": f"arn:aws:rds:eu-west-1:{ACCOUNT}:db:orders",
                "RestoreWindow": {
                    "EarliestTime": NOW - timedelta(days=7),
                    "LatestTime": NOW - timedelta(minutes=3),
                },
            },
        ),
    )
    obs = observe(records, ctx)
    (resource,) = obs.resources
    assert resource.tier == "premium"
    assert resource.ref.resource_type == "db_instance"
    states = by_mechanism(obs.recovery_states, "orders")
    assert states[Mechanism.PITR].newest_point == NOW - timedelta(minutes=3)
    assert states[Mechanism.PITR].oldest_point == NOW - timedelta(days=7)
    assert states[Mechanism.PITR].retention_max_days == 7
    automated = states[Mechanism.SNAPSHOT]
    assert (automated.point_count, automated.failed_count) == (2, 1)
    assert automated.newest_point == NOW - timedelta(days=1)
    assert automated.oldest_point == NOW - timedelta(days=2)
    assert automated.size_bytes == 2 * 20 * 1024**3
    manual = states[Mechanism.MANUAL_SNAPSHOT]
    assert (manual.enabled, manual.never_expire_count, manual.encrypted) == (False, 1, False)
    assert obs.replication_states == ()


def test_backups_disabled_has_no_restorable_pitr_point(ctx: ObserveContext) -> None:
    obs = observe(RdsRecords(instances=(instance("legacy", retention=0),)), ctx)
    states = by_mechanism(obs.recovery_states, "legacy")
    assert set(states) == {Mechanism.PITR}
    assert states[Mechanism.PITR].enabled is False
    assert states[Mechanism.PITR].newest_point is None


def test_untagged_resource_gets_default_tier_and_cluster_members_are_skipped(
    ctx: ObserveContext,
) -> None:
    records = RdsRecords(
        instances=(instance("plain", TagList=[]), instance("member", DBClusterIdentifier="c1")),
        clusters=(
            {
                "DBClusterIdentifier": "c1",
                "DBClusterArn": f"arn:aws:rds:eu-west-1:{ACCOUNT}:cluster:c1",
                "BackupRetentionPeriod": 14,
                "StorageEncrypted": False,
                "LatestRestorableTime": NOW - timedelta(minutes=1),
                "EarliestRestorableTime": NOW - timedelta(days=14),
                "TagList": [{"Key": "dr-tier", "Value": " BASIC "}],
            },
        ),
        cluster_snapshots=(
            {
                "DBClusterSnapshotIdentifier": "cs1",
                "DBClusterIdentifier": "c1",
                "SnapshotCreateTime": NOW - timedelta(hours=5),
                "Status": "available",
                "SnapshotType": "automated",
                "AllocatedStorage": 1,
                "StorageEncrypted": False,
            },
        ),
    )
    obs = observe(records, ctx)
    tiers = {r.ref.resource_id: r.tier for r in obs.resources}
    assert tiers == {"plain": "standard", "c1": "basic"}
    cluster = by_mechanism(obs.recovery_states, "c1")
    assert cluster[Mechanism.PITR].oldest_point == NOW - timedelta(days=14)
    assert cluster[Mechanism.SNAPSHOT].point_count == 1
    assert cluster[Mechanism.SNAPSHOT].encrypted is False


def test_cross_region_copies_and_replicated_backups_belong_to_their_source(
    ctx: ObserveContext,
) -> None:
    source_snapshot = f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:rds:orders-2026-10-31"
    records = RdsRecords(
        snapshots=(
            snapshot(
                "orders",
                "copy1",
                timedelta(hours=2),
                kind="manual",
                SourceRegion="us-east-1",
                SourceDBSnapshotIdentifier=source_snapshot,
                OriginalSnapshotCreateTime=NOW - timedelta(hours=20),
            ),
        ),
        automated_backups=(
            {
                "DbiResourceId": "db-X",
                "Region": "us-east-1",
                "DBInstanceIdentifier": "orders",
                "DBInstanceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders",
                "Status": "replicating",
                "DBInstanceAutomatedBackupsArn": f"arn:aws:rds:eu-west-1:{ACCOUNT}:auto-backup:a1",
                "RestoreWindow": {
                    "EarliestTime": NOW - timedelta(days=3),
                    "LatestTime": NOW - timedelta(minutes=10),
                },
            },
        ),
    )
    obs = observe(records, ctx)
    assert obs.resources == ()
    copies = {s.mechanism: s for s in obs.recovery_states}
    assert all(s.is_copy and s.ref.region == "us-east-1" for s in obs.recovery_states)
    assert copies[Mechanism.SNAPSHOT].newest_point == NOW - timedelta(hours=20)  # data time
    assert copies[Mechanism.PITR].newest_point == NOW - timedelta(minutes=10)
    (replication,) = obs.replication_states
    assert replication.source.region == "us-east-1"
    assert replication.destination_region == "eu-west-1"
    assert replication.latency_seconds == 600


def test_aws_backup_snapshots_are_left_to_the_backup_collector(ctx: ObserveContext) -> None:
    records = RdsRecords(
        instances=(instance("orders"),),
        snapshots=(snapshot("orders", "awsbackup:job-1", timedelta(hours=1), kind="awsbackup"),),
    )
    states = by_mechanism(observe(records, ctx).recovery_states, "orders")
    assert states[Mechanism.SNAPSHOT].point_count == 0
    assert Mechanism.MANUAL_SNAPSHOT not in states
