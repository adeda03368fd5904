"""Evaluating the controls over a period, from the history database only.

`evaluate(db, period, policies)` loads the period's evidence once (intervals, daily figures,
jobs, unit runs, restores, drills), builds one `ResourceEvidence` per resource seen in the
period, and runs every control of the catalogue through its registered check
(`drwatch.reports.controls.CHECKS`) on its population: resources (DRW-01..12), tiers
(DRW-13) and monitoring units (DRW-14). Each subject gets a `Finding`: a status and the
facts that decided it, in words a reader can check against the evidence.

Time semantics are those of `drwatch.history.figures` (a state holds until its next
observation when that continues it within a day), so figures here agree with the rollups
after compaction. Days already compacted have only daily rollups: controls that need the
raw intervals (retention, encryption, copies...) say "insufficient evidence" for resources
seen only there, never guess.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import assert_never

from sqlite_utils import Database

from drwatch.core.units import DAY_SECONDS
from drwatch.history.drill_status import load_restore_tests
from drwatch.history.drills import DrillRecord, load_drills
from drwatch.history.figures import (
    PollGaps,
    ResourceFigures,
    day_from_label,
    day_start,
    resource_figures_by_day,
)
from drwatch.history.schema import migrations
from drwatch.history.store import epoch, rolled_up_until_epoch
from drwatch.reports.catalogue import CONTROLS
from drwatch.reports.controls import (
    FLOW_CHECKS,
    RESOURCE_CHECKS,
    PerFlow,
    PerResource,
    PerTier,
    PerUnit,
    check_for,
)
from drwatch.reports.evidence import (
    ControlResult,
    Evaluation,
    EvaluationError,
    Finding,
    Period,
    Policies,
    ResourceEvidence,
    UnitEvidence,
)
from drwatch.reports.loading import (
    ResourceFacts,
    daily_figures,
    flow_evidence,
    latest_values,
    lifetimes,
    load_backup_jobs,
    load_intervals,
    resource_evidence,
    resource_keys,
    time_controlled_flows,
)
from drwatch.reports.units import load_units

# Resources evaluated together: bounds the raw intervals held in memory at once.
RESOURCE_BATCH = 100


def evaluate(
    db: Database, period: Period, policies: Policies, *, resource_batch: int = RESOURCE_BATCH
) -> Evaluation:
    """Every control over `period`. Read inside one transaction: one consistent state.

    `resource_batch` resources are evaluated at a time (memory; the result is the same)."""
    start, end = period.start_epoch, period.end_epoch
    with db.atomic():
        _require_history(db, period)
        rolled = rolled_up_until_epoch(db)
        split = min(max(rolled, start), end)
        if split > start and (start % DAY_SECONDS or split % DAY_SECONDS):
            raise EvaluationError("periods reaching into compacted history must start at midnight")
        daily, unit_days = daily_figures(db, start, split, end)
        drill_from = end - int(policies.parameters.drill_cadence_days * DAY_SECONDS)
        drills = load_drills(db, min(drill_from, start), end)
        units = load_units(db, period, split, unit_days)
        known = _resource_facts(db, period, policies, split, units)
        resources, findings = _evaluate_resources(
            db, period, policies, daily, known, resource_batch
        )
    return Evaluation(
        period=period,
        resources=tuple(resources),
        units=tuple(units),
        drills=tuple(d for d in drills if start <= epoch(d.incident_start) < end),
        results=tuple(_run_controls(period, policies, findings, resources, units, drills)),
        daily_resources=MappingProxyType(_daily_all(daily)),
        daily_jobs=MappingProxyType(
            {k: MappingProxyType(v) for k, v in _daily_jobs(resources).items()}
        ),
        rolled_up_until=rolled,
    )


def _require_history(db: Database, period: Period) -> None:
    """A history this version reads, holding polls (or rollups) that reach into the period;
    else an `EvaluationError` that says which (the CLI exits 2 and writes nothing)."""
    _require_schema(db)
    start, end = period.start_epoch, period.end_epoch
    first, last = db.execute(
        "SELECT min(started_epoch), max(started_epoch) FROM unit_runs"
    ).fetchone()
    days = db.execute("SELECT min(day), max(day) FROM daily_rollups").fetchone()
    if days[0] is not None:
        first = min(day_from_label(days[0]), first if first is not None else end)
        last = max(day_from_label(days[1]) + DAY_SECONDS - 1, last if last is not None else 0)
    if first is None or last is None:
        raise EvaluationError(
            f"the history is empty (no poll recorded yet): no history before the end of "
            f"{period.label}"
        )
    if first >= end:
        raise EvaluationError(
            f"no history before the end of {period.label}: the history starts {_when(first)}"
        )
    if last < start:
        raise EvaluationError(
            f"no history in {period.label}: the history ends {_when(last)}, before the "
            "period starts"
        )


def _require_schema(db: Database) -> None:
    """The history's schema is this version's: written by another drwatch version (older
    or newer), or by another tool, it is refused rather than misread."""
    known = [m.name for m in migrations.pending(Database(memory=True))]  # every step
    try:
        applied = [m.name for m in migrations.applied(db)]
    except sqlite3.DatabaseError as error:
        raise EvaluationError(f"not a drwatch history database ({error})") from error
    if not applied:
        raise EvaluationError("not a drwatch history database (no drwatch schema in it)")
    newer = [name for name in applied if name not in known]
    if newer:
        raise EvaluationError(
            f"the history was written by a newer drwatch version (schema steps "
            f"{', '.join(newer)} are unknown to this one): report with that version"
        )
    missing = [name for name in known if name not in applied]
    if missing:
        raise EvaluationError(
            f"the history was written by an older drwatch version (schema steps "
            f"{', '.join(missing)} missing): open it once with this version's "
            "`drwatch history verify` or `drwatch serve`, which upgrade it, then report"
        )


def _when(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _resource_facts(
    db: Database, period: Period, policies: Policies, split: int, units: Sequence[UnitEvidence]
) -> ResourceFacts:
    """What every resource's evidence needs besides its intervals, loaded at once."""
    start, end = period.start_epoch, period.end_epoch
    longest_cadence = max(policies.parameters.restore_cadence_days.values(), default=0.0)
    restore_from = start - int(longest_cadence * DAY_SECONDS)
    intervals_by_place: dict[tuple[str, str], int] = {}
    for unit in units:
        place = (unit.account_id, unit.region)
        intervals_by_place[place] = min(
            intervals_by_place.get(place, unit.interval_seconds), unit.interval_seconds
        )
    return ResourceFacts(
        jobs=load_backup_jobs(db, split, end),
        restores=load_restore_tests(db, restore_from, end, rto_targets=policies.rto_seconds),
        lifetimes=lifetimes(db),
        split=split,
        poll_intervals=intervals_by_place,
        fallback=latest_values(db, end) if split > start else {},
        time_controlled=time_controlled_flows(db, split, end) if split < end else frozenset(),
    )


