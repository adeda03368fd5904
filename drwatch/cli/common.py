"""What the `drwatch` command modules share: the exit-2 error, config loading, shared options.

`main.py` registers the commands of `serve`, `demo`, `history`, `drill`, `report`, `merge`
and `deploy`; those modules import from here rather than from `main.py`, which imports them.
Every option more than one command takes is declared once here, as a decorator.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from drwatch.config import Config, ConfigError, load_config

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_HELP = "drwatch YAML config file (see drwatch.example.yml)."
DB_HELP = "History database file (default: history.path of --config)."
UTC_DATE = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"])


class UsageProblem(click.ClickException):
    """Bad input the user can fix (a config field, a path, a period): exit 2 like a usage error."""

    exit_code = 2


def load_or_fail(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        raise UsageProblem(f"{path}: {error}") from error


def config_option(help_text: str = CONFIG_HELP, *, required: bool = False) -> Callable[[F], F]:
    """`--config/-c PATH` as `config_path`; the help says what the command reads from it."""
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        required=required,
        help=help_text,
    )


def db_option(*aliases: str) -> Callable[[F], F]:
    """`--db PATH` (and any alias, e.g. report's `--history`) as `db_path`."""
    return click.option(
        "--db",
        *aliases,
        "db_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help=DB_HELP,
    )


def history_options(function: F) -> F:
    """`--config` then `--db`: the commands that read or write the history take both."""
    function = db_option()(function)
    return config_option("drwatch YAML config file: its history settings and tiers.")(function)


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


def resolve_history(config_path: Path | None, db_path: Path | None) -> tuple[Path, Config | None]:
    """The history file (--db, else the config's history.path) and the config if given."""
    config = load_or_fail(config_path) if config_path else None
    if db_path is not None:
        return db_path, config
    if config is None:
        raise click.UsageError("give --config (uses history.path) or --db PATH")
    return Path(config.history_path), config


def require_database(path: Path) -> None:
    if not path.is_file():
        raise UsageProblem(f"{path}: no history database here")
