"""`drwatch demo`: the exporter against a simulated AWS estate, with history and reports.

The sandbox (moto) is imported only when the demo runs: it is an extra, and the runtime
commands must not load it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drwatch.cli.drill import record_demo_drills, with_drill_metrics
from drwatch.cli.logs import logging_options, setup_logging
from drwatch.cli.report import render_demo_reports
from drwatch.cli.serve import close_all, open_history_writer, run_until_signalled
from drwatch.config import DEFAULT_PORT
from drwatch.exporter.metrics.health import runtime_collectors
from drwatch.history.read import has_polls
from drwatch.history.store import open_reader

if TYPE_CHECKING:
    from drwatch.sandbox.stack import LocalStack


@click.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Exporter port.")
@click.option("--instances", default=24, show_default=True, help="RDS instances to seed.")
@click.option("--clusters", default=8, show_default=True, help="Aurora clusters to seed.")
@click.option("--seed", default=42, show_default=True, help="Fleet generator seed.")
@click.option("--interval", default=60, show_default=True, help="Poll interval in seconds.")
@click.option(
    "--history",
    "history_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default="drwatch-demo-history.db",
    show_default=True,
    help="History database; a new one is backfilled with simulated past polls first.",
)
@click.option(
    "--backfill-days",
    type=click.IntRange(0),
    default=62,
    show_default=True,
    help="Days of simulated history (0: none).",
)
@click.option(
    "--prometheus/--no-prometheus",
    "with_prometheus",
    default=True,
    show_default=True,
    help="Also run Prometheus and Alertmanager (when installed) with the shipped alert rules.",
)
@click.option("--prometheus-port", default=19090, show_default=True, help="Local Prometheus port.")
@click.option(
    "--alertmanager-port", default=19093, show_default=True, help="Local Alertmanager port."
)
@logging_options
def demo(
    port: int,
    instances: int,
    clusters: int,
    seed: int,
    interval: int,
    history_path: Path,
    backfill_days: int,
    with_prometheus: bool,
    prometheus_port: int,
    alertmanager_port: int,
    log_level: str,
    log_format: str,
) -> None:
    """Run the exporter against a simulated AWS estate (moto sandbox) with a mixed fleet.

    A history database without polls first gets `--backfill-days` of simulated history
    (incidents included), so `drwatch history` and reports have real periods to show.

    Example: drwatch demo --port 9638, then curl -s localhost:9638/metrics | grep rpo
    """
    from drwatch.sandbox.demo import run_demo  # the sandbox needs the `sandbox` extra

    setup_logging(log_level, log_format)
    stack = DemoStack(with_prometheus, prometheus_port, alertmanager_port, history_path.parent)
    # Backfill only a history without polls: simulated past after real polls would not
    # read as a timeline.
    fresh = not history_path.exists() or not has_polls_stored(history_path)
    writer = open_history_writer(history_path)
    if fresh and backfill_days:
        click.echo(f"backfilling {backfill_days} days of simulated history into {history_path}")
    now = datetime.now(UTC)

    def serve_demo(exporter: Any) -> None:
        if fresh and backfill_days:
            writer.flush()  # the reports read what the backfill wrote
            for path in render_demo_reports(
                history_path, now - timedelta(days=backfill_days), now, demo_progress
            ):
                click.echo(f"  report: {path}")
        for collector in runtime_collectors():
            exporter.metrics.register(collector)
        run_until_signalled(
            lambda: _serve_and_announce(with_drill_metrics(exporter, history_path), port, stack),
            close_all(exporter.close, writer.close, stack.stop),
            "127.0.0.1",
        )

    run_demo(
        instances=instances,
        clusters=clusters,
        seed=seed,
        interval=interval,
        now=now,
        on_result=writer.submit,
        backfill_days=backfill_days if fresh else 0,
        on_drills=lambda rows: record_demo_drills(history_path, rows),
        run=serve_demo,
    )


def demo_progress(message: str) -> None:
    """The demo's report steps without WeasyPrint's own (`drwatch report` shows those)."""
    if not message.startswith("pdf: "):
        click.echo(message)


def has_polls_stored(path: Path) -> bool:
    reader = open_reader(path)
    try:
        return has_polls(reader)
    finally:
        reader.close()


def wait_until(condition: Callable[[], bool], timeout_seconds: float) -> None:
    finished = threading.Event()
    deadline = threading.Timer(timeout_seconds, finished.set)
    deadline.start()
    while not condition() and not finished.wait(0.1):
        pass
    deadline.cancel()


class DemoStack:
    """The demo's optional Prometheus and Alertmanager, started once the exporter serves."""

    def __init__(
        self, enabled: bool, prometheus_port: int, alertmanager_port: int, workdir: Path
    ) -> None:
        self._enabled = enabled
        self._ports = (prometheus_port, alertmanager_port)
        self._workdir = workdir / ".drwatch-demo-prometheus"
        self._running: LocalStack | None = None

    def start(self, exporter_port: int) -> str:
        """Starts the stack if wanted and installed; returns lines for the banner."""
        from drwatch.sandbox.stack import (
            StackSettings,
            repository_file,
            stack_available,
            start_stack,
        )

        rules = repository_file("alerts", "drwatch.rules.yml")
        if not self._enabled:
            return ""
        if not stack_available() or not rules.exists():
            return (
                "  prometheus:   not started (install the prometheus and "
                "prometheus-alertmanager packages, from a source checkout)\n"
            )
        self._running = start_stack(
            StackSettings(
                scrape_target=f"127.0.0.1:{exporter_port}",
                rules_file=rules,
                alertmanager_config=repository_file("alerts", "alertmanager.example.yml"),
                workdir=self._workdir,
                prometheus_port=self._ports[0],
                alertmanager_port=self._ports[1],
            )
        )
        return (
            f"  prometheus:   {self._running.prometheus_url}/alerts (the shipped rules; "
            f"alerts fire after their `for` time)\n"
            f"  alertmanager: {self._running.alertmanager_url}/\n"
        )

    def stop(self) -> None:
        if self._running is not None:
            self._running.stop()


def _serve_and_announce(exporter: Any, port: int, stack: DemoStack) -> Any:
    server = exporter.serve("127.0.0.1", port)
    wait_until(lambda: exporter.poller.ready, timeout_seconds=120)
    url = f"http://127.0.0.1:{server.port}"
    click.echo(
        f"\ndrwatch demo is serving a simulated estate.\n"
        f"  landing page: {url}/\n  metrics:      {url}/metrics\n"
        f"  try:          curl -s {url}/metrics | grep -E "
        f"'drwatch_(resource_recovery_point|recovery_mechanism_enabled)'\n"
        f"{stack.start(server.port)}"
        f"Stop with Ctrl-C.\n"
    )
    return server
