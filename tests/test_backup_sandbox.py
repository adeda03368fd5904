"""The sandbox's AWS Backup extension through boto3: paging, time, filters, validation."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from drwatch.sandbox.backup_fleet import (
    BackupFleetPlan,
    plan_backup_fleet,
    set_clock,
    spec_for,
)
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW

MOTO_NOW = NOW.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def backup_plan(fleet: FleetPlan) -> BackupFleetPlan:
    return plan_backup_fleet(spec_for(fleet))


@pytest.fixture
def client(sandbox: Sandbox, backup_plan: BackupFleetPlan) -> Any:
    unit = backup_plan.units[0]
    return sandbox.client("backup", unit.region, account_id=unit.account_id)


def all_items(client: Any, operation: str, key: str, page: int, **params: Any) -> list[Any]:
    paginator = client.get_paginator(operation)
    pages = list(paginator.paginate(PaginationConfig={"PageSize": page}, **params))
    assert len(pages) > 1 or page >= 1000
    return [item for p in pages for item in p[key]]


def test_every_list_pages_with_max_results_and_next_token(
    client: Any, backup_plan: BackupFleetPlan
) -> None:
    unit = backup_plan.units[0]
    jobs = all_items(client, "list_backup_jobs", "BackupJobs", 4)
    visible = [j for j in unit.jobs if j.kind == "backup" and j.created <= MOTO_NOW]
    assert sorted(j["BackupJobId"] for j in jobs) == sorted(j.job_id for j in visible)
    points = all_items(
        client, "list_recovery_points_by_backup_vault", "RecoveryPoints", 5, BackupVaultName="prod"
    )
    assert len(points) == len(
        [p for p in unit.points if p.vault_name == "prod" and p.completed <= MOTO_NOW]
    )
    assert len(all_items(client, "list_protected_resources", "Results", 2)) >= 3
    assert len(all_items(client, "list_backup_vaults", "BackupVaultList", 1)) == 3


def test_max_results_beyond_aws_limit_is_refused(client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        client.list_backup_jobs(MaxResults=1001)
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_window_filters(client: Any, backup_plan: BackupFleetPlan) -> None:
    after = NOW - timedelta(hours=24)
    jobs = client.list_backup_jobs(ByCompleteAfter=after)["BackupJobs"]
    expected = [
        j
        for j in backup_plan.units[0].jobs
        if j.kind == "backup" and after.replace(tzinfo=None) < j.completed <= MOTO_NOW
    ]
    assert len(jobs) == len(expected)
    assert all(j["CompletionDate"] > after for j in jobs)
    failed = client.list_backup_jobs(ByState="FAILED")["BackupJobs"]
    assert failed
    assert {j["State"] for j in failed} == {"FAILED"}
    assert {j["MessageCategory"] for j in failed} == {"ACCESS_DENIED"}


def test_jobs_progress_and_points_appear_with_simulated_time(
    client: Any, backup_plan: BackupFleetPlan
) -> None:
    unit = backup_plan.units[0]
    (running,) = [r for r in unit.resources if r.scenario == "running"]
    mine = client.list_backup_jobs(ByResourceArn=running.arn)["BackupJobs"]
    newest = max(mine, key=lambda j: j["CreationDate"])
    assert newest["State"] == "RUNNING"
    assert "CompletionDate" not in newest
    assert "RecoveryPointArn" not in newest
    try:
        set_clock(backup_plan.spec, NOW + timedelta(hours=1))
        mine = client.list_backup_jobs(ByResourceArn=running.arn)["BackupJobs"]
        newest = max(mine, key=lambda j: j["CreationDate"])
        assert newest["State"] == "COMPLETED"
        points = client.list_recovery_points_by_backup_vault(
            BackupVaultName="prod", ByResourceArn=running.arn
        )["RecoveryPoints"]
        assert newest["RecoveryPointArn"] in {p["RecoveryPointArn"] for p in points}
        assert {p["ResourceArn"] for p in points} == {running.arn}
        # 36 days on, the 35-day lifecycle has deleted every point in the vault.
        set_clock(backup_plan.spec, NOW + timedelta(days=40))
        points = client.list_recovery_points_by_backup_vault(BackupVaultName="prod")
        assert points["RecoveryPoints"] == []
    finally:
        set_clock(backup_plan.spec, NOW)


def test_summaries_plans_selections_and_restore_testing(
    client: Any, backup_plan: BackupFleetPlan
) -> None:
    summaries = client.list_backup_job_summaries(AggregationPeriod="ONE_DAY")
    assert summaries["AggregationPeriod"] == "ONE_DAY"
    assert {s["State"] for s in summaries["BackupJobSummaries"]} >= {"COMPLETED", "RUNNING"}
    (plan,) = client.list_backup_plans()["BackupPlansList"]
    (selection,) = client.list_backup_selections(BackupPlanId=plan["BackupPlanId"])[
        "BackupSelectionsList"
    ]
    document = client.get_backup_selection(
        BackupPlanId=plan["BackupPlanId"], SelectionId=selection["SelectionId"]
    )["BackupSelection"]
    assert document["Resources"] == list(backup_plan.units[0].selected_arns)
    with pytest.raises(ClientError):
        client.get_backup_selection(BackupPlanId=plan["BackupPlanId"], SelectionId="nope")
    (testing,) = client.list_restore_testing_plans()["RestoreTestingPlans"]
    assert testing["RestoreTestingPlanName"] == "weekly_restore_test"
    restores = client.list_restore_jobs(ByRestoreTestingPlanArn=testing["RestoreTestingPlanArn"])
    assert {r["Status"] for r in restores["RestoreJobs"]} == {"COMPLETED", "FAILED"}


def test_describe_jobs_and_a_started_job_moving_through_its_states(
    client: Any, backup_plan: BackupFleetPlan
) -> None:
    unit = backup_plan.units[0]
    copy = next(j for j in unit.jobs if j.kind == "copy")
    restore = next(j for j in unit.jobs if j.kind == "restore")
    assert client.describe_copy_job(CopyJobId=copy.job_id)["CopyJob"]["State"] == "COMPLETED"
    assert client.describe_restore_job(RestoreJobId=restore.job_id)["Status"] in (
        "COMPLETED",
        "FAILED",
    )
    with pytest.raises(ClientError):
        client.describe_backup_job(BackupJobId="missing")
    resource = f"arn:aws:dynamodb:{unit.region}:{unit.account_id}:table/started"
    started = client.start_backup_job(
        BackupVaultName="Default",
        ResourceArn=resource,
        IamRoleArn=f"arn:aws:iam::{unit.account_id}:role/backup",
        Lifecycle={"DeleteAfterDays": 7},
    )
    job = client.describe_backup_job(BackupJobId=started["BackupJobId"])
    assert (job["State"], job["ResourceType"]) == ("RUNNING", "DynamoDB")
    try:
        set_clock(backup_plan.spec, NOW + timedelta(minutes=30))
        job = client.describe_backup_job(BackupJobId=started["BackupJobId"])
        assert job["State"] == "COMPLETED"
        points = client.list_recovery_points_by_backup_vault(BackupVaultName="Default")
        assert [p["ResourceArn"] for p in points["RecoveryPoints"]] == [resource]
    finally:
        set_clock(backup_plan.spec, NOW)
