"""DRW-03 (minimum retention met) and DRW-04 (maximum retention respected: no point older
than the maximum, no never-expiring point), per data class."""

from __future__ import annotations

from drwatch.core.retention import EXPIRY_GRACE_SECONDS, DataClass
from drwatch.core.units import DAY_SECONDS
from drwatch.history.store import RecoveryKey
from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import (
    compacted,
    finding,
    has_points,
    is_copy,
    local,
    mechanism,
    point_epoch,
    union_seconds,
)
from drwatch.reports.evidence import Finding, Interval, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration


def minimum_retention(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-03: the longest-kept mechanism keeps points at least the data class min_days."""
    if not resource.raw:
        return compacted("DRW-03", resource)
    policy = policies.retention.policy_for(resource.data_class)
    enabled = [i for i in local(resource) if i.value.get("enabled")]
    if not enabled:
        return finding(
            "DRW-03", resource, Status.NOT_APPLICABLE, "no enabled backup mechanism (see DRW-01)"
        )
    lowest = _lowest_retention(enabled)
    if not lowest:
        return finding(
            "DRW-03", resource, Status.INSUFFICIENT, "retention not reported by any mechanism"
        )
    name, (best, item) = max(lowest.items(), key=lambda pair: pair[1][0])
    facts = (
        f"longest retention {best:g} d ({name}; lowest value in the period), "
        f"data class {resource.data_class} requires at least {policy.min_days} d"
    )
    values = {"retention_days": float(best)}
    if best >= policy.min_days:
        return finding("DRW-03", resource, Status.PASS, facts, values=values)
    return finding(
        "DRW-03",
        resource,
        Status.FAIL,
        facts,
        values=values,
        first_seen=item.start,
        duration_seconds=resource.lifetime_end - item.start,
        open=True,
    )


def _lowest_retention(
    enabled: list[Interval[RecoveryKey]],
) -> dict[str, tuple[float, Interval[RecoveryKey]]]:
    """Per mechanism, its lowest retention in the period and the interval that had it."""
    lowest: dict[str, tuple[float, Interval[RecoveryKey]]] = {}
    for item in enabled:
        days = _retention_days(item)
        if days is None:
            continue
        name = mechanism(item)
        if name not in lowest or days < lowest[name][0]:
            lowest[name] = (days, item)
    return lowest


def _retention_days(item: Interval[RecoveryKey]) -> float | None:
    """Configured minimum retention of a mechanism, else the observed depth of its points."""
    configured = item.value.get("retention_min_days")
    if configured is not None:
        return float(configured)
    oldest = point_epoch(item.value, "oldest_point")
    return (item.end - oldest) / DAY_SECONDS if oldest is not None else None


def maximum_retention(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-04: no point kept past the data class max_days, none set never to expire."""
    policy = policies.retention.policy_for(resource.data_class)
    if policy.max_days is None:
        return finding(
            "DRW-04",
            resource,
            Status.NOT_APPLICABLE,
            f"data class {resource.data_class} sets no maximum retention",
        )
    if not resource.raw:
        return compacted("DRW-04", resource)
    with_points = [i for i in resource.recovery if has_points(i)]
    if not with_points:
        return finding("DRW-04", resource, Status.NOT_APPLICABLE, "no recovery points held")
    problems = [p for item in with_points for p in _kept_too_long(resource, item, policy)]
    limit = f"data class {resource.data_class} allows at most {policy.max_days} d"
    if not problems:
        return finding("DRW-04", resource, Status.PASS, f"no point kept past the maximum; {limit}")
    reasons = sorted({p[2] for p in problems})
    return finding(
        "DRW-04",
        resource,
        Status.FAIL,
        f"{'; '.join(reasons[:4])}{' ...' if len(reasons) > 4 else ''}; {limit}",
        first_seen=min(p[0] for p in problems),
        duration_seconds=union_seconds((p[0], p[1]) for p in problems),
        open=max(p[1] for p in problems) >= resource.lifetime_end,
    )


def _kept_too_long(
    resource: ResourceEvidence, item: Interval[RecoveryKey], policy: DataClass
) -> list[tuple[int, int, str]]:
    """(start, end, reason) of each way the interval's points outlive the maximum."""
    where = mechanism(item) + (
        f" copy in {item.key.location_region}" if is_copy(resource, item) else ""
    )
    configured = item.value.get("retention_max_days")
    never = int(item.value.get("never_expire_count", 0))
    oldest = point_epoch(item.value, "oldest_point")
    problems: list[tuple[int, int, str]] = []
    if configured is not None and policy.max_days is not None and configured > policy.max_days:
        problems.append((item.start, item.end, f"{where} keeps points {configured} d"))
    if never:
        problems.append((item.start, item.end, f"{never} {where} points never expire"))
    if oldest is not None and item.end - oldest > policy.max_seconds + EXPIRY_GRACE_SECONDS:
        age = format_duration(item.end - oldest)
        problems.append((item.start, item.end, f"{where} holds a point {age} old"))
    return problems
