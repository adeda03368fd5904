"""The `drwatch` command line: the composition root of exporter (and, later, reports)."""

from __future__ import annotations

import json
import logging
import queue
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drwatch import __version__
from drwatch.cli.common import (
    F,
    UsageProblem,
    history_options,
    load_or_fail,
    require_database,
    resolve_history,
)
from drwatch.config import (
    DEFAULT_HISTORY_RAW_DAYS,
    DEFAULT_HISTORY_RETENTION_DAYS,
    DEFAULT_PORT,
    DEFAULT_TIER_TARGETS,
    ConfigError,
    TierConfig,
    load_config,
)
from drwatch.core.model import to_jsonable
from drwatch.core.sharding import Shard, ShardError, parse_shard
from drwatch.exporter.collectors import collector_classes
from drwatch.exporter.discovery import policy_document as discovery_policy_document
from drwatch.exporter.drill_runner import runner_policy_document
from drwatch.exporter.iam import policy_document
from drwatch.exporter.reload import DiscoveryFailedError, LiveExporter
from drwatch.exporter.webconfig import WebConfig, load_web_config

if TYPE_CHECKING:
    from drwatch.sandbox.stack import LocalStack
from drwatch.history.chain import verify_chain
from drwatch.history.compact import compact
from drwatch.history.figures import RpoPolicy
from drwatch.history.read import stats, write_csv, write_json
from drwatch.history.store import HistoryError, HistoryStore, open_reader
from drwatch.history.writer import HistoryWriter


def config_option(function: F) -> F:
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        required=True,
        help="drwatch YAML config file (see drwatch.example.yml).",
    )(function)


def log_level_option(function: F) -> F:
    return click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
        help="Log verbosity (logs go to stderr).",
    )(function)


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


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # botocore logs request details at debug level; keep it quiet unless asked explicitly.
    logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLevelName(level.upper())))


@click.group()
@click.version_option(__version__, prog_name="drwatch")
def cli() -> None:
    """drwatch: backup and disaster-recovery evidence for AWS."""


@cli.command("check-config")
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


@cli.command("iam-policy")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Only the actions of the collectors this config enables (default: all collectors).",
)
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


@cli.command()
@config_option
@click.option("--once", is_flag=True, required=True, help="Poll every unit once, then exit.")
@click.option("--json", "as_json", is_flag=True, help="Print observations as JSON.")
@shard_option
@log_level_option
def poll(
    config_path: Path, once: bool, as_json: bool, shard: Shard | None, log_level: str
) -> None:
    """Run one round of every enabled unit and print what was observed.

    Exits 1 if any unit failed (its error is in the output).

    Example: drwatch poll --config drwatch.yml --once --json | jq '.units[].run.success'
    """
    setup_logging(log_level)
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


@cli.command()
@config_option
@click.option("--listen-address", help="host:port to serve on (overrides the config).")
@click.option(
    "--web.config.file",
    "web_config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Prometheus-style web config: TLS, mutual TLS, basic auth (docs/security.md); "
    "overrides web_config_file of the config.",
)
@shard_option
@click.option(
    "--web.enable-lifecycle",
    "enable_lifecycle",
    is_flag=True,
    help="Allow config reloads over HTTP (POST /-/reload); SIGHUP always reloads.",
)
@log_level_option
def serve(
    config_path: Path,
    listen_address: str | None,
    web_config_path: Path | None,
    shard: Shard | None,
    enable_lifecycle: bool,
    log_level: str,
) -> None:
    """Poll AWS in the background and serve Prometheus metrics.

    SIGHUP (or POST /-/reload with --web.enable-lifecycle) reloads the config; a bad file
    is logged and the running config stays.

    Example: drwatch serve --config drwatch.yml --web.config.file web.yml --shard 0/3
    """
    setup_logging(log_level)
    config = load_or_fail(config_path)
    web_path = web_config_path or config.web_config_file
    web = load_web_or_fail(Path(web_path)) if web_path else None
    host, port = config.listen_host, config.listen_port
    if listen_address:
        host, port = parse_listen_address(listen_address)
    writer = open_history_writer(config.history_path)
    try:
        live = LiveExporter(
            config,
            lambda: load_config(config_path),
            shard=shard,
            on_result=writer.submit,
            lifecycle=enable_lifecycle,
        )
    except DiscoveryFailedError as error:
        writer.close()
        raise click.ClickException(str(error)) from error
    live.start_refreshing()
    with_drill_metrics(live.exporter, Path(config.history_path))
    run_until_signalled(
        lambda: live.exporter.serve(host, port, web),
        close_all(live.close, writer.close),
        host,
        reload=live.reload,
    )


