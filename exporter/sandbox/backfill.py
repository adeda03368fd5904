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

from exporter.model import (
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
from exporter.sandbox.fleet import FleetPlan, PlannedDatabase

DEFAULT_TIER = "standard"
PITR_LAG = timedelta(minutes=2)
REPLICA_LAG_SECONDS = 240.0
SPIKE_LAG_SECONDS = 5400.0
SNAPSHOT_HOUR = 3  # daily automated snapshot at 03:00 UTC
GIB = 1024**3


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
