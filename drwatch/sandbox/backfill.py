"""90 days of simulated history for a fleet: time-shifted unit results, with incidents.

`backfill_results(plan, spec)` is pure and deterministic: it replays what the RDS collector
would have observed every `interval` over `days` before `spec.end`, for every database of a
`FleetPlan`, so reports have real periods to show. Routine life: PITR a couple of minutes
behind, one automated snapshot a day with its backup job, replicated backups a few minutes
behind. Incidents, each on its own database so a report can tell them apart:

- a week-long stale database (days 60 to 53 before the end): no new restorable point at all;
- a failed-backup streak (days 40 to 35): the daily backup job fails, snapshots stop;
- a replication lag spike (day 20, six hours): replicated backups fall 90 minutes behind;
- a monitoring outage (day 10, three hours): one unit's polls fail with throttling.

The results carry observations only; feeding them to a history store is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from drwatch.core.model import (
    JobEvent,
    Mechanism,
    Observations,
    RecoveryState,
    ReplicationState,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
)
from drwatch.core.units import GIB
from drwatch.sandbox.fleet import FleetPlan, PlannedDatabase

DEFAULT_TIER = "standard"
PITR_LAG = timedelta(minutes=2)
REPLICA_LAG_SECONDS = 240.0
SPIKE_LAG_SECONDS = 5400.0
SNAPSHOT_HOUR = 3  # daily automated snapshot at 03:00 UTC


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillSpec:
    end: datetime  # tz-aware UTC; polls run from end - days up to, not including, end
    days: int = 90
    interval: timedelta = timedelta(hours=1)
    tier_tag_key: str = "dr-tier"

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise ValueError(f"end: must be timezone-aware UTC, got {self.end!r}")
        if self.days < 1 or self.interval <= timedelta(0):
            raise ValueError("days must be >= 1 and interval positive")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def day_window(self, first_day_before_end: int, last_day_before_end: int) -> Window:
        """[end - first days, end - last days): e.g. (60, 53) is a week, two months ago."""
        return Window(
            self.end - timedelta(days=first_day_before_end),
            self.end - timedelta(days=last_day_before_end),
        )


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class Incidents:
    stale: str  # database identifiers
    failed_backups: str
    lag_spike: str | None  # None when no healthy database replicates its backups
    outage_unit: UnitKey
    stale_window: Window
    failed_window: Window
    spike_window: Window
    outage_window: Window


def plan_incidents(plan: FleetPlan, spec: BackfillSpec) -> Incidents:
    """Which databases and unit the incidents hit: different healthy databases when the
    fleet has enough of them (small fleets share), the lag spike on a replicated one."""
    healthy = [db for db in plan.databases if db.scenario == "healthy"]
    if not healthy:
        raise ValueError("backfill needs at least one healthy database in the fleet")
    replicated = [db for db in healthy if db.backup_replication_region]
    spike = replicated[0] if replicated else None
    others = [db for db in healthy if db is not spike] or healthy
    account, region = plan.spec.units[-1]
    spike_start = spec.end - timedelta(days=20)
    outage_start = spec.end - timedelta(days=10)
    return Incidents(
        stale=others[0].identifier,
        failed_backups=others[1 % len(others)].identifier,
        lag_spike=spike.identifier if spike else None,
        outage_unit=UnitKey("rds", account, region),
        stale_window=spec.day_window(60, 53),
        failed_window=spec.day_window(40, 35),
        spike_window=Window(spike_start, spike_start + timedelta(hours=6)),
        outage_window=Window(outage_start, outage_start + timedelta(hours=3)),
    )


def poll_times(spec: BackfillSpec) -> Iterator[datetime]:
    moment = spec.start
    while moment < spec.end:
        yield moment
        moment += spec.interval


def backfill_results(plan: FleetPlan, spec: BackfillSpec) -> Iterator[UnitResult]:
    """Every unit's result at every poll time, in time order."""
    incidents = plan_incidents(plan, spec)
    for moment in poll_times(spec):
        for account, region in plan.spec.units:
            unit = UnitKey("rds", account, region)
            if unit == incidents.outage_unit and moment in incidents.outage_window:
                yield _failed_run(unit, moment)
                continue
            databases = plan.in_unit(account, region)
            yield UnitResult(
                UnitRun(unit, moment, 1.5, True, api_calls={"DescribeDBInstances": 1}),
                _observe(databases, moment, incidents, spec),
            )


