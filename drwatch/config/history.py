"""`history:`: where the evidence history lives and how long its data are kept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from drwatch.config.fields import ConfigError, integer, section, string

DEFAULT_HISTORY_PATH: Final = "drwatch-history.db"
# Raw polls are kept 35 days (a month's report plus margin), then rolled up per day;
# rollups are kept about 7 years (2557 days), a common audit-evidence horizon.
DEFAULT_HISTORY_RAW_DAYS: Final = 35
DEFAULT_HISTORY_RETENTION_DAYS: Final = 2557
MAX_HISTORY_DAYS: Final = 36600
# `serve` compacts daily at this UTC time (plus up to 30 minutes of jitter); "off" disables.
DEFAULT_COMPACT_AT: Final = "03:30"
COMPACT_OFF: Final = "off"
_COMPACT_AT_RE: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)

_HISTORY_FIELDS: Final = ("path", "raw_days", "retention_days", "compact_at")


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """Where the evidence history lives and how long raw and rolled-up data are kept."""

    path: str = DEFAULT_HISTORY_PATH
    raw_days: int = DEFAULT_HISTORY_RAW_DAYS
    retention_days: int = DEFAULT_HISTORY_RETENTION_DAYS
    # "HH:MM" UTC, or "off" (then only `drwatch history compact` compacts).
    compact_at: str = DEFAULT_COMPACT_AT

    @property
    def compact_minute_of_day(self) -> int | None:
        """Minutes after 00:00 UTC of the daily compaction; None when it is off."""
        match = _COMPACT_AT_RE.fullmatch(self.compact_at)
        return None if match is None else int(match[1]) * 60 + int(match[2])


def parse_history(value: object, legacy_path: object) -> HistoryConfig:
    """The `history:` section; `legacy_path` is the old top-level `history_path` key."""
    fields = section(value, "history", _HISTORY_FIELDS)
    if legacy_path is not None and fields.get("path") is not None:
        raise ConfigError(
            "history_path", "replaced by history.path; set only history.path, not both"
        )
    path_value = fields.get("path", legacy_path)
    path_field = "history.path" if fields.get("path") is not None else "history_path"
    raw_days = _days(fields.get("raw_days"), "history.raw_days", DEFAULT_HISTORY_RAW_DAYS)
    retention_days = _days(
        fields.get("retention_days"), "history.retention_days", DEFAULT_HISTORY_RETENTION_DAYS
    )
    # Rollups are made from raw data; keeping them for less time than raw data is a mistake.
    if retention_days < raw_days:
        raise ConfigError("history.retention_days", f"must be >= history.raw_days ({raw_days})")
    return HistoryConfig(
        path=_history_path(path_value, path_field),
        raw_days=raw_days,
        retention_days=retention_days,
        compact_at=_compact_at(fields.get("compact_at")),
    )


def _compact_at(value: object) -> str:
    if value is None:
        return DEFAULT_COMPACT_AT
    if value is False:  # YAML `off` unquoted is a boolean
        return COMPACT_OFF
    if isinstance(value, int):
        # YAML 1.1 reads an unquoted 23:59 as the base-60 number 1439.
        raise ConfigError("history.compact_at", 'quote the time: "HH:MM" (e.g. "03:30") or "off"')
    text = string(value, "history.compact_at").strip()
    if text.lower() == COMPACT_OFF:
        return COMPACT_OFF
    if _COMPACT_AT_RE.fullmatch(text) is None:
        raise ConfigError(
            "history.compact_at", 'must be a UTC time "HH:MM" (e.g. "03:30") or "off"'
        )
    return text


def _days(value: object, path: str, default: int) -> int:
    return default if value is None else integer(value, path, 1, MAX_HISTORY_DAYS)


def _history_path(value: object, path: str) -> str:
    if value is None:
        return DEFAULT_HISTORY_PATH
    history_path = string(value, path)
    # SQLite (and the OS) cannot open a path with a NUL byte in it.
    if "\0" in history_path:
        raise ConfigError(path, "must not contain NUL characters")
    return history_path
