"""The metrics view: one custom prometheus-client collector rendering the latest unit results.

Nothing here calls AWS. Every scrape renders the poller's current snapshot, so values are
as fresh as the last poll of each collector (see the HELP texts). No sample timestamps:
freshness is exported explicitly as `drwatch_collector_last_success_timestamp_seconds`.
"""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector as PrometheusCollector

from drwatch.config import TierConfig
from drwatch.config.price_table import load_price_table
from drwatch.core.model import UnitKey
from drwatch.core.pricing import PriceTable, storage_items
from drwatch.core.retention import RetentionPolicy
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.backup import backup_families
from drwatch.exporter.metrics.common import CACHED
from drwatch.exporter.metrics.health import HealthMetrics
from drwatch.exporter.metrics.kafka import kafka_families
from drwatch.exporter.metrics.recovery import (
    copy_families,
    local_recovery_families,
    replication_families,
    resource_families,
    tier_target_families,
    tiered_rpo_families,
)
from drwatch.exporter.metrics.retention import retention_families
from drwatch.exporter.metrics.s3 import s3_families
from drwatch.exporter.metrics.storage import storage_families
from drwatch.exporter.poller import UnitStatus

# Fast enough to compress megabytes in milliseconds; the larger levels gain little on text.
GZIP_LEVEL = 1
OPENMETRICS_EOF = b"# EOF\n"
_CacheKey = tuple[tuple[UnitKey, int, bool], ...]


class ObservedMetrics(PrometheusCollector):
    """Resources, recovery states, copies, replication and tier targets of one snapshot."""

    def __init__(
        self,
        statuses: Sequence[UnitStatus],
        tiers: TierConfig,
        prices: PriceTable,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self._statuses = statuses
        self._tiers = tiers
        self._prices = prices
        self._retention = retention or RetentionPolicy()

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
        yield from tier_target_families(self._tiers)
        yield from resource_families(resources)
        yield from local_recovery_families([s for s in states if not s.is_copy])
        yield from copy_families([s for s in states if s.is_copy])
        yield from replication_families(replications)
        yield from tiered_rpo_families(states, tier_of, self._tiers.default_tier)
        yield from retention_families(resources, self._retention, CACHED)
        yield from backup_families(observed)
        yield from s3_families(observed)
        yield from kafka_families(observed)
        vaults = [v for o in observed for v in o.vault_states]
        yield from storage_families(storage_items(states, vaults), self._prices)


class MetricsView:
    """The /metrics body: observed data rendered once per change, health on every scrape.

    Rendering tens of thousands of series takes long; they only change when a unit result
    is swapped in or dropped as stale, so that part is cached under a key of every unit's
    run count and data presence. Gzip members concatenate into one valid gzip stream, so the
    cached part is never compressed twice.

    Only the gzipped part is kept: at 10,000 resources the plain text is ~40 MB and gzip ~2 MB,
    and Prometheus always asks for gzip; a plain scrape decompresses it. It is rendered one
    metric family at a time straight into the compressor, so the whole text never sits in
    memory at once (bench/scale.py measures the exporter's peak memory).
    """

    def __init__(
        self,
        snapshot: Callable[[], Sequence[UnitStatus]],
        stats: ApiStats,
        tiers: TierConfig,
        prices: PriceTable | None = None,
        extra: Sequence[PrometheusCollector] = (),
        retention: RetentionPolicy | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._tiers = tiers
        self._retention = retention
        # Read once: the shipped table (with the config's overrides when the caller passes them).
        self._prices = prices or load_price_table()
        self._health = CollectorRegistry(auto_describe=False)
        self._health.register(HealthMetrics(snapshot, stats))
        # Rendered on every scrape like the health part (reload and discovery status).
        for collector in extra:
            self._health.register(collector)
        self._lock = threading.Lock()
        # Per format (OpenMetrics or not), the key it was rendered for and the gzipped body;
        # the OpenMetrics one only once some client asked for it.
        self._cached: dict[bool, tuple[_CacheKey, bytes]] = {}

    def render(self, gzipped: bool = False, openmetrics: bool = False) -> bytes:
        """The body in the Prometheus text format, or in OpenMetrics without its final
        `# EOF` line (the server appends its own families, then the EOF)."""
        health = families_text(self._health, openmetrics)
        observed_gzip = self._observed_part(openmetrics)
        if gzipped:
            return observed_gzip + gzip.compress(health, compresslevel=GZIP_LEVEL)
        return gzip.decompress(observed_gzip) + health

    def set_tiers(self, tiers: TierConfig) -> None:
        """New RPO/RTO targets (config reload); the next scrape re-renders."""
        with self._lock:
            self._tiers = tiers
            self._cached.clear()

    def set_retention(self, retention: RetentionPolicy) -> None:
        """New retention classes (config reload); the next scrape re-renders."""
        with self._lock:
            self._retention = retention
            self._cached.clear()

    def register(self, collector: PrometheusCollector) -> None:
        """Adds a collector rendered on every scrape (e.g. drill status from the history)."""
        self._health.register(collector)

    def _observed_part(self, openmetrics: bool) -> bytes:
        statuses = self._snapshot()
        # Unit keys are part of the key: units come and go with discovery and reloads.
        key = tuple((s.schedule.key, s.runs, s.observations is not None) for s in statuses)
        with self._lock:
            cached = self._cached.get(openmetrics)
            if cached is not None and cached[0] == key:
                return cached[1]
            observed = ObservedMetrics(statuses, self._tiers, self._prices, self._retention)
            self._cached.pop(openmetrics, None)  # let the old body go before building anew
            body = gzip_families(observed.collect(), openmetrics)
            self._cached[openmetrics] = (key, body)
            return body


class _OneFamily:
    """A collector of one ready-made family, so families can be rendered one by one."""

    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> Iterator[Metric]:
        yield self._family


def gzip_families(families: Iterable[Metric], openmetrics: bool = False) -> bytes:
    """The families in the text format (or OpenMetrics, without EOF), gzipped, rendered and
    compressed one at a time."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as stream:
        for family in families:
            stream.write(families_text(_OneFamily(family), openmetrics))
    return buffer.getvalue()


def families_text(collector: PrometheusCollector, openmetrics: bool) -> bytes:
    """One collector's families in the text format, or in OpenMetrics without `# EOF`."""
    source: Any = collector  # both encoders only call .collect() on what they are given
    if not openmetrics:
        return bytes(generate_latest(source))
    text: bytes = openmetrics_latest(source)  # type: ignore[no-untyped-call]
    return text.removesuffix(OPENMETRICS_EOF)