def _failed_run(unit: UnitKey, moment: datetime) -> UnitResult:
    return UnitResult(
        UnitRun(unit, moment, 30.0, False, "ThrottlingException", "Rate exceeded"),
        Observations(),
    )


def _observe(
    databases: tuple[PlannedDatabase, ...],
    moment: datetime,
    incidents: Incidents,
    spec: BackfillSpec,
) -> Observations:
    resources: list[Resource] = []
    states: list[RecoveryState] = []
    jobs: list[JobEvent] = []
    replications: list[ReplicationState] = []
    for db in databases:
        ref = ResourceRef(db.account_id, db.region, "rds", db.kind, db.identifier)
        resources.append(
            Resource(ref, db.identifier, db.tag(spec.tier_tag_key) or DEFAULT_TIER, db.arn)
        )
        if db.backup_retention_days == 0:
            states.append(RecoveryState(ref, Mechanism.PITR, db.account_id, db.region, False))
            continue
        states.extend(_recovery(db, ref, moment, incidents))
        jobs.extend(_jobs(db, ref, moment, incidents))
        if db.backup_replication_region:
            replications.append(_replication(db, ref, moment, incidents))
    return Observations(tuple(resources), tuple(states), tuple(jobs), tuple(replications))


def _frozen_at(db: PlannedDatabase, moment: datetime, incidents: Incidents) -> datetime | None:
    """When backups of `db` stopped, if an incident stops them at `moment`."""
    if db.identifier == incidents.stale and moment in incidents.stale_window:
        return incidents.stale_window.start
    return None


def _recovery(
    db: PlannedDatabase, ref: ResourceRef, moment: datetime, incidents: Incidents
) -> list[RecoveryState]:
    frozen = _frozen_at(db, moment, incidents)
    pitr = frozen or moment - PITR_LAG
    snapshot = _last_good_snapshot(db, frozen or moment, incidents)
    retention = db.backup_retention_days
    size = db.allocated_gib * GIB
    return [
        RecoveryState(
            ref,
            Mechanism.PITR,
            db.account_id,
            db.region,
            True,
            newest_point=pitr,
            oldest_point=pitr - timedelta(days=retention),
            retention_min_days=retention,
            retention_max_days=retention,
            encrypted=db.storage_encrypted,
        ),
        RecoveryState(
            ref,
            Mechanism.SNAPSHOT,
            db.account_id,
            db.region,
            True,
            newest_point=snapshot,
            oldest_point=snapshot - timedelta(days=retention - 1),
            point_count=retention,
            size_bytes=size * retention,
            retention_min_days=retention,
            retention_max_days=retention,
            encrypted=db.storage_encrypted,
        ),
    ]


def _snapshot_time(day: datetime) -> datetime:
    return day.replace(hour=SNAPSHOT_HOUR, minute=0, second=0, microsecond=0)


def _latest_snapshot_slot(moment: datetime) -> datetime:
    slot = _snapshot_time(moment)
    return slot if slot <= moment else slot - timedelta(days=1)


def _last_good_snapshot(db: PlannedDatabase, moment: datetime, incidents: Incidents) -> datetime:
    slot = _latest_snapshot_slot(moment)
    while db.identifier == incidents.failed_backups and slot in incidents.failed_window:
        slot -= timedelta(days=1)
    return slot


def _jobs(
    db: PlannedDatabase, ref: ResourceRef, moment: datetime, incidents: Incidents
) -> list[JobEvent]:
    """The newest daily backup job, as a collector listing the last day would see it."""
    if _frozen_at(db, moment, incidents) is not None:
        return []
    slot = _latest_snapshot_slot(moment)
    failed = db.identifier == incidents.failed_backups and slot in incidents.failed_window
    return [
        JobEvent(
            job_id=f"{db.identifier}-{slot:%Y%m%d}",
            kind="backup",
            state="FAILED" if failed else "COMPLETED",
            ref=ref,
            created=slot,
            completed=slot + timedelta(minutes=12),
            message_category="ACCESS_DENIED" if failed else "SUCCESS",
            size_bytes=0 if failed else db.allocated_gib * GIB,
        )
    ]


def _replication(
    db: PlannedDatabase, ref: ResourceRef, moment: datetime, incidents: Incidents
) -> ReplicationState:
    spiking = db.identifier == incidents.lag_spike and moment in incidents.spike_window
    lag = SPIKE_LAG_SECONDS if spiking else REPLICA_LAG_SECONDS
    destination = db.backup_replication_region or db.region
    return ReplicationState(
        kind="rds_cross_region_backup",
        source=ref,
        destination_account_id=db.account_id,
        destination_region=destination,
        destination=f"{db.identifier}-replica",
        state="replicating",
        latest_replicated_point=moment - timedelta(seconds=lag),
        latency_seconds=lag,
    )


