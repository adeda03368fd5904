"""The AWS Backup mapping from botocore-shaped records to observations, without AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drwatch.config import parse_config
from drwatch.core.model import JobCount, Mechanism, ResourceRef
from drwatch.exporter.collectors.backup import BackupRecords, SelectionMatcher, observe
from drwatch.exporter.collectors.backup_arns import resource_ref
from drwatch.exporter.collectors.backup_jobs import BACKUP_JOBS, COPY_JOBS, RESTORE_JOBS, JobWindow
from drwatch.exporter.collectors.base import ObserveContext

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ACCOUNT, REGION, OTHER_REGION = "111111111111", "eu-west-1", "us-east-1"
DB = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/users"
ELSEWHERE = f"arn:aws:dynamodb:{OTHER_REGION}:{ACCOUNT}:table/remote"
DAY = timedelta(days=1)
DR_VAULT_A = f"arn:aws:backup:{OTHER_REGION}:{ACCOUNT}:backup-vault:dr"
DR_VAULT_B = f"arn:aws:backup:{OTHER_REGION}:222222222222:backup-vault:dr"


@pytest.fixture
def ctx() -> ObserveContext:
    config = parse_config({"accounts": [{"id": ACCOUNT}], "regions": [REGION]})
    return ObserveContext(account_id=ACCOUNT, region=REGION, now=NOW, tiers=config.tiers)


def point(resource: str, age: timedelta, status: str = "COMPLETED", **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "RecoveryPointArn": f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:{resource}-{age}",
        "BackupVaultName": "prod",
        "ResourceArn": resource,
        "ResourceType": "RDS",
        "Status": status,
        "CreationDate": NOW - age,
        "BackupSizeInBytes": 100,
        "IsEncrypted": True,
        "Lifecycle": {"DeleteAfterDays": 35},
    }
    item.update(extra)
    return item


def job(
    kind_id: str, resource: str, state: str, completed_ago: timedelta, **extra: Any
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "BackupJobId": kind_id,
        "BackupVaultName": "prod",
        "ResourceArn": resource,
        "ResourceType": "RDS",
        "State": state,
        "MessageCategory": "SUCCESS",
        "CreationDate": NOW - completed_ago - timedelta(minutes=20),
        "CompletionDate": NOW - completed_ago,
        "BackupSizeInBytes": 100,
    }
    item.update(extra)
    return item


VAULTS = (
    {
        "BackupVaultName": "prod",
        "Locked": True,
        "MinRetentionDays": 7,
        "EncryptionKeyType": "CUSTOMER_MANAGED_KMS_KEY",
    },
    {"BackupVaultName": "Default", "Locked": False},
)


def test_resource_refs_use_the_labels_of_each_service(ctx: ObserveContext) -> None:
    assert resource_ref(DB, ctx) == ResourceRef(ACCOUNT, REGION, "rds", "db_instance", "orders")
    cluster = f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:ledger"
    assert resource_ref(cluster, ctx).resource_type == "db_cluster"
    assert resource_ref(TABLE, ctx) == ResourceRef(ACCOUNT, REGION, "dynamodb", "table", "users")
    efs = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-1"
    assert resource_ref(efs, ctx).resource_type == "file_system"
    # S3 ARNs name neither account nor region: the unit's are used.
    assert resource_ref("arn:aws:s3:::logs", ctx) == ResourceRef(
        ACCOUNT, REGION, "s3", "s3", "logs"
    )


def test_newest_point_counts_only_completed_points(ctx: ObserveContext) -> None:
    records = BackupRecords(
        vaults=VAULTS,
        recovery_points=(
            point(DB, timedelta(hours=1), status="PARTIAL"),
            point(DB, DAY),
            point(DB, 3 * DAY, Lifecycle={}),
        ),
    )
    (state,) = observe(records, ctx).recovery_states
    assert state.mechanism is Mechanism.AWS_BACKUP
    assert state.newest_point == NOW - DAY
    assert state.oldest_point == NOW - 3 * DAY
    assert (state.point_count, state.failed_count, state.never_expire_count) == (2, 1, 1)
    assert (state.retention_min_days, state.retention_max_days) == (35, 35)
    assert state.immutable is True
    assert state.encrypted is True
    assert not state.is_copy
    assert state.enabled is False  # no selection names it


def test_copies_from_another_region_are_copy_states(ctx: ObserveContext) -> None:
    records = BackupRecords(
        vaults=VAULTS,
        recovery_points=(point(ELSEWHERE, DAY, SourceBackupVaultArn="arn:src"),),
    )
    (state,) = observe(records, ctx).recovery_states
    assert state.is_copy
    assert (state.ref.region, state.location_region) == (OTHER_REGION, REGION)


def test_vault_state_counts_warm_cold_incomplete_and_never_expiring(ctx: ObserveContext) -> None:
    cold = {"MoveToColdStorageAt": NOW - DAY}
    records = BackupRecords(
        vaults=VAULTS,
        recovery_points=(
            point(DB, DAY),
            point(DB, 100 * DAY, CalculatedLifecycle=cold, BackupSizeInBytes=7),
            point(TABLE, 2 * DAY, Lifecycle=None, IsEncrypted=False),
            point(TABLE, DAY, status="PARTIAL"),
        ),
    )
    prod, default = observe(records, ctx).vault_states
    assert (prod.warm_points, prod.cold_points, prod.cold_bytes) == (2, 1, 7)
    assert (prod.incomplete_points, prod.never_expire_points, prod.unencrypted_points) == (1, 1, 1)
    assert prod.oldest_point == NOW - 100 * DAY
    assert prod.locked
    assert prod.lock_min_retention_days == 7
    assert not default.locked
    assert default.warm_points == 0


def test_job_counts_separate_completed_with_issues(ctx: ObserveContext) -> None:
    window = {
        "backup": (
            job("1", DB, "COMPLETED", DAY / 2),
            job("2", DB, "COMPLETED", DAY / 3, MessageCategory="INVALID_PARAMETERS"),
            job("3", TABLE, "FAILED", DAY / 4, MessageCategory="ACCESS_DENIED"),
        )
    }
    counts = observe(BackupRecords(window_jobs=window), ctx).job_counts
    assert counts == (
        JobCount(ACCOUNT, REGION, "backup", "prod", "RDS", "COMPLETED", "INVALID_PARAMETERS", 1),
        JobCount(ACCOUNT, REGION, "backup", "prod", "RDS", "COMPLETED", "SUCCESS", 1),
        JobCount(ACCOUNT, REGION, "backup", "prod", "RDS", "FAILED", "ACCESS_DENIED", 1),
    )


def test_latest_jobs_per_resource_copy_destination_and_test_plan(ctx: ObserveContext) -> None:
    plan_arn = f"arn:aws:backup:{REGION}:{ACCOUNT}:restore-testing-plan:weekly-x"
    latest = {
        "backup": (
            job("1", DB, "COMPLETED", DAY),
            job("2", DB, "FAILED", DAY / 2),
            job("9", ELSEWHERE, "FAILED", DAY / 2),  # another unit's resource
        ),
        "copy": (
            {
                "CopyJobId": "c1",
                "ResourceArn": DB,
                "State": "COMPLETED",
                "SourceBackupVaultArn": f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:prod",
                "DestinationBackupVaultArn": DR_VAULT_B,
                "CreationDate": NOW - DAY,
                "CompletionDate": NOW - DAY / 2,
            },
        ),
        "restore": (
            {
                "RestoreJobId": "r1",
                "SourceResourceArn": DB,
                "Status": "COMPLETED",
                "CreatedBy": {"RestoreTestingPlanArn": plan_arn},
                "ValidationStatus": "SUCCESSFUL",
                "CreationDate": NOW - timedelta(minutes=50),
                "CompletionDate": NOW - timedelta(minutes=20),
            },
        ),
    }
    plans = ({"RestoreTestingPlanArn": plan_arn, "RestoreTestingPlanName": "weekly"},)
    records = BackupRecords(latest_jobs=latest, restore_testing_plans=plans)
    backup, copy, restore = observe(records, ctx).resource_job_states
    assert backup.ref.resource_id == "orders"
    assert (backup.last_success, backup.last_failure) == (NOW - DAY, NOW - DAY / 2)
    assert backup.last_duration_seconds == 1200
    assert (copy.destination_account_id, copy.destination_region) == ("222222222222", OTHER_REGION)
    assert copy.last_success == NOW - DAY / 2
    assert restore.restore_testing_plan == "weekly"
    assert restore.last_duration_seconds == 1800
    assert restore.last_validated is True


def test_selection_matcher_wildcards_exclusions_and_tag_conditions() -> None:
    by_arn = SelectionMatcher(
        [{"BackupSelection": {"Resources": ["arn:aws:rds:*:*:db:*"], "NotResources": [DB]}}]
    )
    assert by_arn(f"arn:aws:rds:{REGION}:{ACCOUNT}:db:billing") is True
    assert by_arn(DB) is False
    assert by_arn(TABLE) is False
    by_tag = SelectionMatcher(
        [{"BackupSelection": {"Resources": ["*"], "ListOfTags": [{"ConditionKey": "backup"}]}}]
    )
    assert by_tag(TABLE) is True  # "*" names everything
    only_tags = SelectionMatcher(
        [{"BackupSelection": {"ListOfTags": [{"ConditionKey": "backup"}]}}]
    )
    assert only_tags(TABLE) is None  # decided by tags drwatch cannot see


def test_coverage_and_plan_rules(ctx: ObserveContext) -> None:
    records = BackupRecords(
        protected_resources=(
            {"ResourceArn": DB, "LastBackupTime": NOW - DAY},
            {"ResourceArn": TABLE, "LastBackupTime": NOW - 9 * DAY},
        ),
        selections=({"BackupPlanId": "p1", "BackupSelection": {"Resources": [DB]}},),
        plans=(
            {
                "BackupPlanId": "p1",
                "BackupPlan": {
                    "BackupPlanName": "daily",
                    "Rules": [
                        {
                            "RuleName": "r",
                            "TargetBackupVaultName": "prod",
                            "ScheduleExpression": "cron(0 3 * * ? *)",
                            "Lifecycle": {"DeleteAfterDays": 35, "MoveToColdStorageAfterDays": 7},
                            "CopyActions": [{"DestinationBackupVaultArn": DR_VAULT_A}],
                        }
                    ],
                },
            },
        ),
    )
    observed = observe(records, ctx)
    selected = {c.ref.resource_id: c.selected for c in observed.backup_coverage}
    assert selected == {"orders": True, "users": False}
    (rule,) = observed.plan_rules
    assert (rule.plan, rule.rule, rule.vault, rule.selections) == ("daily", "r", "prod", 1)
    assert (rule.delete_after_days, rule.cold_after_days) == (35, 7)
    assert rule.copy_destinations == ((ACCOUNT, OTHER_REGION),)


def test_job_window_reads_incrementally_dedupes_and_prunes() -> None:
    window = JobWindow()
    lookback = timedelta(hours=24)
    assert window.complete_after(NOW, lookback) == NOW - lookback
    first = [
        job("a", DB, "COMPLETED", timedelta(hours=30)),
        job("b", DB, "COMPLETED", timedelta(hours=2)),
    ]
    assert [j["BackupJobId"] for j in window.merge(BACKUP_JOBS, first, NOW, lookback)] == ["b"]
    assert set(window.jobs) == {"b"}  # "a" finished before the window: neither new nor kept
    assert window.watermark == NOW - timedelta(hours=2)
    assert window.complete_after(NOW, lookback) == NOW - timedelta(hours=2, minutes=15)
    again = [
        job("b", DB, "COMPLETED", timedelta(hours=2)),
        job("c", DB, "FAILED", timedelta(hours=1)),
    ]
    assert [j["BackupJobId"] for j in window.merge(BACKUP_JOBS, again, NOW, lookback)] == ["c"]
    outcomes = {key[1] for key in window.latest}
    assert outcomes == {"success", "failure"}
    assert COPY_JOBS.id_key == "CopyJobId"
    assert RESTORE_JOBS.resource_key == "SourceResourceArn"
    window.forget_resources_except(BACKUP_JOBS, set())
    assert {key[0] for key in window.latest} == {DB}  # still has jobs in the window
    window.jobs.clear()
    window.forget_resources_except(BACKUP_JOBS, {TABLE})
    assert window.latest == {}
    # After a day without a successful poll, reading restarts at the lookback, not earlier.
    later = NOW + timedelta(days=3)
    assert window.complete_after(later, lookback) == later - lookback
