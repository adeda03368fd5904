"""Logging for the long-running commands: `--log.level` and `--log.format`, as every
Prometheus exporter spells them (exporter-toolkit's promslog).

Formats: `logfmt` (the default, `ts=... level=info source=... msg="..."`), `json` (one object
a line, for log pipelines), `text` (the earlier human format). Credentials never reach a log
line whatever the format: the code never logs them (tests/test_security.py checks every
format); the formatter only encodes what it is given.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final = ("logfmt", "json", "text")
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, str]:
    fields = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "source": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info:
        fields["err"] = formatter.formatException(record.exc_info)
    return fields


class LogfmtFormatter(logging.Formatter):
    """`key=value` pairs; values with spaces, quotes or `=` are quoted and escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record, self).items())


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\\\n\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False)


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "logfmt":
        return LogfmtFormatter()
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(_TEXT_FORMAT)


def setup_logging(level: str, log_format: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # botocore logs request details at debug level; keep it quiet unless asked explicitly.
    logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLevelName(level.upper())))


def logging_options(function: F) -> F:
    """`--log.level` and `--log.format` (the old `--log-level` still works, for one release)."""
    function = click.option(
        "--log.format",
        "log_format",
        type=click.Choice(FORMATS),
        default="logfmt",
        show_default=True,
        help="Log line format (logs go to stderr).",
    )(function)
    return click.option(
        "--log.level",
        "--log-level",
        "log_level",
        type=click.Choice(LEVELS),
        default="info",
        show_default=True,
        help="Log verbosity.",
    )(function)