def _evaluate_resources(
    db: Database,
    period: Period,
    policies: Policies,
    daily: dict[tuple[int, str], ResourceFigures],
    known: ResourceFacts,
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
    candidates = sorted(resource_keys(db) | set(per_day))
    gaps = PollGaps.load(db, split, end) if split < end else PollGaps.none()
    resources: list[ResourceEvidence] = []
    findings: dict[str, list[Finding]] = defaultdict(list)
    for offset in range(0, len(candidates), batch_size):
        batch = candidates[offset : offset + batch_size]
        intervals = load_intervals(db, split, end, batch) if split < end else []
        raw = resource_figures_by_day(intervals, split, end, policies.rpo, gaps)
        for (day, key), figures in raw.items():
            combined = daily.get((day, key), ResourceFigures()).combine(figures)
            daily[(day, key)] = per_day[key][day] = combined
        for resource in resource_evidence(period, policies, intervals, per_day, known, batch):
            for entry in RESOURCE_CHECKS:
                findings[entry.control_id].append(entry.check(resource, period, policies))
            resources.append(replace(resource, recovery=(), replication=()))
        for flow in flow_evidence(intervals, known.time_controlled):
            for flow_entry in FLOW_CHECKS:
                findings[flow_entry.control_id].append(flow_entry.check(flow, period, policies))
    return resources, findings


def _run_controls(
    period: Period,
    policies: Policies,
    resource_findings: Mapping[str, Sequence[Finding]],
    resources: Sequence[ResourceEvidence],
    units: Sequence[UnitEvidence],
    drills: Sequence[DrillRecord],
) -> Iterator[ControlResult]:
    """Every catalogue control's result, through its registered check: the per-resource
    and per-flow findings (already judged, batch by batch), per tier, per unit."""
    for control in CONTROLS:
        entry = check_for(control.control_id)
        match entry:
            case PerResource() | PerFlow():
                findings = tuple(resource_findings.get(control.control_id, ()))
            case PerTier():
                findings = tuple(entry.check(resources, drills, period, policies))
            case PerUnit():
                findings = tuple(entry.check(u, period, policies) for u in units)
            case _:
                assert_never(entry)
        yield ControlResult(control, findings)


def _daily_all(daily: Mapping[tuple[int, str], ResourceFigures]) -> dict[int, ResourceFigures]:
    """All resources' figures combined, per day."""
    daily_all: dict[int, ResourceFigures] = {}
    for (day, _), figures in daily.items():
        daily_all[day] = daily_all.get(day, ResourceFigures()).combine(figures)
    return daily_all


def _daily_jobs(resources: Sequence[ResourceEvidence]) -> dict[int, dict[str, int]]:
    """Backup jobs by final state, per creation day."""
    daily_jobs: dict[int, dict[str, int]] = defaultdict(dict)
    for resource in resources:
        for job in resource.jobs:
            states = daily_jobs[day_start(job.created)]
            states[job.state] = states.get(job.state, 0) + 1
    return daily_jobs
