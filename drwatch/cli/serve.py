"""Running the exporter: `serve`, `poll --once`, `check-config` and `iam-policy`."""

from __future__ import annotations

import json
import logging
import queue
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from drwatch.cli.common import (
    F,
    UsageProblem,
    config_option,
    load_or_fail,
)
from drwatch.cli.drill import with_drill_metrics
from drwatch.cli.history import rpo_policy
from drwatch.cli.logs import logging_options, setup_logging
from drwatch.config import Config, ConfigError, load_config
from drwatch.core.model import to_jsonable
from drwatch.core.sharding import Shard, ShardError, parse_shard
from drwatch.exporter.collectors import collector_classes
from drwatch.exporter.discovery import policy_document as discovery_policy_document
from drwatch.exporter.drill_runner import runner_policy_document
from drwatch.exporter.iam import policy_document
from drwatch.exporter.metrics.health import runtime_collectors
from drwatch.exporter.reload import DiscoveryFailedError, LiveExporter
from drwatch.exporter.webconfig import WebConfig, load_web_config
from drwatch.history.schedule import CompactionPlan
from drwatch.history.store import HistoryError
from drwatch.history.writer import HistoryWriter


def parse_shard_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Shard | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ShardError as error:
        raise click.BadParameter(str(error)) from error


def shard_option(function: F) -> F:
    return click.option(
        "--shard",
        callback=parse_shard_option,
        metavar="I/N",
        help="Watch only shard I of N of the accounts (hash-mod of the account id, like "
        "Prometheus hashmod); overrides the config's `shard`.",
    )(function)


@click.command("check-config")
@click.argument("config_path", type=click.Path(path_type=Path, dir_okay=False))
def check_config(config_path: Path) -> None:
    """Validate a config file; exit 2 naming the field if it is wrong.

    Example: drwatch check-config drwatch.yml
    """
    config = load_or_fail(config_path)
    enabled = ", ".join(config.enabled_collectors()) or "none"
    discovered = " + discovered through AWS Organizations" if config.organizations else ""
    click.echo(
        f"{config_path}: ok ({len(config.accounts)} accounts{discovered}, "
        f"{len(config.regions)} regions, collectors: {enabled})"
    )


@click.command("iam-policy")
@config_option("Only the actions of the collectors this config enables (default: all collectors).")
@click.option(
    "--drill-runner",
    is_flag=True,
    help="Instead: the policy of the role `drill run` uses (restores and deletes its own copies).",
)
@click.option(
    "--organizations",
    "for_organizations",
    is_flag=True,
    help="Instead: the policy of the management-account role account discovery uses.",
)
def iam_policy(config_path: Path | None, drill_runner: bool, for_organizations: bool) -> None:
    """Print the least-privilege IAM policy drwatch needs in each account.

    Example: drwatch iam-policy > drwatch-read-policy.json
    """
    if drill_runner:
        click.echo(json.dumps(runner_policy_document(), indent=2))
        return
    if for_organizations:
        click.echo(json.dumps(discovery_policy_document(), indent=2))
        return
    names = load_or_fail(config_path).enabled_collectors() if config_path else None
    click.echo(json.dumps(policy_document(collector_classes(names)), indent=2))


