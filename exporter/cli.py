"""The `drwatch` command line: the composition root of exporter (and, later, reports)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from exporter import __version__
from exporter.collectors import collector_classes
from exporter.config import DEFAULT_PORT, Config, ConfigError, load_config
from exporter.iam import policy_document
from exporter.model import to_jsonable
from exporter.service import build_exporter

F = TypeVar("F", bound=Callable[..., Any])


class ConfigProblem(click.ClickException):
    """A bad config file: the message names the field; exit code 2 like a usage error."""

    exit_code = 2


def load_or_fail(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        raise ConfigProblem(f"{path}: {error}") from error


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
    click.echo(
        f"{config_path}: ok ({len(config.accounts)} accounts, {len(config.regions)} regions, "
        f"collectors: {enabled})"
    )


@cli.command("iam-policy")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Only the actions of the collectors this config enables (default: all collectors).",
)
def iam_policy(config_path: Path | None) -> None:
    """Print the least-privilege IAM policy drwatch needs in each account.

    Example: drwatch iam-policy > drwatch-read-policy.json
    """
    names = load_or_fail(config_path).enabled_collectors() if config_path else None
    click.echo(json.dumps(policy_document(collector_classes(names)), indent=2))


@cli.command()
@config_option
@click.option("--once", is_flag=True, required=True, help="Poll every unit once, then exit.")
@click.option("--json", "as_json", is_flag=True, help="Print observations as JSON.")
@log_level_option
def poll(config_path: Path, once: bool, as_json: bool, log_level: str) -> None:
    """Run one round of every enabled unit and print what was observed.

    Exits 1 if any unit failed (its error is in the output).

    Example: drwatch poll --config drwatch.yml --once --json | jq '.units[].run.success'
    """
    setup_logging(log_level)
    exporter = build_exporter(load_or_fail(config_path))
    results: list[Any] = []
    exporter.poller.run_round()
    exporter.close()
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
@log_level_option
def serve(config_path: Path, listen_address: str | None, log_level: str) -> None:
    """Poll AWS in the background and serve Prometheus metrics.

    Example: drwatch serve --config drwatch.yml
    """
    setup_logging(log_level)
    config = load_or_fail(config_path)
    host, port = config.listen_host, config.listen_port
    if listen_address:
        host, port = parse_listen_address(listen_address)
    exporter = build_exporter(config)
    run_until_signalled(lambda: exporter.serve(host, port), exporter.close, host)


def parse_listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not host:port", param_hint="--listen-address")
    return host.strip("[]"), int(port)


def run_until_signalled(start: Callable[[], Any], close: Callable[[], None], host: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = start()
    logging.getLogger("drwatch").info("serving on http://%s:%d/metrics", host, server.port)
    stop.wait()
    server.stop()
    close()


@cli.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Exporter port.")
@click.option("--instances", default=24, show_default=True, help="RDS instances to seed.")
@click.option("--clusters", default=8, show_default=True, help="Aurora clusters to seed.")
@click.option("--seed", default=42, show_default=True, help="Fleet generator seed.")
@click.option("--interval", default=60, show_default=True, help="Poll interval in seconds.")
@log_level_option
def demo(
    port: int, instances: int, clusters: int, seed: int, interval: int, log_level: str
) -> None:
    """Run the exporter against a simulated AWS estate (moto sandbox) with a mixed fleet.

    Example: drwatch demo --port 9638, then curl -s localhost:9638/metrics | grep rpo
    """
    from exporter.sandbox.demo import run_demo  # the sandbox needs the `sandbox` extra

    setup_logging(log_level)
    run_demo(
        instances=instances,
        clusters=clusters,
        seed=seed,
        interval=interval,
        now=datetime.now(UTC),
        run=lambda exporter: run_until_signalled(
            lambda: _serve_and_announce(exporter, port), exporter.close, "127.0.0.1"
        ),
    )


def wait_until(condition: Callable[[], bool], timeout_seconds: float) -> None:
    finished = threading.Event()
    deadline = threading.Timer(timeout_seconds, finished.set)
    deadline.start()
    while not condition() and not finished.wait(0.1):
        pass
    deadline.cancel()


def _serve_and_announce(exporter: Any, port: int) -> Any:
    server = exporter.serve("127.0.0.1", port)
    wait_until(lambda: exporter.poller.ready, timeout_seconds=120)
    url = f"http://127.0.0.1:{server.port}"
    click.echo(
        f"\ndrwatch demo is serving a simulated estate.\n"
        f"  landing page: {url}/\n  metrics:      {url}/metrics\n"
        f"  try:          curl -s {url}/metrics | grep -E "
        f"'drwatch_(resource_recovery_point|recovery_mechanism_enabled)'\n"
        f"Stop with Ctrl-C.\n"
    )
    return server
