"""The AWS Backup part of the sandbox fleet: vaults, plans, jobs, copies, restore tests.

`plan_backup_fleet(spec)` is pure and deterministic. Per account x region unit it plans:

- three vaults: `Default` (AWS-owned key, no lock), `prod` (customer key, vault lock) and
  `dr` (vault lock; the destination of cross-region copies from the previous region);
- one plan `daily` with a rule into `prod` (35-day retention, copy to the next region's `dr`)
  and one selection naming its resources by ARN;
- protected resources: `extra_resources` DynamoDB tables plus, from an RDS fleet
  (`spec_for`), every other healthy database; each with `jobs_per_day` backup jobs a day over
  `history_days` days, a recovery point for every completed job, and a copy job and a
  destination point for copied ones (every second healthy resource);
- scenarios, on the unit's first DynamoDB tables (7 per unit by default, so every unit shows
  all of them; databases from other fleets stay healthy): 0 newest job FAILED, 1 newest job
  COMPLETED with issues, 2 newest job PARTIAL (its point is not a success), 3 not selected by
  any plan (old points only), 4 a job still RUNNING at `now`; the rest healthy;
- one restore testing plan with two restore jobs: one validated, one failed.

`seed_backup_fleet(sandbox, plan)` creates vaults, locks and plans through boto3 and writes
jobs, points and selections into the backends in-process (drwatch never starts jobs), and
sets every backend's simulated clock to `now`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from drwatch.core.units import GIB
from drwatch.sandbox.backup_moto import install_backup_extensions
from drwatch.sandbox.backup_records import (
    CUSTOMER_KEY,
    SandboxJob,
    SandboxRecoveryPoint,
    SandboxRestoreTestingPlan,
    SandboxSelection,
    backup_state,
)
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox

Scenario = Literal["failed", "with_issues", "partial", "unselected", "running", "healthy"]
SCENARIO_ORDER: tuple[Scenario, ...] = ("failed", "with_issues", "partial", "unselected", "running")
DEFAULT_VAULT, PROD_VAULT, DR_VAULT = "Default", "prod", "dr"
PLAN_NAME, RULE_NAME = "daily", "daily-35d"
RETENTION_DAYS = 35
LOCK_MIN_DAYS, LOCK_MAX_DAYS = 7, 365
BACKUP_MINUTES = 20
COPY_MINUTES = 15
RESTORE_MINUTES = (25, 40)
RESTORE_TESTING_PLAN = "weekly_restore_test"
COPY_EVERY = 2  # every second resource of a unit copies to the next region


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupFleetSpec:
    now: datetime  # tz-aware UTC
    seed: int = 42
    accounts: tuple[str, ...] = ("111111111111", "222222222222")
    regions: tuple[str, ...] = ("eu-west-1", "us-east-1")
    # (account, region, arn, AWS Backup resource type) of resources from other fleets.
    external_resources: tuple[tuple[str, str, str, str], ...] = ()
    extra_resources: int = 28  # DynamoDB tables, spread round-robin over the units
    jobs_per_day: int = 1
    history_days: int = 3

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() != timedelta(0):
            raise ValueError(f"now: must be timezone-aware UTC, got {self.now!r}")
        if self.jobs_per_day < 1 or self.history_days < 1:
            raise ValueError("jobs_per_day, history_days: must be >= 1")

    @property
    def units(self) -> tuple[tuple[str, str], ...]:
        return tuple((a, r) for a in self.accounts for r in self.regions)


@dataclass(frozen=True, slots=True)
class PlannedProtected:
    account_id: str
    region: str
    arn: str
    resource_type: str
    scenario: Scenario
    copy_region: str | None


@dataclass(frozen=True, slots=True)
class BackupUnitPlan:
    account_id: str
    region: str
    resources: tuple[PlannedProtected, ...]
    jobs: tuple[SandboxJob, ...]
    points: tuple[SandboxRecoveryPoint, ...]  # stored in this unit's vaults
    restore_testing_plan: SandboxRestoreTestingPlan
    copy_region: str | None  # where `daily` copies to

    @property
    def selected_arns(self) -> tuple[str, ...]:
        return tuple(r.arn for r in self.resources if r.scenario != "unselected")


@dataclass(frozen=True, slots=True)
class BackupFleetPlan:
    spec: BackupFleetSpec
    units: tuple[BackupUnitPlan, ...] = field(default=())

    def unit(self, account_id: str, region: str) -> BackupUnitPlan:
        return next(u for u in self.units if (u.account_id, u.region) == (account_id, region))


def spec_for(fleet: FleetPlan, **overrides: object) -> BackupFleetSpec:
    """The backup fleet for an RDS fleet: every other healthy database of each unit is also
    in AWS Backup, always healthy there, so the RDS scenarios keep their verdicts (a database
    with backups disabled stays unprotected, a healthy one fires no alert)."""
    seen: Counter[tuple[str, str]] = Counter()
    external = []
    for db in fleet.databases:
        if db.scenario != "healthy":
            continue
        unit = (db.account_id, db.region)
        if seen[unit] % 2 == 0:
            kind = "RDS" if db.kind == "db_instance" else "Aurora"
            external.append((db.account_id, db.region, db.arn, kind))
        seen[unit] += 1
    spec = fleet.spec
    return BackupFleetSpec(
        now=spec.now,
        seed=spec.seed,
        accounts=spec.accounts,
        regions=spec.regions,
        external_resources=tuple(external),
        **overrides,  # type: ignore[arg-type]
    )


# --- planning ----------------------------------------------------------------------------


def plan_backup_fleet(spec: BackupFleetSpec) -> BackupFleetPlan:
    # The fleet's own tables come first: they take the failure scenarios, while resources
    # of other fleets stay healthy in AWS Backup.
    by_unit: dict[tuple[str, str], list[tuple[str, str]]] = {u: [] for u in spec.units}
    for index in range(spec.extra_resources):
        account, region = spec.units[index % len(spec.units)]
        arn = f"arn:aws:dynamodb:{region}:{account}:table/ddb-table-{index:04d}"
        by_unit[(account, region)].append((arn, "DynamoDB"))
    own_tables = {arn for arns in by_unit.values() for arn, _ in arns}
    for account, region, arn, resource_type in spec.external_resources:
        by_unit.setdefault((account, region), []).append((arn, resource_type))
    units = [_plan_unit(spec, a, r, by_unit[(a, r)], own_tables) for a, r in spec.units]
    # Copies land in the destination unit's `dr` vault: move them over.
    copies: dict[tuple[str, str], list[SandboxRecoveryPoint]] = {}
    for unit in units:
        for point in unit.points:
            if point.source_vault_arn and point.vault_name == DR_VAULT:
                region = point.arn.split(":")[3]
                copies.setdefault((unit.account_id, region), []).append(point)
    planned = []
    for unit in units:
        own = tuple(p for p in unit.points if p.vault_name != DR_VAULT)
        arrived = tuple(copies.get((unit.account_id, unit.region), ()))
        planned.append(
            BackupUnitPlan(
                unit.account_id,
                unit.region,
                unit.resources,
                unit.jobs,
                own + arrived,
                unit.restore_testing_plan,
                unit.copy_region,
            )
        )
    return BackupFleetPlan(spec, tuple(planned))


def vault_arn(account: str, region: str, name: str) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-vault:{name}"


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _next_region(spec: BackupFleetSpec, region: str) -> str | None:
    if len(spec.regions) < 2:
        return None
    return spec.regions[(spec.regions.index(region) + 1) % len(spec.regions)]


def _plan_unit(
    spec: BackupFleetSpec,
    account: str,
    region: str,
    arns: list[tuple[str, str]],
    own: set[str],
) -> BackupUnitPlan:
    rng = random.Random(f"{spec.seed}/backup/{account}/{region}")  # noqa: S311 - simulation
    copy_region = _next_region(spec, region)
    resources = []
    for index, (arn, resource_type) in enumerate(arns):
        failing = index < len(SCENARIO_ORDER) and arn in own
        scenario = SCENARIO_ORDER[index] if failing else "healthy"
        copied = copy_region if index % COPY_EVERY == 1 and scenario == "healthy" else None
        resources.append(PlannedProtected(account, region, arn, resource_type, scenario, copied))
    jobs: list[SandboxJob] = []
    points: list[SandboxRecoveryPoint] = []
    for resource in resources:
        _plan_resource_history(spec, rng, resource, jobs, points)
    testing_plan = SandboxRestoreTestingPlan(
        name=RESTORE_TESTING_PLAN,
        arn=f"arn:aws:backup:{region}:{account}:restore-testing-plan:{RESTORE_TESTING_PLAN}-abc",
        schedule="cron(0 6 ? * SAT *)",
        created=_naive(spec.now) - timedelta(days=90),
    )
    jobs.extend(_plan_restores(spec, rng, resources, points, testing_plan))
    return BackupUnitPlan(
        account, region, tuple(resources), tuple(jobs), tuple(points), testing_plan, copy_region
    )


def _plan_resource_history(
    spec: BackupFleetSpec,
    rng: random.Random,
    resource: PlannedProtected,
    jobs: list[SandboxJob],
    points: list[SandboxRecoveryPoint],
) -> None:
    now = _naive(spec.now)
    size = rng.choice((20, 50, 100, 500)) * GIB
    step = timedelta(days=1) / spec.jobs_per_day
    first = now - timedelta(days=spec.history_days) + timedelta(minutes=rng.randint(5, 50))
    count = spec.history_days * spec.jobs_per_day
    # An unselected resource lost its plan: its points stop two days before `now`.
    if resource.scenario == "unselected":
        count = max(1, count - 2 * spec.jobs_per_day)
    account, region = resource.account_id, resource.region
    token = resource.arn.rsplit(":", 1)[-1].replace("/", "-")
    for n in range(count):
        created = first + n * step
        newest = n == count - 1
        state, category, message = _outcome(resource.scenario, newest)
        completed = created + timedelta(minutes=BACKUP_MINUTES + rng.randint(0, 10))
        if newest and resource.scenario == "running":
            created = now - timedelta(minutes=10)
            completed = now + timedelta(minutes=20)
        point_arn = f"arn:aws:backup:{region}:{account}:recovery-point:{token}-{n:05d}"
        has_point = state in ("COMPLETED", "PARTIAL")
        jobs.append(
            SandboxJob(
                job_id=f"bj-{account}-{region}-{token}-{n:05d}",
                kind="backup",
                resource_arn=resource.arn,
                resource_type=resource.resource_type,
                vault_arn=vault_arn(account, region, PROD_VAULT),
                created=created,
                completed=completed,
                final_state=state,
                message_category=category,
                status_message=message,
                size_bytes=size if has_point else 0,
                recovery_point_arn=point_arn if has_point else "",
            )
        )
        if not has_point:
            continue
        points.append(
            SandboxRecoveryPoint(
                arn=point_arn,
                vault_name=PROD_VAULT,
                resource_arn=resource.arn,
                resource_type=resource.resource_type,
                created=created,
                completed=completed,
                status=state,
                size_bytes=size,
                encrypted=True,
                delete_after_days=RETENTION_DAYS,
            )
        )
        if resource.copy_region and state == "COMPLETED":
            _plan_copy(resource, n, token, created, completed, size, point_arn, jobs, points)


def _outcome(scenario: Scenario, newest: bool) -> tuple[str, str, str]:
    if newest and scenario == "failed":
        return "FAILED", "ACCESS_DENIED", "Insufficient privileges to perform this action."
    if newest and scenario == "with_issues":
        return "COMPLETED", "INVALID_PARAMETERS", "Windows VSS backup attempt failed."
    if newest and scenario == "partial":
        return "PARTIAL", "SUCCESS", "Some files could not be backed up."
    return "COMPLETED", "SUCCESS", ""


def _plan_copy(
    resource: PlannedProtected,
    n: int,
    token: str,
    created: datetime,
    completed: datetime,
    size: int,
    source_point: str,
    jobs: list[SandboxJob],
    points: list[SandboxRecoveryPoint],
) -> None:
    assert resource.copy_region is not None
    account, region, destination = resource.account_id, resource.region, resource.copy_region
    copied = completed + timedelta(minutes=COPY_MINUTES)
    copy_point = f"arn:aws:backup:{destination}:{account}:recovery-point:{token}-copy-{n:05d}"
    jobs.append(
        SandboxJob(
            job_id=f"cj-{account}-{region}-{token}-{n:05d}",
            kind="copy",
            resource_arn=resource.arn,
            resource_type=resource.resource_type,
            vault_arn=vault_arn(account, region, PROD_VAULT),
            created=completed,
            completed=copied,
            final_state="COMPLETED",
            size_bytes=size,
            recovery_point_arn=source_point,
            destination_vault_arn=vault_arn(account, destination, DR_VAULT),
            destination_recovery_point_arn=copy_point,
        )
    )
    points.append(
        SandboxRecoveryPoint(
            arn=copy_point,
            vault_name=DR_VAULT,
            resource_arn=resource.arn,
            resource_type=resource.resource_type,
            created=created,  # a copy keeps its source's creation time
            completed=copied,
            status="COMPLETED",
            size_bytes=size,
            encrypted=True,
            delete_after_days=RETENTION_DAYS,
            source_vault_arn=vault_arn(account, region, PROD_VAULT),
        )
    )


def _plan_restores(
    spec: BackupFleetSpec,
    rng: random.Random,
    resources: Iterable[PlannedProtected],
    points: list[SandboxRecoveryPoint],
    testing_plan: SandboxRestoreTestingPlan,
) -> list[SandboxJob]:
    """A validated restore test of the first healthy resource, a failed one of the second."""
    healthy = [r for r in resources if r.scenario == "healthy"]
    restores = []
    now = _naive(spec.now)
    for index, resource in enumerate(healthy[:2]):
        own = [p for p in points if p.resource_arn == resource.arn and not p.source_vault_arn]
        if not own:
            continue
        point = max(own, key=lambda p: p.created)
        created = now - timedelta(hours=6 + index)
        minutes = rng.randint(*RESTORE_MINUTES)
        ok = index == 0
        restores.append(
            SandboxJob(
                job_id=f"rj-{resource.account_id}-{resource.region}-{index:03d}",
                kind="restore",
                resource_arn=resource.arn,
                resource_type=resource.resource_type,
                vault_arn=vault_arn(resource.account_id, resource.region, PROD_VAULT),
                created=created,
                completed=created + timedelta(minutes=minutes),
                final_state="COMPLETED" if ok else "FAILED",
                message_category="",
                status_message="" if ok else "Restored instance failed to reach available.",
                size_bytes=point.size_bytes,
                recovery_point_arn=point.arn,
                restore_testing_plan_arn=testing_plan.arn,
                validation_status="SUCCESSFUL" if ok else "",
                created_resource_arn=f"{resource.arn}-restore-test-{index}" if ok else "",
            )
        )
    return restores


# --- seeding -----------------------------------------------------------------------------


def seed_backup_fleet(sandbox: Sandbox, plan: BackupFleetPlan) -> None:
    """Make the sandbox's AWS Backup hold exactly `plan` (on top of a reset sandbox)."""
    install_backup_extensions()
    spec = plan.spec
    for unit in plan.units:
        client = sandbox.client("backup", unit.region, account_id=unit.account_id)
        _create_vaults(client, unit)
        plan_id = _create_plan(client, unit)
        state = backup_state(unit.account_id, unit.region)
        state.now = _naive(spec.now)
        state.vault_key_types[PROD_VAULT] = CUSTOMER_KEY
        state.jobs.update((job.job_id, job) for job in unit.jobs)
        state.recovery_points.update((p.arn, p) for p in unit.points)
        selection = SandboxSelection(
            selection_id=f"sel-{unit.account_id}-{unit.region}",
            plan_id=plan_id,
            name="prod-resources",
            iam_role_arn=f"arn:aws:iam::{unit.account_id}:role/service-role/AWSBackupDefaultServiceRole",
            resources=unit.selected_arns,
            created=_naive(spec.now) - timedelta(days=400),
        )
        state.selections[selection.selection_id] = selection
        testing = unit.restore_testing_plan
        state.restore_testing_plans[testing.name] = testing


