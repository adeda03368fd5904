"""Wires config, AWS access, collectors, poller, metrics and HTTP into one running exporter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import botocore.session
from prometheus_client.registry import Collector as PrometheusCollector

from drwatch.config import Config
from drwatch.config.price_table import load_price_table
from drwatch.exporter.aws import ApiStats, AwsAccess, EventHandler, SessionFactory
from drwatch.exporter.collectors import collector_classes
from drwatch.exporter.metrics.history import HistoryMetrics, PollerErrorMetrics
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.poller import Clock, Poller, ResultSink, SystemClock
from drwatch.exporter.runner import UnitRunner, unit_schedules
from drwatch.exporter.server import ExporterApp, HttpServer, Reload
from drwatch.exporter.webconfig import WebConfig
from drwatch.history.writer import WriterStatus


@dataclass(frozen=True, slots=True)
class Exporter:
    config: Config
    aws: AwsAccess
    poller: Poller
    metrics: MetricsView
    app: ExporterApp
    executor: Executor

    def serve(
        self, host: str | None = None, port: int | None = None, web: WebConfig | None = None
    ) -> HttpServer:
        """Starts polling and the HTTP server; returns the server (its port may be 0-picked).

        `web` (TLS, basic auth) comes from `--web.config.file`; None serves plain HTTP.
        """
        server = HttpServer(
            self.app,
            self.config.listen_host if host is None else host,
            self.config.listen_port if port is None else port,
            web,
        )
        self.poller.start()
        server.start()
        return server

    def close(self) -> None:
        self.poller.stop()
        self.executor.shutdown(wait=True)


def build_exporter(
    config: Config,
    *,
    clock: Clock | None = None,
    executor: Executor | None = None,
    session_factory: SessionFactory = botocore.session.Session,
    extra_handlers: Sequence[tuple[str, EventHandler]] = (),
    on_result: ResultSink | None = None,
    extra_metrics: Sequence[PrometheusCollector] = (),
    reload: Reload | None = None,
    history: Callable[[], WriterStatus] | None = None,
    telemetry_path: str = "/metrics",
) -> Exporter:
    """`history` is the history writer's status: its metrics, and /-/ready is 503 while
    evidence cannot be written."""
    clock = clock or SystemClock()
    executor = executor or ThreadPoolExecutor(
        max_workers=config.poller.max_workers, thread_name_prefix="drwatch-unit"
    )
    stats = ApiStats()
    aws = AwsAccess(
        config.accounts,
        config.aws,
        stats,
        sts_region=config.regions[0],
        session_factory=session_factory,
        extra_handlers=extra_handlers,
    )
    collectors = collector_classes(config.enabled_collectors())
    poller = Poller(
        unit_schedules(config, collectors),
        UnitRunner(config, aws, collectors, clock),
        executor,
        clock,
        on_result=on_result,
    )
    metrics = MetricsView(
        poller.snapshot,
        stats,
        config.tiers,
        prices=load_price_table(config.pricing),
        extra=(
            *extra_metrics,
            PollerErrorMetrics(lambda: poller.worker_errors),
            *((HistoryMetrics(history),) if history is not None else ()),
        ),
        retention=config.retention,
    )
    evidence = (lambda: history().problem) if history is not None else None
    app = ExporterApp(
        metrics,
        lambda: poller.ready,
        poller.snapshot,
        reload,
        evidence=evidence,
        telemetry_path=telemetry_path,
    )
    return Exporter(config, aws, poller, metrics, app, executor)
