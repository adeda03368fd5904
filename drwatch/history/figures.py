"""The figures reports take from history, per resource and per unit, over any period.

Time semantics (the same for raw intervals and rollups, so compaction cannot change a
report): a state observed by a poll holds until the next observation of the same thing
when that observation continues it (`continues`: the thing was in the unit's previous
successful poll) and comes within `MAX_HOLD_SECONDS`; otherwise it ends at its
`last_seen`. A lone observation covers no time. Between the last poll that saw a state and
the poll that saw the next one (its "bridge"), `drwatch.history.coverage` decides: time no
successful poll covered is unobserved (counted by DRW-14, never in these figures), and a
continuously advancing mechanism's point is held at the larger of its two lags; within a
state's own polls the point provably did not move and ages linearly. Every figure is
additive (sums) or a maximum over time, so the figures of a month equal the combination of
its days' figures; all arithmetic is on whole seconds, so "equal" means equal.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from sqlite_utils import Database

from drwatch.core.units import DAY_SECONDS
from drwatch.history.coverage import PollGaps as PollGaps
from drwatch.history.coverage import bridge_age
from drwatch.history.coverage import decode_unit_key as decode_unit_key
from drwatch.history.coverage import unit_key as unit_key
from drwatch.history.store import HistoryError, RecoveryKey, epoch

MAX_HOLD_SECONDS = 86400


@dataclass(frozen=True, slots=True)
class RpoPolicy:
    """RPO target per tier (seconds); `default_seconds` for tiers the config no longer has."""

    targets: Mapping[str, float]
    default_seconds: float

    def rpo_for(self, tier: str) -> int:
        return int(self.targets.get(tier, self.default_seconds))


@dataclass(frozen=True, slots=True)
class ResourceFigures:
    observed_seconds: int = 0
    within_rpo_seconds: int = 0
    unprotected_seconds: int = 0  # observed with no restorable point at all
    worst_age_seconds: int | None = None  # worst recovery point age over the period
    max_stored_bytes: int = 0
    jobs_by_state: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # Time between two polls that saw the resource's state change while no successful poll
    # covered it: in its life, but not observed (DRW-14 counts it, never DRW-02).
    unwatched_seconds: int = 0

    def combine(self, other: ResourceFigures) -> ResourceFigures:
        ages = [a for a in (self.worst_age_seconds, other.worst_age_seconds) if a is not None]
        return ResourceFigures(
            unwatched_seconds=self.unwatched_seconds + other.unwatched_seconds,
            observed_seconds=self.observed_seconds + other.observed_seconds,
            within_rpo_seconds=self.within_rpo_seconds + other.within_rpo_seconds,
            unprotected_seconds=self.unprotected_seconds + other.unprotected_seconds,
            worst_age_seconds=max(ages) if ages else None,
            max_stored_bytes=max(self.max_stored_bytes, other.max_stored_bytes),
            jobs_by_state=_add_counts(self.jobs_by_state, other.jobs_by_state),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "observed_seconds": self.observed_seconds,
            "within_rpo_seconds": self.within_rpo_seconds,
            "unprotected_seconds": self.unprotected_seconds,
            "worst_age_seconds": self.worst_age_seconds,
            "max_stored_bytes": self.max_stored_bytes,
            "jobs_by_state": dict(sorted(self.jobs_by_state.items())),
            "unwatched_seconds": self.unwatched_seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResourceFigures:
        return cls(
            observed_seconds=data["observed_seconds"],
            within_rpo_seconds=data["within_rpo_seconds"],
            unprotected_seconds=data["unprotected_seconds"],
            worst_age_seconds=data["worst_age_seconds"],
            max_stored_bytes=data["max_stored_bytes"],
            jobs_by_state=MappingProxyType(dict(data["jobs_by_state"])),
            unwatched_seconds=data.get("unwatched_seconds", 0),  # rollups before it: none
        )


def _add_counts(first: Mapping[str, int], second: Mapping[str, int]) -> Mapping[str, int]:
    """Sum of two job counts. Reports combine figures per resource and day thousands of
    times, mostly with no jobs on one side: that side adds nothing, so no copy is made."""
    if not second:
        return first
    if not first:
        return second
    total = dict(first)
    for state, count in second.items():
        total[state] = total.get(state, 0) + count
    # Counter addition drops zero counts; so does this, so either spelling combines alike.
    return MappingProxyType({state: count for state, count in total.items() if count > 0})


@dataclass(frozen=True, slots=True)
class UnitFigures:
    runs: int = 0
    successful_runs: int = 0

    def combine(self, other: UnitFigures) -> UnitFigures:
        return UnitFigures(self.runs + other.runs, self.successful_runs + other.successful_runs)

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "successful_runs": self.successful_runs}


@dataclass(frozen=True, slots=True)
class Figures:
    resources: Mapping[str, ResourceFigures]
    units: Mapping[str, UnitFigures]


@dataclass(frozen=True, slots=True)
class Span:
    """One state interval with its effective end (see the module docstring)."""

    seq: int
    kind: str
    key_seq: int
    key: str
    resource_key: str
    start: int
    end: int
    value: Mapping[str, Any]
    last_seen: int = 0  # the last poll that saw this value; after it, the bridge
    unit: str = ""  # the unit key of the unit that observed it
    bridge_age: int | None = None  # see drwatch.history.coverage.bridge_age

    @property
    def key_text(self) -> str:
        return self.key


class SpanLike(Protocol):
    """What the figures read of an interval: a `Span`, or `drwatch.reports.evidence.Interval`
    (read as it is: copying a million intervals into Spans cost seconds and memory)."""

    @property
    def kind(self) -> str: ...
    @property
    def key_text(self) -> str: ...
    @property
    def resource_key(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def value(self) -> Mapping[str, Any]: ...
    @property
    def last_seen(self) -> int: ...
    @property
    def unit(self) -> str: ...
    @property
    def bridge_age(self) -> int | None: ...


# --- loading raw intervals ----------------------------------------------------------------


def load_spans(db: Database, start: int, end: int) -> list[Span]:
    """Resource and recovery intervals whose effective span may touch [start, end)."""
    rows = db.query(
        "SELECT s.seq, k.kind, s.key_seq, k.key, k.resource_key, s.value, s.first_seen, "
        "s.last_seen, s.continues, k.collector, k.account_id, k.region "
        "FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE k.kind IN ('resource', 'recovery') AND s.first_seen < ? AND s.last_seen >= ? "
        "ORDER BY s.key_seq, s.first_seen, s.seq",
        [end + MAX_HOLD_SECONDS, start - MAX_HOLD_SECONDS],
    )
    return list(_with_effective_ends(rows))


def _with_effective_ends(rows: Iterable[dict[str, Any]]) -> Iterator[Span]:
    previous: dict[str, Any] | None = None
    keys: dict[int, RecoveryKey | None] = {}  # decoded once per thing, not per interval
    for row in rows:
        row = {**row, "value": json.loads(row["value"])}
        if row["key_seq"] not in keys:
            recovery = row["kind"] == "recovery"
            keys[row["key_seq"]] = RecoveryKey.from_key(row["key"]) if recovery else None
        if previous is not None:
            follows = previous["key_seq"] == row["key_seq"] and row["continues"]
            yield _span(previous, row if follows else None, keys[previous["key_seq"]])
        previous = row
    if previous is not None:
        yield _span(previous, None, None)


def _span(
    row: Mapping[str, Any], successor: Mapping[str, Any] | None, recovery: RecoveryKey | None
) -> Span:
    end, age = row["last_seen"], None
    if successor is not None and successor["first_seen"] - end <= MAX_HOLD_SECONDS:
        end = successor["first_seen"]
        seen = (row["first_seen"], row["last_seen"])
        age = bridge_age(recovery, row["value"], seen, successor["value"], end)
    return Span(
        seq=row["seq"],
        kind=row["kind"],
        key_seq=row["key_seq"],
        key=row["key"],
        resource_key=row["resource_key"],
        start=row["first_seen"],
        end=end,
        value=row["value"],
        last_seen=row["last_seen"],
        unit=unit_key(row["collector"] or "", row["account_id"] or "", row["region"] or ""),
        bridge_age=age,
    )


def job_states(db: Database, start: int, end: int) -> dict[str, Counter[str]]:
    """Jobs created in [start, end) per resource, counted by their latest recorded state."""
    latest = db.query(
        "SELECT resource_key, state FROM job_events j WHERE created_epoch >= ? "
        "AND created_epoch < ? AND seq = (SELECT max(seq) FROM job_events i "
        "WHERE i.job_id = j.job_id)",
        [start, end],
    )
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in latest:
        counts[row["resource_key"]][row["state"]] += 1
    return counts


def job_days(db: Database, start: int, end: int) -> dict[tuple[int, str], Counter[str]]:
    """Like `job_states`, bucketed by (creation day start, resource)."""
    latest = db.query(
        "SELECT resource_key, state, created_epoch FROM job_events j WHERE created_epoch >= ? "
        "AND created_epoch < ? AND seq = (SELECT max(seq) FROM job_events i "
        "WHERE i.job_id = j.job_id)",
        [start, end],
    )
    counts: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    for row in latest:
        counts[(day_start(row["created_epoch"]), row["resource_key"])][row["state"]] += 1
    return counts


def unit_runs_by_day(db: Database, start: int, end: int) -> dict[tuple[int, str], UnitFigures]:
    rows = db.query(
        "SELECT collector, account_id, region, started_epoch, success FROM unit_runs "
        "WHERE started_epoch >= ? AND started_epoch < ?",
        [start, end],
    )
    figures: dict[tuple[int, str], UnitFigures] = defaultdict(UnitFigures)
    for row in rows:
        unit = unit_key(row["collector"], row["account_id"], row["region"])
        bucket = (day_start(row["started_epoch"]), unit)
        figures[bucket] = figures[bucket].combine(UnitFigures(1, int(row["success"])))
    return figures


# --- computing ------------------------------------------------------------------------------


def day_start(moment: int) -> int:
    return moment - moment % DAY_SECONDS


def day_label(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


def day_from_label(label: str) -> int:
    return epoch(datetime.fromisoformat(label).replace(tzinfo=UTC))


def resource_figures_by_day(
    spans: Iterable[SpanLike], start: int, end: int, policy: RpoPolicy, gaps: PollGaps
) -> dict[tuple[int, str], ResourceFigures]:
    """Figures per (day start, resource key) over [start, end), from raw spans (resource
    and recovery intervals; others are ignored); `gaps`: the time no successful poll of
    each unit covered (`PollGaps.load` over the same window)."""
    by_resource: dict[str, list[SpanLike]] = defaultdict(list)
    for span in spans:
        if span.kind in ("resource", "recovery"):
            by_resource[span.resource_key].append(span)
    out: dict[tuple[int, str], ResourceFigures] = {}
    for key, resource_spans in by_resource.items():
        days: dict[int, _DayTotals] = {}
        for seg_start, seg_end, held in _segments(resource_spans, start, end, policy, gaps):
            day = day_start(seg_start)
            totals = days.get(day)
            if totals is None:
                totals = days[day] = _DayTotals()
            totals.add(seg_start, seg_end, held)
        for day, totals in days.items():
            out[(day, key)] = totals.figures()
    return out


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A span as the sweep needs it, decoded once per span (not once per segment): a
    resource span's RPO (of its tier), or a recovery span's stored bytes and, for an enabled
    local mechanism, its newest point."""

    start: int
    end: int
    rpo: int | None  # None: a recovery span
    stored_bytes: int = 0
    newest: int | None = None
    last_seen: int = 0  # from here to `end`: the bridge to the next poll's state
    unit: str = ""  # "": not judged for coverage (copies: another unit's evidence)
    bridge_age: int | None = None  # continuous mechanism: the age bound in its bridge