def load_web_or_fail(path: Path) -> WebConfig:
    try:
        return load_web_config(path)
    except ConfigError as error:
        raise UsageProblem(f"{path}: {error}") from error


def open_history_writer(path: str | Path) -> HistoryWriter:
    try:
        return HistoryWriter(path)
    except (HistoryError, OSError, sqlite3.Error) as error:
        raise click.ClickException(f"history database {path}: {error}") from error


def close_all(*closers: Callable[[], None]) -> Callable[[], None]:
    """One close for several parts, in order (the poller first, so nothing new arrives)."""

    def close() -> None:
        for closer in closers:
            closer()

    return close


def parse_listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not host:port", param_hint="--listen-address")
    return host.strip("[]"), int(port)


def run_until_signalled(
    start: Callable[[], Any],
    close: Callable[[], None],
    host: str,
    reload: Callable[[], Any] | None = None,
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
    logging.getLogger("drwatch").info("serving on %s://%s:%d/metrics", scheme, host, server.port)
    while events.get() != "stop":
        if reload is not None:
            reload()  # logs and reports its own outcome
    server.stop()
    close()


@cli.command()
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
    default=90,
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
@log_level_option
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
) -> None:
    """Run the exporter against a simulated AWS estate (moto sandbox) with a mixed fleet.

    A history database without polls first gets `--backfill-days` of simulated history
    (incidents included), so `drwatch history` and reports have real periods to show.

    Example: drwatch demo --port 9638, then curl -s localhost:9638/metrics | grep rpo
    """
    from drwatch.sandbox.demo import run_demo  # the sandbox needs the `sandbox` extra

    setup_logging(log_level)
    stack = DemoStack(with_prometheus, prometheus_port, alertmanager_port, history_path.parent)
    # Backfill only a history without polls: simulated past after real polls would not
    # read as a timeline.
    fresh = not history_path.exists() or not has_polls(history_path)
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


