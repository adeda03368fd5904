"""What the `drwatch` command modules share: the exit-2 error, config loading, shared options.

`main.py` registers the commands of `serve`, `demo`, `history`, `drill`, `report`, `merge`
and `deploy`; those modules import from here rather than from `main.py`, which imports them.
Every option more than one command takes is declared once here, as a decorator.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from drwatch.cli.outputs import DEFAULT_MODE, OutputPolicy, parse_mode
from drwatch.config import Config, ConfigError, load_config
from drwatch.history.store import HistoryError

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_HELP = "drwatch YAML config file (see drwatch.example.yml)."
DB_HELP = "History database file (default: history.path of --config)."


class _UtcDate(click.ParamType[Any, Any]):
    """A date or ISO 8601 time, naive (read as UTC), with "Z" or with an offset; always
    returned as an aware UTC datetime (an offset is converted, never dropped)."""

    name = "datetime"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from datetime import UTC, datetime

        if isinstance(value, datetime):
            moment = value
        else:
            text = str(value).strip()
            try:
                moment = datetime.fromisoformat(
                    text[:-1] + "+00:00" if text[-1:] in "zZ" and text else text
                )
            except ValueError:
                self.fail(
                    f"{value!r} is not a UTC time like 2026-10-01, 2026-10-01T12:00:00Z or "
                    "2026-10-01T14:00:00+02:00",
                    param,
                    ctx,
                )
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


UTC_DATE = _UtcDate()


class UsageProblem(click.ClickException):
    """Bad input the user can fix (a config field, a path, a period): exit 2 like a usage error."""

    exit_code = 2


def load_or_fail(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        raise UsageProblem(f"{path}: {error}") from error


def config_option(help_text: str = CONFIG_HELP, *, required: bool = False) -> Callable[[F], F]:
    """`--config.file` (or `--config`, `-c`) PATH as `config_path`; the help says what the
    command reads from it."""
    return click.option(
        "--config.file",
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


def resolve_history(config_path: Path | None, db_path: Path | None) -> tuple[Path, Config | None]:
    """The history file (--db, else the config's history.path) and the config if given."""
    config = load_or_fail(config_path) if config_path else None
    if db_path is not None:
        path = db_path
    elif config is not None:
        path = Path(config.history_path)
    else:
        raise click.UsageError("give --config (uses history.path) or --db PATH")
    refuse_non_history(path)
    return path, config


SQLITE_HEADER = b"SQLite format 3\x00"


def refuse_non_history(path: Path) -> None:
    """Exit 2 before SQLite sees a path that cannot be a history (SQLite would raise, or
    turn an empty file into a new database); a missing file is the command's to judge."""
    if path.is_dir():
        raise UsageProblem(f"{path}: is a directory, not a history database")
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as error:
        raise UsageProblem(f"{path}: cannot read the history: {error.strerror}") from error
    if header and header != SQLITE_HEADER:
        raise UsageProblem(f"{path}: not a SQLite database, so not a drwatch history")


def require_database(path: Path) -> None:
    if not path.is_file():
        raise UsageProblem(f"{path}: no history database here")
    if path.stat().st_size == 0:
        raise UsageProblem(f"{path}: empty file, not a drwatch history")


@contextlib.contextmanager
def reading_history(path: Path) -> Iterator[None]:
    """SQLite's and the store's errors about the file (corrupt, locked, not a history) as
    exit 2 naming it, instead of a traceback."""
    try:
        yield
    except (sqlite3.DatabaseError, HistoryError) as error:
        raise UsageProblem(f"{path}: cannot read the history: {error}") from error


def _mode(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_mode(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from error


def output_options(function: F) -> F:
    """`--force`, `--follow-symlinks` and `--mode`, passed on as `output_policy`
    (`outputs.OutputPolicy`): every command that writes a file takes all three."""

    @functools.wraps(function)
    def wrapper(*args: Any, force: bool, follow_symlinks: bool, mode: int, **kwargs: Any) -> Any:
        return function(*args, output_policy=OutputPolicy(force, follow_symlinks, mode), **kwargs)

    options = (
        click.option("--force", is_flag=True, help="Replace an existing output file."),
        click.option(
            "--follow-symlinks",
            is_flag=True,
            help="Write through an output path that is a symbolic link (to its target).",
        ),
        click.option(
            "--mode",
            metavar="OCTAL",
            callback=_mode,
            default=f"{DEFAULT_MODE:04o}",
            show_default=True,
            help="Permissions of the files written, octal (they list the estate, like the "
            "0600 history).",
        ),
    )
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]
