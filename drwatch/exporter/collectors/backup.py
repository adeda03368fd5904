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
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar

from drwatch.core.model import (
    BackupCoverage,
    Mechanism,
    Observations,
    PlanRuleState,
    RecoveryState,
    ResourceRef,
    VaultState,
)
from drwatch.exporter.collectors.backup_arns import is_local, resource_ref
from drwatch.exporter.collectors.backup_jobs import (
    COPY_JOBS,
    JOB_KINDS,
    JobKind,
    JobWindow,
    Record,
    job_counts,
    job_event,
    resource_job_states,
    summary_counts,
)
from drwatch.exporter.collectors.base import CollectContext, ObserveContext, UnitDeadlineError
from drwatch.exporter.collectors.isolation import MALFORMED_FIELD, RecordError, require

SERVICE = "backup"
PAGE_SIZE = 1000  # MaxResults upper bound of every AWS Backup list call
DEFAULT_LOOKBACK = timedelta(hours=24)
SUMMARY_PERIOD = "ONE_DAY"
RESTORABLE_POINT_STATUSES = frozenset({"COMPLETED", "AVAILABLE"})
INCOMPLETE_POINT_STATUSES = frozenset({"PARTIAL", "EXPIRED", "STOPPED"})


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


class BackupCollector:
    """Core: vaults, recovery points, protected resources, jobs, plans and selections.
    Optional: job summaries (feature `job_summaries`) and restore testing plans
    (`restore_testing`), not offered in every region or partition."""

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
        # A listed vault, plan or selection without its id cannot be read further: observe
        # skips and counts such a vault; plans and selections are skipped and counted here.
        skips = ctx.observe.collection
        points = tuple(
            point
            for vault in vaults
            if vault.get("BackupVaultName")
            for point in paginate(
                ctx,
                client,
                "list_recovery_points_by_backup_vault",
                "RecoveryPoints",
                BackupVaultName=vault["BackupVaultName"],
            )
        )
        plan_ids = [
            str(p["BackupPlanId"])
            for p in skips.keep(
                paginate(ctx, client, "list_backup_plans", "BackupPlansList"),
                lambda p: p.get("BackupPlanArn"),
                lambda p: require(p, "BackupPlanId"),
            )
        ]
        plans = tuple(client.get_backup_plan(BackupPlanId=plan_id) for plan_id in plan_ids)
        selections = tuple(
            client.get_backup_selection(
                BackupPlanId=s["BackupPlanId"], SelectionId=s["SelectionId"]
            )
            for plan_id in plan_ids
            for s in skips.keep(
                paginate(
                    ctx,
                    client,
                    "list_backup_selections",
                    "BackupSelectionsList",
                    BackupPlanId=plan_id,
                ),
                lambda s: s.get("SelectionName"),
                lambda s: (require(s, "BackupPlanId"), require(s, "SelectionId")),
            )
        )
        read = {kind.name: tuple(self._read_jobs(ctx, client, kind)) for kind in JOB_KINDS}
        records = BackupRecords(
            vaults=vaults,
            recovery_points=points,
            protected_resources=tuple(paginate(ctx, client, "list_protected_resources", "Results")),
            job_summaries=ctx.optional(
                "job_summaries", lambda: tuple(job_summaries(ctx, client)), ()
            ),
            plans=plans,
            selections=selections,
            restore_testing_plans=ctx.optional(
                "restore_testing",
                lambda: tuple(
                    paginate(ctx, client, "list_restore_testing_plans", "RestoreTestingPlans")
                ),
                (),
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
        protected = {str(r.get("ResourceArn", "")) for r in records.protected_resources}
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
    skips = ctx.collection
    vaults = skips.keep(records.vaults, vault_id, lambda v: require(v, "BackupVaultName"))
    points = skips.keep(
        records.recovery_points, lambda p: p.get("RecoveryPointArn"), lambda p: check_point(p, ctx)
    )
    protected = skips.keep(
        records.protected_resources,
        lambda r: r.get("ResourceArn"),
        lambda r: resource_ref(str(require(r, "ResourceArn")), ctx),
    )
    locked = {str(v["BackupVaultName"]): bool(v.get("Locked", False)) for v in vaults}
    selected = selection_matcher(records.selections)
    testing_plans = dict(
        skips.each(
            records.restore_testing_plans,
            lambda p: p.get("RestoreTestingPlanArn") or p.get("RestoreTestingPlanName"),
            lambda p: (
                str(require(p, "RestoreTestingPlanArn")),
                str(require(p, "RestoreTestingPlanName")),
            ),
        )
    )
    new_jobs = records.new_jobs
    return Observations(
        recovery_states=tuple(recovery_states(points, locked, selected, ctx)),
        job_events=tuple(
            event
            for kind in JOB_KINDS
            for event in skips.each(
                new_jobs.get(kind.name, ()),
                partial(job_id, kind),
                partial(job_event_of, kind, ctx, testing_plans),
            )
        ),
        vault_states=tuple(vault_state(v, points, ctx) for v in vaults),
        job_counts=tuple(job_counts(records.window_jobs, ctx)),
        job_summaries=tuple(summary_counts(records.job_summaries, ctx)),
        resource_job_states=tuple(
            resource_job_states(usable_latest_jobs(records.latest_jobs, ctx), ctx, testing_plans)
        ),
        backup_coverage=tuple(coverage(protected, selected, ctx)),
        plan_rules=tuple(plan_rules(records.plans, records.selections, ctx)),
    )


def vault_id(vault: Record) -> Any:
    return vault.get("BackupVaultArn") or vault.get("BackupVaultName")


def check_point(point: Record, ctx: ObserveContext) -> None:
    """Raises for a recovery point that cannot be attributed to a resource and a vault."""
    resource_ref(str(require(point, "ResourceArn")), ctx)
    require(point, "BackupVaultName")


def usable_latest_jobs(
    latest: Mapping[str, Iterable[Record]], ctx: ObserveContext
) -> dict[str, list[Record]]:
    """The newest jobs whose resource (and, for copies, destination) ARNs parse."""

    def check(kind: JobKind, item: Record) -> None:
        arn = str(item.get(kind.resource_key, ""))
        if arn:
            resource_ref(arn, ctx)
        if kind is COPY_JOBS:
            destination = str(require(item, "DestinationBackupVaultArn")).split(":")
            if len(destination) < 6:
                raise RecordError(MALFORMED_FIELD, "DestinationBackupVaultArn is no ARN")

    return {
        kind.name: ctx.collection.keep(
            latest.get(kind.name, ()), partial(job_id, kind), partial(check, kind)
        )
        for kind in JOB_KINDS
    }


def job_id(kind: JobKind, item: Record) -> Any:
    return item.get(kind.id_key)


def job_event_of(
    kind: JobKind, ctx: ObserveContext, testing_plans: Mapping[str, str], item: Record
) -> Any:
    return job_event(kind, item, ctx, testing_plans)


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
        oldest_point=min(
            (p["CreationDate"] for p in restorable if p.get("CreationDate") is not None),
            default=None,
        ),
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
    rules = [
        rule
        for plan_rules_ in ctx.collection.each(
            plans, lambda p: p.get("BackupPlanArn"), lambda p: rules_of_plan(p, per_plan, ctx)
        )
        for rule in plan_rules_
    ]
    return sorted(rules, key=lambda r: (r.plan, r.rule))


def rules_of_plan(plan: Record, per_plan: Counter[str], ctx: ObserveContext) -> list[PlanRuleState]:
    rules = []
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
    return rules
