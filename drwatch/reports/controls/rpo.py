"""DRW-02: the recovery point age stays within the tier RPO (share of the observed time in
compliance, worst age)."""

from __future__ import annotations

from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import day_text, finding, not_observed
from drwatch.reports.evidence import Finding, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration, format_percent


def rpo_met(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-02: tier RPO; share of observed time within it >= rpo_compliance."""
    figures = resource.figures
    observed = figures.observed_seconds
    if observed == 0:
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
    facts = (
        f"worst recovery point age {format_duration(figures.worst_age_seconds)} on "
        f"{day_text(_worst_day(resource))} against {format_duration(target)} target "
        f"({_tier_text(resource, policies)}); {format_percent(share)} of the observed time "
        f"within RPO"
    )
    interval = resource.poll_interval_seconds
    # Evidence has poll resolution: a point is credited from the poll that saw it. Polls
    # sparser than the RPO cannot show compliance; they still prove a violation when the
    # age exceeded the RPO by more than a poll interval.
    if interval > target and figures.worst_age_seconds - interval <= target:
        return finding(
            "DRW-02",
            resource,
            Status.INSUFFICIENT,
            f"polled every {format_duration(interval)}, longer than the "
            f"{format_duration(target)} RPO: compliance cannot be shown at this resolution; "
            f"{facts}",
        )
    coverage = _coverage(resource)
    if coverage < parameters.monitoring_coverage:
        return finding(
            "DRW-02",
            resource,
            Status.INSUFFICIENT,
            f"observed only {format_duration(observed)} of its "
            f"{format_duration(resource.lifetime_seconds)} in the period "
            f"({format_percent(coverage)}); {facts}",
        )
    if share >= parameters.rpo_compliance:
        return finding("DRW-02", resource, Status.PASS, facts)
    return _late(resource, f"{facts} (required {format_percent(parameters.rpo_compliance)})")


def _worst_day(resource: ResourceEvidence) -> int:
    """The (first) day of the worst recovery point age."""
    return max(
        (d for d, f in resource.daily.items() if f.worst_age_seconds is not None),
        key=lambda d: (resource.daily[d].worst_age_seconds or 0, -d),
    )


def _coverage(resource: ResourceEvidence) -> float:
    """The share of its lifetime in the period the resource was observed (1 if unknown)."""
    if resource.lifetime_seconds and resource.lifetime_known:
        return resource.figures.observed_seconds / resource.lifetime_seconds
    return 1.0


def _late(resource: ResourceEvidence, facts: str) -> Finding:
    figures = resource.figures
    late_days = sorted(
        d for d, f in resource.daily.items() if f.within_rpo_seconds < f.observed_seconds
    )
    last_day = max(resource.daily)
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