def has_polls(path: Path) -> bool:
    reader = open_reader(path)
    try:
        return bool(reader.execute("SELECT count(*) FROM unit_runs").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet: no tables, so no polls
        return False
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


# --- history ---------------------------------------------------------------------------


@cli.group()
def history() -> None:
    """Inspect, verify, compact and export the evidence history (SQLite).

    Example: drwatch history verify --config drwatch.yml
    """


@history.command("stats")
@history_options
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def history_stats(config_path: Path | None, db_path: Path | None, as_json: bool) -> None:
    """Print size, rows per table, time range, resources and the chain head.

    Example: drwatch history stats --db drwatch-history.db
    """
    path, _ = resolve_history(config_path, db_path)
    require_database(path)
    summary = stats(open_reader(path), path)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    head = summary["chain_head"]
    click.echo(f"{path}: {summary['bytes']} bytes")
    click.echo(f"  polls:      {summary['first_poll']} .. {summary['last_poll']}")
    click.echo(f"  units:      {summary['units']}, resources: {summary['resources']}")
    click.echo(f"  rolled up:  before {summary['rolled_up_until'] or 'nothing yet'}")
    click.echo(f"  chain head: seq {head['seq']} sha256 {head['row_hash']}")
    for table, count in summary["rows"].items():
        click.echo(f"  {table:<14}{count:>12} rows")


@history.command("verify")
@history_options
def history_verify(config_path: Path | None, db_path: Path | None) -> None:
    """Recompute the hash chain; exit 1 naming the first broken row.

    Example: drwatch history verify --db drwatch-history.db
    """
    path, _ = resolve_history(config_path, db_path)
    require_database(path)
    outcome = verify_chain(open_reader(path))
    if not outcome.ok:
        raise click.ClickException(f"{path}: chain broken: {outcome.problem}")
    click.echo(
        f"{path}: ok, {outcome.rows} rows, chain head seq {outcome.head_seq} "
        f"sha256 {outcome.head_hash}"
    )


@history.command("compact")
@history_options
@click.option("--raw-days", type=click.IntRange(1), help="Override history.raw_days.")
@click.option("--retention-days", type=click.IntRange(1), help="Override history.retention_days.")
def history_compact(
    config_path: Path | None,
    db_path: Path | None,
    raw_days: int | None,
    retention_days: int | None,
) -> None:
    """Roll raw polls older than raw_days up per day; drop rollups older than retention.

    Safe while `drwatch serve` writes to the same file (it waits for the writer's lock).

    Example: drwatch history compact --config drwatch.yml
    """
    path, config = resolve_history(config_path, db_path)
    require_database(path)
    raw = raw_days or (config.history.raw_days if config else DEFAULT_HISTORY_RAW_DAYS)
    keep = retention_days or (
        config.history.retention_days if config else DEFAULT_HISTORY_RETENTION_DAYS
    )
    if keep < raw:
        raise click.BadParameter(f"must be >= raw days ({raw})", param_hint="--retention-days")
    with HistoryStore(path) as store:
        outcome = compact(
            store.db,
            now=datetime.now(UTC),
            raw_days=raw,
            retention_days=keep,
            policy=rpo_policy(config.tiers if config else TierConfig()),
        )
    removed = ", ".join(f"{table} {n}" for table, n in sorted(outcome.removed.items()))
    click.echo(
        f"{path}: rolled up to {datetime.fromtimestamp(outcome.raw_cutoff, UTC):%Y-%m-%d}: "
        f"{outcome.rollups} rollups added, removed {removed or 'nothing'}"
    )


def rpo_policy(tiers: TierConfig) -> RpoPolicy:
    targets = {name: target.rpo_seconds for name, target in tiers.targets.items()}
    default = tiers.targets.get(tiers.default_tier, DEFAULT_TIER_TARGETS["standard"])
    return RpoPolicy(targets, default.rpo_seconds)


UTC_DATE = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"])


@history.command("export")
@history_options
@click.option("--since", type=UTC_DATE, required=True, help="Start (UTC), included.")
@click.option("--until", type=UTC_DATE, required=True, help="End (UTC), excluded.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["csv", "json"]),
    default="json",
    show_default=True,
    help="json: one document with the chain head; csv: one line per evidence row.",
)
@click.option(
    "--output",
    "-o",
    # Not lazy: an unwritable path is a usage error (exit 2) before any work is done.
    type=click.File("w", encoding="utf-8", lazy=False),
    default="-",
    help="Output file (default: stdout).",
)
def history_export(
    config_path: Path | None,
    db_path: Path | None,
    since: datetime,
    until: datetime,
    output_format: str,
    output: Any,
) -> None:
    """Export every evidence row of a period, with its hashes, for an auditor.

    Example: drwatch history export --db h.db --since 2026-10-01 --until 2026-11-01 --format csv
    """
    path, _ = resolve_history(config_path, db_path)
    require_database(path)
    start, end = since.replace(tzinfo=UTC), until.replace(tzinfo=UTC)
    if end <= start:
        raise click.BadParameter("must be after --since", param_hint="--until")
    write = write_csv if output_format == "csv" else write_json
    count = write(open_reader(path), start, end, output)
    click.echo(f"{count} rows exported", err=True)


# Command groups that live in their own modules (imported here: cli.py is the composition root).
from drwatch.cli.deploy import prometheus_rule_command  # noqa: E402
from drwatch.cli.drill import drill, record_demo_drills, with_drill_metrics  # noqa: E402
from drwatch.cli.merge import history_merge  # noqa: E402
from drwatch.cli.report import render_demo_reports, report  # noqa: E402

cli.add_command(drill)
cli.add_command(report)
history.add_command(history_merge)
cli.add_command(prometheus_rule_command)
