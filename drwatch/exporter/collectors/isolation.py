"""Degrade by the record and by the optional call, not by the unit.

A unit run carries one `Collection`: the pure mapping (`observe`) skips a record it cannot
map and counts it by reason; `fetch` wraps each optional call in `optional(feature, ...)`.
An optional call that answers "not offered here" (see `is_unavailable`) is remembered per
collector, account and region for a day (`FeatureMemory`, on the runner's monotonic clock)
and not made again meanwhile; any other error of an optional call marks the feature failed
for this poll only. Core calls are plain calls: their errors still fail the unit.

What ends up in the unit's run: skipped records by reason and feature states, so the metrics
show `drwatch_collector_records_skipped_total`, `drwatch_collector_partial` and
`drwatch_collector_feature_available`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Error codes AWS (and AWS-compatible endpoints) answer for an operation not offered there.
UNAVAILABLE_CODES = frozenset(
    {
        "UnknownOperation",
        "UnknownOperationException",
        "InvalidAction",
        "UnsupportedOperation",
        "UnsupportedOperationException",
        "UnrecognizedClientException",
        "NotImplemented",
    }
)
FEATURE_MEMORY_SECONDS = 86_400.0  # an unavailable feature is asked for again after a day
LOG_INTERVAL_SECONDS = 3_600.0  # one skip line per unit and reason per hour at most

# Feature states a run records (UnitRun.features).
AVAILABLE = "available"
UNAVAILABLE = "unavailable"
FAILED = "failed"

# Reasons a record is skipped (the `reason` label: a small fixed set).
MISSING_FIELD = "missing_field"
MALFORMED_FIELD = "malformed_field"
UNKNOWN_VALUE = "unknown_value"
SKIP_REASONS = (MISSING_FIELD, MALFORMED_FIELD, UNKNOWN_VALUE)


class RecordError(ValueError):
    """A record that cannot be mapped; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def require(record: Mapping[str, Any], key: str) -> Any:
    """`record[key]`, or a RecordError naming the field when it is absent or empty."""
    value = record.get(key)
    if value is None or value == "":
        raise RecordError(MISSING_FIELD, f"{key} absent")
    return value


def error_code_of(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status_of(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_unavailable(error: Exception) -> bool:
    """True when the answer means "this operation is not offered here".

    A 404 counts unless its code names a missing resource (NoSuch..., ...NotFound...), which
    is an answer about data, not about the operation.
    """
    if not isinstance(error, ClientError):
        return False
    code = error_code_of(error)
    if code in UNAVAILABLE_CODES:
        return True
    if http_status_of(error) == 404 or code == "404":
        return not (code.startswith("NoSuch") or "NotFound" in code)
    return False


class FeatureMemory:
    """Which optional features a unit found unavailable, and when to ask again.

    Shared by the runs of a runner (threads), keyed by (collector, account, region, feature).
    Also rate-limits the skip log lines, which must outlive one run too.
    """

    def __init__(
        self,
        monotonic: Callable[[], float],
        ttl_seconds: float = FEATURE_MEMORY_SECONDS,
        log_interval_seconds: float = LOG_INTERVAL_SECONDS,
    ) -> None:
        self._monotonic = monotonic
        self._ttl = ttl_seconds
        self._log_interval = log_interval_seconds
        self._lock = threading.Lock()
        self._unavailable_until: dict[tuple[str, ...], float] = {}
        self._logged_at: dict[tuple[str, ...], float] = {}

    def unavailable(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            until = self._unavailable_until.get(key)
            if until is None:
                return False
            if self._monotonic() >= until:
                del self._unavailable_until[key]
                return False
            return True

    def remember_unavailable(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._unavailable_until[key] = self._monotonic() + self._ttl

    def may_log(self, key: tuple[str, ...]) -> bool:
        now = self._monotonic()
        with self._lock:
            last = self._logged_at.get(key)
            if last is not None and now - last < self._log_interval:
                return False
            self._logged_at[key] = now
            return True


class Collection:
    """What one unit run skipped and which optional features it could read.

    Not thread-safe: one run, one thread. A default instance (pure `observe` in tests) keeps
    no memory across runs and logs every first skip of a reason.
    """

    def __init__(
        self,
        unit: tuple[str, str, str] = ("", "", ""),  # collector, account, region
        memory: FeatureMemory | None = None,
    ) -> None:
        self.unit = unit
        self._memory = memory
        self.skipped: Counter[str] = Counter()
        self.features: dict[str, str] = {}

    @property
    def partial(self) -> bool:
        return bool(self.skipped) or FAILED in self.features.values()

    # -- records ------------------------------------------------------------------------

    def skip(self, record_id: str, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        key = (*self.unit, reason)
        if self._memory is None or self._memory.may_log(key):
            collector, account, region = self.unit
            log.warning(
                "%s %s %s: record %r skipped (%s: %s)",
                collector, account, region, record_id[:200], reason, detail[:200],
            )  # fmt: skip

    def each(
        self,
        records: Iterable[T],
        identify: Callable[[T], Any],
        mapping: Callable[[T], R],
    ) -> Iterator[R]:
        """`mapping(record)` for every record it can map; the others are skipped and counted."""
        for record in records:
            try:
                yield mapping(record)
            except (RecordError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
                self.skip(_identity(identify, record), skip_reason(e), _detail(e))

    def keep(
        self, records: Iterable[T], identify: Callable[[T], Any], check: Callable[[T], Any]
    ) -> list[T]:
        """The records `check` accepts (it raises on a record that cannot be mapped)."""
        return [record for record, _ in self.each(records, identify, lambda r: (r, check(r)))]

    # -- optional calls -----------------------------------------------------------------

    def optional(self, feature: str, call: Callable[[], T], default: T) -> T:
        """`call()`, or `default` when the feature is unavailable here or failed this poll."""
        key = (*self.unit, feature)
        if self._memory is not None and self._memory.unavailable(key):
            self.features[feature] = UNAVAILABLE
            return default
        try:
            answer = call()
        except ClientError as error:
            if is_unavailable(error):
                self.features[feature] = UNAVAILABLE
                if self._memory is not None:
                    self._memory.remember_unavailable(key)
                log.info("%s: optional feature %s not available here", self.unit, feature)
            else:
                self.features[feature] = FAILED
                log.warning(
                    "%s: optional feature %s failed this poll: %s",
                    self.unit, feature, error_code_of(error),
                )  # fmt: skip
            return default
        except (BotoCoreError, ResponseParserError) as error:  # timeouts, HTML pages: this poll
            self.features[feature] = FAILED
            log.warning(
                "%s: optional feature %s failed this poll: %s",
                self.unit, feature, type(error).__name__,
            )  # fmt: skip
            return default
        self.features.setdefault(feature, AVAILABLE)
        return answer


def skip_reason(error: Exception) -> str:
    if isinstance(error, RecordError):
        return error.reason
    if isinstance(error, KeyError):
        return MISSING_FIELD
    return MALFORMED_FIELD


def _detail(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"{error.args[0] if error.args else ''} absent"
    return f"{type(error).__name__}: {error}"


def _identity(identify: Callable[[Any], Any], record: Any) -> str:
    try:
        return str(identify(record))
    except Exception:  # an unidentifiable record is still skipped, as "?"
        return "?"
