"""DRW-05 (recovery points encrypted) and DRW-06 (immutable: points locked against
deletion by a vault lock)."""

from __future__ import annotations

from collections import defaultdict

from drwatch.history.store import RecoveryKey
from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import (
    compacted,
    finding,
    has_points,
    mechanism,
    union_seconds,
)
from drwatch.reports.evidence import Finding, Interval, Period, Policies, ResourceEvidence


def encrypted(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-05: every mechanism's points encrypted."""
    if not resource.raw:
        return compacted("DRW-05", resource)
    with_points = [i for i in resource.recovery if has_points(i)]
    if not with_points:
        return finding("DRW-05", resource, Status.NOT_APPLICABLE, "no recovery points held")
    clear = [i for i in with_points if i.value.get("encrypted") is False]
    unknown = sorted({mechanism(i) for i in with_points if i.value.get("encrypted") is None})
    if clear:
        mechanisms = ", ".join(sorted({mechanism(i) for i in clear}))
        return finding(
            "DRW-05",
            resource,
            Status.FAIL,
            f"unencrypted points: {mechanisms}",
            first_seen=min(i.start for i in clear),
            duration_seconds=union_seconds((i.start, i.end) for i in clear),
            open=max(i.end for i in clear) >= resource.lifetime_end,
        )
    if unknown:
        return finding(
            "DRW-05",
            resource,
            Status.INSUFFICIENT,
            f"encryption not reported for {', '.join(unknown)}",
        )
    mechanisms = ", ".join(sorted({mechanism(i) for i in with_points}))
    return finding("DRW-05", resource, Status.PASS, f"every point encrypted ({mechanisms})")


def immutable(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-06: a mechanism whose points were locked against deletion throughout."""
    if not resource.raw:
        return compacted("DRW-06", resource)
    with_points = [i for i in resource.recovery if has_points(i)]
    if not with_points:
        return finding("DRW-06", resource, Status.NOT_APPLICABLE, "no recovery points held")
    by_mechanism: dict[str, list[Interval[RecoveryKey]]] = defaultdict(list)
    for item in with_points:
        by_mechanism[mechanism(item)].append(item)
    locked = sorted(
        m for m, items in by_mechanism.items() if all(i.value.get("immutable") for i in items)
    )
    if locked:
        return finding(
            "DRW-06",
            resource,
            Status.PASS,
            f"points locked against deletion throughout: {', '.join(locked)}",
        )
    return finding(
        "DRW-06",
        resource,
        Status.FAIL,
        f"no mechanism's points are locked against deletion ({', '.join(sorted(by_mechanism))})",
        first_seen=resource.lifetime_start,
        duration_seconds=resource.lifetime_seconds,
        open=True,
    )
