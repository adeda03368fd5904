"""What the `drwatch` command modules share: the exit-2 error, config loading, history options.

`cli.py` registers the command groups of `cli_drill`, `cli_report` and `cli_merge`; those
modules import from here rather than from `cli.py`, which imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from drwatch.config import Config, ConfigError, load_config

F = TypeVar("F", bound=Callable[..., Any])


class UsageProblem(click.ClickException):
    """Bad input the user can fix (a config field, a path, a period): exit 2 like a usage error."""

    exit_code = 2


def load_or_fail(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        raise UsageProblem(f"{path}: {error}") from error


def history_options(function: F) -> F:
    function = click.option(
        "--db",
        "db_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="History database file (default: history.path of --config).",
    )(function)
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="drwatch YAML config file: its history settings and tiers.",
    )(function)


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
