"""Loading the evidence of the monitoring units (collector, account, region) from the history:
which share of the period their successful polls covered, and the gaps (DRW-14)."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from sqlite_utils import Database

from drwatch.core.units import DAY_SECONDS
from drwatch.history.figures import UnitFigures, decode_unit_key, unit_key
from drwatch.reports.evidence import CoverageGap, Period, UnitEvidence

DEFAULT_POLL_INTERVAL_SECONDS = 300


class _Poll(NamedTuple):
    started: int
    success: bool
    error_code: str


class _Coverage(NamedTuple):
    covered_seconds: int
    gaps: list[CoverageGap]
    interval_seconds: int  # the typical time between polls


def load_units(
    db: Database, period: Period, split: int, unit_days: Mapping[tuple[int, str], UnitFigures]
) -> list[UnitEvidence]:
    """Every unit polled in the period: raw runs from `split`, daily rollups before."""
    start, end = period.start_epoch, period.end_epoch
    runs = _polls(db, max(split - DAY_SECONDS, start - DAY_SECONDS), end)
    compacted: dict[str, UnitFigures] = defaultdict(UnitFigures)
    compacted_cover: dict[str, int] = defaultdict(int)
    for (day, key), figures in unit_days.items():
        if day < split:
            compacted[key] = compacted[key].combine(figures)
            if figures.runs:
                compacted_cover[key] += DAY_SECONDS * figures.successful_runs // figures.runs
    out = []
    for key in sorted(set(runs) | set(compacted)):
        unit = decode_unit_key(key)
        coverage = _coverage(runs.get(key, []), max(split, start), end)
        in_period = [r for r in runs.get(key, []) if r.started >= start]
        out.append(
            UnitEvidence(
                key=key,
                collector=unit.collector,
                account_id=unit.account_id,
                region=unit.region,
                covered_seconds=coverage.covered_seconds + compacted_cover[key],
                runs=len(in_period) + compacted[key].runs,
                successful_runs=sum(1 for r in in_period if r.success)
                + compacted[key].successful_runs,
                gaps=tuple(coverage.gaps),
                interval_seconds=coverage.interval_seconds,
            )
        )
    return out


def _polls(db: Database, start: int, end: int) -> dict[str, list[_Poll]]:
    """Each unit's polls started in [start, end), oldest first."""
    rows = db.query(
        "SELECT collector, account_id, region, started_epoch, success, error_code "
        "FROM unit_runs WHERE started_epoch >= ? AND started_epoch < ? "
        "ORDER BY collector, account_id, region, started_epoch",
        [start, end],
    )
    runs: dict[str, list[_Poll]] = defaultdict(list)
    for row in rows:
        key = unit_key(row["collector"], row["account_id"], row["region"])
        runs[key].append(
            _Poll(row["started_epoch"], bool(row["success"]), row["error_code"] or "")
        )
    return runs


def _coverage(runs: Sequence[_Poll], start: int, end: int) -> _Coverage:
    """Seconds of [start, end) covered by successful polls, the uncovered gaps, the interval.

    A successful poll covers the time until the next poll, at most 1.5 typical intervals
    (the median gap between polls): an exporter that stopped polling stops covering.
    """
    times = [r.started for r in runs]
    gaps_between = [b - a for a, b in itertools.pairwise(times) if b > a]
    interval = int(
        statistics.median(gaps_between) if gaps_between else DEFAULT_POLL_INTERVAL_SECONDS
    )
    if end <= start:
        return _Coverage(0, [], interval)
    total = 0
    gaps: list[CoverageGap] = []
    cursor = start
    for seg_start, seg_end in _covered(runs, start, end, int(interval * 1.5)):
        if seg_start > cursor:
            gaps.append(CoverageGap(cursor, seg_start, _errors_between(runs, cursor, seg_start)))
        total += max(seg_end - max(seg_start, cursor), 0)
        cursor = max(cursor, seg_end)
    if cursor < end:
        gaps.append(CoverageGap(cursor, end, _errors_between(runs, cursor, end)))
    return _Coverage(total, gaps, interval)


def _covered(runs: Sequence[_Poll], start: int, end: int, hold: int) -> list[tuple[int, int]]:
    """The time each successful poll covers within [start, end), in poll order."""
    covered: list[tuple[int, int]] = []
    for index, poll in enumerate(runs):
        if not poll.success:
            continue
        following = runs[index + 1].started if index + 1 < len(runs) else poll.started + hold
        stop = min(following, poll.started + hold)
        if stop > start and poll.started < end:
            covered.append((max(poll.started, start), min(stop, end)))
    return covered


def _errors_between(runs: Sequence[_Poll], start: int, end: int) -> str:
    errors = sorted(
        {r.error_code for r in runs if start <= r.started < end and not r.success and r.error_code}
    )
    return ", ".join(errors) if errors else "no poll"
