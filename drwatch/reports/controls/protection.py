"""DRW-01: the resource is protected (a backup plan or native automated backups)."""

from __future__ import annotations

from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import (
    finding,
    has_points,
    local,
    mechanism,
    not_observed,
    time_text,
)
from drwatch.reports.evidence import Finding, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration, format_percent


def resource_protected(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-01: a restorable point at all observed times."""
    observed = resource.figures.observed_seconds
    if observed == 0 and resource.instant is not None:
        return _at_instant(resource, resource.instant)
    if observed == 0:
        return not_observed("DRW-01", resource)
    unprotected = resource.figures.unprotected_seconds
    mechanisms = sorted({mechanism(i) for i in local(resource) if i.value.get("enabled")})
    listed = f" ({', '.join(mechanisms)})" if mechanisms else ""
    if unprotected == 0:
        return finding(
            "DRW-01",
            resource,
            Status.PASS,
            f"restorable point throughout {format_duration(observed)} observed{listed}",
        )
    bad_days = sorted(d for d, f in resource.daily.items() if f.unprotected_seconds)
    return finding(
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


def _at_instant(resource: ResourceEvidence, moment: int) -> Finding:
    """A resource whose observations in the period cover no time: protected when seen?"""
    held = [i for i in local(resource) if i.start <= moment <= i.end]
    mechanisms = sorted({mechanism(i) for i in held if has_points(i)})
    seen = f"observed at one instant only in the period ({time_text(moment)})"
    if mechanisms:
        return finding(
            "DRW-01", resource, Status.PASS, f"{seen}: restorable point ({', '.join(mechanisms)})"
        )
    return finding(
        "DRW-01",
        resource,
        Status.FAIL,
        f"{seen}: no restorable point then",
        first_seen=moment,
        duration_seconds=0,
        open=True,
    )
