"""How complete each unit's last poll was: skipped records, partial polls, optional features.

Rendered with drwatch's health (every scrape), from the poller's unit statuses. A unit whose
last poll failed shows no partial or feature samples: the failure is the whole story then.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from drwatch.exporter.metrics.common import UNIT_LABELS
from drwatch.exporter.poller import UnitStatus


def collection_families(statuses: Sequence[UnitStatus]) -> Iterator[Metric]:
    skipped = CounterMetricFamily(
        "drwatch_collector_records_skipped",
        "Records a unit's polls could not map and left out (missing or malformed field, "
        "unknown value), by reason, since start.",
        labels=(*UNIT_LABELS, "reason"),
    )
    partial = GaugeMetricFamily(
        "drwatch_collector_partial",
        "1 if the last poll of the unit succeeded without some records or without an "
        "optional feature that failed this poll.",
        labels=UNIT_LABELS,
    )
    available = GaugeMetricFamily(
        "drwatch_collector_feature_available",
        "1 if an optional feature (sub-API) answered in the unit's account and region at its "
        "last poll, 0 if it is not offered there (asked again after a day).",
        labels=("collector", "feature", "account_id", "region"),
    )
    for status in statuses:
        key = status.schedule.key
        labels = [key.collector, key.account_id, key.region]
        for reason, count in sorted(status.records_skipped.items()):
            skipped.add_metric([*labels, reason], count)
        run = status.last_run
        if run is None or not run.success:
            continue
        partial.add_metric(labels, float(run.partial))
        for feature, state in sorted(run.features.items()):
            available.add_metric(
                [key.collector, feature, key.account_id, key.region],
                float(state != "unavailable"),
            )
    yield from (skipped, partial, available)
