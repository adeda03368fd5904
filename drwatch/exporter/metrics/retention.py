"""Retention policy metrics: each data class's limits and each resource's class.

With `drwatch_recovery_retention_min_seconds`/`..._max_seconds` (what AWS is configured to
keep) these let one alert rule per direction compare every resource with its class's policy
(docs/runbooks.md, DrwatchRetentionBelowPolicy / DrwatchRetentionAbovePolicy): the class
travels as the `data_class` label, joined on the resource labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from drwatch.core.model import Resource
from drwatch.core.retention import RetentionPolicy
from drwatch.core.units import DAY_SECONDS
from drwatch.exporter.metrics.common import RESOURCE_LABELS, ref_labels


def retention_families(
    resources: Iterable[Resource], retention: RetentionPolicy, cached_note: str
) -> Iterator[Metric]:
    minimum = GaugeMetricFamily(
        "drwatch_retention_policy_min_seconds",
        "Minimum retention the data class requires (config retention.classes).",
        labels=("data_class",),
    )
    maximum = GaugeMetricFamily(
        "drwatch_retention_policy_max_seconds",
        "Maximum retention the data class allows; absent when the class sets none.",
        labels=("data_class",),
    )
    for name, policy in sorted(retention.classes.items()):
        minimum.add_metric([name], policy.min_days * DAY_SECONDS)
        if policy.max_days is not None:
            maximum.add_metric([name], policy.max_days * DAY_SECONDS)
    classes = GaugeMetricFamily(
        "drwatch_resource_data_class_info",
        f"The resource's retention data class (tag, rule or default); always 1. {cached_note}",
        labels=(*RESOURCE_LABELS, "data_class"),
    )
    for resource in resources:
        ref = resource.ref
        data_class = retention.class_for(ref.service, ref.resource_type, dict(resource.tags))
        classes.add_metric([*ref_labels(ref), data_class], 1)
    yield minimum
    yield maximum
    yield classes
