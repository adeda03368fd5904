"""AWS Backup's job reads and StartBackupJob for the sandbox, rendered at the simulated time.

ListBackupJobs, ListCopyJobs and ListRestoreJobs (with the ByCreated*/ByComplete* windows),
Describe{Backup,Copy,Restore}Job, StartBackupJob (20 simulated minutes, then a point) and
ListBackupJobSummaries (counts by state, resource type and message category). A job is
invisible before its creation, RUNNING until its completion, then in its final state.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from moto.backup.exceptions import InvalidParameterValueException, ResourceNotFoundException
from moto.backup.responses import BackupResponse

from drwatch.core.units import GIB
from drwatch.sandbox.backup_records import (
    SandboxJob,
    SandboxRecoveryPoint,
    backend_of,
    compact,
    epoch,
    page_body,
    paginate,
    query,
    query_time,
    state_of,
)

# --- jobs --------------------------------------------------------------------------------


def job_state_at(job: SandboxJob, now: datetime) -> str | None:
    """The job's state at `now`; None before it exists."""
    if now < job.created:
        return None
    if now < job.completed:
        return "RUNNING"
    return job.final_state


def _visible_jobs(
    response: BackupResponse, kind: str, state_param: str
) -> list[tuple[SandboxJob, str]]:
    state = state_of(backend_of(response))
    now = state.clock()
    created_after = query_time(response, "createdAfter")
    created_before = query_time(response, "createdBefore")
    complete_after = query_time(response, "completeAfter")
    complete_before = query_time(response, "completeBefore")
    wanted_state = query(response, state_param)
    wanted_type = query(response, "resourceType")
    wanted_arn = query(response, "resourceArn")
    wanted_vault = query(response, "backupVaultName")
    wanted_category = query(response, "messageCategory")
    visible = []
    for job in sorted(state.jobs.values(), key=lambda j: (j.created, j.job_id)):
        if job.kind != kind:
            continue
        current = job_state_at(job, now)
        if current is None:
            continue
        completed = job.completed if current != "RUNNING" else None
        checks = (
            created_after is None or job.created > created_after,
            created_before is None or job.created < created_before,
            complete_after is None or (completed is not None and completed > complete_after),
            complete_before is None or (completed is not None and completed < complete_before),
            wanted_state is None or current == wanted_state,
            wanted_type is None or job.resource_type == wanted_type,
            wanted_arn is None or job.resource_arn == wanted_arn,
            wanted_vault is None or _vault_name(job.vault_arn) == wanted_vault,
            wanted_category is None or job.message_category == wanted_category,
        )
        if all(checks):
            visible.append((job, current))
    return visible


def _vault_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def _job_common(job: SandboxJob, current: str, account_id: str) -> dict[str, Any]:
    done = current != "RUNNING"
    return {
        "AccountId": account_id,
        "ResourceArn": job.resource_arn,
        "ResourceType": job.resource_type,
        "CreationDate": epoch(job.created),
        "CompletionDate": epoch(job.completed) if done else None,
        "StatusMessage": job.status_message if done else None,
        "BackupSizeInBytes": job.size_bytes if done else None,
        "MessageCategory": job.message_category if done else None,
        "IamRoleArn": f"arn:aws:iam::{account_id}:role/service-role/AWSBackupDefaultServiceRole",
    }


def backup_job_item(job: SandboxJob, current: str, account_id: str) -> dict[str, Any]:
    done = current != "RUNNING"
    item = _job_common(job, current, account_id)
    item.update(
        BackupJobId=job.job_id,
        BackupVaultName=_vault_name(job.vault_arn),
        BackupVaultArn=job.vault_arn,
        State=current,
        PercentDone="100.0" if done else "42.0",
        RecoveryPointArn=job.recovery_point_arn if done else None,
    )
    return compact(item)


def copy_job_item(job: SandboxJob, current: str, account_id: str) -> dict[str, Any]:
    done = current != "RUNNING"
    item = _job_common(job, current, account_id)
    item.update(
        CopyJobId=job.job_id,
        SourceBackupVaultArn=job.vault_arn,
        SourceRecoveryPointArn=job.recovery_point_arn,
        DestinationBackupVaultArn=job.destination_vault_arn,
        DestinationRecoveryPointArn=job.destination_recovery_point_arn if done else None,
        State=current,
    )
    return compact(item)


def restore_job_item(job: SandboxJob, current: str, account_id: str) -> dict[str, Any]:
    done = current != "RUNNING"
    item = _job_common(job, current, account_id)
    item.pop("ResourceArn")
    item.pop("MessageCategory")  # restore jobs have none
    item.update(
        RestoreJobId=job.job_id,
        RecoveryPointArn=job.recovery_point_arn,
        SourceResourceArn=job.resource_arn,
        BackupVaultArn=job.vault_arn,
        Status=current,
        CreatedResourceArn=job.created_resource_arn if done else None,
        CreatedBy=(
            {"RestoreTestingPlanArn": job.restore_testing_plan_arn}
            if job.restore_testing_plan_arn
            else None
        ),
        ValidationStatus=job.validation_status if done else None,
    )
    return compact(item)


def list_backup_jobs(self: BackupResponse) -> str:
    items = [
        backup_job_item(job, current, self.current_account)
        for job, current in _visible_jobs(self, "backup", "state")
    ]
    return page_body(self, "BackupJobs", items, "BackupJobId")


def list_copy_jobs(self: BackupResponse) -> str:
    items = [
        copy_job_item(job, current, self.current_account)
        for job, current in _visible_jobs(self, "copy", "state")
    ]
    return page_body(self, "CopyJobs", items, "CopyJobId")