# --- DR drills and active restore tests (docs/drills.md) ----------------------------------

RESTORE_TEST_WEEKDAY_HOUR = 6  # weekly `drwatch drill run rds` at 06:00 UTC
RESTORE_TEST_MINUTES = 24


def demo_drill_rows(plan: FleetPlan, spec: BackfillSpec) -> list[dict[str, str]]:
    """The demo's drills in `drwatch drill import` form: one per scenario over the period,
    and a weekly active restore test of one healthy database (`drwatch drill run rds`,
    recorded with source drill-runner). The region failure missed its 15-minute premium
    RTO; it falls in the middle of the previous calendar month, the period the demo's
    monthly reports cover."""
    healthy = [db for db in plan.databases if db.scenario == "healthy"]
    if not healthy:
        raise ValueError("demo drills need at least one healthy database in the fleet")
    first, second = healthy[0], healthy[1 % len(healthy)]
    region = {
        "issues": "DNS failover waited out a 1-hour TTL;runbook named a retired VPC",
        "follow_ups": "lower the failover record TTL to 60 s;update the region runbook",
    }
    ransomware = {
        "issues": "the immutable vault copy was found by hand",
        "follow_ups": "tag the locked vault in the runbook",
    }
    pitr = {"notes": "point-in-time restore to just before the bad migration"}
    mid_previous_month = (spec.end.replace(day=1) - timedelta(days=1)).replace(day=15)
    corruption, ransomed = _days_before(spec, 45), _days_before(spec, 30)
    drills = [
        _drill(spec, "region_failure", mid_previous_month, "tier:premium", (6, 55, 4), **region),
        _drill(spec, "database_failure", _days_before(spec, 62), first.identifier, (3, 38, 6)),
        _drill(spec, "data_corruption", corruption, second.identifier, (9, 50, 12), **pitr),
        _drill(spec, "ransomware", ransomed, "tier:standard", (12, 52, 14), **ransomware),
        _drill(spec, "service_failure", _days_before(spec, 12), "tier:basic", (2, 20, 0)),
    ]
    return [row for row in drills if row] + _restore_tests(first, spec)


def _days_before(spec: BackfillSpec, days: int) -> datetime:
    return spec.end - timedelta(days=days)


def _drill(
    spec: BackfillSpec,
    scenario: str,
    day: datetime,
    scope: str,
    minutes: tuple[int, int, int],  # detected, restored, data lost (restore point before)
    **text: str,
) -> dict[str, str]:
    start = day.replace(hour=10, minute=0, second=0, microsecond=0)
    if not spec.start <= start < spec.end:
        return {}  # a shorter backfill has no room for this drill
    detected, restored, lost = minutes
    return {
        "drill_id": f"demo-{scenario}-{start:%Y%m%d}",
        "scenario": scenario,
        "scope": scope,
        "incident_start": start.isoformat(),
        "detected_at": (start + timedelta(minutes=detected)).isoformat(),
        "restored_at": (start + timedelta(minutes=restored)).isoformat(),
        "restore_point": (start - timedelta(minutes=lost)).isoformat(),
        **text,
    }


def _restore_tests(db: PlannedDatabase, spec: BackfillSpec) -> list[dict[str, str]]:
    rows = []
    day = spec.end.replace(hour=RESTORE_TEST_WEEKDAY_HOUR, minute=0, second=0, microsecond=0)
    if day >= spec.end:
        day -= timedelta(days=1)
    while day >= spec.start:
        snapshot = _snapshot_time(day) if day.hour >= SNAPSHOT_HOUR else day
        rows.append(
            {
                "drill_id": f"restore-test-{db.identifier}-{day:%Y%m%dt%H%M%S}",
                "scenario": "database_failure",
                "scope": f"{db.account_id}/{db.region}/rds/db/{db.identifier}",
                "incident_start": day.isoformat(),
                "detected_at": day.isoformat(),
                "restored_at": (day + timedelta(minutes=RESTORE_TEST_MINUTES)).isoformat(),
                "restore_point": snapshot.isoformat(),
                "source": "drill-runner",
                "notes": "weekly active restore test (simulated)",
            }
        )
        day -= timedelta(days=7)
    return rows
