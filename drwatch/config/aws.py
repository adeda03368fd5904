"""`aws:` (botocore client settings) and `poller:` (the pool that runs collection units)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from drwatch.config.fields import (
    ConfigError,
    bounded_integer,
    one_of,
    optional,
    positive_duration,
    section,
    string,
)

RETRY_MODES: Final[tuple[str, ...]] = ("standard", "adaptive")
DEFAULT_RETRY_MODE: Final = "standard"
DEFAULT_MAX_ATTEMPTS: Final = 5
MAX_ATTEMPTS_LIMIT: Final = 20
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_READ_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_MAX_POOL_CONNECTIONS: Final = 10

# Units mostly wait on AWS; 4 accounts x 4 regions x 6 collectors are 96 units, and a pool
# much smaller than that makes a round the sum of unit times instead of the slowest unit's
# (bench/scale.py, which also checks every chain stays inside AWS's documented rates).
DEFAULT_MAX_WORKERS: Final = 32
MAX_WORKERS_LIMIT: Final = 64

_AWS_FIELDS: Final = (
    "endpoint_url",
    "retry_mode",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
    "max_pool_connections",
)
_POLLER_FIELDS: Final = ("max_workers",)


@dataclass(frozen=True, slots=True)
class AwsConfig:
    """botocore client settings shared by every collector."""

    endpoint_url: str | None = None
    retry_mode: str = DEFAULT_RETRY_MODE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    max_pool_connections: int = DEFAULT_MAX_POOL_CONNECTIONS


@dataclass(frozen=True, slots=True)
class PollerConfig:
    """Size of the thread pool that runs (collector, account, region) units."""

    max_workers: int = DEFAULT_MAX_WORKERS


def parse_aws(value: object, path: str) -> AwsConfig:
    fields = section(value, path, _AWS_FIELDS)
    return AwsConfig(
        endpoint_url=optional(fields, path, "endpoint_url", None, _endpoint_url),
        retry_mode=optional(
            fields, path, "retry_mode", DEFAULT_RETRY_MODE, lambda v, p: one_of(v, p, RETRY_MODES)
        ),
        max_attempts=optional(
            fields,
            path,
            "max_attempts",
            DEFAULT_MAX_ATTEMPTS,
            bounded_integer(1, MAX_ATTEMPTS_LIMIT),
        ),
        connect_timeout_seconds=optional(
            fields, path, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_SECONDS, positive_duration
        ),
        read_timeout_seconds=optional(
            fields, path, "read_timeout", DEFAULT_READ_TIMEOUT_SECONDS, positive_duration
        ),
        max_pool_connections=optional(
            fields, path, "max_pool_connections", DEFAULT_MAX_POOL_CONNECTIONS, bounded_integer(1)
        ),
    )


def _endpoint_url(value: object, path: str) -> str:
    url = string(value, path)
    problem = "must be an http(s) URL such as http://127.0.0.1:5000"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigError(path, problem) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, problem)
    return url


def parse_poller(value: object, path: str) -> PollerConfig:
    fields = section(value, path, _POLLER_FIELDS)
    return PollerConfig(
        max_workers=optional(
            fields, path, "max_workers", DEFAULT_MAX_WORKERS, bounded_integer(1, MAX_WORKERS_LIMIT)
        )
    )
