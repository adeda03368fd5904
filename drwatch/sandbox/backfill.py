"""The demo's simulated past: the sandbox estate replayed through time by the collectors.

`backfill_results(plan, spec)` seeds a sandbox with `plan` (every service's fleet, as
`drwatch demo` does), captures what each collector fetches from it (botocore-validated
records, `replay.capture_estate`) and replays it every `interval` over `days` before
`spec.end`: each poll is the collector's own `observe` over the records of that instant
(`replay.Replayer`). `replay_results(estate, plan, spec)` does the same from a capture made
elsewhere (the demo captures from its live sandbox). The history thus holds only what
drwatch can observe. Incidents are edits of the records, each on its own resource:

- a stale database (days 60 to 53 before the end): its LatestRestorableTime and restore
  window stop at the start, and no snapshot is taken meanwhile;
- a failed AWS Backup job streak (days 40 to 35): the backup jobs of one protected database
  are FAILED (ListBackupJobs, as the backup collector reads it) and leave no recovery point;
- an S3 replication lag spike (day 20, six hours): the premium `orders` bucket's
  ReplicationLatency is 90 minutes;
- a Kafka lag spike (day 15, six hours): MSK Replicator `orders-dr` is 25,000 messages
  behind on `orders`;
- a monitoring outage (day 10, three hours): no unit of one account and region reports.

Unencrypted, unlocked and unprotected resources are the fleets' own (fleet.py,
backup_fleet.py, stores_fleet.py). The results carry observations only; feeding them to a
history store is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from drwatch.core.model import UnitKey, UnitResult
from drwatch.exporter.collectors.backup import BackupRecords
from drwatch.exporter.collectors.kafka import MskRecords
from drwatch.exporter.collectors.rds import RdsRecords
from drwatch.exporter.collectors.s3_replication import S3Records
from drwatch.sandbox.backup_fleet import spec_for
from drwatch.sandbox.fleet import FleetPlan, PlannedDatabase
from drwatch.sandbox.replay import CapturedEstate, Replayer, validate_items
from drwatch.sandbox.s3_fleet import bucket_name

SPIKE_LAG_SECONDS = 5400.0
KAFKA_SPIKE_MESSAGES = 25000.0
SNAPSHOT_HOUR = 3  # restore tests restore the newest daily snapshot after 03:00 UTC
SIMULATED = "(simulated)"  # in every demo drill's notes: the report says so
FAILED_MESSAGE = "Insufficient privileges to perform this action."


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillSpec:
    end: datetime  # tz-aware UTC; polls run from end - days up to, not including, end
    days: int = 62
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
    stale: str  # an RDS instance identifier
    failed_backups: str  # the ARN of a database AWS Backup protects
    lag_spike: str  # an S3 bucket
    kafka_spike: tuple[str, str]  # MSK Replicator, topic
    outage: tuple[str, str]  # account, region: every unit there is silent
    stale_window: Window
    failed_window: Window
    spike_window: Window
    kafka_window: Window
    outage_window: Window

    @property
    def outage_unit(self) -> UnitKey:
        return UnitKey("rds", *self.outage)


def plan_incidents(plan: FleetPlan, spec: BackfillSpec) -> Incidents:
    """Which resources and unit the incidents hit: a healthy standalone database goes stale,
    a database AWS Backup protects (always healthy there) fails its jobs."""
    healthy = [db for db in plan.databases if db.scenario == "healthy"]
    instances = [db for db in healthy if db.kind == "db_instance"]
    protected = spec_for(plan).external_resources
    if not instances or not protected:
        raise ValueError("backfill needs a healthy RDS instance and one in AWS Backup")
    in_backup = {arn for _, _, arn, _ in protected}
    # Not in AWS Backup, without copies elsewhere: its own points are all it has.
    plain = [
        db
        for db in instances
        if db.arn not in in_backup
        and not db.snapshot_copy_region
        and not db.backup_replication_region
    ]
    stale = (plain or [db for db in instances if db.arn not in in_backup] or instances)[0]
    account, region = plan.spec.units[0]
    return Incidents(
        stale=stale.identifier,
        failed_backups=protected[0][2],
        lag_spike=bucket_name(account, region, "orders"),
        kafka_spike=("orders-dr", "orders"),
        outage=plan.spec.units[-1],
        stale_window=spec.day_window(60, 53),
        failed_window=spec.day_window(40, 35),
        spike_window=_hours(spec, 20, 6),
        kafka_window=_hours(spec, 15, 6),
        outage_window=_hours(spec, 10, 3),
    )


def _hours(spec: BackfillSpec, days_before_end: int, hours: int) -> Window:
    start = spec.end - timedelta(days=days_before_end)
    return Window(start, start + timedelta(hours=hours))


def poll_times(spec: BackfillSpec) -> Iterator[datetime]:
    moment = spec.start
    while moment < spec.end:
        yield moment
        moment += spec.interval


def backfill_results(plan: FleetPlan, spec: BackfillSpec) -> Iterator[UnitResult]:
    """Every unit's result at every poll time, in time order, from a sandbox seeded with
    `plan` (started and stopped here)."""
    from drwatch.sandbox.estate import capture_plan  # starts moto: only when asked

    return replay_results(capture_plan(plan), plan, spec)


def replay_results(
    estate: CapturedEstate, plan: FleetPlan, spec: BackfillSpec
) -> Iterator[UnitResult]:
    incidents = plan_incidents(plan, spec)
    replayer = Replayer(estate)
    edits = IncidentEdits(incidents)
    for moment in poll_times(spec):
        for unit in estate.units:
            where = (unit.unit.account_id, unit.unit.region)
            if where == incidents.outage and moment in incidents.outage_window:
                continue  # drwatch was down: no unit ran
            yield replayer.poll(unit, moment, edits)


class IncidentEdits:
    """The incidents as edits of the records an instant's polls read."""

    def __init__(self, incidents: Incidents) -> None:
        self.incidents = incidents

    def __call__(self, unit: UnitKey, records: Any, at: datetime) -> Any:
        if isinstance(records, RdsRecords):
            return self.stale_database(records, at)
        if isinstance(records, BackupRecords):
            return self.lost_points(records)
        if unit.collector == "backup" and isinstance(records, Mapping):
            return self.failed_jobs(records)
        if isinstance(records, S3Records) and at in self.incidents.spike_window:
            return self.s3_spike(records)
        if isinstance(records, MskRecords) and at in self.incidents.kafka_window:
            return self.kafka_spike(records)
        return records

    def stale_database(self, records: RdsRecords, at: datetime) -> RdsRecords:
        name, window = self.incidents.stale, self.incidents.stale_window
        if at < window.start:
            return records

        def mine(item: Mapping[str, Any]) -> bool:
            return item.get("DBInstanceIdentifier") == name

        if not any(mine(i) for i in records.instances):
            return records
        snapshots = tuple(
            s for s in records.snapshots if not (mine(s) and s.get("SnapshotCreateTime") in window)
        )
        instances, backups = records.instances, records.automated_backups
        if at in window:
            instances = tuple(_frozen(i, window.start) if mine(i) else i for i in instances)
            backups = tuple(_frozen(b, window.start) if mine(b) else b for b in backups)
            validate_items("rds", "DescribeDBInstances", "DBInstances", instances)
            validate_items(
                "rds", "DescribeDBInstanceAutomatedBackups", "DBInstanceAutomatedBackups", backups
            )
        return replace(records, instances=instances, snapshots=snapshots, automated_backups=backups)

    def lost_points(self, records: BackupRecords) -> BackupRecords:
        arn, window = self.incidents.failed_backups, self.incidents.failed_window
        points = tuple(
            p
            for p in records.recovery_points
            if not (p.get("ResourceArn") == arn and p.get("CreationDate") in window)
        )
        return replace(records, recovery_points=points)

    def failed_jobs(self, jobs: Mapping[str, Any]) -> dict[str, Any]:
        arn, window = self.incidents.failed_backups, self.incidents.failed_window
        failed = []
        for job in jobs.get("backup", ()):
            if job.get("ResourceArn") == arn and job.get("CreationDate") in window:
                job = {k: v for k, v in job.items() if k != "RecoveryPointArn"}
                job.update(
                    State="FAILED",
                    StatusMessage=FAILED_MESSAGE,
                    MessageCategory="ACCESS_DENIED",
                    BackupSizeInBytes=0,
                )
            failed.append(job)
        validate_items("backup", "ListBackupJobs", "BackupJobs", failed)
        return {**jobs, "backup": tuple(failed)}

    def s3_spike(self, records: S3Records) -> S3Records:
        metrics = {
            key: SPIKE_LAG_SECONDS
            if key.source_bucket == self.incidents.lag_spike and key.metric == "ReplicationLatency"
            else value
            for key, value in records.metrics.items()
        }
        return replace(records, metrics=metrics)

    def kafka_spike(self, records: MskRecords) -> MskRecords:
        replicator, topic = self.incidents.kafka_spike
        metrics = {
            key: KAFKA_SPIKE_MESSAGES
            if (key.replicator, key.topic, key.metric) == (replicator, topic, "MessageLag")
            else value
            for key, value in records.metrics.items()
        }
        return replace(records, metrics=metrics)


