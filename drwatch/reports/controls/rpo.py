"""DRW-02: the recovery point age stays within the tier RPO (share of the observed time in
compliance, worst age).

The ages over time are `drwatch.history.figures`' (rules in `drwatch.history.coverage`):
a continuously advancing mechanism is held at its lag between two polls that saw it move,
a discrete point ages linearly, and time no successful poll covered is not observed (it
counts against DRW-14, never as a breach here). A resource seen only at an instant is
judged at that instant.
"""

from __future__ import annotations

from dataclasses import replace

from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import (
    day_text,
    finding,
    is_copy,
    not_observed,
    point_epoch,
    time_text,
)
from drwatch.reports.evidence import Finding, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration, format_percent


def rpo_met(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-02: tier RPO; share of observed time within it >= rpo_compliance."""
    figures = resource.figures
    observed = figures.observed_seconds
    if observed == 0:
        if resource.instant is not None:
            return _at_instant(resource, resource.instant, policies)
        return not_observed("DRW-02", resource)
    parameters = policies.parameters
    target = policies.rpo.rpo_for(resource.tier)
    if figures.worst_age_seconds is None:
        return finding(
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
    values = {"worst_age_seconds": float(figures.worst_age_seconds)}
    facts = (
        f"worst recovery point age {format_duration(figures.worst_age_seconds)} on "
        f"{day_text(_worst_day(resource))} against {format_duration(target)} target "
        f"({_tier_text(resource, policies)}); {format_percent(share)} of the observed time "
        f"within RPO"
    )
    interval = resource.poll_interval_seconds
    coverage = _coverage(resource)
    if coverage < parameters.monitoring_coverage:
        return finding(
            "DRW-02",
            resource,
            Status.INSUFFICIENT,
            f"observed only {format_duration(observed)} of its "
            f"{format_duration(resource.lifetime_seconds)} in the period "
            f"({format_percent(coverage)}); {facts}",
            values=values,
        )
    if share >= parameters.rpo_compliance:
        return finding("DRW-02", resource, Status.PASS, facts, values=values)
    # A discrete point is credited from the poll that saw it, so polls sparser than the RPO
    # prove nothing by themselves: an age beyond the RPO by less than a poll interval may be
    # a point made between the polls. A larger excess is a proven violation.
    if interval > target and figures.worst_age_seconds - interval <= target:
        return finding(
            "DRW-02",
            resource,
            Status.INSUFFICIENT,
            f"polled every {format_duration(interval)}, longer than the "
            f"{format_duration(target)} RPO, and nothing proves compliance in between (no "
            f"continuously advancing mechanism seen moving); {facts}",
            values=values,
        )
    late = f"{facts} (required {format_percent(parameters.rpo_compliance)})"
    return replace(_late(resource, late), values=values)


def _at_instant(resource: ResourceEvidence, moment: int, policies: Policies) -> Finding:
    """A resource whose observations in the period cover no time: its age when seen."""
    target = policies.rpo.rpo_for(resource.tier)
    points = [
        point
        for item in resource.recovery
        if item.start <= moment <= item.end
        and not is_copy(resource, item)
        and (point := point_epoch(item.value, "newest_point")) is not None
    ]
    seen = f"observed at one instant only in the period ({time_text(moment)})"
    if not points:
        return finding(
            "DRW-02",
            resource,
            Status.FAIL,
            f"{seen}: no restorable point then (see DRW-01); target {format_duration(target)}",
            first_seen=moment,
            duration_seconds=0,
            open=True,
        )
    age = max(moment - max(points), 0)
    facts = (
        f"{seen}: recovery point age {format_duration(age)} then against "
        f"{format_duration(target)} target ({_tier_text(resource, policies)})"
    )
    values = {"age_seconds": float(age)}
    if age <= target:
        return finding("DRW-02", resource, Status.PASS, facts, values=values)
    return finding(
        "DRW-02",
        resource,
        Status.FAIL,
        facts,
        first_seen=moment,
        duration_seconds=0,
        open=True,
        values=values,
    )


def _worst_day(resource: ResourceEvidence) -> int:
    """The (first) day of the worst recovery point age."""
    return max(
        (d for d, f in resource.daily.items() if f.worst_age_seconds is not None),
        key=lambda d: (resource.daily[d].worst_age_seconds or 0, -d),
    )


def _coverage(resource: ResourceEvidence) -> float:
    """The share of its lifetime in the period the resource was seen by polls (1 if
    unknown). Time its unit's polls failed or stopped (unwatched) is DRW-14's, not this."""
    if resource.lifetime_seconds and resource.lifetime_known:
        figures = resource.figures
        return (figures.observed_seconds + figures.unwatched_seconds) / resource.lifetime_seconds
    return 1.0


def _late(resource: ResourceEvidence, facts: str) -> Finding:
    figures = resource.figures
    late_days = sorted(
        d for d, f in resource.daily.items() if f.within_rpo_seconds < f.observed_seconds
    )
    last_day = max(resource.daily, default=None)
    return finding(
        "DRW-02",
        resource,
        Status.FAIL,
        facts,
        first_seen=late_days[0] if late_days else None,
        duration_seconds=figures.observed_seconds - figures.within_rpo_seconds,
        open=bool(late_days) and late_days[-1] == last_day,
    )


def _tier_text(resource: ResourceEvidence, policies: Policies) -> str:
    if not resource.tier:
        return "tier no longer in the history (compacted); the rollups applied it"
    if len(resource.tiers) <= 1:
        return f"tier {resource.tier}"
    changes = ", then ".join(
        f"{change.tier} ({format_duration(policies.rpo.rpo_for(change.tier))} RPO) from "
        f"{day_text(change.start)}"
        for change in resource.tiers
    )
    return f"tier {changes}"
