"""AWS Backup behaviour moto 5.2 lacks, added to moto in-process for the sandbox.

moto's backup backend knows vaults (with lock), plans and report plans, and lists them in one
page whatever MaxResults says. AWS Backup's reads that drwatch needs and moto does not have:

- ListBackupJobs, ListCopyJobs, ListRestoreJobs (with the ByCreated*/ByComplete* windows),
  Describe{Backup,Copy,Restore}Job, and StartBackupJob (20 simulated minutes, then a point);
- ListBackupJobSummaries (counts by state, resource type and message category);
- ListRecoveryPointsByBackupVault and ListProtectedResources;
- ListBackupSelections / GetBackupSelection and ListRestoreTestingPlans;
- pagination (MaxResults 1..1000, NextToken) on every list, vaults and plans included;
- vault key type, vault type and state in ListBackupVaults.

Jobs move through their states over simulated time: each sandbox record carries its planned
creation and completion times and final state, and every list call renders it as it is at
the backend's simulated clock (`BackupSandboxState.now`; wall clock when unset). A job is
invisible before its creation, RUNNING until its completion, then in its final state; a
recovery point appears when its job completes and disappears when its lifecycle deletes it.
The fleet writes its history in-process (thousands of jobs with planned times); a job
started through StartBackupJob runs for 20 simulated minutes, then completes with a point.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import unquote

import moto.backup.urls
from moto.backup.exceptions import InvalidParameterValueException, ResourceNotFoundException
from moto.backup.models import BackupBackend, Plan, Vault, backup_backends
from moto.backup.responses import BackupResponse
from moto.core.utils import utcnow

INSTALLED_MARKER = "_drwatch_backup_extensions_installed"
STATE_ATTRIBUTE = "_drwatch_backup_state"
PAGE_SIZE_MAX = 1000  # AWS Backup's MaxResults upper bound on every list call
TERMINAL_BACKUP_STATES = ("COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL")
AWS_OWNED_KEY = "AWS_OWNED_KMS_KEY"
CUSTOMER_KEY = "CUSTOMER_MANAGED_KMS_KEY"

T = TypeVar("T")

# rest-json routes moto's backup module lacks, spelled with the trailing slash of botocore's
# requestUri. moto resolves the operation itself from botocore's model, so a route only has
# to reach BackupResponse.dispatch.
EXTRA_URL_PATHS = (
    "{0}/backup-jobs/?$",
    "{0}/backup-jobs/(?P<job>[^/]+)$",
    "{0}/copy-jobs/$",
    "{0}/copy-jobs/(?P<job>[^/]+)$",
    "{0}/restore-jobs/$",
    "{0}/restore-jobs/(?P<job>[^/]+)$",
    "{0}/audit/backup-job-summaries$",
    "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$",
    "{0}/resources/$",
    "{0}/restore-testing/plans$",
)


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxJob:
    """A backup, copy or restore job as planned; rendered at the simulated time."""

    job_id: str
    kind: str  # backup | copy | restore
    resource_arn: str
    resource_type: str
    vault_arn: str  # backup: target vault; copy: source vault; restore: vault of the point
    created: datetime  # naive UTC, as moto keeps times
    completed: datetime
    final_state: str
    message_category: str = "SUCCESS"
    status_message: str = ""
    size_bytes: int = 0
    recovery_point_arn: str = ""
    destination_vault_arn: str = ""  # copy jobs
    destination_recovery_point_arn: str = ""  # copy jobs
    restore_testing_plan_arn: str = ""  # restore jobs
    validation_status: str = ""  # restore jobs: SUCCESSFUL | FAILED | TIMED_OUT | VALIDATING
    created_resource_arn: str = ""  # restore jobs


@dataclass(frozen=True, slots=True)
class SandboxRecoveryPoint:
    arn: str
    vault_name: str
    resource_arn: str
    resource_type: str
    created: datetime  # naive UTC; the point is listed from `completed` on
    completed: datetime
    status: str  # COMPLETED | PARTIAL | EXPIRED ...
    size_bytes: int
    encrypted: bool
    delete_after_days: int | None
    move_to_cold_after_days: int | None = None
    source_vault_arn: str = ""  # set on copies
    plan_id: str = ""

    def expires(self) -> datetime | None:
        if self.delete_after_days is None:
            return None
        return self.created + timedelta(days=self.delete_after_days)


@dataclass(frozen=True, slots=True)
class SandboxSelection:
    selection_id: str
    plan_id: str
    name: str
    iam_role_arn: str
    resources: tuple[str, ...]
    not_resources: tuple[str, ...] = ()
    created: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class SandboxRestoreTestingPlan:
    name: str
    arn: str
    schedule: str
    created: datetime


@dataclass(slots=True)
class BackupSandboxState:
    """Everything the extension adds to one account x region backend (reset with it)."""

    now: datetime | None = None
    jobs: dict[str, SandboxJob] = field(default_factory=dict)
    recovery_points: dict[str, SandboxRecoveryPoint] = field(default_factory=dict)
    selections: dict[str, SandboxSelection] = field(default_factory=dict)
    restore_testing_plans: dict[str, SandboxRestoreTestingPlan] = field(default_factory=dict)
    vault_key_types: dict[str, str] = field(default_factory=dict)

    def clock(self) -> datetime:
        return self.now if self.now is not None else utcnow()


def backup_state(account_id: str, region: str) -> BackupSandboxState:
    return state_of(backup_backends[account_id][region])


def state_of(backend: BackupBackend) -> BackupSandboxState:
    # Kept on the backend object so moto's reset forgets it with everything else.
    state: BackupSandboxState = backend.__dict__.setdefault(STATE_ATTRIBUTE, BackupSandboxState())
    return state


# --- installation ------------------------------------------------------------------------


def install_backup_extensions() -> None:
    """Add the routes and handlers (idempotent; before the first backup request)."""
    if getattr(BackupResponse, INSTALLED_MARKER, False):
        return
    for path in EXTRA_URL_PATHS:
        moto.backup.urls.url_paths[path] = BackupResponse.dispatch
    handlers: dict[str, Callable[[BackupResponse], str]] = {
        "list_backup_jobs": _list_backup_jobs,
        "describe_backup_job": _describe_backup_job,
        "describe_copy_job": _describe_copy_job,
        "describe_restore_job": _describe_restore_job,
        "start_backup_job": _start_backup_job,
        "list_copy_jobs": _list_copy_jobs,
        "list_restore_jobs": _list_restore_jobs,
        "list_backup_job_summaries": _list_backup_job_summaries,
        "list_recovery_points_by_backup_vault": _list_recovery_points_by_backup_vault,
        "list_protected_resources": _list_protected_resources,
        "list_backup_selections": _list_backup_selections,
        "get_backup_selection": _get_backup_selection,
        "list_restore_testing_plans": _list_restore_testing_plans,
        "list_backup_vaults": _list_backup_vaults,
        "list_backup_plans": _list_backup_plans,
    }
    # moto dispatches on method names found on the class, so adding one adds the action.
    for name, handler in handlers.items():
        setattr(BackupResponse, name, handler)
    setattr(BackupResponse, INSTALLED_MARKER, True)


# --- request helpers ---------------------------------------------------------------------


def _backend(response: BackupResponse) -> BackupBackend:
    return backup_backends[response.current_account][response.region]


def _query(response: BackupResponse, name: str) -> str | None:
    values = response.querystring.get(name)
    return str(values[0]) if values else None


def _query_time(response: BackupResponse, name: str) -> datetime | None:
    """botocore sends rest-json query timestamps as ISO 8601; moto keeps naive UTC."""
    raw = _query(response, name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        parsed = datetime.fromtimestamp(float(raw), UTC)
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp()


def _page_size(raw: str | None) -> int:
    if raw is None:
        return PAGE_SIZE_MAX
    size = int(raw)
    if not 1 <= size <= PAGE_SIZE_MAX:
        raise InvalidParameterValueException(
            msg=f"MaxResults must be between 1 and {PAGE_SIZE_MAX}"
        )
    return size


def paginate(
    items: Sequence[T], key: Callable[[T], str], max_results: str | None, token: str | None
) -> tuple[list[T], str | None]:
    """One page and the NextToken of the next (None on the last page)."""
    size = _page_size(max_results)
    start = 0
    if token:
        try:
            wanted = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise InvalidParameterValueException(msg=f"Invalid NextToken: {token}") from error
        start = next((i for i, item in enumerate(items) if key(item) == wanted), -1)
        if start < 0:
            raise InvalidParameterValueException(msg=f"Invalid NextToken: {token}")
    end = start + size
    next_token = (
        base64.urlsafe_b64encode(key(items[end]).encode()).decode() if end < len(items) else None
    )
    return list(items[start:end]), next_token


def _page_body(
    response: BackupResponse,
    result_key: str,
    items: Sequence[dict[str, Any]],
    key: str,
    size_param: str = "maxResults",
    cursor_param: str = "nextToken",
) -> str:
    page, token = paginate(
        items, lambda i: str(i[key]), _query(response, size_param), _query(response, cursor_param)
    )
    body: dict[str, Any] = {result_key: page}
    if token:
        body["NextToken"] = token
    return json.dumps(body)


def _compact(item: dict[str, Any]) -> dict[str, Any]:
    """AWS omits absent members rather than sending nulls or empty strings."""
    return {k: v for k, v in item.items() if v is not None and v != ""}


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
    state = state_of(_backend(response))
    now = state.clock()
    created_after = _query_time(response, "createdAfter")
    created_before = _query_time(response, "createdBefore")
    complete_after = _query_time(response, "completeAfter")
    complete_before = _query_time(response, "completeBefore")
    wanted_state = _query(response, state_param)
    wanted_type = _query(response, "resourceType")
    wanted_arn = _query(response, "resourceArn")
    wanted_vault = _query(response, "backupVaultName")
    wanted_category = _query(response, "messageCategory")
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
    return _compact(item)


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
    return _compact(item)


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
    return _compact(item)


def _list_backup_jobs(self: BackupResponse) -> str:
    items = [
        backup_job_item(job, current, self.current_account)
        for job, current in _visible_jobs(self, "backup", "state")
    ]
    return _page_body(self, "BackupJobs", items, "BackupJobId")


def _list_copy_jobs(self: BackupResponse) -> str:
    items = [
        copy_job_item(job, current, self.current_account)
        for job, current in _visible_jobs(self, "copy", "state")
    ]
    return _page_body(self, "CopyJobs", items, "CopyJobId")


def _list_restore_jobs(self: BackupResponse) -> str:
    plan_arn = _query(self, "restoreTestingPlanArn")
    items = [
        restore_job_item(job, current, self.current_account)
        for job, current in _visible_jobs(self, "restore", "status")
        if plan_arn is None or job.restore_testing_plan_arn == plan_arn
    ]
    return _page_body(self, "RestoreJobs", items, "RestoreJobId")


def _job_from_path(response: BackupResponse, kind: str) -> tuple[SandboxJob, str]:
    """The job a Describe*Job path names, as it is at the simulated time."""
    job_id = unquote(response.path.rstrip("/").rsplit("/", 1)[-1])
    state = state_of(_backend(response))
    job = state.jobs.get(job_id)
    current = job_state_at(job, state.clock()) if job is not None else None
    if job is None or job.kind != kind or current is None:
        raise ResourceNotFoundException(msg=f"Job {job_id} not found")
    return job, current


def _describe_backup_job(self: BackupResponse) -> str:
    job, current = _job_from_path(self, "backup")
    return json.dumps(backup_job_item(job, current, self.current_account))


def _describe_copy_job(self: BackupResponse) -> str:
    job, current = _job_from_path(self, "copy")
    return json.dumps({"CopyJob": copy_job_item(job, current, self.current_account)})


def _describe_restore_job(self: BackupResponse) -> str:
    job, current = _job_from_path(self, "restore")
    return json.dumps(restore_job_item(job, current, self.current_account))


# AWS Backup's ResourceType for the services the sandbox backs up.
RESOURCE_TYPES = {"rds:db": "RDS", "rds:cluster": "Aurora", "dynamodb": "DynamoDB"}
SIMULATED_BACKUP_MINUTES = 20


def resource_type_of(arn: str) -> str:
    parts = arn.split(":")
    service = parts[2]
    return RESOURCE_TYPES.get(f"{service}:{parts[5]}", RESOURCE_TYPES.get(service, service.upper()))


def _start_backup_job(self: BackupResponse) -> str:
    """A job that runs for 20 simulated minutes, then completes with a recovery point."""
    params = json.loads(self.body or "{}")
    backend = _backend(self)
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
        size_bytes=1024**3,
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


def _list_backup_job_summaries(self: BackupResponse) -> str:
    """Counts of backup jobs created in the period, by state, resource type and category.

    AWS aggregates over whole days ending at the latest full hour; the sandbox counts the
    jobs created in the trailing period ending now, which keeps the totals exact for tests.
    """
    period = _query(self, "AggregationPeriod") or "ONE_DAY"
    if period not in AGGREGATION_DAYS:
        raise InvalidParameterValueException(msg=f"Invalid AggregationPeriod: {period}")
    state = state_of(_backend(self))
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
        _query(self, "MaxResults"),
        _query(self, "NextToken"),
    )
    body: dict[str, Any] = {
        "BackupJobSummaries": [{k: v for k, v in i.items() if k != "_key"} for i in page],
        "AggregationPeriod": period,
    }
    if token:
        body["NextToken"] = token
    return json.dumps(body)


# --- recovery points and protected resources ---------------------------------------------


def visible_points(state: BackupSandboxState) -> list[SandboxRecoveryPoint]:
    """Points that exist at the simulated time: completed, and not yet deleted by lifecycle."""
    now = state.clock()
    points = []
    for point in state.recovery_points.values():
        expires = point.expires()
        if point.completed <= now and (expires is None or expires > now):
            points.append(point)
    return sorted(points, key=lambda p: (p.created, p.arn))


def _point_item(point: SandboxRecoveryPoint, vault: Vault) -> dict[str, Any]:
    lifecycle: dict[str, Any] = {}
    calculated: dict[str, Any] = {}
    if point.move_to_cold_after_days is not None:
        lifecycle["MoveToColdStorageAfterDays"] = point.move_to_cold_after_days
        calculated["MoveToColdStorageAt"] = epoch(
            point.created + timedelta(days=point.move_to_cold_after_days)
        )
    if point.delete_after_days is not None:
        lifecycle["DeleteAfterDays"] = point.delete_after_days
        calculated["DeleteAt"] = epoch(point.expires())
    return _compact(
        {
            "RecoveryPointArn": point.arn,
            "BackupVaultName": vault.backup_vault_name,
            "BackupVaultArn": vault.backup_vault_arn,
            "SourceBackupVaultArn": point.source_vault_arn,
            "ResourceArn": point.resource_arn,
            "ResourceType": point.resource_type,
            "Status": point.status,
            "CreationDate": epoch(point.created),
            "CompletionDate": epoch(point.completed),
            "BackupSizeInBytes": point.size_bytes,
            "Lifecycle": lifecycle or None,
            "CalculatedLifecycle": calculated or None,
            "IsEncrypted": point.encrypted,
            "EncryptionKeyArn": vault.encryption_key_arn,
            "CreatedBy": {"BackupPlanId": point.plan_id} if point.plan_id else None,
        }
    )


def _list_recovery_points_by_backup_vault(self: BackupResponse) -> str:
    name = unquote(self.path.split("/backup-vaults/")[1].split("/")[0])
    backend = _backend(self)
    vault = backend.vaults.get(name)
    if vault is None:
        raise ResourceNotFoundException(msg=f"Backup vault {name} not found")
    state = state_of(backend)
    wanted_arn = _query(self, "resourceArn")
    wanted_type = _query(self, "resourceType")
    created_after = _query_time(self, "createdAfter")
    created_before = _query_time(self, "createdBefore")
    points = [
        p
        for p in visible_points(state)
        if p.vault_name == name
        and (wanted_arn is None or p.resource_arn == wanted_arn)
        and (wanted_type is None or p.resource_type == wanted_type)
        and (created_after is None or p.created > created_after)
        and (created_before is None or p.created < created_before)
    ]
    items = [_point_item(p, vault) for p in points]
    return _page_body(self, "RecoveryPoints", items, "RecoveryPointArn")


def protected_resources(backend: BackupBackend) -> list[dict[str, Any]]:
    """Resources of this account and region with a point here; the newest point wins."""
    state = state_of(backend)
    newest: dict[str, SandboxRecoveryPoint] = {}
    for point in visible_points(state):
        if point.source_vault_arn:
            continue  # copies protect a resource of another region or account
        if point.resource_arn not in newest or point.created >= newest[point.resource_arn].created:
            newest[point.resource_arn] = point
    items = []
    for arn, point in sorted(newest.items()):
        vault = backend.vaults[point.vault_name]
        items.append(
            {
                "ResourceArn": arn,
                "ResourceType": point.resource_type,
                "LastBackupTime": epoch(point.created),
                "ResourceName": arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1],
                "LastBackupVaultArn": vault.backup_vault_arn,
                "LastRecoveryPointArn": point.arn,
            }
        )
    return items


def _list_protected_resources(self: BackupResponse) -> str:
    return _page_body(self, "Results", protected_resources(_backend(self)), "ResourceArn")


# --- vaults, plans, selections, restore testing -----------------------------------------


def _list_backup_vaults(self: BackupResponse) -> str:
    backend = _backend(self)
    state = state_of(backend)
    points = Counter(p.vault_name for p in visible_points(state))
    items = []
    for vault in sorted(backend.vaults.values(), key=lambda v: v.backup_vault_name):
        item = vault.to_list_dict()
        item["NumberOfRecoveryPoints"] = points[vault.backup_vault_name]
        item["VaultType"] = "BACKUP_VAULT"
        item["VaultState"] = "AVAILABLE"
        item["EncryptionKeyType"] = state.vault_key_types.get(
            vault.backup_vault_name, AWS_OWNED_KEY
        )
        items.append(_compact(item))
    return _page_body(self, "BackupVaultList", items, "BackupVaultName")


def _list_backup_plans(self: BackupResponse) -> str:
    include_deleted = _query(self, "includeDeleted") == "true"
    plans: Iterable[Plan] = _backend(self).list_backup_plans(include_deleted=include_deleted)
    items = [p.to_list_dict() for p in sorted(plans, key=lambda p: p.backup_plan_id)]
    return _page_body(self, "BackupPlansList", items, "BackupPlanId")


def _plan_id_from_path(path: str) -> str:
    return unquote(path.split("/backup/plans/")[1].split("/")[0])


def _list_backup_selections(self: BackupResponse) -> str:
    plan_id = _plan_id_from_path(self.path)
    backend = _backend(self)
    backend.get_backup_plan(plan_id, None)  # raises ResourceNotFoundException like AWS
    selections = sorted(
        (s for s in state_of(backend).selections.values() if s.plan_id == plan_id),
        key=lambda s: s.selection_id,
    )
    items = [
        {
            "SelectionId": s.selection_id,
            "SelectionName": s.name,
            "BackupPlanId": s.plan_id,
            "CreationDate": epoch(s.created),
            "IamRoleArn": s.iam_role_arn,
        }
        for s in selections
    ]
    return _page_body(self, "BackupSelectionsList", items, "SelectionId")


def _get_backup_selection(self: BackupResponse) -> str:
    plan_id = _plan_id_from_path(self.path)
    selection_id = unquote(self.path.rstrip("/").rsplit("/", 1)[-1])
    selection = state_of(_backend(self)).selections.get(selection_id)
    if selection is None or selection.plan_id != plan_id:
        raise ResourceNotFoundException(msg=f"Backup selection {selection_id} not found")
    document: dict[str, Any] = {
        "SelectionName": selection.name,
        "IamRoleArn": selection.iam_role_arn,
        "Resources": list(selection.resources),
    }
    if selection.not_resources:
        document["NotResources"] = list(selection.not_resources)
    return json.dumps(
        {
            "BackupSelection": document,
            "SelectionId": selection.selection_id,
            "BackupPlanId": selection.plan_id,
            "CreationDate": epoch(selection.created),
        }
    )


def _list_restore_testing_plans(self: BackupResponse) -> str:
    plans = sorted(state_of(_backend(self)).restore_testing_plans.values(), key=lambda p: p.name)
    items = [
        {
            "CreationTime": epoch(p.created),
            "RestoreTestingPlanArn": p.arn,
            "RestoreTestingPlanName": p.name,
            "ScheduleExpression": p.schedule,
        }
        for p in plans
    ]
    return _page_body(
        self,
        "RestoreTestingPlans",
        items,
        "RestoreTestingPlanName",
        size_param="MaxResults",
        cursor_param="NextToken",
    )
