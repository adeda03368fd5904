"""The metrics view: one custom prometheus-client collector rendering the latest unit results.

Nothing here calls AWS. Every scrape renders the poller's current snapshot, so values are
as fresh as the last poll of each collector (see the HELP texts). No sample timestamps:
freshness is exported explicitly as `drwatch_collector_last_success_timestamp_seconds`.
"""

from __future__ import annotations

import gzip
import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from exporter import __version__
from exporter.aws import ApiStats
from exporter.config import TierConfig
from exporter.model import RecoveryState, ReplicationState, Resource, ResourceRef
from exporter.poller import UnitStatus

# Fast enough to compress megabytes in milliseconds; the larger levels gain little on text.
GZIP_LEVEL = 1
CACHED = "Cached from the last successful poll of its collector, not read at scrape time."
RESOURCE_LABELS = ("account_id", "region", "service", "resource_type", "resource")
UNIT_LABELS = ("collector", "account_id", "region")
COPY_LABELS = (*RESOURCE_LABELS, "mechanism", "destination_account_id", "destination_region")
REPLICATION_LABELS = (
    "kind",
    *RESOURCE_LABELS,
    "destination_account_id",
    "destination_region",
    "destination",
)


def ref_labels(ref: ResourceRef) -> list[str]:
    return [ref.account_id, ref.region, ref.service, ref.resource_type, ref.resource_id]


@dataclass(frozen=True, slots=True)
class RecoveryGauge:
    """A per-resource, per-mechanism gauge and how to read its value from a RecoveryState."""

    name: str
    documentation: str
    value: Callable[[RecoveryState], float | None]


def timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def days_to_seconds(days: int | None) -> float | None:
    return float(days) * 86400 if days is not None else None


def flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


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


