"""DRW-11 (restore tested on cadence and validated) and DRW-12 (restore time within RTO)."""

from __future__ import annotations

import itertools

from drwatch.core.units import DAY_SECONDS
from drwatch.history.drills import RestoreTestRecord
from drwatch.history.drills import resource_class as service_class
from drwatch.history.store import epoch
from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import day_text, finding
from drwatch.reports.evidence import Finding, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration


def restore_cadence(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-11: a validated restore at least every restore_cadence_days of its class."""
    resource_class = service_class(resource.service)
    cadence_days = policies.parameters.restore_cadence_days.get(resource_class)
    if cadence_days is None:
        return finding(
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
        return finding(
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
        f"{format_duration(gap_end - gap_start)} ({day_text(gap_start)} to "
        f"{day_text(gap_end)}), {rule}"
    )
    if unvalidated:
        facts += f"; {len(unvalidated)} not validated or failed"
    if gap_end - gap_start <= cadence:
        return finding("DRW-11", resource, Status.PASS, facts)
    return finding(
        "DRW-11",
        resource,
        Status.FAIL,
        facts,
        first_seen=gap_start + cadence,
        duration_seconds=gap_end - gap_start - cadence,
        open=gap_end == end,
    )


def _validated(test: RestoreTestRecord) -> bool:
    return test.status == "COMPLETED" and test.validation_status == "SUCCESSFUL"


def _test_time(test: RestoreTestRecord) -> int:
    return epoch(test.completed or test.started)


def restore_time(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-12: restore duration <= tier RTO (the test's own target when it has one)."""
    start, end = resource.lifetime_start, resource.lifetime_end
    tests = [t for t in resource.restores if start <= epoch(t.started) < end]
    if not tests:
        expected = service_class(resource.service) in policies.parameters.restore_cadence_days
        status = Status.INSUFFICIENT if expected else Status.NOT_APPLICABLE
        return finding("DRW-12", resource, status, "no restore ran in the period")
    failed = [t for t in tests if t.status != "COMPLETED"]
    slow: list[tuple[RestoreTestRecord, float]] = []
    for test in tests:
        target = _rto(test, resource, policies)
        if test.duration_seconds is not None and target and test.duration_seconds > target:
            slow.append((test, target))
    if failed or slow:
        parts = [
            f"restore {format_duration(t.duration_seconds)} on {day_text(epoch(t.started))} "
            f"against {format_duration(target)} RTO"
            for t, target in slow[:3]
        ]
        parts += [f"restore {t.status.lower()} on {day_text(epoch(t.started))}" for t in failed[:3]]
        bad = [t for t, _ in slow] + failed
        return finding(
            "DRW-12",
            resource,
            Status.FAIL,
            f"{'; '.join(parts)} ({len(bad)} of {len(tests)} restores)",
            first_seen=min(epoch(t.started) for t in bad),
            open=False,
        )
    longest = max(tests, key=lambda t: t.duration_seconds or 0)
    return finding(
        "DRW-12",
        resource,
        Status.PASS,
        f"{len(tests)} restores, longest {format_duration(longest.duration_seconds)} against "
        f"{format_duration(_rto(longest, resource, policies))} RTO",
    )


def _rto(test: RestoreTestRecord, resource: ResourceEvidence, policies: Policies) -> float | None:
    """The test's own RTO target, else its tier's (the resource's when it has none)."""
    return test.rto_target_seconds or policies.rto_for(test.tier or resource.tier)
