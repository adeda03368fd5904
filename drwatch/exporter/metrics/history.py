"""The evidence history's health, rendered on every scrape: writes, queue, drops, compaction.

Read from the writer's frozen `WriterStatus`; nothing here touches the database. Also the
poller's worker exceptions, which before were only logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from drwatch.history.schedule import CompactionStatus
from drwatch.history.writer import DROP_CAUSES, REASONS, WriterStatus


class HistoryMetrics(PrometheusCollector):
    """`drwatch_history_*`: whether evidence is being written, and the last compaction."""

    def __init__(self, status: Callable[[], WriterStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        yield GaugeMetricFamily(
            "drwatch_history_write_success",
            "1 if the last attempt to store a unit result in the history succeeded; 0 while "
            "writes fail (they are retried with backoff, the results wait in the queue).",
            value=float(status.write_success),
        )
        if status.last_write is not None:
            yield GaugeMetricFamily(
                "drwatch_history_last_write_timestamp_seconds",
                "Time a unit result was last committed to the history.",
                value=status.last_write.timestamp(),
            )
        yield GaugeMetricFamily(
            "drwatch_history_queue_depth",
            "Unit results waiting to be stored, the one being retried included.",
            value=status.queue_depth,
        )
        yield GaugeMetricFamily(
            "drwatch_history_queue_capacity",
            "Size of the history queue; when full, results are dropped after a wait.",
            value=status.queue_capacity,
        )
        errors = CounterMetricFamily(
            "drwatch_history_write_errors",
            "Failed attempts to store a unit result, by reason "
            "(disk_full, locked, io_error, other).",
            labels=("reason",),
        )
        for reason in REASONS:
            errors.add_metric([reason], status.errors.get(reason, 0))
        yield errors
        dropped = CounterMetricFamily(
            "drwatch_history_dropped_results",
            "Unit results never stored, by cause: queue_full (the queue stayed full), "
            "rejected (failed for a reason of their own), shutdown (writes failing at exit).",
            labels=("cause",),
        )
        for cause in DROP_CAUSES:
            dropped.add_metric([cause], status.dropped.get(cause, 0))
        yield dropped
        if status.compaction is not None:
            yield from compaction_families(status.compaction)


def compaction_families(status: CompactionStatus) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "drwatch_history_compaction_last_success_timestamp_seconds",
        "End of the last successful compaction of the history (read from it at start-up; "
        "the exporter's start if it was never compacted).",
        value=status.last_success.timestamp(),
    )
    yield GaugeMetricFamily(
        "drwatch_history_compaction_next_run_timestamp_seconds",
        "When the scheduled compaction runs next (history.compact_at, jittered).",
        value=status.next_run.timestamp(),
    )
    if status.last_run is None or status.last_run_success is None:
        return
    yield GaugeMetricFamily(
        "drwatch_history_compaction_last_run_timestamp_seconds",
        "End of the last scheduled compaction this process ran, successful or not.",
        value=status.last_run.timestamp(),
    )
    yield GaugeMetricFamily(
        "drwatch_history_compaction_last_run_duration_seconds",
        "Wall time of the last scheduled compaction this process ran.",
        value=status.last_duration_seconds or 0.0,
    )
    yield GaugeMetricFamily(
        "drwatch_history_compaction_last_run_success",
        "1 if the last scheduled compaction succeeded (a failed one is retried an hour later).",
        value=float(status.last_run_success),
    )


class PollerErrorMetrics(PrometheusCollector):
    """`drwatch_poller_worker_errors_total`: exceptions raised in poller workers."""

    def __init__(self, worker_errors: Callable[[], int]) -> None:
        self._worker_errors = worker_errors

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "drwatch_poller_worker_errors",
            "Exceptions raised in poller worker threads (a unit runner bug, a result sink "
            "that raised); each is logged with its traceback.",
            value=self._worker_errors(),
        )