class ObservedMetrics(PrometheusCollector):
    """Resources, recovery states, copies, replication and tier targets of one snapshot."""

    def __init__(self, statuses: Sequence[UnitStatus], tiers: TierConfig) -> None:
        self._statuses = statuses
        self._tiers = tiers

    def collect(self) -> Iterator[Metric]:
        observed = [s.observations for s in self._statuses if s.observations is not None]
        # Sorted so that the exposition is stable whatever order AWS lists things in.
        resources = sorted((r for o in observed for r in o.resources), key=lambda r: r.ref)
        states = sorted(
            (st for o in observed for st in o.recovery_states),
            key=lambda st: (st.ref, st.mechanism, st.location_account_id, st.location_region),
        )
        replications = sorted(
            (r for o in observed for r in o.replication_states),
            key=lambda r: (r.source, r.kind, r.destination_account_id, r.destination_region),
        )
        tier_of = {r.ref: r.tier for r in resources}
        yield from self._tier_targets()
        yield from self._resources(resources)
        yield from self._local_recovery(s for s in states if not s.is_copy)
        yield from self._copies([s for s in states if s.is_copy])
        yield from self._replication(replications)
        yield from self._tiered_rpo(states, tier_of)

    def _tier_targets(self) -> Iterator[Metric]:
        rpo = GaugeMetricFamily(
            "drwatch_rpo_target_seconds", "Recovery point objective of the tier.", labels=("tier",)
        )
        rto = GaugeMetricFamily(
            "drwatch_rto_target_seconds", "Recovery time objective of the tier.", labels=("tier",)
        )
        for tier, target in sorted(self._tiers.targets.items()):
            rpo.add_metric([tier], target.rpo_seconds)
            rto.add_metric([tier], target.rto_seconds)
        yield rpo
        yield rto

    def _resources(self, resources: Iterable[Resource]) -> Iterator[Metric]:
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

    def _local_recovery(self, states: Iterable[RecoveryState]) -> Iterator[Metric]:
        families = [
            (
                g,
                GaugeMetricFamily(
                    g.name, f"{g.documentation} {CACHED}", labels=(*RESOURCE_LABELS, "mechanism")
                ),
            )
            for g in LOCAL_RECOVERY_GAUGES
        ]
        for state in states:
            labels = [*ref_labels(state.ref), state.mechanism.value]
            for gauge, family in families:
                value = gauge.value(state)
                if value is not None:
                    family.add_metric(labels, value)
        for _, family in families:
            yield family

    def _copies(self, states: Sequence[RecoveryState]) -> Iterator[Metric]:
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
            for gauge, family in families:
                value = gauge.value(state)
                if value is not None:
                    family.add_metric(labels, value)
        for _, family in families:
            yield family

    def _replication(self, replications: Sequence[ReplicationState]) -> Iterator[Metric]:
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
        for replication in replications:
            labels = [
                replication.kind,
                *ref_labels(replication.source),
                replication.destination_account_id,
                replication.destination_region,
                replication.destination,
            ]
            if replication.latest_replicated_point is not None:
                latest.add_metric(labels, replication.latest_replicated_point.timestamp())
            if replication.latency_seconds is not None:
                latency.add_metric(labels, replication.latency_seconds)
        yield latest
        yield latency

    def _tiered_rpo(
        self, states: Sequence[RecoveryState], tier_of: dict[ResourceRef, str]
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
            family.add_metric([*ref_labels(ref), tier_of.get(ref, self._tiers.default_tier)], point)
        yield family


class HealthMetrics(PrometheusCollector):
    """drwatch's own health: build info, every unit's polls and the AWS API counters."""

    def __init__(self, snapshot: Callable[[], Sequence[UnitStatus]], stats: ApiStats) -> None:
        self._snapshot = snapshot
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        yield from self._build_info()
        yield from self._units(self._snapshot())
        yield from self._api()

    def _build_info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "drwatch_build_info",
            "drwatch version and Python runtime; always 1.",
            labels=("version", "python_version"),
        )
        info.add_metric([__version__, platform.python_version()], 1)
        yield info

    def _units(self, statuses: Sequence[UnitStatus]) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "drwatch_collector_success",
            "1 if the last poll of the unit succeeded.",
            labels=UNIT_LABELS,
        )
        duration = GaugeMetricFamily(
            "drwatch_collector_duration_seconds",
            "Wall time of the last poll of the unit.",
            labels=UNIT_LABELS,
        )
        last_success = GaugeMetricFamily(
            "drwatch_collector_last_success_timestamp_seconds",
            "Start time of the last successful poll of the unit.",
            labels=UNIT_LABELS,
        )
        interval = GaugeMetricFamily(
            "drwatch_collector_interval_seconds",
            "Configured poll interval of the unit.",
            labels=UNIT_LABELS,
        )
        serving = GaugeMetricFamily(
            "drwatch_collector_data_present",
            "1 if the unit's last good data is still served (it is dropped after stale_after).",
            labels=UNIT_LABELS,
        )
        runs = CounterMetricFamily(
            "drwatch_collector_runs", "Completed polls of the unit.", labels=UNIT_LABELS
        )
        skipped = CounterMetricFamily(
            "drwatch_collector_skipped_runs",
            "Polls skipped because the previous poll of the unit was still running.",
            labels=UNIT_LABELS,
        )
        errors = CounterMetricFamily(
            "drwatch_collector_errors",
            "Failed polls of the unit by error code.",
            labels=(*UNIT_LABELS, "error_code"),
        )
        for status in statuses:
            key = status.schedule.key
            labels = [key.collector, key.account_id, key.region]
            interval.add_metric(labels, status.schedule.interval_seconds)
            serving.add_metric(labels, float(status.observations is not None))
            runs.add_metric(labels, status.runs)
            skipped.add_metric(labels, status.skipped)
            for code, count in sorted(status.errors_by_code.items()):
                errors.add_metric([*labels, code], count)
            if status.last_run is not None:
                success.add_metric(labels, float(status.last_run.success))
                duration.add_metric(labels, status.last_run.duration_seconds)
            if status.last_success is not None:
                last_success.add_metric(labels, status.last_success.timestamp())
        yield from (success, duration, last_success, interval, serving, runs, skipped, errors)

    def _api(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "drwatch_aws_api_requests",
            "AWS API HTTP attempts (retries included) by service and operation.",
            labels=("service", "operation"),
        )
        errors = CounterMetricFamily(
            "drwatch_aws_api_errors",
            "AWS API attempts that failed, by service, operation and error code.",
            labels=("service", "operation", "error_code"),
        )
        for (service, operation), count in sorted(self._stats.requests().items()):
            requests.add_metric([service, operation], count)
        for (service, operation, code), count in sorted(self._stats.errors().items()):
            errors.add_metric([service, operation, code], count)
        yield requests
        yield errors


class MetricsView:
    """The /metrics body: observed data rendered once per change, health on every scrape.

    Rendering tens of thousands of series takes long; they only change when a unit result
    is swapped in or dropped as stale, so that part is cached (plain and gzipped) under a
    key of every unit's run count and data presence. Gzip members concatenate into one
    valid gzip stream, so the cached part is never compressed twice.
    """

    def __init__(
        self,
        snapshot: Callable[[], Sequence[UnitStatus]],
        stats: ApiStats,
        tiers: TierConfig,
    ) -> None:
        self._snapshot = snapshot
        self._tiers = tiers
        self._health = CollectorRegistry(auto_describe=False)
        self._health.register(HealthMetrics(snapshot, stats))
        self._lock = threading.Lock()
        self._key: tuple[tuple[int, bool], ...] | None = None
        self._observed = b""
        self._observed_gzip = b""

    def render(self, gzipped: bool = False) -> bytes:
        health = generate_latest(self._health)
        observed, observed_gzip = self._observed_part()
        if gzipped:
            return observed_gzip + gzip.compress(health, compresslevel=GZIP_LEVEL)
        return observed + health

    def _observed_part(self) -> tuple[bytes, bytes]:
        statuses = self._snapshot()
        key = tuple((s.runs, s.observations is not None) for s in statuses)
        with self._lock:
            if key != self._key:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(ObservedMetrics(statuses, self._tiers))
                self._observed = generate_latest(registry)
                self._observed_gzip = gzip.compress(self._observed, compresslevel=GZIP_LEVEL)
                self._key = key
            return self._observed, self._observed_gzip