def list_restore_jobs(self: BackupResponse) -> str:
    plan_arn = query(self, "restoreTestingPlanArn")
    items = [
        restore_job_item(job, current, self.current_account)
        for job, current in _visible_jobs(self, "restore", "status")
        if plan_arn is None or job.restore_testing_plan_arn == plan_arn
    ]
    return page_body(self, "RestoreJobs", items, "RestoreJobId")


def _job_from_path(response: BackupResponse, kind: str) -> tuple[SandboxJob, str]:
    """The job a Describe*Job path names, as it is at the simulated time."""
    job_id = unquote(response.path.rstrip("/").rsplit("/", 1)[-1])
    state = state_of(backend_of(response))
    job = state.jobs.get(job_id)
    current = job_state_at(job, state.clock()) if job is not None else None
    if job is None or job.kind != kind or current is None:
        raise ResourceNotFoundException(msg=f"Job {job_id} not found")
    return job, current


def describe_backup_job(self: BackupResponse) -> str:
    job, current = _job_from_path(self, "backup")
    return json.dumps(backup_job_item(job, current, self.current_account))


def describe_copy_job(self: BackupResponse) -> str:
    job, current = _job_from_path(self, "copy")
    return json.dumps({"CopyJob": copy_job_item(job, current, self.current_account)})


def describe_restore_job(self: BackupResponse) -> str:
    job, current = _job_from_path(self, "restore")
    return json.dumps(restore_job_item(job, current, self.current_account))


# AWS Backup's ResourceType for the services the sandbox backs up.
RESOURCE_TYPES = {"rds:db": "RDS", "rds:cluster": "Aurora", "dynamodb": "DynamoDB"}
SIMULATED_BACKUP_MINUTES = 20


def resource_type_of(arn: str) -> str:
    parts = arn.split(":")
    service = parts[2]
    return RESOURCE_TYPES.get(f"{service}:{parts[5]}", RESOURCE_TYPES.get(service, service.upper()))


def start_backup_job(self: BackupResponse) -> str:
    """A job that runs for 20 simulated minutes, then completes with a recovery point."""
    params = json.loads(self.body or "{}")
    backend = backend_of(self)
    vault_name = str(params["BackupVaultName"])
    if vault_name not in backend.vaults:
        raise ResourceNotFoundException(msg=f"Backup vault {vault_name} not found")
    state = state_of(backend)
    created = state.clock()
    job_id = f"bj-started-{len(state.jobs):08d}"
    point_arn = f"arn:aws:backup:{self.region}:{self.current_account}:recovery-point:{job_id}"
    resource_arn = str(params["ResourceArn"])
    delete_after = (params.get("Lifecycle") or {}).get("DeleteAfterDays")
    job = SandboxJob(
        job_id=job_id,
        kind="backup",
        resource_arn=resource_arn,
        resource_type=resource_type_of(resource_arn),
        vault_arn=backend.vaults[vault_name].backup_vault_arn,
        created=created,
        completed=created + timedelta(minutes=SIMULATED_BACKUP_MINUTES),
        final_state="COMPLETED",
        size_bytes=GIB,
        recovery_point_arn=point_arn,
    )
    state.jobs[job_id] = job
    state.recovery_points[point_arn] = SandboxRecoveryPoint(
        arn=point_arn,
        vault_name=vault_name,
        resource_arn=resource_arn,
        resource_type=job.resource_type,
        created=created,
        completed=job.completed,
        status="COMPLETED",
        size_bytes=job.size_bytes,
        encrypted=True,
        delete_after_days=None if delete_after is None else int(delete_after),
    )
    return json.dumps(
        {"BackupJobId": job_id, "RecoveryPointArn": point_arn, "CreationDate": epoch(created)}
    )


AGGREGATION_DAYS = {"ONE_DAY": 1, "SEVEN_DAYS": 7, "FOURTEEN_DAYS": 14}


def list_backup_job_summaries(self: BackupResponse) -> str:
    """Counts of backup jobs created in the period, by state, resource type and category.

    AWS aggregates over whole days ending at the latest full hour; the sandbox counts the
    jobs created in the trailing period ending now, which keeps the totals exact for tests.
    """
    period = query(self, "AggregationPeriod") or "ONE_DAY"
    if period not in AGGREGATION_DAYS:
        raise InvalidParameterValueException(msg=f"Invalid AggregationPeriod: {period}")
    state = state_of(backend_of(self))
    now = state.clock()
    start = now - timedelta(days=AGGREGATION_DAYS[period])
    counts: Counter[tuple[str, str, str]] = Counter()
    for job in state.jobs.values():
        current = job_state_at(job, now)
        if job.kind != "backup" or current is None or job.created <= start:
            continue
        category = job.message_category if current != "RUNNING" else "SUCCESS"
        counts[(current, job.resource_type, category)] += 1
    items = [
        {
            "Region": self.region,
            "AccountId": self.current_account,
            "State": job_state,
            "ResourceType": resource_type,
            "MessageCategory": category,
            "Count": count,
            "StartTime": epoch(start),
            "EndTime": epoch(now),
        }
        for (job_state, resource_type, category), count in sorted(counts.items())
    ]
    for index, item in enumerate(items):
        item["_key"] = str(index)
    page, token = paginate(
        items,
        lambda i: str(i["_key"]),
        query(self, "MaxResults"),
        query(self, "NextToken"),
    )
    body: dict[str, Any] = {
        "BackupJobSummaries": [{k: v for k, v in i.items() if k != "_key"} for i in page],
        "AggregationPeriod": period,
    }
    if token:
        body["NextToken"] = token
    return json.dumps(body)