@dataclass(frozen=True, slots=True)
class _Held:
    """What holds during a segment: the tier's RPO, the bytes stored, the newest discrete
    point (ageing linearly) and the age bound of continuous mechanisms between two polls."""

    rpo: int
    stored_bytes: int
    newest: int | None
    bridged_age: int | None = None
    unwatched: bool = False  # it changed while no successful poll covered it


@dataclass(slots=True)
class _DayTotals:
    """Running sums of one resource's day; the frozen ResourceFigures is built once at the
    end (combining a frozen value per segment made a new object per segment)."""

    observed: int = 0
    within: int = 0
    unprotected: int = 0
    worst_age: int | None = None
    stored: int = 0
    unwatched: int = 0

    def add(self, seg_start: int, seg_end: int, held: _Held) -> None:
        length = seg_end - seg_start
        if held.unwatched:
            self.unwatched += length
            return
        self.observed += length
        self.stored = max(self.stored, held.stored_bytes)
        point, bridged = held.newest, held.bridged_age
        if point is None and bridged is None:
            self.unprotected += length
            return
        if bridged is not None and bridged <= held.rpo:
            self.within += length
        elif point is not None:
            self.within += min(max(point + held.rpo - seg_start, 0), length)
        ages = [a for a in (None if point is None else seg_end - point, bridged) if a is not None]
        age = min(ages)
        if self.worst_age is None or age > self.worst_age:
            self.worst_age = age

    def figures(self) -> ResourceFigures:
        return ResourceFigures(
            observed_seconds=self.observed,
            within_rpo_seconds=self.within,
            unprotected_seconds=self.unprotected,
            worst_age_seconds=self.worst_age,
            max_stored_bytes=self.stored,
            unwatched_seconds=self.unwatched,
        )


