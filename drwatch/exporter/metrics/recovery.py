"""Resources, their recovery states (local and copied), replication and the tiers' targets.

These families come from every collector alike: each one reports its resources and what
can restore them (PITR, snapshots, backups, copies, replicas) in the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from drwatch.config import TierConfig
from drwatch.core.model import RecoveryState, ReplicationState, Resource, ResourceRef
from drwatch.exporter.metrics.common import (
    CACHED,
    RESOURCE_LABELS,
    add,
    days_to_seconds,
    flag,
    gauge,
    ref_labels,
    timestamp,
)

COPY_LABELS = (*RESOURCE_LABELS, "mechanism", "destination_account_id", "destination_region")
REPLICATION_LABELS = (
    "kind",
    *RESOURCE_LABELS,
    "destination_account_id",
    "destination_region",
    "destination",
)


@dataclass(frozen=True, slots=True)
class RecoveryGauge:
    """A per-resource, per-mechanism gauge and how to read its value from a RecoveryState."""

    name: str
    documentation: str
    value: Callable[[RecoveryState], float | None]


LOCAL_RECOVERY_GAUGES = (
    RecoveryGauge(
        "drwatch_recovery_mechanism_enabled",
        "1 if the mechanism is configured to produce recovery points for the resource.",
        lambda s: float(s.enabled),
    ),
    RecoveryGauge(
        "drwatch_recovery_point_timestamp_seconds",
        "Time of the newest restorable point; time() minus this is the RPO achieved.",
        lambda s: timestamp(s.newest_point),
    ),
    RecoveryGauge(
        "drwatch_recovery_point_oldest_timestamp_seconds",
        "Time of the oldest restorable point.",
        lambda s: timestamp(s.oldest_point),
    ),
    RecoveryGauge(
        "drwatch_recovery_points",
        "Number of restorable points (snapshots, backups); 0 for continuous PITR.",
        lambda s: float(s.point_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_points_failed",
        "Number of recovery points in a failed state.",
        lambda s: float(s.failed_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_points_never_expire",
        "Number of recovery points with no expiry (kept until someone deletes them).",
        lambda s: float(s.never_expire_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_points_archived",
        "Number of restorable points in an archive tier (hours to restore: an RTO concern).",
        lambda s: float(s.archived_count),
    ),
    RecoveryGauge(
        "drwatch_recovery_point_bytes",
        "Storage of the restorable points in bytes (allocated size: an upper bound for "
        "incremental snapshots).",
        lambda s: float(s.size_bytes),
    ),
    RecoveryGauge(
        "drwatch_recovery_retention_min_seconds",
        "Shortest configured retention of the mechanism's points.",
        lambda s: days_to_seconds(s.retention_min_days),
    ),
    RecoveryGauge(
        "drwatch_recovery_retention_max_seconds",
        "Longest configured retention of the mechanism's points.",
        lambda s: days_to_seconds(s.retention_max_days),
    ),
    RecoveryGauge(
        "drwatch_recovery_encrypted",
        "1 if every restorable point is encrypted at rest.",
        lambda s: flag(s.encrypted),
    ),
    RecoveryGauge(
        "drwatch_recovery_immutable",
        "1 if the points cannot be deleted before expiry (vault lock).",
        lambda s: flag(s.immutable),
    ),
)

COPY_RECOVERY_GAUGES = (
    RecoveryGauge(
        "drwatch_copy_recovery_point_timestamp_seconds",
        "Time of the newest restorable point copied to another region or account.",
        lambda s: timestamp(s.newest_point),
    ),
    RecoveryGauge(
        "drwatch_copy_recovery_points",
        "Number of restorable points copied to another region or account.",
        lambda s: float(s.point_count),
    ),
    RecoveryGauge(
        "drwatch_copy_recovery_point_bytes",
        "Storage of the copied points in bytes (allocated size: an upper bound).",
        lambda s: float(s.size_bytes),
    ),
)


def tier_target_families(tiers: TierConfig) -> Iterator[Metric]:
    rpo = GaugeMetricFamily(
        "drwatch_rpo_target_seconds", "Recovery point objective of the tier.", labels=("tier",)
    )
    rto = GaugeMetricFamily(
        "drwatch_rto_target_seconds", "Recovery time objective of the tier.", labels=("tier",)
    )
    for tier, target in sorted(tiers.targets.items()):
        rpo.add_metric([tier], target.rpo_seconds)
        rto.add_metric([tier], target.rto_seconds)
    yield rpo
    yield rto


def resource_families(resources: Iterable[Resource]) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "drwatch_resource_info",
        f"A resource drwatch watches, with its DR tier; always 1. {CACHED}",
        labels=(*RESOURCE_LABELS, "tier", "name"),
    )
    deletion = GaugeMetricFamily(
        "drwatch_resource_deletion_protection",
        f"1 if the resource has deletion protection on. {CACHED}",
        labels=(*RESOURCE_LABELS, "tier"),
    )
    for resource in resources:
        labels = [*ref_labels(resource.ref), resource.tier]
        info.add_metric([*labels, resource.name], 1)
        if resource.deletion_protection is not None:
            deletion.add_metric(labels, float(resource.deletion_protection))
    yield info
    yield deletion


def local_recovery_families(states: Sequence[RecoveryState]) -> Iterator[Metric]:
    # One family at a time, each written out before the next is built: at 10,000
    # resources one holds ~20,000 samples, all eleven at once ~70 MB (bench/scale.py).
    for recovery_gauge in LOCAL_RECOVERY_GAUGES:
        family = GaugeMetricFamily(
            recovery_gauge.name,
            f"{recovery_gauge.documentation} {CACHED}",
            labels=(*RESOURCE_LABELS, "mechanism"),
        )
        for state in states:
            value = recovery_gauge.value(state)
            if value is not None:
                family.add_metric([*ref_labels(state.ref), state.mechanism.value], value)
        yield family


def copy_families(states: Sequence[RecoveryState]) -> Iterator[Metric]:
    families = [
        (g, GaugeMetricFamily(g.name, f"{g.documentation} {CACHED}", labels=COPY_LABELS))
        for g in COPY_RECOVERY_GAUGES
    ]
    for state in states:
        labels = [
            *ref_labels(state.ref),
            state.mechanism.value,
            state.location_account_id,
            state.location_region,
        ]
        for recovery_gauge, family in families:
            value = recovery_gauge.value(state)
            if value is not None:
                family.add_metric(labels, value)
    for _, family in families:
        yield family


def replication_families(replications: Sequence[ReplicationState]) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "drwatch_replication_info",
        f"A replication drwatch watches, with its state as AWS reports it; always 1. {CACHED}",
        labels=(*REPLICATION_LABELS, "state"),
    )
    latest = GaugeMetricFamily(
        "drwatch_replication_latest_timestamp_seconds",
        f"Newest point the destination holds. {CACHED}",
        labels=REPLICATION_LABELS,
    )
    latency = GaugeMetricFamily(
        "drwatch_replication_latency_seconds",
        f"Replication latency as measured at poll time. {CACHED}",
        labels=REPLICATION_LABELS,
    )
    pending_bytes = gauge(
        "drwatch_replication_pending_bytes",
        "Bytes waiting to be replicated (S3: BytesPendingReplication); absent when unknown.",
        REPLICATION_LABELS,
    )
    pending_operations = gauge(
        "drwatch_replication_pending_operations",
        "Operations waiting to be replicated (S3: OperationsPendingReplication); absent "
        "when unknown.",
        REPLICATION_LABELS,
    )
    failed_operations = gauge(
        "drwatch_replication_failed_operations",
        "Operations that failed to replicate in the newest 5-minute period (S3: "
        "OperationsFailedReplication); absent when unknown.",
        REPLICATION_LABELS,
    )
    for replication in replications:
        labels = [
            replication.kind,
            *ref_labels(replication.source),
            replication.destination_account_id,
            replication.destination_region,
            replication.destination,
        ]
        info.add_metric([*labels, replication.state], 1)
        if replication.latest_replicated_point is not None:
            latest.add_metric(labels, replication.latest_replicated_point.timestamp())
        if replication.latency_seconds is not None:
            latency.add_metric(labels, replication.latency_seconds)
        add(pending_bytes, labels, replication.pending_bytes)
        add(pending_operations, labels, replication.pending_operations)
        add(failed_operations, labels, replication.failed_operations)
    yield info
    yield latest
    yield latency
    yield from (pending_bytes, pending_operations, failed_operations)


def tiered_rpo_families(
    states: Sequence[RecoveryState], tier_of: dict[ResourceRef, str], default_tier: str
) -> Iterator[Metric]:
    """Newest point over all local mechanisms, labelled with the tier for one alert rule."""
    newest: dict[ResourceRef, float] = {}
    for state in states:
        if state.is_copy or state.newest_point is None:
            continue
        point = state.newest_point.timestamp()
        newest[state.ref] = max(point, newest.get(state.ref, point))
    family = GaugeMetricFamily(
        "drwatch_resource_recovery_point_timestamp_seconds",
        "Newest restorable point of the resource over all its mechanisms (PITR, snapshots, "
        f"backups); time() minus this is the RPO achieved. {CACHED}",
        labels=(*RESOURCE_LABELS, "tier"),
    )
    for ref, point in sorted(newest.items()):
        family.add_metric([*ref_labels(ref), tier_of.get(ref, default_tier)], point)
    yield family
