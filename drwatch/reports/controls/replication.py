"""DRW-10: replication lag within target, per replication flow (source to destination).

Each flow has its own target: Kafka flows (MSK Replicator, MirrorMaker 2) their message lag
against `kafka_message_lag`; S3 replication 15 minutes with Replication Time Control (the
time S3 commits to replicate within), `replication_lag_seconds` (1 h) without; other flows
(RDS cross-region backup replication, ElastiCache global datastores) their lag in seconds
against `replication_lag_seconds`. A lag the flow does not publish is unknown, never zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

from drwatch.core.controls import ControlParameters
from drwatch.history.store import ReplicationKey
from drwatch.reports.catalogue import Status
from drwatch.reports.controls.common import day_text, union_seconds
from drwatch.reports.evidence import Finding, FlowEvidence, Interval, Period, Policies
from drwatch.reports.render import format_duration

KAFKA_REPLICATION_KINDS: Final = frozenset({"msk_replicator", "mirrormaker2"})
# S3 Replication Time Control replicates 99.99% of objects within 15 minutes.
S3_TIME_CONTROL_LAG_SECONDS: Final = 900.0


class _Lag(NamedTuple):
    """One replication interval's lag against its limit."""

    item: Interval[ReplicationKey]
    value: float | None  # None: not measured
    limit: float
    unit: str  # seconds | messages

    @property
    def ratio(self) -> float:
        return (self.value or 0) / self.limit


def replication_lag(flow: FlowEvidence, period: Period, policies: Policies) -> Finding:
    """DRW-10: the flow's lag within its target over the period (see the module docstring)."""
    measured = [_lag(flow, item, policies.parameters) for item in flow.intervals]
    unknown = [m for m in measured if m.value is None]
    known = [m for m in measured if m.value is not None]
    over = [m for m in known if (m.value or 0) > m.limit]
    if over:
        worst = max(over, key=lambda m: m.ratio)
        seconds = union_seconds((m.item.start, m.item.end) for m in over)
        return _finding(
            flow,
            Status.FAIL,
            f"lag {_show(worst.value or 0, worst.unit)} on {day_text(worst.item.start)} "
            f"against {_show(worst.limit, worst.unit)}{_target_note(flow)}; over target for "
            f"{format_duration(seconds)}",
            first_seen=min(m.item.start for m in over),
            duration_seconds=seconds,
            open=max(measured, key=lambda m: m.item.start) in over,  # still over when last seen
            values={"lag": worst.value or 0.0, "limit": worst.limit},
        )
    if unknown:
        unmeasured = union_seconds((m.item.start, m.item.end) for m in unknown)
        return _finding(
            flow,
            Status.INSUFFICIENT,
            f"lag unknown for {format_duration(unmeasured)} (the flow publishes no lag "
            "metric then)",
        )
    worst = max(known, key=lambda m: m.ratio)
    return _finding(
        flow,
        Status.PASS,
        f"worst lag {_show(worst.value or 0, worst.unit)} on {day_text(worst.item.start)} "
        f"within {_show(worst.limit, worst.unit)}{_target_note(flow)}",
        values={"lag": worst.value or 0.0, "limit": worst.limit},
    )


def _finding(
    flow: FlowEvidence,
    status: Status,
    facts: str,
    *,
    first_seen: int | None = None,
    duration_seconds: int | None = None,
    open: bool = False,
    values: Mapping[str, float] | None = None,
) -> Finding:
    return Finding(
        "DRW-10",
        flow.key,
        flow.label,
        status,
        facts,
        first_seen,
        duration_seconds,
        open,
        MappingProxyType(dict(values or {})),
    )


def _lag(flow: FlowEvidence, item: Interval[ReplicationKey], parameters: ControlParameters) -> _Lag:
    messages = item.value.get("message_lag")
    if item.key.kind in KAFKA_REPLICATION_KINDS and messages is not None:
        return _Lag(item, float(messages), parameters.kafka_message_lag, "messages")
    latency = item.value.get("latency_seconds")
    limit = parameters.replication_lag_seconds
    if flow.kind == "s3" and flow.time_control:
        limit = min(limit, S3_TIME_CONTROL_LAG_SECONDS)
    return _Lag(item, None if latency is None else float(latency), limit, "seconds")


def _target_note(flow: FlowEvidence) -> str:
    if flow.kind != "s3":
        return ""
    return " (Replication Time Control)" if flow.time_control else " (no Replication Time Control)"


def _show(value: float, unit: str) -> str:
    return format_duration(value) if unit == "seconds" else f"{value:,.0f} messages"