def _decode(span: SpanLike, policy: RpoPolicy, copies: dict[str, bool]) -> _Decoded:
    value = span.value
    if span.kind == "resource":
        rpo = policy.rpo_for(str(value["tier"]))
        return _Decoded(span.start, span.end, rpo, last_seen=span.last_seen, unit=span.unit)
    newest_text = value.get("newest_point")
    copy = copies.get(span.key_text)
    if copy is None:
        copy = copies[span.key_text] = _is_copy(span.key_text)
    # Every restorable local point counts, the mechanism enabled or not (a manual snapshot,
    # the points of a removed backup selection): the exporter's
    # drwatch_resource_recovery_point_timestamp_seconds takes the newest of them alike.
    local = bool(newest_text) and not copy
    return _Decoded(
        span.start,
        span.end,
        None,
        # Stored values omit defaults (see history.compact_json): size 0, no newest point.
        int(value.get("size_bytes", 0)),
        epoch(datetime.fromisoformat(str(newest_text))) if local else None,
        last_seen=span.last_seen,
        unit="" if copy else span.unit,
        bridge_age=span.bridge_age if local else None,
    )


def _held(active: list[_Decoded], moment: int, gaps: PollGaps) -> _Held | None:
    """None when no resource span holds: not observed, no evidence either way. Unwatched
    when `moment` lies between two polls that saw the resource's state change and no
    successful poll covered it."""
    rpo: int | None = None
    stored = 0
    newest: int | None = None
    bridged: int | None = None
    unwatched = False
    for item in active:
        between = moment >= item.last_seen
        # It changed while nothing watched: unobserved (DRW-14's time), whatever else holds.
        unwatched = unwatched or (between and bool(item.unit) and gaps.uncovered(item.unit, moment))
        if item.rpo is not None:
            rpo = item.rpo  # the latest-starting resource state's tier is in force
            continue
        stored += item.stored_bytes
        if item.newest is None:
            continue
        if between and item.bridge_age is not None:
            bridged = item.bridge_age if bridged is None else min(bridged, item.bridge_age)
        elif newest is None or item.newest > newest:
            newest = item.newest
    return None if rpo is None else _Held(rpo, stored, newest, bridged, unwatched)


