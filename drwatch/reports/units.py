"""Loading the evidence of the monitoring units (collector, account, region) from the history:
which share of the period their successful polls covered, and the gaps (DRW-14)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from sqlite_utils import Database

from drwatch.core.units import DAY_SECONDS
from drwatch.history.coverage import DEFAULT_POLL_INTERVAL_SECONDS as DEFAULT_POLL_INTERVAL_SECONDS
from drwatch.history.coverage import (
    Poll,
    covered_spans,
    load_polls,
    typical_interval,
)
from drwatch.history.figures import UnitFigures, decode_unit_key
from drwatch.reports.evidence import CoverageGap, Period, UnitEvidence


class _Coverage(NamedTuple):
    covered_seconds: int
    gaps: list[CoverageGap]
    interval_seconds: int  # the typical time between polls


def load_units(
    db: Database, period: Period, split: int, unit_days: Mapping[tuple[int, str], UnitFigures]
) -> list[UnitEvidence]:
    """Every unit polled in the period: raw runs from `split`, daily rollups before."""
    start, end = period.start_epoch, period.end_epoch
    runs = load_polls(db, max(split - DAY_SECONDS, start - DAY_SECONDS), end)
    compacted: dict[str, UnitFigures] = defaultdict(UnitFigures)
    compacted_cover: dict[str, int] = defaultdict(int)
    for (day, key), figures in unit_days.items():
        # Only whole days before the split come from rollups; `unit_days` also holds the raw
        # runs' days, and the day a period starts in may begin before it (counting that day
        # as a rollup day once credited a five-minute period with a whole day of coverage).
        if day + DAY_SECONDS <= split:
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
                # A share of the period, never more (the parts are disjoint by construction).
                covered_seconds=min(
                    coverage.covered_seconds + compacted_cover[key], period.seconds
                ),
                runs=len(in_period) + compacted[key].runs,
                successful_runs=sum(1 for r in in_period if r.success)
                + compacted[key].successful_runs,
                gaps=tuple(coverage.gaps),
                interval_seconds=coverage.interval_seconds,
            )
        )
    return out


def _coverage(runs: Sequence[Poll], start: int, end: int) -> _Coverage:
    """Seconds of [start, end) covered by successful polls, the uncovered gaps, the interval
    (the rule is `drwatch.history.coverage`'s, the one the recovery point figures apply)."""
    interval = typical_interval(runs)
    if end <= start:
        return _Coverage(0, [], interval)
    total = 0
    gaps: list[CoverageGap] = []
    cursor = start
    for seg_start, seg_end in covered_spans(runs, start, end, interval):
        if seg_start > cursor:
            gaps.append(CoverageGap(cursor, seg_start, _errors_between(runs, cursor, seg_start)))
        total += max(seg_end - max(seg_start, cursor), 0)
        cursor = max(cursor, seg_end)
    if cursor < end:
        gaps.append(CoverageGap(cursor, end, _errors_between(runs, cursor, end)))
    return _Coverage(total, gaps, interval)


def _errors_between(runs: Sequence[Poll], start: int, end: int) -> str:
    errors = sorted(
        {r.error_code for r in runs if start <= r.started < end and not r.success and r.error_code}
    )
    return ", ".join(errors) if errors else "no poll"