def _frozen(item: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """A database or automated backup whose newest restorable time stopped at `at`."""
    frozen = dict(item)
    if "LatestRestorableTime" in frozen:
        frozen["LatestRestorableTime"] = min(frozen["LatestRestorableTime"], at)
    window = frozen.get("RestoreWindow")
    if isinstance(window, Mapping) and "LatestTime" in window:
        frozen["RestoreWindow"] = {**window, "LatestTime": min(window["LatestTime"], at)}
    return frozen


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
    notes = " ".join(filter(None, (text.pop("notes", ""), SIMULATED)))
    return {
        "drill_id": f"demo-{scenario}-{start:%Y%m%d}",
        "scenario": scenario,
        "scope": scope,
        "incident_start": start.isoformat(),
        "detected_at": (start + timedelta(minutes=detected)).isoformat(),
        "restored_at": (start + timedelta(minutes=restored)).isoformat(),
        "restore_point": (start - timedelta(minutes=lost)).isoformat(),
        "notes": notes,
        **text,
    }


def _snapshot_time(day: datetime) -> datetime:
    return day.replace(hour=SNAPSHOT_HOUR, minute=0, second=0, microsecond=0)


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
                "notes": f"weekly active restore test {SIMULATED}",
            }
        )
        day -= timedelta(days=7)
    return rows