def _segments(
    spans: list[SpanLike], start: int, end: int, policy: RpoPolicy, gaps: PollGaps
) -> Iterator[tuple[int, int, _Held]]:
    """Elementary observed time segments (split at every span edge, bridge start, coverage
    gap edge and midnight) with what holds in each."""
    edges = {start, end}
    marks: set[int] = set()  # where what holds may change without a span starting or ending
    for span in spans:
        edges.update(e for e in (span.start, span.end) if start < e < end)
        if span.start <= span.last_seen < span.end:
            marks.add(span.last_seen)
    for unit in {span.unit for span in spans if span.unit}:
        marks.update(gaps.edges(unit, start, end))
    marks = {m for m in marks if start < m < end}
    edges |= marks
    first_day = day_start(start) + DAY_SECONDS
    edges.update(range(first_day, end, DAY_SECONDS))
    ordered = sorted(edges)
    copies: dict[str, bool] = {}  # per recovery key: hundreds of spans share a few keys
    # Sweep: every span edge is a segment edge, so a span covers a segment exactly when it
    # started at or before the segment's start and ends after it. What holds changes only
    # when a span starts or ends (not at midnight splits), so it is recomputed only then.
    pending = sorted((_decode(span, policy, copies) for span in spans), key=lambda d: d.start)
    next_pending = 0
    active: list[_Decoded] = []
    first_end = end  # the earliest end among the active spans
    held: _Held | None = None
    for seg_start, seg_end in itertools.pairwise(ordered):
        changed = False
        while next_pending < len(pending) and pending[next_pending].start <= seg_start:
            item = pending[next_pending]
            active.append(item)
            first_end = min(first_end, item.end)
            next_pending += 1
            changed = True
        if first_end <= seg_start:
            active = [item for item in active if item.end > seg_start]
            first_end = min((item.end for item in active), default=end)
            changed = True
        if changed or seg_start in marks:
            held = _held(active, seg_start, gaps)
        if held is not None:
            yield seg_start, seg_end, held


