"""AWS Backup jobs: the three job lists, the window of finished jobs kept between polls, and
their mapping to job events, counts and per-resource states.

The backup collector (`backup`) reads the lists incrementally with `ByCompleteAfter`; a
`JobWindow` per (account, region, kind) keeps what has finished within the lookback, so
later polls read only what completed since the newest completion already seen.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drwatch.core.model import JobCount, JobEvent, ResourceJobState, ResourceRef
from drwatch.exporter.collectors.backup_arns import is_local, resource_ref
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.isolation import require

# AWS's job lists can show a job a little after its CompletionDate; re-reading a short
# overlap costs a few items per poll and never misses one (duplicates are dropped by id).
LIST_LAG_OVERLAP = timedelta(minutes=15)
SUCCESS_STATES = frozenset({"COMPLETED"})
FAILURE_STATES = frozenset({"FAILED", "ABORTED", "EXPIRED", "PARTIAL"})
Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class JobKind:
    """How one of the three job lists is read and what its items are called."""

    name: str  # backup | copy | restore
    operation: str
    result_key: str
    id_key: str
    state_key: str
    resource_key: str


BACKUP_JOBS = JobKind(
    "backup", "list_backup_jobs", "BackupJobs", "BackupJobId", "State", "ResourceArn"
)
COPY_JOBS = JobKind("copy", "list_copy_jobs", "CopyJobs", "CopyJobId", "State", "ResourceArn")
RESTORE_JOBS = JobKind(
    "restore", "list_restore_jobs", "RestoreJobs", "RestoreJobId", "Status", "SourceResourceArn"
)
JOB_KINDS = (BACKUP_JOBS, COPY_JOBS, RESTORE_JOBS)


class JobWindow:
    """Finished jobs of one kind in one account and region, kept between polls.

    Not shared between threads: a unit never overlaps itself and each unit has its own.
    """

    def __init__(self) -> None:
        self.watermark: datetime | None = None  # newest CompletionDate seen
        self.jobs: dict[str, Record] = {}  # finished within the window, by job id
        # Newest finished job per (resource, outcome, destination/test plan): survives the
        # window, so "last success" stays known while a resource keeps failing.
        self.latest: dict[tuple[str, ...], Record] = {}

    def complete_after(self, now: datetime, lookback: timedelta) -> datetime:
        """Start of the next read: the lookback at first, then just before the watermark.

        Never earlier than the lookback: after a day of failed polls, older jobs would only
        be dropped from the window again.
        """
        if self.watermark is None:
            return now - lookback
        return max(self.watermark - LIST_LAG_OVERLAP, now - lookback)

    def merge(
        self, kind: JobKind, items: Iterable[Record], now: datetime, lookback: timedelta
    ) -> list[Record]:
        """Add what was read, drop what left the window; returns the jobs not seen before."""
        start = now - lookback
        new = []
        for item in items:
            if not item.get(kind.id_key):
                new.append(item)  # observe skips and counts it: a job needs its id
                continue
            job_id = str(item[kind.id_key])
            if job_id not in self.jobs and item.get("CompletionDate", now) > start:
                new.append(item)
            self.jobs[job_id] = item
            completed: datetime | None = item.get("CompletionDate")
            if completed is not None:
                self.watermark = max(completed, self.watermark or completed)
                key = latest_key(kind, item)
                if key not in self.latest or completed >= self.latest[key]["CompletionDate"]:
                    self.latest[key] = item
        self.jobs = {
            job_id: item
            for job_id, item in self.jobs.items()
            if item.get("CompletionDate") is not None and item["CompletionDate"] > start
        }
        return new

    def forget_resources_except(self, kind: JobKind, known: set[str]) -> None:
        """Drop the newest jobs of resources AWS Backup no longer knows (deleted resources'
        series disappear), keeping any resource with a job still in the window."""
        known = known | {str(item.get(kind.resource_key, "")) for item in self.jobs.values()}
        self.latest = {key: item for key, item in self.latest.items() if key[0] in known}


def latest_key(kind: JobKind, item: Record) -> tuple[str, ...]:
    outcome = job_outcome(kind, item)
    resource = str(item.get(kind.resource_key, ""))
    if kind is COPY_JOBS:
        return (resource, outcome, str(item.get("DestinationBackupVaultArn", "")))
    if kind is RESTORE_JOBS:
        return (resource, outcome, testing_plan_arn(item))
    return (resource, outcome)


def job_outcome(kind: JobKind, item: Record) -> str:
    state = str(item.get(kind.state_key, ""))
    if state in SUCCESS_STATES:
        return "success"
    if state in FAILURE_STATES:
        return "failure"
    return "other"


def testing_plan_arn(item: Record) -> str:
    return str((item.get("CreatedBy") or {}).get("RestoreTestingPlanArn", ""))


def job_vault(kind: JobKind, item: Record) -> str:
    if kind is BACKUP_JOBS:
        return str(item.get("BackupVaultName", ""))
    arn = str(item.get("SourceBackupVaultArn" if kind is COPY_JOBS else "BackupVaultArn", ""))
    return arn.rsplit(":", 1)[-1]


def job_counts(window_jobs: Mapping[str, Iterable[Record]], ctx: ObserveContext) -> list[JobCount]:
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    for kind in JOB_KINDS:
        for item in window_jobs.get(kind.name, ()):
            counts[
                (
                    kind.name,
                    job_vault(kind, item),
                    str(item.get("ResourceType", "")),
                    str(item.get(kind.state_key, "")),
                    str(item.get("MessageCategory", "")),
                )
            ] += 1
    return [
        JobCount(ctx.account_id, ctx.region, *key, count=count)
        for key, count in sorted(counts.items())
    ]


def summary_counts(summaries: Iterable[Record], ctx: ObserveContext) -> list[JobCount]:
    """AWS's summary rows; rows of another account or region (org-wide views) are skipped."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for row in summaries:
        if (row.get("AccountId"), row.get("Region")) != (ctx.account_id, ctx.region):
            continue
        key = (
            str(row.get("ResourceType", "")),
            str(row.get("State", "")),
            str(row.get("MessageCategory", "")),
        )
        counts[key] += int(row.get("Count") or 0)
    return [
        JobCount(ctx.account_id, ctx.region, "backup", "", *key, count=count)
        for key, count in sorted(counts.items())
    ]


