"""Backup storage where it is billed and its estimated monthly cost (core/pricing.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric

from drwatch.core.pricing import PriceTable, StorageItem, monthly_cost, storage_by_key
from drwatch.exporter.metrics.common import add, gauge

STORAGE_LABELS = ("account_id", "region", "service", "mechanism", "storage_class")


def storage_families(items: Sequence[StorageItem], prices: PriceTable) -> Iterator[Metric]:
    """Backup storage where it is billed, and its estimated monthly cost (core/pricing.py)."""
    storage = gauge(
        "drwatch_backup_storage_bytes",
        "Backup storage by the account and region holding it, the protected resource's "
        "service, mechanism and storage class (warm, cold, archive). Allocated sizes: an upper "
        "bound for incremental snapshots.",
        STORAGE_LABELS,
    )
    cost = gauge(
        "drwatch_backup_storage_estimated_monthly_cost_dollars",
        f"Estimated USD per month to keep that storage at drwatch's shipped price table of "
        f"{prices.as_of} with config overrides; an estimate, not a bill.",
        STORAGE_LABELS,
    )
    for key, size in sorted(storage_by_key(items).items()):
        _, region, service, _, storage_class = key
        add(storage, list(key), float(size))
        price = prices.price(service, storage_class, region)
        # Micro-dollars: enough precision, and no float noise in the exposition.
        add(cost, list(key), round(monthly_cost(size, price), 6))
    yield storage
    yield cost