@click.command()
@config_option(required=True)
@click.option("--once", is_flag=True, required=True, help="Poll every unit once, then exit.")
@click.option("--json", "as_json", is_flag=True, help="Print observations as JSON.")
@shard_option
@logging_options
def poll(
    config_path: Path,
    once: bool,
    as_json: bool,
    shard: Shard | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run one round of every enabled unit and print what was observed.

    Exits 1 if any unit failed (its error is in the output).

    Example: drwatch poll --config drwatch.yml --once --json | jq '.units[].run.success'
    """
    setup_logging(log_level, log_format)
    config = load_or_fail(config_path)
    try:
        # Through LiveExporter so that discovered accounts and the shard apply as in serve.
        live = LiveExporter(config, lambda: config, shard=shard, lifecycle=False)
    except DiscoveryFailedError as error:
        raise click.ClickException(str(error)) from error
    exporter = live.exporter
    results: list[Any] = []
    exporter.poller.run_round()
    live.close()
    statuses = exporter.poller.snapshot()
    for status in statuses:
        results.append({"run": status.last_run, "observations": status.observations})
    failed = [s for s in statuses if not s.healthy]
    if as_json:
        click.echo(json.dumps({"units": to_jsonable(results)}, indent=2, sort_keys=True))
    else:
        for status in statuses:
            observations = status.observations
            count = len(observations.resources) if observations else 0
            state = (
                "ok"
                if status.healthy
                else f"FAILED {status.last_run and status.last_run.error_code}"
            )
            click.echo(
                f"{status.schedule.key.collector} {status.schedule.key.account_id} "
                f"{status.schedule.key.region}: {state}, {count} resources"
            )
    if failed:
        sys.exit(1)


@click.command()
@config_option(required=True)
@click.option(
    "--web.listen-address",
    "--listen-address",
    "listen_address",
    help="host:port to serve on (overrides the config); `:9638` listens on every address.",
)
@click.option(
    "--web.config.file",
    "web_config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Prometheus-style web config: TLS, mutual TLS, basic auth (docs/security.md); "
    "overrides web_config_file of the config.",
)
@click.option(
    "--web.telemetry-path",
    "telemetry_path",
    default="/metrics",
    show_default=True,
    callback=lambda _ctx, _param, value: check_telemetry_path(value),
    help="Path under which the metrics are served.",
)
@shard_option
@click.option(
    "--web.enable-lifecycle",
    "enable_lifecycle",
    is_flag=True,
    help="Allow config reloads over HTTP (POST /-/reload); SIGHUP always reloads.",
)
@logging_options
def serve(
    config_path: Path,
    listen_address: str | None,
    web_config_path: Path | None,
    telemetry_path: str,
    shard: Shard | None,
    enable_lifecycle: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Poll AWS in the background and serve Prometheus metrics.

    SIGHUP (or POST /-/reload with --web.enable-lifecycle) reloads the config; a bad file
    is logged and the running config stays.

    Example: drwatch serve --config drwatch.yml --web.config.file web.yml --shard 0/3
    """
    setup_logging(log_level, log_format)
    config = load_or_fail(config_path)
    web_path = web_config_path or config.web_config_file
    web = load_web_or_fail(Path(web_path)) if web_path else None
    host, port = config.listen_host, config.listen_port
    if listen_address:
        host, port = parse_listen_address(listen_address)
    writer = open_history_writer(config.history_path, compaction_plan(config))
    try:
        live = LiveExporter(
            config,
            lambda: load_config(config_path),
            shard=shard,
            on_result=writer.submit,
            lifecycle=enable_lifecycle,
            history=writer.status,
            telemetry_path=telemetry_path,
        )
    except DiscoveryFailedError as error:
        writer.close()
        raise click.ClickException(str(error)) from error
    live.start_refreshing()
    with_drill_metrics(live.exporter, Path(config.history_path))
    for collector in runtime_collectors():
        live.exporter.metrics.register(collector)
    run_until_signalled(
        lambda: live.exporter.serve(host, port, web),
        close_all(live.close, writer.close),
        host,
        reload=live.reload,
        telemetry_path=telemetry_path,
    )


def check_telemetry_path(value: str) -> str:
    reserved = {"/", "/-/healthy", "/-/ready", "/-/reload"}
    if not value.startswith("/") or value in reserved or any(c.isspace() for c in value):
        raise click.BadParameter(
            f"{value!r}: must start with / and not be one of {', '.join(sorted(reserved))}",
            param_hint="--web.telemetry-path",
        )
    return value


def load_web_or_fail(path: Path) -> WebConfig:
    try:
        return load_web_config(path)
    except ConfigError as error:
        raise UsageProblem(f"{path}: {error}") from error


def open_history_writer(
    path: str | Path, compaction: CompactionPlan | None = None
) -> HistoryWriter:
    try:
        return HistoryWriter(path, compaction=compaction)
    except (HistoryError, OSError, sqlite3.Error) as error:
        raise click.ClickException(f"history database {path}: {error}") from error


def compaction_plan(config: Config) -> CompactionPlan | None:
    """`history.compact_at` as the writer's schedule; None when it is "off"."""
    minute = config.history.compact_minute_of_day
    if minute is None:
        return None
    return CompactionPlan(
        minute_of_day=minute,
        raw_days=config.history.raw_days,
        retention_days=config.history.retention_days,
        policy=rpo_policy(config.tiers),
    )


def close_all(*closers: Callable[[], None]) -> Callable[[], None]:
    """One close for several parts, in order (the poller first, so nothing new arrives).

    A closer that fails is logged and the others still run; then the command fails.
    """

    def close() -> None:
        failed: list[str] = []
        for closer in closers:
            try:
                closer()
            except Exception as error:
                name = getattr(closer, "__qualname__", repr(closer))
                logging.getLogger("drwatch").error("%s failed at shutdown: %s", name, error)
                failed.append(f"{name}: {error}")
        if failed:
            raise click.ClickException("shutdown incomplete: " + "; ".join(failed))

    return close


def parse_listen_address(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, or `:port` for every address; port 0 lets the OS choose (the
    log line says which)."""
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not host:port", param_hint="--web.listen-address")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104  (what ":port" asks for)


# How long the main thread blocks before it returns to the interpreter (see next_event).
SIGNAL_POLL_SECONDS = 0.5


def next_event(events: queue.SimpleQueue[str]) -> str:
    """The next queued event, waiting in short slices rather than in one blocking get.

    Only the main thread runs Python signal handlers, and only between bytecodes. A signal
    that arrives while the main thread is on its way into an untimed get (waiting for the
    GIL, say) or that another thread receives only marks the handler pending; the get then
    blocks without running it, and the reload or the stop waits for the next signal. Under
    CPU load this happened: a SIGHUP left unhandled for 400 s (tests/test_reload.py), none
    in ten tries with slices. Returning every slice lets the interpreter run the handler.
    """
    while True:
        try:
            return events.get(timeout=SIGNAL_POLL_SECONDS)
        except queue.Empty:
            continue


def run_until_signalled(
    start: Callable[[], Any],
    close: Callable[[], None],
    host: str,
    reload: Callable[[], Any] | None = None,
    telemetry_path: str = "/metrics",
) -> None:
    # Handlers only queue what to do: the work happens here, in the main thread, not inside
    # a signal handler (SimpleQueue.put is safe to call from one).
    events: queue.SimpleQueue[str] = queue.SimpleQueue()
    signal.signal(signal.SIGTERM, lambda *_: events.put("stop"))
    signal.signal(signal.SIGINT, lambda *_: events.put("stop"))
    if reload is not None:
        signal.signal(signal.SIGHUP, lambda *_: events.put("reload"))
    server = start()
    scheme = getattr(server, "scheme", "http")
    logging.getLogger("drwatch").info(
        "serving on %s://%s:%d%s", scheme, host, server.port, telemetry_path
    )
    while (event := next_event(events)) != "stop":
        if event == "reload" and reload is not None:
            reload()  # logs and reports its own outcome
    server.stop()
    close()