def job_event(
    kind: JobKind, item: Record, ctx: ObserveContext, testing_plans: Mapping[str, str]
) -> JobEvent:
    arn = str(item.get(kind.resource_key, ""))
    plan_arn = testing_plan_arn(item)
    return JobEvent(
        job_id=str(require(item, kind.id_key)),
        kind=kind.name,
        state=str(item.get(kind.state_key, "")),
        ref=resource_ref(arn, ctx) if arn else None,
        # History places every job in time; one without a creation date cannot be placed.
        created=require(item, "CreationDate"),
        completed=item.get("CompletionDate"),
        message_category=str(item.get("MessageCategory", "")),
        size_bytes=int(item.get("BackupSizeInBytes") or 0),
        vault=job_vault(kind, item),
        restore_testing_plan=testing_plans.get(plan_arn, plan_arn),
        validation_status=str(item.get("ValidationStatus", "")),
    )


def duration_seconds(item: Record) -> float | None:
    completed: datetime | None = item.get("CompletionDate")
    created: datetime | None = item.get("CreationDate")
    if completed is None or created is None:
        return None
    return (completed - created).total_seconds()


def resource_job_states(
    latest: Mapping[str, Iterable[Record]], ctx: ObserveContext, testing_plans: Mapping[str, str]
) -> list[ResourceJobState]:
    """Newest success and failure per resource (and destination / test plan), local only."""
    states: list[ResourceJobState] = []
    for kind in JOB_KINDS:
        groups: dict[tuple[ResourceRef, str, str, str], list[Record]] = defaultdict(list)
        for item in latest.get(kind.name, ()):
            arn = str(item.get(kind.resource_key, ""))
            if not arn or item.get("CompletionDate") is None:
                continue  # nothing to attribute, or (optional in the model) nothing to order by
            ref = resource_ref(arn, ctx)
            if not is_local(ref, ctx):
                continue  # its own unit reports it
            account = region = plan = ""
            if kind is COPY_JOBS:
                destination = str(item.get("DestinationBackupVaultArn", "")).split(":")
                region, account = destination[3], destination[4]
            if kind is RESTORE_JOBS:
                plan_arn = testing_plan_arn(item)
                plan = testing_plans.get(plan_arn, plan_arn.rsplit(":", 1)[-1])
            groups[(ref, account, region, plan)].append(item)
        for (ref, account, region, plan), items in sorted(groups.items()):
            states.append(job_state_of(kind, ref, items, account, region, plan))
    return states


def job_state_of(
    kind: JobKind, ref: ResourceRef, items: list[Record], account: str, region: str, plan: str
) -> ResourceJobState:
    def newest(outcome: str) -> Record | None:
        matching = [i for i in items if job_outcome(kind, i) == outcome]
        return max(matching, key=lambda i: i["CompletionDate"], default=None)

    success, failure = newest("success"), newest("failure")
    last = max(items, key=lambda i: i["CompletionDate"])
    return ResourceJobState(
        ref=ref,
        kind=kind.name,
        last_success=success["CompletionDate"] if success else None,
        last_failure=failure["CompletionDate"] if failure else None,
        last_duration_seconds=duration_seconds(last),
        last_size_bytes=int(last.get("BackupSizeInBytes") or 0),
        destination_account_id=account,
        destination_region=region,
        restore_testing_plan=plan,
        last_validated=(last.get("ValidationStatus") == "SUCCESSFUL")
        if kind is RESTORE_JOBS
        else None,
    )
