"""Evaluating the controls over a period, from the history database only.

`evaluate(db, period, policies)` loads the period's evidence once (intervals, daily figures,
jobs, unit runs, restores, drills), builds one `ResourceEvidence` per resource seen in the
period, and runs every control on its population: resources (DRW-01..12), tiers (DRW-13)
and monitoring units (DRW-14). Each subject gets a `Finding`: a status and the facts that
decided it, in words a reader can check against the evidence.

Time semantics are those of `reports.history_figures` (a state holds until its next
observation when that continues it within a day), so figures here agree with the rollups
after compaction. Days already compacted have only daily rollups: controls that need the
raw intervals (retention, encryption, copies...) say "insufficient evidence" for resources
seen only there, never guess.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlite_utils import Database

from drwatch.core.controls import ControlParameters
from drwatch.core.retention import EXPIRY_GRACE_SECONDS, RetentionPolicy
from drwatch.core.units import DAY_SECONDS
from drwatch.history.drills import DrillRecord, RestoreTestRecord, load_drills, load_restore_tests
from drwatch.history.drills import resource_class as service_class
from drwatch.history.figures import (
    MAX_HOLD_SECONDS,
    ResourceFigures,
    RpoPolicy,
    UnitFigures,
    day_from_label,
    day_label,
    day_start,
    job_days,
    resource_figures_by_day,
    unit_key,
    unit_runs_by_day,
)
from drwatch.history.store import HistoryError, epoch, rolled_up_until_epoch
from drwatch.reports.controls import CONTROLS, Control, Status, worst
from drwatch.reports.render import format_duration, format_percent

FINISHED_JOB_STATES = frozenset({"COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL"})
KAFKA_REPLICATION_KINDS = frozenset({"msk_replicator", "mirrormaker2"})
# Replications that are backup copies in another region (DRW-07), not live data replicas.
COPY_REPLICATION_KINDS = frozenset({"rds_cross_region_backup"})
DEFAULT_POLL_INTERVAL_SECONDS = 300
# Stored values parsed per json.loads call when loading intervals (see _parsed_rows).
_PARSE_BATCH = 5000
# Resources evaluated together: bounds the raw intervals held in memory at once.
RESOURCE_BATCH = 100


class EvaluationError(HistoryError):
    """The period cannot be evaluated (no history in it, or a bad period)."""


# --- the period -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC, on whole seconds."""

    start: datetime
    end: datetime
    label: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise EvaluationError("period bounds must be timezone-aware UTC")
        if self.end <= self.start:
            raise EvaluationError(f"period {self.label}: end must be after start")

    @classmethod
    def month(cls, text: str) -> Period:
        """A calendar month, "2026-10"."""
        try:
            first = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
        except ValueError as error:
            raise EvaluationError(f"{text!r} is not a month like 2026-10") from error
        following = (first + timedelta(days=32)).replace(day=1)
        return cls(first, following, text)

    @classmethod
    def between(cls, start: datetime, end: datetime) -> Period:
        label = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        return cls(start.astimezone(UTC), end.astimezone(UTC), label)

    @property
    def start_epoch(self) -> int:
        return epoch(self.start)

    @property
    def end_epoch(self) -> int:
        return epoch(self.end)

    @property
    def seconds(self) -> int:
        return self.end_epoch - self.start_epoch

    def previous(self) -> Period:
        """The period before, for month-over-month trends (the previous calendar month)."""
        if self.start.day == 1 and self.end == (self.start + timedelta(days=32)).replace(day=1):
            before = (self.start - timedelta(days=1)).replace(day=1)
            return Period(before, self.start, f"{before:%Y-%m}")
        return Period.between(self.start - (self.end - self.start), self.start)

    def day_starts(self) -> list[int]:
        return list(range(day_start(self.start_epoch), self.end_epoch, DAY_SECONDS))


@dataclass(frozen=True, slots=True)
class Policies:
    rpo: RpoPolicy
    rto_seconds: Mapping[str, float]
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    parameters: ControlParameters = field(default_factory=ControlParameters)

    def rto_for(self, tier: str) -> float | None:
        return self.rto_seconds.get(tier)


# --- evidence -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """One stored state with its effective end (same rule as history_figures.Span)."""

    kind: str
    key: tuple[Any, ...]
    start: int
    end: int
    value: Mapping[str, Any]
    key_text: str = ""  # the stored key (canonical JSON)
    resource_key: str = ""  # the stored resource key: the resource's, or a replication source's


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    state: str
    created: int
    message_category: str


@dataclass(frozen=True, slots=True)
class ResourceEvidence:
    key: str
    account_id: str
    region: str
    service: str
    resource_type: str
    resource_id: str
    name: str
    tier: str  # at the end of the period (or when last seen)
    tiers: tuple[tuple[int, str], ...]  # (from, tier) changes in the period, oldest first
    tags: Mapping[str, str]
    data_class: str
    first_seen: int  # ever (history), epoch
    last_seen: int
    gone: bool
    lifetime_start: int  # in the period
    lifetime_end: int
    # False when compaction removed the raw intervals that bound its life in the period:
    # then creation, deletion and unobserved time cannot be told apart.
    lifetime_known: bool
    figures: ResourceFigures
    daily: Mapping[int, ResourceFigures]
    # The raw intervals while the resource controls run; empty in an Evaluation's resources
    # (evaluate drops them batch by batch: a month of them does not fit in memory at once).
    recovery: tuple[Interval, ...]
    replication: tuple[Interval, ...]
    jobs: tuple[JobRecord, ...]
    compacted_jobs: Mapping[str, int]
    restores: tuple[RestoreTestRecord, ...]
    raw: bool  # raw intervals exist for it in the period
    poll_interval_seconds: int  # of the most frequent unit in its account and region

    @property
    def label(self) -> str:
        shown = self.name if self.name and self.name != self.resource_id else ""
        suffix = f" ({shown})" if shown else ""
        where = f"{self.account_id} {self.region} {self.service}/{self.resource_type}"
        return f"{where} {self.resource_id}{suffix}"

    @property
    def lifetime_seconds(self) -> int:
        return max(self.lifetime_end - self.lifetime_start, 0)

    def created_in(self, period: Period) -> bool:
        return self.lifetime_known and period.start_epoch < self.first_seen < period.end_epoch

    def deleted_in(self, period: Period) -> bool:
        return (
            self.lifetime_known
            and self.gone
            and period.start_epoch <= self.last_seen < period.end_epoch
        )


@dataclass(frozen=True, slots=True)
class UnitEvidence:
    key: str
    collector: str
    account_id: str
    region: str
    covered_seconds: int
    runs: int
    successful_runs: int
    gaps: tuple[tuple[int, int, str], ...]  # (start, end, error codes) of uncovered time
    interval_seconds: int  # typical time between polls (median)

    @property
    def label(self) -> str:
        return f"{self.collector} {self.account_id} {self.region}"


