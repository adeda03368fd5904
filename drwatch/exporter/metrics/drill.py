"""Drill and restore-test cadence metrics (DRW-11, DRW-13), read from the history database.

Drills are recorded by `drwatch drill` (another process) and restore tests need weeks of
memory (weekly and monthly cadences), longer than any collector's job window: both are in
the history, which `serve` already writes. So this collector reads the history, not AWS:
a small query at most once per `refresh_seconds`, on a scrape, with the result cached in
between. A failed read keeps the last good status and says so in
`drwatch_drill_status_read_success` (the node_exporter pattern: the failure is visible, the
other metrics stay up); the error is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from drwatch.config import DEFAULT_DRILL_CADENCE_SECONDS, DEFAULT_RESTORE_TEST_CADENCE_SECONDS
from drwatch.core.model import DrillStatus

DEFAULT_REFRESH_SECONDS = 60.0
FROM_HISTORY = "Read from the history database (drills and restore jobs), refreshed every minute."
CLASS_LABELS = ("account_id", "region", "resource_class")

log = logging.getLogger(__name__)


class DrillMetrics(PrometheusCollector):
    """Renders the newest drill per scenario and restore-test times per resource class."""

    def __init__(
        self,
        read: Callable[[], DrillStatus],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        restore_cadence: Mapping[str, float] = DEFAULT_RESTORE_TEST_CADENCE_SECONDS,
        drill_cadence: float = DEFAULT_DRILL_CADENCE_SECONDS,
    ) -> None:
        self._read = read
        self._monotonic = monotonic
        self._refresh_seconds = refresh_seconds
        self._restore_cadence = restore_cadence
        self._drill_cadence = drill_cadence
        self._lock = threading.Lock()
        self._status = DrillStatus()
        self._read_ok = False
        self._read_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        status, ok = self._current()
        yield from scenario_families(status)
        yield from restore_class_families(status)
        yield from self._cadence_families()
        success = GaugeMetricFamily(
            "drwatch_drill_status_read_success",
            "1 if the last read of drills and restore tests from the history database worked.",
        )
        success.add_metric([], 1.0 if ok else 0.0)
        yield success

    def _current(self) -> tuple[DrillStatus, bool]:
        with self._lock:
            now = self._monotonic()
            if self._read_at is None or now - self._read_at >= self._refresh_seconds:
                self._read_at = now
                self._refresh()
            return self._status, self._read_ok

    def _refresh(self) -> None:
        try:
            self._status = self._read()
            self._read_ok = True
        except Exception:
            # Kept visible as drwatch_drill_status_read_success 0; the scrape must still
            # serve every other metric, so the error is logged rather than raised.
            log.exception("reading drills and restore tests from the history failed")
            self._read_ok = False

    def _cadence_families(self) -> Iterator[Metric]:
        restore = GaugeMetricFamily(
            "drwatch_restore_test_cadence_seconds",
            "Configured maximum time between successful restore tests of a resource class.",
            labels=["resource_class"],
        )
        for resource_class, seconds in sorted(self._restore_cadence.items()):
            restore.add_metric([resource_class], seconds)
        drill = GaugeMetricFamily(
            "drwatch_drill_cadence_seconds",
            "Configured maximum time between DR drills (any scenario).",
        )
        drill.add_metric([], self._drill_cadence)
        yield from (restore, drill)


def _gauge(name: str, documentation: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, f"{documentation} {FROM_HISTORY}", labels=list(labels))


def scenario_families(status: DrillStatus) -> Iterator[Metric]:
    labels = ("scenario",)
    last = _gauge(
        "drwatch_drill_last_timestamp_seconds",
        "Incident start of the newest recorded DR drill of the scenario.",
        labels,
    )
    success = _gauge(
        "drwatch_drill_last_success_timestamp_seconds",
        "Incident start of the newest DR drill of the scenario that passed.",
        labels,
    )
    passed = _gauge(
        "drwatch_drill_last_passed", "1 if the newest DR drill of the scenario passed.", labels
    )
    rto = _gauge(
        "drwatch_drill_last_rto_seconds",
        "Measured RTO (restored minus incident start) of the newest drill.",
        labels,
    )
    rto_target = _gauge(
        "drwatch_drill_last_rto_target_seconds", "RTO target of the newest drill.", labels
    )
    rpo = _gauge(
        "drwatch_drill_last_rpo_seconds",
        "Measured RPO (incident start minus restore point) of the newest drill.",
        labels,
    )
    rpo_target = _gauge(
        "drwatch_drill_last_rpo_target_seconds", "RPO target of the newest drill.", labels
    )
    for s in status.scenarios:
        values = (
            (last, s.last_timestamp),
            (success, s.last_success_timestamp),
            (passed, 1.0 if s.last_passed else 0.0),
            (rto, s.last_rto_seconds),
            (rto_target, s.last_rto_target_seconds),
            (rpo, s.last_rpo_seconds),
            (rpo_target, s.last_rpo_target_seconds),
        )
        for family, value in values:
            if value is not None:
                family.add_metric([s.scenario], value)
    yield from (last, success, passed, rto, rto_target, rpo, rpo_target)


def restore_class_families(status: DrillStatus) -> Iterator[Metric]:
    success = _gauge(
        "drwatch_restore_test_last_success_timestamp_seconds",
        "Completion of the newest successful (and validated, when validation ran) restore "
        "test of the resource class: AWS Backup restore jobs and `drwatch drill run`.",
        CLASS_LABELS,
    )
    failure = _gauge(
        "drwatch_restore_test_last_failure_timestamp_seconds",
        "Completion of the newest failed or not validated restore test of the resource class.",
        CLASS_LABELS,
    )
    duration = _gauge(
        "drwatch_restore_test_last_duration_seconds",
        "Duration of the newest finished restore test of the resource class.",
        CLASS_LABELS,
    )
    for c in status.restore_classes:
        labels = [c.account_id, c.region, c.resource_class]
        for family, value in (
            (success, c.last_success_timestamp),
            (failure, c.last_failure_timestamp),
            (duration, c.last_duration_seconds),
        ):
            if value is not None:
                family.add_metric(labels, value)
    yield from (success, failure, duration)