def _is_copy(recovery_key: str) -> bool:
    """Copies live elsewhere; the resource's RPO counts its local points, as metrics do."""
    return RecoveryKey.from_key(recovery_key).is_copy


def raw_figures(db: Database, start: int, end: int, policy: RpoPolicy) -> Figures:
    """Figures over [start, end) from raw intervals, jobs and unit runs only."""
    resources: dict[str, ResourceFigures] = {}
    spans = load_spans(db, start, end)
    gaps = PollGaps.load(db, start, end)
    for (_, key), figures in resource_figures_by_day(spans, start, end, policy, gaps).items():
        resources[key] = resources.get(key, ResourceFigures()).combine(figures)
    for key, counts in job_states(db, start, end).items():
        jobs = ResourceFigures(jobs_by_state=MappingProxyType(dict(counts)))
        resources[key] = resources.get(key, ResourceFigures()).combine(jobs)
    units: dict[str, UnitFigures] = {}
    for (_, unit), unit_figures in unit_runs_by_day(db, start, end).items():
        units[unit] = units.get(unit, UnitFigures()).combine(unit_figures)
    return Figures(MappingProxyType(resources), MappingProxyType(units))


def rollup_figures(db: Database, start: int, end: int) -> Figures:
    """Figures over whole days in [start, end) from the daily rollups."""
    resources: dict[str, ResourceFigures] = {}
    units: dict[str, UnitFigures] = {}
    rows = db.query(
        "SELECT day, scope, key, figures FROM daily_rollups WHERE day >= ? AND day < ?",
        [day_label(start), day_label(end)],
    )
    for row in rows:
        data = json.loads(row["figures"])
        if row["scope"] == "resource":
            figures = ResourceFigures.from_json(data)
            resources[row["key"]] = resources.get(row["key"], ResourceFigures()).combine(figures)
        elif row["scope"] == "unit":
            unit_figures = UnitFigures(data["runs"], data["successful_runs"])
            units[row["key"]] = units.get(row["key"], UnitFigures()).combine(unit_figures)
        else:
            raise HistoryError(f"daily_rollups: unknown scope {row['scope']!r}")
    return Figures(MappingProxyType(resources), MappingProxyType(units))


def period_figures(
    db: Database, start: datetime, end: datetime, policy: RpoPolicy, rolled_up_until: int
) -> Figures:
    """What a report uses: rollups for compacted days, raw data after them."""
    start_epoch, end_epoch = epoch(start), epoch(end)
    split = min(max(rolled_up_until, start_epoch), end_epoch)
    if split > start_epoch and (start_epoch % DAY_SECONDS or split % DAY_SECONDS):
        raise HistoryError("periods reaching into compacted history must start at midnight UTC")
    old = rollup_figures(db, start_epoch, split) if split > start_epoch else None
    new = raw_figures(db, split, end_epoch, policy) if end_epoch > split else None
    return _merge(old, new)


def _merge(first: Figures | None, second: Figures | None) -> Figures:
    if first is None or second is None:
        result = first or second
        if result is None:
            return Figures(MappingProxyType({}), MappingProxyType({}))
        return result
    resources = dict(first.resources)
    for key, figures in second.resources.items():
        resources[key] = resources.get(key, ResourceFigures()).combine(figures)
    units = dict(first.units)
    for key, unit_figures in second.units.items():
        units[key] = units.get(key, UnitFigures()).combine(unit_figures)
    return Figures(MappingProxyType(resources), MappingProxyType(units))