@dataclass(frozen=True, slots=True)
class Finding:
    control_id: str
    subject_key: str
    subject: str
    status: Status
    facts: str
    first_seen: int | None = None  # when the failing condition was first observed
    duration_seconds: int | None = None  # how long it held in the period
    open: bool = False  # still failing at the end of the period


@dataclass(frozen=True, slots=True)
class ControlResult:
    control: Control
    findings: tuple[Finding, ...]

    @property
    def counts(self) -> Mapping[Status, int]:
        counts = dict.fromkeys(Status, 0)
        for finding in self.findings:
            counts[finding.status] += 1
        return MappingProxyType(counts)

    @property
    def status(self) -> Status:
        return worst(f.status for f in self.findings)


@dataclass(frozen=True, slots=True)
class Evaluation:
    period: Period
    resources: tuple[ResourceEvidence, ...]
    units: tuple[UnitEvidence, ...]
    drills: tuple[DrillRecord, ...]
    results: tuple[ControlResult, ...]
    daily_resources: Mapping[int, ResourceFigures]  # all resources combined, per day
    daily_jobs: Mapping[int, Mapping[str, int]]  # backup jobs by final state, per creation day
    rolled_up_until: int

    def result(self, control_id: str) -> ControlResult:
        for result in self.results:
            if result.control.control_id == control_id:
                return result
        raise KeyError(control_id)


# --- loading ----------------------------------------------------------------------------------


def load_intervals(
    db: Database, start: int, end: int, resource_keys: Sequence[str]
) -> list[Interval]:
    """Resource, recovery and replication intervals of these resources (a replication's by
    its source) whose effective span touches [start, end)."""
    marks = ", ".join("?" for _ in resource_keys)
    # Only "?" placeholders are formatted into the query; the keys are bound parameters.
    cursor = db.execute(
        "SELECT k.kind, s.key_seq, k.key, k.resource_key, s.value, s.first_seen, s.last_seen, "  # noqa: S608
        "s.continues FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE k.kind IN ('resource', 'recovery', 'replication') "
        f"AND k.resource_key IN ({marks}) AND s.first_seen < ? "
        "AND s.last_seen >= ? ORDER BY s.key_seq, s.first_seen, s.seq",
        [*resource_keys, end + MAX_HOLD_SECONDS, start - MAX_HOLD_SECONDS],
    )
    out: list[Interval] = []
    # Per thing, parsed and held once, not once per interval (a month holds a million).
    keys: dict[int, tuple[tuple[Any, ...], str, str]] = {}
    # Each row with the next one (streamed: the rows of a month do not fit twice in memory).
    following: Iterable[tuple[Any, ...] | None] = itertools.chain(_parsed_rows(cursor), [None])
    for previous, row in itertools.pairwise(following):
        if previous is None:
            continue
        kind, key_seq, key, resource, value, first_seen, last_seen, _ = previous
        stop = last_seen
        follows = row is not None and row[1] == key_seq and row[7]
        if follows and row is not None and row[5] - stop <= MAX_HOLD_SECONDS:
            stop = row[5]
        if max(first_seen, start) < min(stop, end):  # overlaps, by more than a point
            if key_seq not in keys:
                keys[key_seq] = (tuple(json.loads(key)), key, resource or "")
            parsed_key, key_text, resource_key = keys[key_seq]
            out.append(
                Interval(
                    kind=kind,
                    key=parsed_key,
                    start=max(first_seen, start),
                    end=min(stop, end),
                    value=value,
                    key_text=key_text,
                    resource_key=resource_key,
                )
            )
    return out


