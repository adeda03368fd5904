"""What every family module shares: the label sets, the CACHED note and the value helpers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily

from drwatch.core.model import ResourceRef
from drwatch.core.units import DAY_SECONDS

CACHED = "Cached from the last successful poll of its collector, not read at scrape time."
RESOURCE_LABELS = ("account_id", "region", "service", "resource_type", "resource")
UNIT_LABELS = ("collector", "account_id", "region")


def ref_labels(ref: ResourceRef) -> list[str]:
    return [ref.account_id, ref.region, ref.service, ref.resource_type, ref.resource_id]


def gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    """A gauge of polled data: its HELP ends with the CACHED note."""
    return GaugeMetricFamily(name, f"{documentation} {CACHED}", labels=labels)


def add(family: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    """Adds the sample unless the value is unknown (absent beats a made-up zero)."""
    if value is not None:
        family.add_metric(labels, value)


def timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def days_to_seconds(days: int | None) -> float | None:
    return float(days) * DAY_SECONDS if days is not None else None


def flag(value: bool | None) -> float | None:
    return None if value is None else float(value)
