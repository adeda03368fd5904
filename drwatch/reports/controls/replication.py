"""DRW-10: replication lag within target (seconds; messages for Kafka replication)."""

from __future__ import annotations

from typing import Final, NamedTuple

from drwatch.core.controls import ControlParameters
from drwatch.history.store import ReplicationKey
from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import compacted, day_text, finding, union_seconds
from drwatch.reports.evidence import Finding, Interval, Period, Policies, ResourceEvidence
from drwatch.reports.render import format_duration

KAFKA_REPLICATION_KINDS: Final = frozenset({"msk_replicator", "mirrormaker2"})


class _Lag(NamedTuple):
    """One replication interval's lag against its limit."""

    item: Interval[ReplicationKey]
    value: float | None  # None: not measured
    limit: float
    unit: str  # seconds | messages

    @property
    def ratio(self) -> float:
        return (self.value or 0) / self.limit


def replication_lag(resource: ResourceEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-10: lag <= replication_lag; Kafka message lag <= kafka_message_lag."""
    if not resource.raw:
        return compacted("DRW-10", resource)
    if not resource.replication:
        return finding("DRW-10", resource, Status.NOT_APPLICABLE, "no replication configured")
    measured = [_lag(item, policies.parameters) for item in resource.replication]
    unknown = [m for m in measured if m.value is None]
    known = [m for m in measured if m.value is not None]
    over = [m for m in known if (m.value or 0) > m.limit]
    kinds = ", ".join(sorted({m.item.key.kind for m in measured}))
    if over:
        worst = max(over, key=lambda m: m.ratio)
        seconds = union_seconds((m.item.start, m.item.end) for m in over)
        return finding(
            "DRW-10",
            resource,
            Status.FAIL,
            f"{kinds} lag {_show(worst.value or 0, worst.unit)} on {day_text(worst.item.start)} "
            f"against {_show(worst.limit, worst.unit)}; over target for "
            f"{format_duration(seconds)}",
            first_seen=min(m.item.start for m in over),
            duration_seconds=seconds,
            open=max(m.item.end for m in over) >= resource.lifetime_end,
        )
    if unknown:
        unmeasured = union_seconds((m.item.start, m.item.end) for m in unknown)
        return finding(
            "DRW-10",
            resource,
            Status.INSUFFICIENT,
            f"{kinds} lag unknown for {format_duration(unmeasured)} (no replication metrics)",
        )
    worst = max(known, key=lambda m: m.ratio)
    return finding(
        "DRW-10",
        resource,
        Status.PASS,
        f"{kinds} worst lag {_show(worst.value or 0, worst.unit)} on "
        f"{day_text(worst.item.start)} within {_show(worst.limit, worst.unit)}",
    )


def _lag(item: Interval[ReplicationKey], parameters: ControlParameters) -> _Lag:
    messages = item.value.get("message_lag")
    if item.key.kind in KAFKA_REPLICATION_KINDS and messages is not None:
        return _Lag(item, float(messages), parameters.kafka_message_lag, "messages")
    latency = item.value.get("latency_seconds")
    return _Lag(
        item,
        None if latency is None else float(latency),
        parameters.replication_lag_seconds,
        "seconds",
    )


def _show(value: float, unit: str) -> str:
    return format_duration(value) if unit == "seconds" else f"{value:,.0f} messages"