def _create_vaults(backup: Any, unit: BackupUnitPlan) -> None:
    key = f"arn:aws:kms:{unit.region}:{unit.account_id}:key/0f1e2d3c-prod"
    backup.create_backup_vault(BackupVaultName=DEFAULT_VAULT)
    backup.create_backup_vault(BackupVaultName=PROD_VAULT, EncryptionKeyArn=key)
    backup.create_backup_vault(BackupVaultName=DR_VAULT)
    for name in (PROD_VAULT, DR_VAULT):
        backup.put_backup_vault_lock_configuration(
            BackupVaultName=name, MinRetentionDays=LOCK_MIN_DAYS, MaxRetentionDays=LOCK_MAX_DAYS
        )


def _create_plan(client: Any, unit: BackupUnitPlan) -> str:
    rule: dict[str, object] = {
        "RuleName": RULE_NAME,
        "TargetBackupVaultName": PROD_VAULT,
        "ScheduleExpression": "cron(0 3 ? * * *)",
        "Lifecycle": {"DeleteAfterDays": RETENTION_DAYS},
        "EnableContinuousBackup": False,
    }
    if unit.copy_region:
        rule["CopyActions"] = [
            {
                "DestinationBackupVaultArn": vault_arn(unit.account_id, unit.copy_region, DR_VAULT),
                "Lifecycle": {"DeleteAfterDays": RETENTION_DAYS},
            }
        ]
    created = client.create_backup_plan(BackupPlan={"BackupPlanName": PLAN_NAME, "Rules": [rule]})
    plan_id: str = created["BackupPlanId"]
    return plan_id


def add_jobs(account_id: str, region: str, jobs: Iterable[SandboxJob]) -> None:
    """More jobs in one unit (tests and benchmarks of incremental reading)."""
    state = backup_state(account_id, region)
    state.jobs.update((job.job_id, job) for job in jobs)


def set_clock(spec: BackupFleetSpec, now: datetime) -> None:
    """Move every unit's simulated AWS Backup clock (jobs progress, points appear/expire)."""
    for account, region in spec.units:
        backup_state(account, region).now = _naive(now)
