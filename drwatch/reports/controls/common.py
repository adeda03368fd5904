"""Helpers shared by several controls: findings, dates in facts, reading recovery intervals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from drwatch.history.store import RecoveryKey, epoch
from drwatch.reports.catalogue import Status
from drwatch.reports.evidence import Finding, Interval, ResourceEvidence


def finding(
    control_id: str, resource: ResourceEvidence, status: Status, facts: str, **extra: Any
) -> Finding:
    return Finding(control_id, resource.key, resource.label, status, facts, **extra)


def not_observed(control_id: str, resource: ResourceEvidence) -> Finding:
    return finding(
        control_id, resource, Status.INSUFFICIENT, "not observed in the period (no poll held it)"
    )


def compacted(control_id: str, resource: ResourceEvidence) -> Finding:
    return finding(
        control_id,
        resource,
        Status.INSUFFICIENT,
        "only daily rollups remain for the period (raw detail compacted); they do not keep "
        "this control's evidence",
    )


def day_text(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def time_text(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def point_epoch(value: Mapping[str, Any], name: str) -> int | None:
    """A stored point time (ISO text, absent when there is none) as epoch seconds."""
    text = value.get(name)
    return epoch(datetime.fromisoformat(text)) if text else None


def is_copy(resource: ResourceEvidence, item: Interval[RecoveryKey]) -> bool:
    """Points stored in another account or region than the resource's."""
    location = (item.key.location_account_id, item.key.location_region)
    return location != (resource.account_id, resource.region)


def local(resource: ResourceEvidence) -> list[Interval[RecoveryKey]]:
    return [i for i in resource.recovery if not is_copy(resource, i)]


def has_points(item: Interval[RecoveryKey]) -> bool:
    return bool(item.value.get("newest_point")) or int(item.value.get("point_count", 0)) > 0


def mechanism(item: Interval[RecoveryKey]) -> str:
    return item.key.mechanism


def union_seconds(spans: Iterable[tuple[int, int]]) -> int:
    """Seconds covered by the union of [start, end) spans."""
    total, cursor = 0, None
    for start, end in sorted(spans):
        if cursor is None or start > cursor:
            total += end - start
            cursor = end
        elif end > cursor:
            total += end - cursor
            cursor = end
    return total
