"""The sandbox estate replayed through simulated time, by the collectors' own code.

`capture_estate(config, now)` runs every enabled collector's `fetch` once against the
seeded sandbox (the fleet plans' state at `now`), with botocore's output validation on
every client, so each record is one AWS could have sent. `replay(estate, at, ...)` turns
those records into the records of an earlier instant and feeds them to the collector's own
pure `observe`, exactly as a poll at that instant would:

- every timestamp moves back by whole days (the plans' daily rhythm stays on the clock:
  snapshots in their backup window, jobs at their hour), and a record that would only be
  created after the instant (a snapshot, a recovery point, a job) is left out;
- continuously advancing points (`LatestRestorableTime` and its kin, PITR windows, the
  freshness of backup-file prefixes) move with the instant itself, so their lag at the
  instant is the lag the plan gives them;
- AWS Backup jobs come from the day before and the day of the instant (the collector reads
  a 24-hour lookback), renamed per day so that each day's jobs are jobs of their own, and
  go through the backup collector's own job window, which finds the new ones; restore
  tests recur weekly, backup and copy jobs daily.

Edits to the records (the demo's incidents, `backfill.py`) are applied per instant by the
caller through `edit`; `validate_items` checks edited items against botocore's shapes.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from drwatch.config import Config
from drwatch.core.model import Observations, UnitKey, UnitResult, UnitRun
from drwatch.core.units import DAY_SECONDS
from drwatch.exporter.aws import ApiStats, AwsAccess
from drwatch.exporter.collectors import backup, collector_classes, kafka
from drwatch.exporter.collectors.backup_jobs import JOB_KINDS
from drwatch.exporter.collectors.base import CollectContext, ObserveContext
from drwatch.exporter.collectors.isolation import Collection, FeatureMemory
from drwatch.sandbox.validation import AFTER_CALL_EVENT, validate_response

DAY = timedelta(seconds=DAY_SECONDS)
RESTORE_TEST_EVERY_DAYS = 7
# Fields that advance continuously with the clock (PITR, restore windows).
CONTINUOUS_KEYS = frozenset(
    {"LatestRestorableTime", "LatestRestorableDateTime", "LatestTime", "RestorableUntil"}
)
# A recovery point or a job with one of these (anywhere inside it) after the instant does not
# exist yet. Resources are never left out by their creation time: moto stamps some with
# the wall clock, not with the plan's time.
CREATED_KEYS = frozenset(
    {
        "SnapshotCreateTime",  # RDS snapshots, ElastiCache node snapshots
        "SnapshotCreationTime",
        "StartTime",  # EBS snapshots
        "BackupCreationDateTime",  # DynamoDB backups
        "CompletionDate",  # AWS Backup recovery points and jobs
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class CapturedUnit:
    unit: UnitKey
    records: Any  # the collector's records dataclass, as its fetch returned it
    raw_jobs: Mapping[str, tuple[Mapping[str, Any], ...]]  # backup only: jobs read, by kind
    api_calls: Mapping[str, int]


@dataclasses.dataclass(frozen=True, slots=True)
class CapturedEstate:
    now: datetime
    config: Config
    units: tuple[CapturedUnit, ...]


def sandbox_session() -> botocore.session.Session:
    session = botocore.session.Session()
    session.set_credentials("sandbox-access-key", "sandbox-secret-key")
    return session


def capture_estate(config: Config, now: datetime) -> CapturedEstate:
    """Every enabled collector's records of every unit, fetched once from the sandbox that
    `config.aws.endpoint_url` points at. A unit whose fetch fails raises: a demo history
    must not start from a partial estate."""
    stats = ApiStats()
    aws = AwsAccess(
        config.accounts,
        config.aws,
        stats,
        sts_region=config.regions[0],
        session_factory=sandbox_session,
        extra_handlers=[(AFTER_CALL_EVENT, validate_response)],
    )
    features = FeatureMemory(time.monotonic)
    units = []
    for cls in collector_classes(config.enabled_collectors()):
        for account in config.accounts:
            for region in config.regions:
                collector = cls()
                key = UnitKey(cls.name, account.id, region)
                ctx = _context(config, aws, key, now, features)
                fetch = getattr(collector, "fetch", None) or _module(cls).fetch
                with stats.attribute_to_unit() as calls:
                    records = fetch(ctx)
                raw: dict[str, tuple[Mapping[str, Any], ...]] = {}
                if isinstance(records, backup.BackupRecords):
                    raw = {kind: tuple(jobs) for kind, jobs in records.window_jobs.items()}
                units.append(CapturedUnit(key, records, raw, dict(calls)))
    return CapturedEstate(now, config, tuple(units))


def _context(
    config: Config, aws: AwsAccess, key: UnitKey, now: datetime, features: FeatureMemory
) -> CollectContext:
    return CollectContext(
        observe=ObserveContext(
            key.account_id,
            key.region,
            now,
            config.tiers,
            Collection((key.collector, key.account_id, key.region), features),
        ),
        client_for=lambda service: aws.client(key.account_id, key.region, service),
        regional_client_for=lambda service, region: aws.client(key.account_id, region, service),
        deadline=float("inf"),
        config=config,
    )


def _module(cls: type) -> Any:
    return sys.modules[cls.__module__]


Edit = Callable[[UnitKey, Any, datetime], Any]


class Replayer:
    """Polls of the captured estate at earlier instants, in time order (the backup
    collector's job window carries over from one instant to the next, as in `serve`)."""

    def __init__(self, estate: CapturedEstate) -> None:
        self.estate = estate
        self._backup = {u.unit: backup.BackupCollector() for u in estate.units if u.raw_jobs}

    def poll(self, unit: CapturedUnit, at: datetime, edit: Edit | None = None) -> UnitResult:
        days = _days_back(self.estate.now, at)
        records = shift(unit.records, -days * DAY, self.estate.now - days * DAY, at)
        if edit is not None:
            records = edit(unit.unit, records, at)
        key = unit.unit
        collection = Collection((key.collector, key.account_id, key.region))
        ctx = ObserveContext(key.account_id, key.region, at, self.estate.config.tiers, collection)
        if key in self._backup:
            jobs = {kind: tuple(self._jobs_at(unit, kind, at, days)) for kind in unit.raw_jobs}
            if edit is not None:
                jobs = edit(key, jobs, at)
            records = self._backup[key]._commit(ctx, records, jobs)
        observations = observe(key.collector, records, ctx)
        run = UnitRun(
            unit=key,
            started=at,
            duration_seconds=0.5,
            success=True,
            api_calls=dict(unit.api_calls),
            records_skipped=dict(collection.skipped),
            features=dict(collection.features),
        )
        return UnitResult(run=run, observations=observations)

    def _jobs_at(
        self, unit: CapturedUnit, kind: str, at: datetime, days: int
    ) -> Iterable[Mapping[str, Any]]:
        """The jobs of the day of `at` and the day before, each day's under ids of its own."""
        id_key = next(k.id_key for k in JOB_KINDS if k.name == kind)
        for back in (days, days + 1):
            if kind == "restore" and back % RESTORE_TEST_EVERY_DAYS:
                continue  # restore testing runs weekly, not every day
            moved = shift(unit.raw_jobs[kind], -back * DAY, self.estate.now - back * DAY, at)
            for job in moved:
                if id_key in job:
                    yield {**job, id_key: f"{job[id_key]}-d{back}"}
                else:
                    yield job


def _days_back(now: datetime, at: datetime) -> int:
    """Whole days to move the captured records back so that their `now` is at or just
    after `at` (less than a day): what was created before `at` then exists at `at`."""
    if at > now:
        raise ValueError(f"cannot replay after the capture: {at} > {now}")
    return int((now - at) // DAY)


def observe(collector: str, records: Any, ctx: ObserveContext) -> Observations:
    """The collector's own pure mapping."""
    if collector == "kafka":
        return kafka.observe_msk(records, ctx.account_id, ctx.region, ctx.collection)
    classes = {cls.name: cls for cls in collector_classes(None)}
    return _module(classes[collector]).observe(records, ctx)  # type: ignore[no-any-return]


def shift(value: Any, by: timedelta, moved_now: datetime, at: datetime) -> Any:
    """`value` with every datetime moved by `by`; continuous points moved on from
    `moved_now` to `at`; list items created after `at` left out."""
    return _Shift(by, at - moved_now, at).value(value, continuous=False)


class _Shift:
    def __init__(self, by: timedelta, onward: timedelta, at: datetime) -> None:
        self.by, self.onward, self.at = by, onward, at

    def value(self, value: Any, continuous: bool) -> Any:
        if isinstance(value, datetime):
            return value + self.by + (self.onward if continuous else timedelta(0))
        if isinstance(value, (str, int, float, bytes)) or value is None:
            return value
        if isinstance(value, Mapping):
            return {
                key: self.value(item, isinstance(key, str) and key in CONTINUOUS_KEYS)
                for key, item in value.items()
            }
        if isinstance(value, (tuple, list)):
            items = [self.value(item, continuous) for item in value]
            kept = [item for item in items if not self.created_later(item)]
            return tuple(kept) if isinstance(value, tuple) else kept
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # Summaries the collector makes itself (prefix freshness) advance continuously.
            changes = {
                f.name: self.value(getattr(value, f.name), True) for f in dataclasses.fields(value)
            }
            return dataclasses.replace(value, **changes)
        return value

    def created_later(self, item: Any) -> bool:
        if not isinstance(item, Mapping):
            return False
        for key, value in item.items():
            if key in CREATED_KEYS and isinstance(value, datetime) and value > self.at:
                return True
            if isinstance(value, (list, tuple)) and any(self.created_later(v) for v in value):
                return True
        return False


_SHAPES: dict[tuple[str, str, str], Any] = {}


def validate_items(service: str, operation: str, list_key: str, items: Iterable[Any]) -> None:
    """Each of `items` must be a valid member of `operation`'s output list `list_key`
    (botocore's model): an edited record AWS could have sent."""
    shape_key = (service, operation, list_key)
    if shape_key not in _SHAPES:
        model = botocore.session.get_session().get_service_model(service)
        output = model.operation_model(operation).output_shape
        _SHAPES[shape_key] = output
    output = _SHAPES[shape_key]
    report = ParamValidator().validate({list_key: list(items)}, output)
    if report.has_errors():
        raise ValueError(f"{operation} {list_key}: {report.generate_report()}")
