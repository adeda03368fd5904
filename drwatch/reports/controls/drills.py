"""DRW-13: a DR drill in the cadence before the period end, per tier, with measured RTO and
RPO within target."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from drwatch.core.units import DAY_SECONDS
from drwatch.history.drills import DrillRecord
from drwatch.history.store import epoch
from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import day_text
from drwatch.reports.evidence import Finding, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration


def drill_per_tier(
    resources: Sequence[ResourceEvidence],
    drills: Sequence[DrillRecord],
    period: Period,
    policies: Policies,
) -> Iterator[Finding]:
    """DRW-13: a passed drill within drill_cadence_days before the period end, for each tier
    of the resources."""
    cadence = int(policies.parameters.drill_cadence_days * DAY_SECONDS)
    since = period.end_epoch - cadence
    window = f"since {day_text(since)} (cadence {format_duration(cadence)})"
    for tier in sorted({r.tier for r in resources if r.tier}):
        relevant = [
            d
            for d in drills
            if since <= epoch(d.incident_start) < period.end_epoch
            and (d.tier == tier or f"tier:{tier}" in d.scope)
        ]
        passed = [d for d in relevant if _passed(d)]
        key, subject = f"tier:{tier}", f"tier {tier}"
        if passed:
            yield Finding("DRW-13", key, subject, Status.PASS, _drill_text(passed[-1]))
        elif relevant:
            yield Finding(
                "DRW-13",
                key,
                subject,
                Status.FAIL,
                f"no passed drill {window}; {_drill_text(relevant[-1])}",
                first_seen=epoch(relevant[-1].incident_start),
                open=True,
            )
        else:
            yield Finding(
                "DRW-13",
                key,
                subject,
                Status.FAIL,
                f"no DR drill recorded for tier {tier} {window}",
                first_seen=since,
                open=True,
            )


def _passed(drill: DrillRecord) -> bool:
    return drill.result == "pass" and drill.rto_met is not False and drill.rpo_met is not False


def _drill_text(drill: DrillRecord) -> str:
    return (
        f"drill {drill.drill_id} ({drill.scenario}) on {day_text(epoch(drill.incident_start))}: "
        f"RTO {format_duration(drill.measured_rto_seconds)} / "
        f"{format_duration(drill.rto_target_seconds)}, RPO "
        f"{format_duration(drill.measured_rpo_seconds)} / "
        f"{format_duration(drill.rpo_target_seconds)}, {drill.result or 'unfinished'}"
    )