def _parsed_rows(cursor: Iterable[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
    """The rows with their value column parsed, a batch of values per json.loads call: the
    decoder shares equal key strings within one call, so the million value dicts of a month
    share their keys instead of each holding copies (a gigabyte at 1,000 resources)."""
    rows = iter(cursor)
    while batch := list(itertools.islice(rows, _PARSE_BATCH)):
        values = json.loads("[" + ",".join(row[4] for row in batch) + "]")
        for row, value in zip(batch, values, strict=True):
            yield (*row[:4], value, *row[5:])


def _load_backup_jobs(db: Database, start: int, end: int) -> dict[str, list[JobRecord]]:
    rows = db.query(
        "SELECT job_id, state, resource_key, created_epoch, value FROM job_events j "
        "WHERE kind = 'backup' AND created_epoch >= ? AND created_epoch < ? "
        "AND seq = (SELECT max(seq) FROM job_events i WHERE i.job_id = j.job_id) "
        "ORDER BY created_epoch, job_id",
        [start, end],
    )
    jobs: dict[str, list[JobRecord]] = defaultdict(list)
    for row in rows:
        category = str(json.loads(row["value"]).get("message_category", ""))
        jobs[row["resource_key"]].append(
            JobRecord(row["job_id"], row["state"], row["created_epoch"], category)
        )
    return jobs


def _daily_figures(
    db: Database, start: int, split: int, end: int
) -> tuple[dict[tuple[int, str], ResourceFigures], dict[tuple[int, str], UnitFigures]]:
    """Per (day, resource) and (day, unit): rollups before `split`, raw jobs and runs after
    (the raw intervals' figures are added resource by resource, see `_evaluate_resources`)."""
    resources: dict[tuple[int, str], ResourceFigures] = {}
    units: dict[tuple[int, str], UnitFigures] = {}
    if split > start:
        rows = db.query(
            "SELECT day, scope, key, figures FROM daily_rollups WHERE day >= ? AND day < ?",
            [day_label(start), day_label(split)],
        )
        for row in rows:
            data, day = json.loads(row["figures"]), day_from_label(row["day"])
            if row["scope"] == "resource":
                resources[(day, row["key"])] = ResourceFigures.from_json(data)
            else:
                units[(day, row["key"])] = UnitFigures(data["runs"], data["successful_runs"])
    if end > split:
        for (day, key), counts in job_days(db, split, end).items():
            jobs = ResourceFigures(jobs_by_state=MappingProxyType(dict(counts)))
            resources[(day, key)] = resources.get((day, key), ResourceFigures()).combine(jobs)
        units.update(unit_runs_by_day(db, split, end))
    return resources, units


def _latest_values(db: Database, end: int) -> dict[str, Mapping[str, Any]]:
    """Each resource's newest stored value before `end` (else its oldest after): name, tier
    and tags for resources whose intervals in the period were compacted away."""
    rows = db.execute(
        "SELECT k.resource_key, s.value, s.first_seen < ? FROM states s "
        "JOIN state_keys k ON k.seq = s.key_seq WHERE k.kind = 'resource' "
        "ORDER BY s.first_seen",
        [end],
    )
    latest: dict[str, Mapping[str, Any]] = {}
    for key, value, before in rows:
        if before or key not in latest:
            latest[key] = json.loads(value)
    return latest


def _resource_rows(db: Database) -> dict[str, tuple[int, int, bool]]:
    rows = db.query(
        "SELECT resource_key, min(first_seen) AS first, max(last_seen) AS last, "
        "min(gone) AS gone FROM resources GROUP BY resource_key"
    )
    return {r["resource_key"]: (r["first"], r["last"], bool(r["gone"])) for r in rows}


def evaluate(
    db: Database, period: Period, policies: Policies, *, resource_batch: int = RESOURCE_BATCH
) -> Evaluation:
    """Every control over `period`. Read inside one transaction: one consistent state.

    `resource_batch` resources are evaluated at a time (memory; the result is the same)."""
    start, end = period.start_epoch, period.end_epoch
    with db.atomic():
        if (
            not db.execute(
                "SELECT 1 FROM unit_runs WHERE started_epoch < ? LIMIT 1", [end]
            ).fetchone()
            and not db.execute(
                "SELECT 1 FROM daily_rollups WHERE day < ? LIMIT 1", [day_label(end)]
            ).fetchone()
        ):
            raise EvaluationError(f"no history before the end of {period.label}")
        rolled = rolled_up_until_epoch(db)
        split = min(max(rolled, start), end)
        if split > start and (start % DAY_SECONDS or split % DAY_SECONDS):
            raise EvaluationError("periods reaching into compacted history must start at midnight")
        daily, unit_days = _daily_figures(db, start, split, end)
        jobs = _load_backup_jobs(db, split, end)
        longest_cadence = max(policies.parameters.restore_cadence_days.values(), default=0.0)
        restore_from = start - int(longest_cadence * DAY_SECONDS)
        restores = load_restore_tests(db, restore_from, end, rto_targets=policies.rto_seconds)
        drill_from = end - int(policies.parameters.drill_cadence_days * DAY_SECONDS)
        drills = load_drills(db, min(drill_from, start), end)
        lifetimes = _resource_rows(db)
        fallback = _latest_values(db, end) if split > start else {}
        units = _units(db, period, split, unit_days)
        intervals_by_place: dict[tuple[str, str], int] = {}
        for unit in units:
            place = (unit.account_id, unit.region)
            intervals_by_place[place] = min(
                intervals_by_place.get(place, unit.interval_seconds), unit.interval_seconds
            )
        known = _ResourceFacts(jobs, restores, lifetimes, split, intervals_by_place, fallback)
        resources, findings = _evaluate_resources(
            db, period, policies, daily, known, resource_batch
        )
    results = tuple(_run_controls(period, policies, findings, resources, units, drills))
    daily_all: dict[int, ResourceFigures] = {}
    for (day, _), figures in daily.items():
        daily_all[day] = daily_all.get(day, ResourceFigures()).combine(figures)
    daily_jobs: dict[int, dict[str, int]] = defaultdict(dict)
    for resource in resources:
        for job in resource.jobs:
            states = daily_jobs[day_start(job.created)]
            states[job.state] = states.get(job.state, 0) + 1
    return Evaluation(
        period=period,
        resources=tuple(resources),
        units=tuple(units),
        drills=tuple(d for d in drills if start <= epoch(d.incident_start) < end),
        results=results,
        daily_resources=MappingProxyType(daily_all),
        daily_jobs=MappingProxyType({k: MappingProxyType(v) for k, v in daily_jobs.items()}),
        rolled_up_until=rolled,
    )


@dataclass(frozen=True, slots=True)
class _ResourceFacts:
    """Evidence loaded for every resource at once (small next to the intervals)."""

    jobs: Mapping[str, list[JobRecord]]
    restores: Sequence[RestoreTestRecord]
    lifetimes: Mapping[str, tuple[int, int, bool]]
    split: int
    poll_intervals: Mapping[tuple[str, str], int]
    fallback: Mapping[str, Mapping[str, Any]]


def _resource_keys(db: Database) -> set[str]:
    rows = db.execute("SELECT DISTINCT resource_key FROM state_keys WHERE kind = 'resource'")
    return {row[0] for row in rows}


def _evaluate_resources(
    db: Database,
    period: Period,
    policies: Policies,
    daily: dict[tuple[int, str], ResourceFigures],
    known: _ResourceFacts,
    batch_size: int,
) -> tuple[list[ResourceEvidence], dict[str, list[Finding]]]:
    """Every resource's evidence and its resource-control findings, a batch of resources at
    a time: a month of raw intervals (a million at 1,000 resources) is loaded, judged and
    dropped batch by batch instead of held at once. Adds the raw figures to `daily`.

    The resources returned keep no intervals (`recovery` and `replication` are empty):
    the controls that need them have run.
    """
    split, end = known.split, period.end_epoch
    per_day: dict[str, dict[int, ResourceFigures]] = defaultdict(dict)
    for (day, key), figures in daily.items():
        per_day[key][day] = figures
    candidates = sorted(_resource_keys(db) | set(per_day))
    checks = _resource_checks()
    resources: list[ResourceEvidence] = []
    findings: dict[str, list[Finding]] = defaultdict(list)
    for offset in range(0, len(candidates), batch_size):
        batch = candidates[offset : offset + batch_size]
        intervals = load_intervals(db, split, end, batch) if split < end else []
        raw = resource_figures_by_day(intervals, split, end, policies.rpo)
        for (day, key), figures in raw.items():
            combined = daily.get((day, key), ResourceFigures()).combine(figures)
            daily[(day, key)] = per_day[key][day] = combined
        for resource in _resources(period, policies, intervals, per_day, known, batch):
            for control_id, check in checks:
                findings[control_id].append(check(resource, period, policies))
            resources.append(replace(resource, recovery=(), replication=()))
    return resources, findings


def _resources(
    period: Period,
    policies: Policies,
    intervals: Sequence[Interval],
    per_day: Mapping[str, Mapping[int, ResourceFigures]],
    known: _ResourceFacts,
    batch: Sequence[str],
) -> list[ResourceEvidence]:
    """The evidence of the resources of `batch` seen in the period (raw or in rollups)."""
    by_key: dict[str, list[Interval]] = defaultdict(list)
    replication: dict[str, list[Interval]] = defaultdict(list)
    for item in intervals:
        if item.kind == "replication":
            replication[item.resource_key].append(item)
        else:
            by_key[item.resource_key].append(item)
    restores_by: dict[tuple[str, str, str], list[RestoreTestRecord]] = defaultdict(list)
    for test in known.restores:
        restores_by[(test.account_id, test.region, test.resource_id)].append(test)
    keys = sorted(
        {k for k, items in by_key.items() if any(i.kind == "resource" for i in items)}
        | {key for key in batch if per_day.get(key)}
    )
    out = []
    for key in keys:
        out.append(
            _resource(
                key,
                period,
                policies,
                by_key.get(key, []),
                replication.get(key, []),
                per_day.get(key, {}),
                known.jobs.get(key, []),
                restores_by,
                known.lifetimes.get(key),
                known.split,
                known.poll_intervals,
                known.fallback.get(key, {}),
            )
        )
    return out


def _resource(
    key: str,
    period: Period,
    policies: Policies,
    items: Sequence[Interval],
    replication: Sequence[Interval],
    daily: Mapping[int, ResourceFigures],
    jobs: Sequence[JobRecord],
    restores_by: Mapping[tuple[str, str, str], list[RestoreTestRecord]],
    lifetime: tuple[int, int, bool] | None,
    split: int,
    poll_intervals: Mapping[tuple[str, str], int],
    fallback: Mapping[str, Any],
) -> ResourceEvidence:
    account_id, region, service, resource_type, resource_id = json.loads(key)
    states = sorted((i for i in items if i.kind == "resource"), key=lambda i: i.start)
    latest = states[-1].value if states else fallback
    tags = {str(k): str(v) for k, v in latest.get("tags", [])}
    tiers: list[tuple[int, str]] = []
    for state in states:
        tier = str(state.value.get("tier", ""))
        if not tiers or tiers[-1][1] != tier:
            tiers.append((state.start, tier))
    figures = ResourceFigures()
    for day_figures in daily.values():
        figures = figures.combine(day_figures)
    observed_days = sorted(d for d, f in daily.items() if f.observed_seconds)
    first, last, gone = lifetime or (
        observed_days[0] if observed_days else period.start_epoch,
        observed_days[-1] + DAY_SECONDS if observed_days else period.end_epoch,
        False,
    )
    lifetime_start = max(first, period.start_epoch)
    compacted_jobs: dict[str, int] = defaultdict(int)
    for day, day_figures in daily.items():
        if day < split:
            for job_state, count in day_figures.jobs_by_state.items():
                compacted_jobs[job_state] += count
    return ResourceEvidence(
        key=key,
        account_id=account_id,
        region=region,
        service=service,
        resource_type=resource_type,
        resource_id=resource_id,
        name=str(latest.get("name", resource_id)),
        tier=tiers[-1][1] if tiers else str(latest.get("tier", "")),
        tiers=tuple(tiers),
        tags=MappingProxyType(tags),
        data_class=policies.retention.class_for(service, resource_type, tags),
        first_seen=first,
        last_seen=last,
        gone=gone,
        lifetime_start=lifetime_start,
        lifetime_end=min(last, period.end_epoch) if gone else period.end_epoch,
        lifetime_known=lifetime is not None and split <= lifetime_start,
        figures=figures,
        daily=MappingProxyType(dict(daily)),
        recovery=tuple(sorted((i for i in items if i.kind == "recovery"), key=lambda i: i.start)),
        replication=tuple(sorted(replication, key=lambda i: i.start)),
        jobs=tuple(jobs),
        compacted_jobs=MappingProxyType(dict(compacted_jobs)),
        restores=tuple(restores_by.get((account_id, region, resource_id), [])),
        raw=bool(states),
        poll_interval_seconds=poll_intervals.get(
            (account_id, region), DEFAULT_POLL_INTERVAL_SECONDS
        ),
    )


def _units(
    db: Database, period: Period, split: int, unit_days: Mapping[tuple[int, str], UnitFigures]
) -> list[UnitEvidence]:
    start, end = period.start_epoch, period.end_epoch
    rows = db.query(
        "SELECT collector, account_id, region, started_epoch, success, error_code "
        "FROM unit_runs WHERE started_epoch >= ? AND started_epoch < ? "
        "ORDER BY collector, account_id, region, started_epoch",
        [max(split - DAY_SECONDS, start - DAY_SECONDS), end],
    )
    runs: dict[str, list[tuple[int, bool, str]]] = defaultdict(list)
    for row in rows:
        key = unit_key(row["collector"], row["account_id"], row["region"])
        runs[key].append((row["started_epoch"], bool(row["success"]), row["error_code"] or ""))
    compacted: dict[str, UnitFigures] = defaultdict(UnitFigures)
    compacted_cover: dict[str, int] = defaultdict(int)
    for (day, key), figures in unit_days.items():
        if day < split:
            compacted[key] = compacted[key].combine(figures)
            if figures.runs:
                compacted_cover[key] += DAY_SECONDS * figures.successful_runs // figures.runs
    out = []
    for key in sorted(set(runs) | set(compacted)):
        collector, account_id, region = json.loads(key)
        covered, gaps, interval = _coverage(runs.get(key, []), max(split, start), end)
        in_period = [r for r in runs.get(key, []) if r[0] >= start]
        out.append(
            UnitEvidence(
                key=key,
                collector=collector,
                account_id=account_id,
                region=region,
                covered_seconds=covered + compacted_cover[key],
                runs=len(in_period) + compacted[key].runs,
                successful_runs=sum(1 for r in in_period if r[1]) + compacted[key].successful_runs,
                gaps=tuple(gaps),
                interval_seconds=interval,
            )
        )
    return out


def _coverage(
    runs: Sequence[tuple[int, bool, str]], start: int, end: int
) -> tuple[int, list[tuple[int, int, str]], int]:
    """Seconds of [start, end) covered by successful polls, the uncovered gaps, the interval.

    A successful poll covers the time until the next poll, at most 1.5 typical intervals
    (the median gap between polls): an exporter that stopped polling stops covering.
    """
    times = [r[0] for r in runs]
    gaps_between = [b - a for a, b in itertools.pairwise(times) if b > a]
    interval = int(
        statistics.median(gaps_between) if gaps_between else DEFAULT_POLL_INTERVAL_SECONDS
    )
    if end <= start:
        return 0, [], interval
    hold = int(interval * 1.5)
    covered: list[tuple[int, int]] = []
    for index, (moment, success, _) in enumerate(runs):
        if not success:
            continue
        following = runs[index + 1][0] if index + 1 < len(runs) else moment + hold
        stop = min(following, moment + hold)
        if stop > start and moment < end:
            covered.append((max(moment, start), min(stop, end)))
    total = 0
    gaps: list[tuple[int, int, str]] = []
    cursor = start
    for seg_start, seg_end in covered:
        if seg_start > cursor:
            gaps.append((cursor, seg_start, _errors_between(runs, cursor, seg_start)))
        total += max(seg_end - max(seg_start, cursor), 0)
        cursor = max(cursor, seg_end)
    if cursor < end:
        gaps.append((cursor, end, _errors_between(runs, cursor, end)))
    return total, gaps, interval


def _errors_between(runs: Sequence[tuple[int, bool, str]], start: int, end: int) -> str:
    errors = sorted({r[2] for r in runs if start <= r[0] < end and not r[1] and r[2]})
    return ", ".join(errors) if errors else "no poll"


# --- controls -----------------------------------------------------------------------------


ResourceCheck = Callable[[ResourceEvidence, Period, Policies], Finding]


def _resource_checks() -> tuple[tuple[str, ResourceCheck], ...]:
    """The controls judged per resource, by id."""
    return (
        ("DRW-01", _drw01),
        ("DRW-02", _drw02),
        ("DRW-03", _drw03),
        ("DRW-04", _drw04),
        ("DRW-05", _drw05),
        ("DRW-06", _drw06),
        ("DRW-07", _drw07),
        ("DRW-08", _drw08),
        ("DRW-09", _drw09),
        ("DRW-10", _drw10),
        ("DRW-11", _drw11),
        ("DRW-12", _drw12),
    )


def _run_controls(
    period: Period,
    policies: Policies,
    resource_findings: Mapping[str, Sequence[Finding]],
    resources: Sequence[ResourceEvidence],
    units: Sequence[UnitEvidence],
    drills: Sequence[DrillRecord],
) -> Iterator[ControlResult]:
    """Every control's result: the per-resource findings (already judged, in resource
    order), DRW-13 per tier and DRW-14 per unit."""
    per_resource = {control_id for control_id, _ in _resource_checks()}
    for control in CONTROLS:
        if control.control_id in per_resource:
            findings = tuple(resource_findings.get(control.control_id, ()))
        elif control.control_id == "DRW-13":
            findings = tuple(_drw13(resources, drills, period, policies))
        else:
            findings = tuple(_drw14(u, period, policies) for u in units)
        yield ControlResult(control, findings)


def _finding(
    control_id: str, resource: ResourceEvidence, status: Status, facts: str, **extra: Any
) -> Finding:
    return Finding(control_id, resource.key, resource.label, status, facts, **extra)


def _day(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def _time(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _point_epoch(value: Mapping[str, Any], name: str) -> int | None:
    text = value.get(name)
    return epoch(datetime.fromisoformat(text)) if text else None


def _is_copy(resource: ResourceEvidence, item: Interval) -> bool:
    location = (item.key[-2], item.key[-1])
    return location != (resource.account_id, resource.region)


def _local(resource: ResourceEvidence) -> list[Interval]:
    return [i for i in resource.recovery if not _is_copy(resource, i)]


def _has_points(item: Interval) -> bool:
    return bool(item.value.get("newest_point")) or int(item.value.get("point_count", 0)) > 0


def _mechanism(item: Interval) -> str:
    return str(item.key[5])


def _not_observed(control_id: str, resource: ResourceEvidence) -> Finding:
    return _finding(
        control_id, resource, Status.INSUFFICIENT, "not observed in the period (no poll held it)"
    )


def _drw01(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    observed = resource.figures.observed_seconds
    if observed == 0:
        return _not_observed("DRW-01", resource)
    unprotected = resource.figures.unprotected_seconds
    mechanisms = sorted({_mechanism(i) for i in _local(resource) if i.value.get("enabled")})
    listed = f" ({', '.join(mechanisms)})" if mechanisms else ""
    if unprotected == 0:
        return _finding(
            "DRW-01",
            resource,
            Status.PASS,
            f"restorable point throughout {format_duration(observed)} observed{listed}",
        )
    bad_days = sorted(d for d, f in resource.daily.items() if f.unprotected_seconds)
    return _finding(
        "DRW-01",
        resource,
        Status.FAIL,
        f"no restorable point for {format_duration(unprotected)} of "
        f"{format_duration(observed)} observed ({format_percent(unprotected / observed)})"
        + (
            f"; enabled mechanisms: {', '.join(mechanisms)}"
            if mechanisms
            else "; no enabled backup mechanism"
        ),
        first_seen=bad_days[0],
        duration_seconds=unprotected,
        open=bad_days[-1] == max(resource.daily),
    )


def _tier_text(resource: ResourceEvidence, policies: Policies) -> str:
    if not resource.tier:
        return "tier no longer in the history (compacted); the rollups applied it"
    if len(resource.tiers) <= 1:
        return f"tier {resource.tier}"
    changes = ", then ".join(
        f"{tier} ({format_duration(policies.rpo.rpo_for(tier))} RPO) from {_day(moment)}"
        for moment, tier in resource.tiers
    )
    return f"tier {changes}"


def _drw02(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    figures = resource.figures
    observed = figures.observed_seconds
    if observed == 0:
        return _not_observed("DRW-02", resource)
    parameters = policies.parameters
    target = policies.rpo.rpo_for(resource.tier)
    if figures.worst_age_seconds is None:
        return _finding(
            "DRW-02",
            resource,
            Status.FAIL,
            f"no restorable point at any time in {format_duration(observed)} observed "
            f"(see DRW-01); target {format_duration(target)}",
            first_seen=resource.lifetime_start,
            duration_seconds=observed,
            open=True,
        )
    share = figures.within_rpo_seconds / observed
    worst_day = max(
        (d for d, f in resource.daily.items() if f.worst_age_seconds is not None),
        key=lambda d: (resource.daily[d].worst_age_seconds or 0, -d),
    )
    facts = (
        f"worst recovery point age {format_duration(figures.worst_age_seconds)} on "
        f"{_day(worst_day)} against {format_duration(target)} target "
        f"({_tier_text(resource, policies)}); {format_percent(share)} of the observed time "
        f"within RPO"
    )
    coverage = (
        observed / resource.lifetime_seconds
        if resource.lifetime_seconds and resource.lifetime_known
        else 1.0
    )
    interval = resource.poll_interval_seconds
    # Evidence has poll resolution: a point is credited from the poll that saw it. Polls
    # sparser than the RPO cannot show compliance; they still prove a violation when the
    # age exceeded the RPO by more than a poll interval.
    if interval > target and figures.worst_age_seconds - interval <= target:
        return _finding(
            "DRW-02",
            resource,
            Status.INSUFFICIENT,
            f"polled every {format_duration(interval)}, longer than the "
            f"{format_duration(target)} RPO: compliance cannot be shown at this resolution; "
            f"{facts}",
        )
    if coverage < parameters.monitoring_coverage:
        return _finding(
            "DRW-02",
            resource,
            Status.INSUFFICIENT,
            f"observed only {format_duration(observed)} of its "
            f"{format_duration(resource.lifetime_seconds)} in the period "
            f"({format_percent(coverage)}); {facts}",
        )
    if share >= parameters.rpo_compliance:
        return _finding("DRW-02", resource, Status.PASS, facts)
    late_days = sorted(
        d for d, f in resource.daily.items() if f.within_rpo_seconds < f.observed_seconds
    )
    last_day = max(resource.daily)
    return _finding(
        "DRW-02",
        resource,
        Status.FAIL,
        f"{facts} (required {format_percent(parameters.rpo_compliance)})",
        first_seen=late_days[0] if late_days else None,
        duration_seconds=observed - figures.within_rpo_seconds,
        open=bool(late_days) and late_days[-1] == last_day,
    )


def _retention_days(item: Interval) -> float | None:
    """Configured minimum retention of a mechanism, else the observed depth of its points."""
    configured = item.value.get("retention_min_days")
    if configured is not None:
        return float(configured)
    oldest = _point_epoch(item.value, "oldest_point")
    return (item.end - oldest) / DAY_SECONDS if oldest is not None else None


def _compacted(control_id: str, resource: ResourceEvidence) -> Finding:
    return _finding(
        control_id,
        resource,
        Status.INSUFFICIENT,
        "only daily rollups remain for the period (raw detail compacted); they do not keep "
        "this control's evidence",
    )


def _drw03(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    if not resource.raw:
        return _compacted("DRW-03", resource)
    policy = policies.retention.policy_for(resource.data_class)
    enabled = [i for i in _local(resource) if i.value.get("enabled")]
    if not enabled:
        return _finding(
            "DRW-03", resource, Status.NOT_APPLICABLE, "no enabled backup mechanism (see DRW-01)"
        )
    lowest: dict[str, tuple[float, Interval]] = {}
    for item in enabled:
        days = _retention_days(item)
        if days is None:
            continue
        mechanism = _mechanism(item)
        if mechanism not in lowest or days < lowest[mechanism][0]:
            lowest[mechanism] = (days, item)
    if not lowest:
        return _finding(
            "DRW-03", resource, Status.INSUFFICIENT, "retention not reported by any mechanism"
        )
    mechanism, (best, item) = max(lowest.items(), key=lambda pair: pair[1][0])
    facts = (
        f"longest retention {best:g} d ({mechanism}; lowest value in the period), "
        f"data class {resource.data_class} requires at least {policy.min_days} d"
    )
    if best >= policy.min_days:
        return _finding("DRW-03", resource, Status.PASS, facts)
    return _finding(
        "DRW-03",
        resource,
        Status.FAIL,
        facts,
        first_seen=item.start,
        duration_seconds=resource.lifetime_end - item.start,
        open=True,
    )


def _drw04(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    policy = policies.retention.policy_for(resource.data_class)
    if policy.max_days is None:
        return _finding(
            "DRW-04",
            resource,
            Status.NOT_APPLICABLE,
            f"data class {resource.data_class} sets no maximum retention",
        )
    if not resource.raw:
        return _compacted("DRW-04", resource)
    with_points = [i for i in resource.recovery if _has_points(i)]
    if not with_points:
        return _finding("DRW-04", resource, Status.NOT_APPLICABLE, "no recovery points held")
    problems: list[tuple[int, int, str]] = []
    for item in with_points:
        where = _mechanism(item) + (f" copy in {item.key[-1]}" if _is_copy(resource, item) else "")
        configured = item.value.get("retention_max_days")
        never = int(item.value.get("never_expire_count", 0))
        oldest = _point_epoch(item.value, "oldest_point")
        if configured is not None and configured > policy.max_days:
            problems.append((item.start, item.end, f"{where} keeps points {configured} d"))
        if never:
            problems.append((item.start, item.end, f"{never} {where} points never expire"))
        if oldest is not None and item.end - oldest > policy.max_seconds + EXPIRY_GRACE_SECONDS:
            age = format_duration(item.end - oldest)
            problems.append((item.start, item.end, f"{where} holds a point {age} old"))
    limit = f"data class {resource.data_class} allows at most {policy.max_days} d"
    if not problems:
        return _finding("DRW-04", resource, Status.PASS, f"no point kept past the maximum; {limit}")
    reasons = sorted({p[2] for p in problems})
    return _finding(
        "DRW-04",
        resource,
        Status.FAIL,
        f"{'; '.join(reasons[:4])}{' ...' if len(reasons) > 4 else ''}; {limit}",
        first_seen=min(p[0] for p in problems),
        duration_seconds=_union_seconds((p[0], p[1]) for p in problems),
        open=max(p[1] for p in problems) >= resource.lifetime_end,
    )


def _union_seconds(spans: Iterable[tuple[int, int]]) -> int:
    total, cursor = 0, None
    for start, end in sorted(spans):
        if cursor is None or start > cursor:
            total += end - start
            cursor = end
        elif end > cursor:
            total += end - cursor
            cursor = end
    return total


def _drw05(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    if not resource.raw:
        return _compacted("DRW-05", resource)
    with_points = [i for i in resource.recovery if _has_points(i)]
    if not with_points:
        return _finding("DRW-05", resource, Status.NOT_APPLICABLE, "no recovery points held")
    clear = [i for i in with_points if i.value.get("encrypted") is False]
    unknown = sorted({_mechanism(i) for i in with_points if i.value.get("encrypted") is None})
    if clear:
        mechanisms = ", ".join(sorted({_mechanism(i) for i in clear}))
        return _finding(
            "DRW-05",
            resource,
            Status.FAIL,
            f"unencrypted points: {mechanisms}",
            first_seen=min(i.start for i in clear),
            duration_seconds=_union_seconds((i.start, i.end) for i in clear),
            open=max(i.end for i in clear) >= resource.lifetime_end,
        )
    if unknown:
        return _finding(
            "DRW-05",
            resource,
            Status.INSUFFICIENT,
            f"encryption not reported for {', '.join(unknown)}",
        )
    mechanisms = ", ".join(sorted({_mechanism(i) for i in with_points}))
    return _finding("DRW-05", resource, Status.PASS, f"every point encrypted ({mechanisms})")


def _drw06(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    if not resource.raw:
        return _compacted("DRW-06", resource)
    with_points = [i for i in resource.recovery if _has_points(i)]
    if not with_points:
        return _finding("DRW-06", resource, Status.NOT_APPLICABLE, "no recovery points held")
    by_mechanism: dict[str, list[Interval]] = defaultdict(list)
    for item in with_points:
        by_mechanism[_mechanism(item)].append(item)
    locked = sorted(
        m for m, items in by_mechanism.items() if all(i.value.get("immutable") for i in items)
    )
    if locked:
        return _finding(
            "DRW-06",
            resource,
            Status.PASS,
            f"points locked against deletion throughout: {', '.join(locked)}",
        )
    return _finding(
        "DRW-06",
        resource,
        Status.FAIL,
        f"no mechanism's points are locked against deletion ({', '.join(sorted(by_mechanism))})",
        first_seen=resource.lifetime_start,
        duration_seconds=resource.lifetime_seconds,
        open=True,
    )


def _copy_ages(resource: ResourceEvidence, other: str) -> list[tuple[int, int | None, str]]:
    """(time, age of the newest copied point then, destination) for copies elsewhere.

    `other` is "region" or "account": which kind of elsewhere counts.
    """
    out: list[tuple[int, int | None, str]] = []
    for item in resource.recovery:
        account, region = str(item.key[-2]), str(item.key[-1])
        if (other == "region" and region != resource.region) or (
            other == "account" and account != resource.account_id
        ):
            newest = _point_epoch(item.value, "newest_point")
            out.append(
                (item.end, None if newest is None else item.end - newest, f"{account} {region}")
            )
    for item in resource.replication:
        kind, _, account, region = item.key[0], item.key[1], str(item.key[2]), str(item.key[3])
        elsewhere = (
            region != resource.region if other == "region" else account != resource.account_id
        )
        if kind in COPY_REPLICATION_KINDS and elsewhere:
            newest = _point_epoch(item.value, "latest_replicated_point")
            out.append(
                (item.end, None if newest is None else item.end - newest, f"{account} {region}")
            )
    return out


def _drw07(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    if not resource.raw:
        return _compacted("DRW-07", resource)
    ages = _copy_ages(resource, "region")
    limit = policies.parameters.copy_max_age_seconds
    if not ages:
        return _finding(
            "DRW-07",
            resource,
            Status.FAIL,
            "no copy in another region observed in the period",
            first_seen=resource.lifetime_start,
            duration_seconds=resource.lifetime_seconds,
            open=True,
        )
    destinations = ", ".join(sorted({a[2] for a in ages}))
    known = [a for a in ages if a[1] is not None]
    if not known:
        return _finding(
            "DRW-07", resource, Status.FAIL, f"copies in {destinations} hold no restorable point"
        )
    moment, age, _ = max(known, key=lambda a: (a[1] or 0, -a[0]))
    facts = (
        f"copies in {destinations}; oldest newest-copy age {format_duration(age)} on "
        f"{_day(moment)} against {format_duration(limit)}"
    )
    if (age or 0) <= limit:
        return _finding("DRW-07", resource, Status.PASS, facts)
    stale = [a for a in known if (a[1] or 0) > limit]
    return _finding(
        "DRW-07",
        resource,
        Status.FAIL,
        facts,
        first_seen=min(a[0] for a in stale),
        open=max(a[0] for a in stale) >= resource.lifetime_end,
    )


def _drw08(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    if not resource.raw:
        return _compacted("DRW-08", resource)
    ages = _copy_ages(resource, "account")
    if ages:
        destinations = ", ".join(sorted({a[2] for a in ages}))
        return _finding("DRW-08", resource, Status.PASS, f"copies in {destinations}")
    return _finding(
        "DRW-08",
        resource,
        Status.FAIL,
        "no copy in another account observed in the period",
        first_seen=resource.lifetime_start,
        duration_seconds=resource.lifetime_seconds,
        open=True,
    )


def _drw09(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    finished = [j for j in resource.jobs if j.state in FINISHED_JOB_STATES]
    ok = sum(1 for j in finished if j.state == "COMPLETED")
    total = len(finished)
    compacted_total = sum(n for s, n in resource.compacted_jobs.items() if s in FINISHED_JOB_STATES)
    ok += resource.compacted_jobs.get("COMPLETED", 0)
    total += compacted_total
    if total == 0:
        return _finding(
            "DRW-09", resource, Status.NOT_APPLICABLE, "no backup jobs recorded in the period"
        )
    rate = ok / total
    target = policies.parameters.job_success_rate
    failed = [j for j in finished if j.state != "COMPLETED"]
    facts = f"{ok} of {total} backup jobs completed ({format_percent(rate)})"
    if failed:
        categories = sorted({j.message_category for j in failed if j.message_category})
        facts += (
            f"; {len(failed)} failed from {_day(failed[0].created)} to {_day(failed[-1].created)}"
            + (f" ({', '.join(categories)})" if categories else "")
        )
    recovered = not finished or finished[-1].state == "COMPLETED"
    if failed and recovered:
        success_after = next(
            j for j in finished if j.state == "COMPLETED" and j.created > failed[-1].created
        )
        facts += f"; recovered {_day(success_after.created)}"
    if rate >= target and recovered:
        return _finding("DRW-09", resource, Status.PASS, facts)
    if not recovered:
        facts += "; newest job failed (not recovered)"
    return _finding(
        "DRW-09",
        resource,
        Status.FAIL,
        f"{facts}; required {format_percent(target)}",
        first_seen=failed[0].created if failed else None,
        duration_seconds=(
            (success_after.created if failed and recovered else resource.lifetime_end)
            - failed[0].created
            if failed
            else None
        ),
        open=not recovered,
    )


def _lag(item: Interval, parameters: ControlParameters) -> tuple[float | None, float, str]:
    """(measured, limit, unit) for one replication interval."""
    if item.key[0] in KAFKA_REPLICATION_KINDS and item.value.get("message_lag") is not None:
        return float(item.value["message_lag"]), parameters.kafka_message_lag, "messages"
    latency = item.value.get("latency_seconds")
    return (
        None if latency is None else float(latency),
        parameters.replication_lag_seconds,
        "seconds",
    )


def _show_lag(value: float, unit: str) -> str:
    return format_duration(value) if unit == "seconds" else f"{value:,.0f} messages"


def _drw10(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    if not resource.raw:
        return _compacted("DRW-10", resource)
    if not resource.replication:
        return _finding("DRW-10", resource, Status.NOT_APPLICABLE, "no replication configured")
    measured = [(item, *_lag(item, policies.parameters)) for item in resource.replication]
    unknown = [m for m in measured if m[1] is None]
    known = [m for m in measured if m[1] is not None]
    over = [m for m in known if (m[1] or 0) > m[2]]
    kinds = ", ".join(sorted({str(m[0].key[0]) for m in measured}))
    if over:
        item, value, limit, unit = max(over, key=lambda m: (m[1] or 0) / m[2])
        seconds = _union_seconds((m[0].start, m[0].end) for m in over)
        return _finding(
            "DRW-10",
            resource,
            Status.FAIL,
            f"{kinds} lag {_show_lag(value or 0, unit)} on {_day(item.start)} against "
            f"{_show_lag(limit, unit)}; over target for {format_duration(seconds)}",
            first_seen=min(m[0].start for m in over),
            duration_seconds=seconds,
            open=max(m[0].end for m in over) >= resource.lifetime_end,
        )
    if unknown:
        return _finding(
            "DRW-10",
            resource,
            Status.INSUFFICIENT,
            f"{kinds} lag unknown for "
            f"{format_duration(_union_seconds((m[0].start, m[0].end) for m in unknown))} "
            "(no replication metrics)",
        )
    item, value, limit, unit = max(known, key=lambda m: (m[1] or 0) / m[2])
    return _finding(
        "DRW-10",
        resource,
        Status.PASS,
        f"{kinds} worst lag {_show_lag(value or 0, unit)} on {_day(item.start)} within "
        f"{_show_lag(limit, unit)}",
    )


def _validated(test: RestoreTestRecord) -> bool:
    return test.status == "COMPLETED" and test.validation_status == "SUCCESSFUL"


def _test_time(test: RestoreTestRecord) -> int:
    return epoch(test.completed or test.started)


def _drw11(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    resource_class = service_class(resource.service)
    cadence_days = policies.parameters.restore_cadence_days.get(resource_class)
    if cadence_days is None:
        return _finding(
            "DRW-11",
            resource,
            Status.NOT_APPLICABLE,
            f"no restore-test cadence for resource class {resource_class}",
        )
    cadence = int(cadence_days * DAY_SECONDS)
    start, end = resource.lifetime_start, resource.lifetime_end
    good = sorted(_test_time(t) for t in resource.restores if _validated(t))
    before = [t for t in good if start - cadence < t < start]
    during = [t for t in good if start <= t < end]
    in_period = [t for t in resource.restores if start <= _test_time(t) < end]
    unvalidated = [t for t in in_period if not _validated(t)]
    rule = f"cadence {format_duration(cadence)} for {resource_class}"
    if not during and not before:
        detail = f"; {len(unvalidated)} restores not validated or failed" if unvalidated else ""
        return _finding(
            "DRW-11",
            resource,
            Status.FAIL,
            f"no validated restore test in the period ({rule}){detail}",
            first_seen=start,
            duration_seconds=end - start,
            open=True,
        )
    # The cadence counts from the last validated test before the period, else from the
    # period start (or creation): a new resource gets one cadence to get tested.
    points = [before[-1] if before else start, *during, end]
    gap_start, gap_end = max(itertools.pairwise(points), key=lambda g: g[1] - g[0])
    facts = (
        f"{len(during)} validated restores; longest interval without one "
        f"{format_duration(gap_end - gap_start)} ({_day(gap_start)} to {_day(gap_end)}), {rule}"
    )
    if unvalidated:
        facts += f"; {len(unvalidated)} not validated or failed"
    if gap_end - gap_start <= cadence:
        return _finding("DRW-11", resource, Status.PASS, facts)
    return _finding(
        "DRW-11",
        resource,
        Status.FAIL,
        facts,
        first_seen=gap_start + cadence,
        duration_seconds=gap_end - gap_start - cadence,
        open=gap_end == end,
    )


def _drw12(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    start, end = resource.lifetime_start, resource.lifetime_end
    tests = [t for t in resource.restores if start <= epoch(t.started) < end]
    if not tests:
        expected = service_class(resource.service) in policies.parameters.restore_cadence_days
        status = Status.INSUFFICIENT if expected else Status.NOT_APPLICABLE
        return _finding("DRW-12", resource, status, "no restore ran in the period")
    failed = [t for t in tests if t.status != "COMPLETED"]
    slow: list[tuple[RestoreTestRecord, float]] = []
    for test in tests:
        target = test.rto_target_seconds or policies.rto_for(test.tier or resource.tier)
        if test.duration_seconds is not None and target and test.duration_seconds > target:
            slow.append((test, target))
    if failed or slow:
        parts = [
            f"restore {format_duration(t.duration_seconds)} on {_day(epoch(t.started))} "
            f"against {format_duration(target)} RTO"
            for t, target in slow[:3]
        ]
        parts += [f"restore {t.status.lower()} on {_day(epoch(t.started))}" for t in failed[:3]]
        bad = [t for t, _ in slow] + failed
        return _finding(
            "DRW-12",
            resource,
            Status.FAIL,
            f"{'; '.join(parts)} ({len(bad)} of {len(tests)} restores)",
            first_seen=min(epoch(t.started) for t in bad),
            open=False,
        )
    longest = max(tests, key=lambda t: t.duration_seconds or 0)
    target = longest.rto_target_seconds or policies.rto_for(longest.tier or resource.tier)
    return _finding(
        "DRW-12",
        resource,
        Status.PASS,
        f"{len(tests)} restores, longest {format_duration(longest.duration_seconds)} against "
        f"{format_duration(target)} RTO",
    )


def _drill_passed(drill: DrillRecord) -> bool:
    return drill.result == "pass" and drill.rto_met is not False and drill.rpo_met is not False


def _drill_text(drill: DrillRecord) -> str:
    return (
        f"drill {drill.drill_id} ({drill.scenario}) on {_day(epoch(drill.incident_start))}: "
        f"RTO {format_duration(drill.measured_rto_seconds)} / "
        f"{format_duration(drill.rto_target_seconds)}, RPO "
        f"{format_duration(drill.measured_rpo_seconds)} / "
        f"{format_duration(drill.rpo_target_seconds)}, {drill.result or 'unfinished'}"
    )


def _drw13(
    resources: Sequence[ResourceEvidence],
    drills: Sequence[DrillRecord],
    period: Period,
    policies: Policies,
) -> Iterator[Finding]:
    cadence = int(policies.parameters.drill_cadence_days * DAY_SECONDS)
    since = period.end_epoch - cadence
    tiers = sorted({r.tier for r in resources if r.tier})
    for tier in tiers:
        relevant = [
            d
            for d in drills
            if since <= epoch(d.incident_start) < period.end_epoch
            and (d.tier == tier or f"tier:{tier}" in d.scope)
        ]
        passed = [d for d in relevant if _drill_passed(d)]
        window = f"since {_day(since)} (cadence {format_duration(cadence)})"
        if passed:
            yield Finding(
                "DRW-13", f"tier:{tier}", f"tier {tier}", Status.PASS, _drill_text(passed[-1])
            )
        elif relevant:
            yield Finding(
                "DRW-13",
                f"tier:{tier}",
                f"tier {tier}",
                Status.FAIL,
                f"no passed drill {window}; {_drill_text(relevant[-1])}",
                first_seen=epoch(relevant[-1].incident_start),
                open=True,
            )
        else:
            yield Finding(
                "DRW-13",
                f"tier:{tier}",
                f"tier {tier}",
                Status.FAIL,
                f"no DR drill recorded for tier {tier} {window}",
                first_seen=since,
                open=True,
            )


def _drw14(unit: UnitEvidence, period: Period, policies: Policies) -> Finding:
    share = unit.covered_seconds / period.seconds
    target = policies.parameters.monitoring_coverage
    gaps = sorted(unit.gaps, key=lambda g: g[1] - g[0], reverse=True)
    facts = (
        f"successful polls covered {format_percent(share)} of the period "
        f"({unit.successful_runs} of {unit.runs} polls succeeded)"
    )
    if gaps:
        longest = gaps[0]
        facts += (
            f"; {len(gaps)} gaps, longest {format_duration(longest[1] - longest[0])} from "
            f"{_time(longest[0])} ({longest[2]})"
        )
    status = Status.PASS if share >= target else Status.FAIL
    if status is Status.FAIL:
        facts += f"; required {format_percent(target)}"
    return Finding(
        "DRW-14",
        unit.key,
        unit.label,
        status,
        facts,
        first_seen=min((g[0] for g in gaps), default=None) if status is Status.FAIL else None,
        duration_seconds=period.seconds - unit.covered_seconds if status is Status.FAIL else None,
        open=bool(gaps) and gaps[0][1] >= period.end_epoch and status is Status.FAIL,
    )
