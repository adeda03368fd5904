"""`collectors:`: which collectors run and how often (names and defaults: catalogue.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from drwatch.config.catalogue import (
    DEFAULT_ENABLED_COLLECTORS,
    DEFAULT_INTERVALS,
    DEFAULT_STALE_AFTER_INTERVALS,
    KNOWN_COLLECTORS,
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
)
from drwatch.config.fields import (
    ConfigError,
    boolean,
    child,
    duration,
    format_seconds,
    mapping,
    optional,
    positive_duration,
    section,
)

_COLLECTOR_FIELDS: Final = ("enabled", "interval", "stale_after", "timeout")


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Scheduling of one collector; all values in seconds."""

    enabled: bool
    interval_seconds: float
    stale_after_seconds: float
    timeout_seconds: float


def parse_collectors(
    value: object, path: str, enabled_by_default: frozenset[str] = DEFAULT_ENABLED_COLLECTORS
) -> Mapping[str, CollectorConfig]:
    given = mapping({} if value is None else value, path)
    for name in given:
        if name not in KNOWN_COLLECTORS:
            raise ConfigError(
                child(path, name),
                f"unknown collector; expected one of {', '.join(KNOWN_COLLECTORS)}",
            )
    # Every known collector is present so callers never need a fallback.
    return MappingProxyType(
        {
            name: _parse_collector(
                name, given.get(name), child(path, name), name in enabled_by_default
            )
            for name in KNOWN_COLLECTORS
        }
    )


def _parse_collector(
    name: str, value: object, path: str, enabled_by_default: bool
) -> CollectorConfig:
    fields = section(value, path, _COLLECTOR_FIELDS)
    interval = _interval(fields.get("interval"), child(path, "interval"), name)
    stale_after = _stale_after(fields.get("stale_after"), child(path, "stale_after"), interval)
    timeout = _timeout(fields.get("timeout"), child(path, "timeout"), interval, stale_after)
    return CollectorConfig(
        enabled=optional(fields, path, "enabled", enabled_by_default, boolean),
        interval_seconds=interval,
        stale_after_seconds=stale_after,
        timeout_seconds=timeout,
    )


def _interval(value: object, path: str, collector: str) -> float:
    if value is None:
        return DEFAULT_INTERVALS[collector]
    interval = duration(value, path)
    if interval < MIN_INTERVAL_SECONDS:
        raise ConfigError(path, f"must be >= {MIN_INTERVAL_SECONDS:g}")
    if interval > MAX_INTERVAL_SECONDS:
        raise ConfigError(path, f"must be <= {MAX_INTERVAL_SECONDS:g}")
    return interval


def _stale_after(value: object, path: str, interval: float) -> float:
    if value is None:
        return DEFAULT_STALE_AFTER_INTERVALS * interval
    stale_after = duration(value, path)
    # Data cannot go stale before the next poll was even due.
    if stale_after < interval:
        raise ConfigError(path, f"must be >= interval ({format_seconds(interval)})")
    return stale_after


def _timeout(value: object, path: str, interval: float, stale_after: float) -> float:
    if value is None:
        return interval
    timeout = positive_duration(value, path)
    # A run allowed to outlast stale_after would mark healthy data stale.
    if timeout > stale_after:
        raise ConfigError(path, f"must be <= stale_after ({format_seconds(stale_after)})")
    return timeout
