"""AWS Backup: recovery points, vaults, backup/copy/restore jobs, plans and coverage.

Calls per account and region and poll (every list at AWS Backup's largest page, 1000):

- ListBackupVaults, then ListRecoveryPointsByBackupVault per vault: every point is read each
  poll, because lifecycle deletes points silently and counts, bytes, oldest point and
  never-expiring points must be exact. Pages: points / 1000 per vault.
- ListProtectedResources: what AWS Backup itself calls protected (coverage).
- ListBackupJobs, ListCopyJobs, ListRestoreJobs read incrementally with `ByCompleteAfter`:
  the first poll reads the `lookback` window (24 h), later polls only what completed since
  the newest completion already seen (minus a 15-minute overlap for list lag; duplicates are
  dropped by job id). Pages: new jobs / 1000, not jobs in the window / 1000.
- ListBackupJobSummaries (ONE_DAY): the counts of unfinished jobs (CREATED, RUNNING...) come
  from AWS's own aggregation instead of listing them every poll.
- ListBackupPlans, GetBackupPlan and ListBackupSelections per plan, GetBackupSelection per
  selection, ListRestoreTestingPlans: plans change rarely and are few.

The job windows live in the collector instance, keyed by (account, region), because one
instance serves every unit of the runner. Only jobs whose resource is in the unit's own
account and region become per-resource series, so no series is ever emitted by two units.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from drwatch.core.model import (
    BackupCoverage,
    JobCount,
    JobEvent,
    Mechanism,
    Observations,
    PlanRuleState,
    RecoveryState,
    ResourceJobState,
    ResourceRef,
    VaultState,
)
from drwatch.exporter.collectors.base import CollectContext, ObserveContext, UnitDeadlineError

SERVICE = "backup"
PAGE_SIZE = 1000  # MaxResults upper bound of every AWS Backup list call
DEFAULT_LOOKBACK = timedelta(hours=24)
# AWS's job lists can show a job a little after its CompletionDate; re-reading a short
# overlap costs a few items per poll and never misses one (duplicates are dropped by id).
LIST_LAG_OVERLAP = timedelta(minutes=15)
SUMMARY_PERIOD = "ONE_DAY"
RESTORABLE_POINT_STATUSES = frozenset({"COMPLETED", "AVAILABLE"})
INCOMPLETE_POINT_STATUSES = frozenset({"PARTIAL", "EXPIRED", "STOPPED"})
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


@dataclass(frozen=True, slots=True)
class BackupRecords:
    """Raw API items of one account and region, as botocore parsed them."""

    vaults: tuple[Record, ...] = ()
    recovery_points: tuple[Record, ...] = ()
    protected_resources: tuple[Record, ...] = ()
    job_summaries: tuple[Record, ...] = ()
    plans: tuple[Record, ...] = ()  # GetBackupPlan responses
    selections: tuple[Record, ...] = ()  # GetBackupSelection responses
    restore_testing_plans: tuple[Record, ...] = ()
    # Finished jobs inside the window (from the collector's state) and the new ones among them.
    window_jobs: Mapping[str, tuple[Record, ...]] = field(default_factory=dict)
    new_jobs: Mapping[str, tuple[Record, ...]] = field(default_factory=dict)
    latest_jobs: Mapping[str, tuple[Record, ...]] = field(default_factory=dict)


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


class BackupCollector:
    name: ClassVar[str] = "backup"
    iam_actions: ClassVar[tuple[str, ...]] = (
        "backup:ListBackupVaults",
        "backup:ListRecoveryPointsByBackupVault",
        "backup:ListProtectedResources",
        "backup:ListBackupJobSummaries",
        "backup:ListBackupJobs",
        "backup:ListCopyJobs",
        "backup:ListRestoreJobs",
        "backup:ListBackupPlans",
        "backup:GetBackupPlan",
        "backup:ListBackupSelections",
        "backup:GetBackupSelection",
        "backup:ListRestoreTestingPlans",
    )

    def __init__(self, lookback: timedelta = DEFAULT_LOOKBACK) -> None:
        self.lookback = lookback
        self._windows: dict[tuple[str, str, str], JobWindow] = {}
        self._lock = threading.Lock()  # guards the dict only; each window has one user

    def collect(self, ctx: CollectContext) -> Observations:
        return observe(self.fetch(ctx), ctx.observe)

    def window(self, account_id: str, region: str, kind: str) -> JobWindow:
        with self._lock:
            return self._windows.setdefault((account_id, region, kind), JobWindow())

    def fetch(self, ctx: CollectContext) -> BackupRecords:
        client = ctx.client(SERVICE)
        vaults = tuple(paginate(ctx, client, "list_backup_vaults", "BackupVaultList"))
        points = tuple(
            point
            for vault in vaults
            for point in paginate(
                ctx,
                client,
                "list_recovery_points_by_backup_vault",
                "RecoveryPoints",
                BackupVaultName=vault["BackupVaultName"],
            )
        )
        plans = tuple(
            client.get_backup_plan(BackupPlanId=p["BackupPlanId"])
            for p in paginate(ctx, client, "list_backup_plans", "BackupPlansList")
        )
        selections = tuple(
            client.get_backup_selection(
                BackupPlanId=s["BackupPlanId"], SelectionId=s["SelectionId"]
            )
            for plan in plans
            for s in paginate(
                ctx,
                client,
                "list_backup_selections",
                "BackupSelectionsList",
                BackupPlanId=plan["BackupPlanId"],
            )
        )
        read = {kind.name: tuple(self._read_jobs(ctx, client, kind)) for kind in JOB_KINDS}
        records = BackupRecords(
            vaults=vaults,
            recovery_points=points,
            protected_resources=tuple(paginate(ctx, client, "list_protected_resources", "Results")),
            job_summaries=tuple(job_summaries(ctx, client)),
            plans=plans,
            selections=selections,
            restore_testing_plans=tuple(
                paginate(ctx, client, "list_restore_testing_plans", "RestoreTestingPlans")
            ),
        )
        # State changes only once every call has succeeded: a failed poll re-reads next time.
        return self._commit(ctx.observe, records, read)

    def _read_jobs(self, ctx: CollectContext, client: Any, kind: JobKind) -> Iterator[Record]:
        window = self.window(ctx.observe.account_id, ctx.observe.region, kind.name)
        after = window.complete_after(ctx.observe.now, self.lookback)
        yield from paginate(ctx, client, kind.operation, kind.result_key, ByCompleteAfter=after)

    def _commit(
        self, ctx: ObserveContext, records: BackupRecords, read: Mapping[str, tuple[Record, ...]]
    ) -> BackupRecords:
        window_jobs: dict[str, tuple[Record, ...]] = {}
        new_jobs: dict[str, tuple[Record, ...]] = {}
        latest: dict[str, tuple[Record, ...]] = {}
        protected = {str(r["ResourceArn"]) for r in records.protected_resources}
        for kind in JOB_KINDS:
            window = self.window(ctx.account_id, ctx.region, kind.name)
            new_jobs[kind.name] = tuple(window.merge(kind, read[kind.name], ctx.now, self.lookback))
            window.forget_resources_except(kind, protected)
            window_jobs[kind.name] = tuple(window.jobs.values())
            latest[kind.name] = tuple(window.latest.values())
        return BackupRecords(
            vaults=records.vaults,
            recovery_points=records.recovery_points,
            protected_resources=records.protected_resources,
            job_summaries=records.job_summaries,
            plans=records.plans,
            selections=records.selections,
            restore_testing_plans=records.restore_testing_plans,
            window_jobs=window_jobs,
            new_jobs=new_jobs,
            latest_jobs=latest,
        )


def paginate(
    ctx: CollectContext, client: Any, operation: str, result_key: str, **params: Any
) -> Iterator[Any]:
    return ctx.paginate(client, operation, result_key, page_size=PAGE_SIZE, **params)


def job_summaries(ctx: CollectContext, client: Any) -> Iterator[Record]:
    """ListBackupJobSummaries has no botocore paginator: follow NextToken by hand."""
    params: dict[str, Any] = {"AggregationPeriod": SUMMARY_PERIOD, "MaxResults": PAGE_SIZE}
    while True:
        page = client.list_backup_job_summaries(**params)
        yield from page.get("BackupJobSummaries", ())
        token = page.get("NextToken")
        if not token:
            return
        if ctx.monotonic() > ctx.deadline:
            raise UnitDeadlineError("ListBackupJobSummaries still paging at the unit deadline")
        params["NextToken"] = token


# --- the pure mapping --------------------------------------------------------------------


def observe(records: BackupRecords, ctx: ObserveContext) -> Observations:
    locked = {str(v["BackupVaultName"]): bool(v.get("Locked", False)) for v in records.vaults}
    selected = selection_matcher(records.selections)
    testing_plans = {
        str(p["RestoreTestingPlanArn"]): str(p["RestoreTestingPlanName"])
        for p in records.restore_testing_plans
    }
    return Observations(
        recovery_states=tuple(recovery_states(records.recovery_points, locked, selected, ctx)),
        job_events=tuple(
            job_event(kind, item, ctx, testing_plans)
            for kind in JOB_KINDS
            for item in records.new_jobs.get(kind.name, ())
            # History places every job in time; one without a creation date cannot be placed.
            if item.get("CreationDate") is not None
        ),
        vault_states=tuple(vault_state(v, records.recovery_points, ctx) for v in records.vaults),
        job_counts=tuple(job_counts(records.window_jobs, ctx)),
        job_summaries=tuple(summary_counts(records.job_summaries, ctx)),
        resource_job_states=tuple(resource_job_states(records.latest_jobs, ctx, testing_plans)),
        backup_coverage=tuple(coverage(records.protected_resources, selected, ctx)),
        plan_rules=tuple(plan_rules(records.plans, records.selections, ctx)),
    )


# Resource types whose ARN names them differently from drwatch's other collectors.
RESOURCE_TYPE_ALIASES = {("rds", "db"): "db_instance", ("rds", "cluster"): "db_cluster"}


def resource_ref(arn: str, ctx: ObserveContext) -> ResourceRef:
    """drwatch's identity of the resource an ARN names (same labels as its own collector).

    `arn:aws:rds:eu-west-1:1111:db:orders` -> rds/db_instance/orders;
    `arn:aws:dynamodb:eu-west-1:1111:table/users` -> dynamodb/table/users. S3 ARNs carry no
    account or region: the unit's are used.
    """
    parts = arn.split(":", 5)
    service, region, account = parts[2], parts[3] or ctx.region, parts[4] or ctx.account_id
    resource = parts[5]
    if "/" in resource:
        raw_type, identifier = resource.split("/", 1)
    elif ":" in resource:
        raw_type, identifier = resource.split(":", 1)
    else:
        raw_type, identifier = service, resource
    resource_type = RESOURCE_TYPE_ALIASES.get(
        (service, raw_type), re.sub(r"[^a-z0-9]+", "_", raw_type.lower())
    )
    return ResourceRef(account, region, service, resource_type, identifier)


def is_local(ref: ResourceRef, ctx: ObserveContext) -> bool:
    return (ref.account_id, ref.region) == (ctx.account_id, ctx.region)


def delete_after_days(point: Record) -> int | None:
    days = (point.get("Lifecycle") or {}).get("DeleteAfterDays")
    return None if days is None else int(days)


def is_cold(point: Record, now: datetime) -> bool:
    moved: datetime | None = (point.get("CalculatedLifecycle") or {}).get("MoveToColdStorageAt")
    return moved is not None and moved <= now


def recovery_states(
    points: Iterable[Record],
    locked: Mapping[str, bool],
    selected: SelectionMatcher,
    ctx: ObserveContext,
) -> list[RecoveryState]:
    """One aws_backup state per resource over all vaults of this unit (copies apart)."""
    by_ref: dict[ResourceRef, list[Record]] = defaultdict(list)
    for point in points:
        by_ref[resource_ref(str(point["ResourceArn"]), ctx)].append(point)
    states = []
    for ref, group in sorted(by_ref.items()):
        restorable = [p for p in group if p.get("Status") in RESTORABLE_POINT_STATUSES]
        # CreationDate is optional in the API model; a point without one cannot set an age.
        times = [p["CreationDate"] for p in restorable if p.get("CreationDate") is not None]
        retention = [d for d in (delete_after_days(p) for p in restorable) if d is not None]
        arns = {str(p["ResourceArn"]) for p in group}
        states.append(
            RecoveryState(
                ref=ref,
                mechanism=Mechanism.AWS_BACKUP,
                location_account_id=ctx.account_id,
                location_region=ctx.region,
                # Locally: a plan still selects it. A copy exists because a plan copied it.
                enabled=any(selected(arn) is not False for arn in arns)
                if is_local(ref, ctx)
                else True,
                newest_point=max(times, default=None),
                oldest_point=min(times, default=None),
                point_count=len(restorable),
                failed_count=sum(1 for p in group if p.get("Status") in INCOMPLETE_POINT_STATUSES),
                size_bytes=sum(int(p.get("BackupSizeInBytes") or 0) for p in restorable),
                retention_min_days=min(retention, default=None),
                retention_max_days=max(retention, default=None),
                never_expire_count=sum(1 for p in restorable if delete_after_days(p) is None),
                encrypted=all(bool(p.get("IsEncrypted")) for p in restorable)
                if restorable
                else None,
                immutable=all(locked.get(str(p["BackupVaultName"]), False) for p in restorable)
                if restorable
                else None,
            )
        )
    return states


def vault_state(vault: Record, points: Iterable[Record], ctx: ObserveContext) -> VaultState:
    name = str(vault["BackupVaultName"])
    mine = [p for p in points if p.get("BackupVaultName") == name]
    restorable = [p for p in mine if p.get("Status") in RESTORABLE_POINT_STATUSES]
    cold = [p for p in restorable if is_cold(p, ctx.now)]
    warm = [p for p in restorable if not is_cold(p, ctx.now)]
    return VaultState(
        account_id=ctx.account_id,
        region=ctx.region,
        vault=name,
        vault_type=str(vault.get("VaultType", "BACKUP_VAULT")),
        encryption_key_type=str(vault.get("EncryptionKeyType", "")),
        locked=bool(vault.get("Locked", False)),
        lock_min_retention_days=vault.get("MinRetentionDays"),
        lock_max_retention_days=vault.get("MaxRetentionDays"),
        warm_points=len(warm),
        cold_points=len(cold),
        warm_bytes=sum(int(p.get("BackupSizeInBytes") or 0) for p in warm),
        cold_bytes=sum(int(p.get("BackupSizeInBytes") or 0) for p in cold),
        incomplete_points=sum(1 for p in mine if p.get("Status") in INCOMPLETE_POINT_STATUSES),
        never_expire_points=sum(1 for p in restorable if delete_after_days(p) is None),
        unencrypted_points=sum(1 for p in restorable if not p.get("IsEncrypted")),
        oldest_point=min((p["CreationDate"] for p in restorable), default=None),
    )


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
        job_id=str(item[kind.id_key]),
        kind=kind.name,
        state=str(item.get(kind.state_key, "")),
        ref=resource_ref(arn, ctx) if arn else None,
        created=item["CreationDate"],
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


class SelectionMatcher:
    """Whether any plan's selection names a resource ARN: True, False, or None (unknown).

    Selections by ARN (with `*` wildcards) and NotResources are evaluated here. Tag
    conditions would need every resource's tags, which AWS Backup does not list, so a
    resource that no ARN pattern selects is "unknown" while any selection uses tags.
    """

    def __init__(self, selections: Iterable[Record]) -> None:
        self._rules: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self._uses_tags = False
        for response in selections:
            selection = response.get("BackupSelection") or {}
            conditions = selection.get("Conditions") or {}
            if selection.get("ListOfTags") or any(conditions.values()):
                self._uses_tags = True
            resources = tuple(str(r) for r in selection.get("Resources") or ())
            excluded = tuple(str(r) for r in selection.get("NotResources") or ())
            self._rules.append((resources, excluded))

    def __call__(self, arn: str) -> bool | None:
        for resources, excluded in self._rules:
            if any(fnmatch.fnmatchcase(arn, p) for p in resources) and not any(
                fnmatch.fnmatchcase(arn, p) for p in excluded
            ):
                return True
        return None if self._uses_tags else False


def selection_matcher(selections: Iterable[Record]) -> SelectionMatcher:
    return SelectionMatcher(selections)


def coverage(
    protected: Iterable[Record], selected: SelectionMatcher, ctx: ObserveContext
) -> list[BackupCoverage]:
    found = []
    for item in protected:
        arn = str(item["ResourceArn"])
        ref = resource_ref(arn, ctx)
        if is_local(ref, ctx):
            found.append(BackupCoverage(ref, selected(arn), item.get("LastBackupTime")))
    return sorted(found, key=lambda c: c.ref)


def plan_rules(
    plans: Iterable[Record], selections: Iterable[Record], ctx: ObserveContext
) -> list[PlanRuleState]:
    per_plan = Counter(str(s.get("BackupPlanId", "")) for s in selections)
    rules = []
    for plan in plans:
        document = plan.get("BackupPlan") or {}
        name = str(document.get("BackupPlanName", plan.get("BackupPlanId", "")))
        for rule in document.get("Rules") or ():
            lifecycle = rule.get("Lifecycle") or {}
            copies = (str(c["DestinationBackupVaultArn"]) for c in rule.get("CopyActions") or ())
            destinations = tuple(sorted((a.split(":")[4], a.split(":")[3]) for a in copies))
            rules.append(
                PlanRuleState(
                    account_id=ctx.account_id,
                    region=ctx.region,
                    plan=name,
                    rule=str(rule["RuleName"]),
                    vault=str(rule["TargetBackupVaultName"]),
                    schedule=str(rule.get("ScheduleExpression", "")),
                    continuous=bool(rule.get("EnableContinuousBackup", False)),
                    delete_after_days=lifecycle.get("DeleteAfterDays"),
                    cold_after_days=lifecycle.get("MoveToColdStorageAfterDays"),
                    copy_destinations=destinations,
                    selections=per_plan[str(plan.get("BackupPlanId", ""))],
                )
            )
    return sorted(rules, key=lambda r: (r.plan, r.rule))
