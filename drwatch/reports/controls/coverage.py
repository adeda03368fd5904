"""DRW-14: monitoring coverage, the share of the period with successful polls (evidence
completeness), per monitoring unit."""

from __future__ import annotations

from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import time_text
from drwatch.reports.evidence import Finding, Period, Policies, UnitEvidence
from drwatch.reports.render import format_duration, format_percent


def monitoring_coverage(unit: UnitEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-14: share of the period covered by successful polls >= monitoring_coverage."""
    share = unit.covered_seconds / period.seconds
    target = policies.parameters.monitoring_coverage
    gaps = sorted(unit.gaps, key=lambda g: g.seconds, reverse=True)
    facts = (
        f"successful polls covered {format_percent(share)} of the period "
        f"({unit.successful_runs} of {unit.runs} polls succeeded)"
    )
    if gaps:
        longest = gaps[0]
        facts += (
            f"; {len(gaps)} gaps, longest {format_duration(longest.seconds)} from "
            f"{time_text(longest.start)} ({longest.errors})"
        )
    if share >= target:
        return Finding("DRW-14", unit.key, unit.label, Status.PASS, facts)
    return Finding(
        "DRW-14",
        unit.key,
        unit.label,
        Status.FAIL,
        f"{facts}; required {format_percent(target)}",
        first_seen=min((g.start for g in gaps), default=None),
        duration_seconds=period.seconds - unit.covered_seconds,
        open=bool(gaps) and gaps[0].end >= period.end_epoch,
    )
