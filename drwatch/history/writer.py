"""The one writer thread: the poller's sink puts unit results on a queue, this thread ingests.

SQLite allows one writer at a time; a single owning thread makes that a property of the
design rather than of lock timing, and keeps slow disk I/O out of the poller's pool threads.

Failures do not stop it. A result that cannot be stored (disk full, the database locked
past `lock_wait_seconds`, an I/O error) stays at the head of the queue and is retried with
exponential backoff until it is stored; the results behind it wait, in order. Each ingest is
one transaction that is rolled back on failure and skipped if already stored, so a retry
never loses, tears or doubles a poll and the hash chain stays whole. While it fails,
`status()` says so (the exporter turns that into metrics and a 503 on /-/ready).

The queue is bounded: when it is full, `submit` waits up to `submit_timeout_seconds` and then
drops the result, counted by cause, so a stuck disk neither blocks the pollers for ever nor
loses evidence unseen. A result that fails for a reason of its own (a bug: "other") is
retried `max_other_attempts` times and then rejected, counted and logged, so that one bad
record cannot stop the history for good.

The same thread runs the scheduled compaction (schedule.py) between two results.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

from drwatch.core.model import UnitResult
from drwatch.history.compact import compact
from drwatch.history.schedule import (
    COMPACTION_RETRY_SECONDS,
    CompactionPlan,
    CompactionStatus,
    draw_jitter,
    next_compaction,
)
from drwatch.history.store import HistoryStore

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE: Final = 256
# How long a poller worker waits for queue space before the result is dropped (and counted).
DEFAULT_SUBMIT_TIMEOUT_SECONDS: Final = 120.0
# How long one ingest waits for another process's write lock (a `drwatch history compact`,
# a drill import) before it counts as failed "locked" and is retried after a backoff.
DEFAULT_LOCK_WAIT_SECONDS: Final = 30.0
RETRY_FIRST_SECONDS: Final = 1.0
RETRY_MAX_SECONDS: Final = 30.0
MAX_OTHER_ATTEMPTS: Final = 5
# The scheduler wakes at least this often, so a changed wall clock is noticed.
MAX_IDLE_SECONDS: Final = 60.0

# Why a write failed: a small fixed set, the label values of drwatch_history_write_errors.
REASONS: Final = ("disk_full", "locked", "io_error", "other")
# Why a result was not stored at all: drwatch_history_dropped_results.
DROP_CAUSES: Final = ("queue_full", "rejected", "shutdown")
_RETRIED_FOR_EVER: Final = frozenset({"disk_full", "locked", "io_error"})

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_FULL, _SQLITE_CANTOPEN = 13, 14
_DISK_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

Sleeper = Callable[[float], None]
WallClock = Callable[[], datetime]


class HistoryWriterError(Exception):
    """Results could not be stored (rejected, dropped, or left at shutdown); cause chained."""


def classify_write_error(error: BaseException) -> str:
    """One of REASONS; never the error's text (that goes to the log)."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _SQLITE_FULL:
            return "disk_full"
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return "locked"
        if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN, _SQLITE_READONLY):
            return "io_error"
        text = str(error).lower()
        if "disk is full" in text:
            return "disk_full"
        if "locked" in text:
            return "locked"
        if "i/o error" in text:
            return "io_error"
        return "other"
    if isinstance(error, OSError):
        return "disk_full" if error.errno in _DISK_FULL_ERRNOS else "io_error"
    return "other"


@dataclass(frozen=True, slots=True)
class WriterStatus:
    """The writer at one moment, as the exporter's metrics and /-/ready read it."""

    write_success: bool  # False from a failed attempt until the next stored result
    last_write: datetime | None  # when a result was last committed
    queue_depth: int  # results waiting, the one being retried included
    queue_capacity: int
    errors: Mapping[str, int]  # failed attempts by reason (every REASON present)
    dropped: Mapping[str, int]  # results never stored, by cause (every DROP_CAUSE present)
    failing_since: datetime | None = None
    last_reason: str = ""  # one of REASONS while failing
    last_error: str = ""  # for logs and people, never for labels or HTTP answers
    compaction: CompactionStatus | None = None

    @property
    def problem(self) -> str | None:
        """Why evidence cannot be written now, or None."""
        if self.write_success:
            return None
        since = f" since {self.failing_since:%Y-%m-%dT%H:%M:%SZ}" if self.failing_since else ""
        return f"history writes failing{since} ({self.last_reason or 'other'}); see the log"


_STOP = object()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HistoryWriter:
    """`submit` is the poller's `on_result` sink; results are ingested in arrival order."""

    def __init__(
        self,
        path: str | Path,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        *,
        clock: WallClock = _utc_now,
        sleep: Sleeper | None = None,
        lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
        submit_timeout_seconds: float = DEFAULT_SUBMIT_TIMEOUT_SECONDS,
        max_other_attempts: int = MAX_OTHER_ATTEMPTS,
        compaction: CompactionPlan | None = None,
        rng: random.Random | None = None,
        backoff: Callable[[int], float] | None = None,
    ) -> None:
        self._path = Path(path)
        self._lock_wait = lock_wait_seconds
        self._store: HistoryStore | None = self._open()  # a bad path fails at start-up
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._capacity = queue_size
        self._clock = clock
        self._closing = threading.Event()
        # The default sleep is cut short by close(), so shutdown never waits out a backoff.
        self._sleep = sleep or self._wait
        self._backoff = backoff or backoff_seconds
        self._submit_timeout = submit_timeout_seconds
        self._max_other_attempts = max_other_attempts
        self._plan = compaction
        self._jitter = 0.0
        self._lock = threading.Lock()
        self._status = WriterStatus(
            write_success=True,
            last_write=None,
            queue_depth=0,
            queue_capacity=queue_size,
            errors=MappingProxyType(dict.fromkeys(REASONS, 0)),
            dropped=MappingProxyType(dict.fromkeys(DROP_CAUSES, 0)),
            compaction=self._first_compaction_status(rng),
        )
        # What flush() and close() must report: results not stored since the last report.
        self._unflushed: Counter[str] = Counter()
        self._last_rejection = ""
        self._thread = threading.Thread(target=self._run, name="drwatch-history", daemon=True)
        self._thread.start()

    # -- the poller's side -----------------------------------------------------------------

    def status(self) -> WriterStatus:
        with self._lock:
            # Put and not yet done: the queued results and the one being written or retried.
            return replace(self._status, queue_depth=self._queue.unfinished_tasks)

    @property
    def error(self) -> str | None:
        return self.status().problem

    def submit(self, result: UnitResult) -> None:
        """Queues one result. Never raises for a failing disk: a full queue waits up to
        `submit_timeout_seconds`, then the result is dropped, counted and logged."""
        try:
            self._queue.put(result, timeout=self._submit_timeout)
        except queue.Full:
            self._count_drop("queue_full", 1)
            log.error(
                "history queue full for %.0f s (%d results waiting): result of %s dropped",
                self._submit_timeout,
                self._capacity,
                result.run.unit,
            )

    def flush(self) -> None:
        """Waits until every queued result is stored (or rejected); raises if any result
        since the last flush was not stored."""
        self._queue.join()
        self._raise_unflushed()

    def close(self) -> None:
        """Stores what is queued, stops the thread, closes the database.

        If writes are failing at that moment, the results still queued are given up (counted
        as dropped "shutdown", logged) so that shutdown finishes, and HistoryWriterError is
        raised after everything is closed. Drops earlier in the process's life are in the
        metrics (and raised by `flush`), not here.
        """
        self._closing.set()
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        if self._store is not None:
            self._store.close()
            self._store = None
        with self._lock:
            lost = self._unflushed.pop("shutdown", 0)
        if lost:
            raise HistoryWriterError(f"{lost} queued result(s) not stored at shutdown")

    def _raise_unflushed(self) -> None:
        with self._lock:
            counts, self._unflushed = self._unflushed, Counter()
            rejection, self._last_rejection = self._last_rejection, ""
        if counts:
            causes = ", ".join(f"{n} {cause}" for cause, n in sorted(counts.items()))
            detail = f" (last rejected: {rejection})" if rejection else ""
            raise HistoryWriterError(f"results not stored: {causes}{detail}")

    def _wait(self, seconds: float) -> None:
        self._closing.wait(seconds)

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        abandoning = False
        while True:
            self._compact_if_due()
            try:
                item = self._queue.get(timeout=self._idle_seconds())
            except queue.Empty:
                continue
            try:
                if item is _STOP:
                    return
                if isinstance(item, UnitResult):
                    if abandoning:
                        self._count_drop("shutdown", 1)
                    elif not self._write(item):
                        abandoning = True
                        self._count_drop("shutdown", 1)
            finally:
                self._queue.task_done()

    def _write(self, result: UnitResult) -> bool:
        """Stores one result, retrying; False only when closing while writes fail."""
        attempt = 0
        other_attempts = 0
        while True:
            attempt += 1
            try:
                store = self._store or self._reopen()
                store.ingest(result)
            except Exception as error:
                reason = classify_write_error(error)
                self._failed(error, reason, attempt)
                if reason not in _RETRIED_FOR_EVER:
                    other_attempts += 1
                    if other_attempts >= self._max_other_attempts:
                        self._reject(result, error)
                        return True
                if self._closing.is_set():
                    log.error("history writer closing while writes fail: queued results lost")
                    return False
                self._sleep(self._backoff(attempt))
                continue
            self._succeeded(attempt)
            return True

    def _failed(self, error: Exception, reason: str, attempt: int) -> None:
        self._reset_connection()
        now = self._clock()
        with self._lock:
            errors = Counter(self._status.errors)
            errors[reason] += 1
            self._status = replace(
                self._status,
                write_success=False,
                errors=MappingProxyType(dict(errors)),
                failing_since=self._status.failing_since or now,
                last_reason=reason,
                last_error=str(error),
            )
        if attempt == 1:
            log.error("history write failed (%s), retrying with backoff: %s", reason, error)
        else:
            log.warning("history write attempt %d failed (%s): %s", attempt, reason, error)

    def _succeeded(self, attempt: int) -> None:
        now = self._clock()
        with self._lock:
            failing_since = self._status.failing_since
            self._status = replace(
                self._status,
                write_success=True,
                last_write=now,
                failing_since=None,
                last_reason="",
                last_error="",
            )
        if failing_since is not None and attempt > 1:
            log.warning("history writes recovered after %d attempts", attempt)

    def _reject(self, result: UnitResult, error: Exception) -> None:
        self._count_drop("rejected", 1)
        log.error(
            "history writer rejected the result of %s after %d attempts",
            result.run.unit,
            self._max_other_attempts,
            exc_info=error,
        )
        with self._lock:
            self._last_rejection = f"{result.run.unit}: {error}"

    def _count_drop(self, cause: str, count: int) -> None:
        with self._lock:
            dropped = Counter(self._status.dropped)
            dropped[cause] += count
            self._status = replace(self._status, dropped=MappingProxyType(dict(dropped)))
            self._unflushed[cause] += count

    # -- the connection ------------------------------------------------------------------------

    def _open(self) -> HistoryStore:
        store = HistoryStore(self._path)
        # The store's own busy timeout is minutes long (for CLI tools); the writer retries
        # on its own terms instead, and says it is failing meanwhile.
        store.db.conn.execute(f"PRAGMA busy_timeout = {int(self._lock_wait * 1000)}")
        return store

    def _reopen(self) -> HistoryStore:
        self._store = self._open()
        return self._store

    def _reset_connection(self) -> None:
        """Rolls back what a failed ingest left open; reopens if the connection is unsure."""
        store = self._store
        if store is None:
            return
        try:
            if store.db.conn.in_transaction:
                store.db.conn.rollback()
            if not store.db.conn.in_transaction:
                return
        except sqlite3.Error as error:
            log.warning("history rollback failed, reopening the database: %s", error)
        self._store = None
        # The next attempt opens a new connection; this one is gone either way.
        with contextlib.suppress(sqlite3.Error):
            store.close()

    # -- compaction ------------------------------------------------------------------------

    def _first_compaction_status(self, rng: random.Random | None) -> CompactionStatus | None:
        if self._plan is None:
            return None
        self._jitter = draw_jitter(self._plan, rng)
        start = self._clock()
        assert self._store is not None
        row = self._store.db.execute("SELECT max(compacted_epoch) FROM compactions").fetchone()
        last = datetime.fromtimestamp(row[0], UTC) if row and row[0] is not None else start
        return CompactionStatus(
            next_run=next_compaction(start, self._plan, self._jitter), last_success=last
        )

    def _idle_seconds(self) -> float:
        with self._lock:
            compaction = self._status.compaction
        if compaction is None:
            return MAX_IDLE_SECONDS
        left = (compaction.next_run - self._clock()).total_seconds()
        return min(max(left, 0.0), MAX_IDLE_SECONDS)

    def _compact_if_due(self) -> None:
        plan = self._plan
        with self._lock:
            status = self._status.compaction
        if plan is None or status is None or self._closing.is_set():
            return
        now = self._clock()
        if now < status.next_run:
            return
        started = time.monotonic()
        try:
            store = self._store or self._reopen()
            outcome = compact(
                store.db,
                now=now,
                raw_days=plan.raw_days,
                retention_days=plan.retention_days,
                policy=plan.policy,
            )
        except Exception as error:
            self._reset_connection()
            duration = time.monotonic() - started
            retry = datetime.fromtimestamp(now.timestamp() + COMPACTION_RETRY_SECONDS, UTC)
            log.error("scheduled history compaction failed, retrying at %s: %s", retry, error)
            update = replace(
                status,
                next_run=retry,
                last_run=self._clock(),
                last_duration_seconds=duration,
                last_run_success=False,
            )
        else:
            duration = time.monotonic() - started
            ended = self._clock()
            log.info(
                "scheduled history compaction: %d rollups, removed %s in %.1f s",
                outcome.rollups,
                dict(outcome.removed) or "nothing",
                duration,
            )
            update = CompactionStatus(
                next_run=next_compaction(ended, plan, self._jitter),
                last_success=ended,
                last_run=ended,
                last_duration_seconds=duration,
                last_run_success=True,
            )
        with self._lock:
            self._status = replace(self._status, compaction=update)


def backoff_seconds(attempt: int) -> float:
    """1 s after the first failed attempt, doubling, at most RETRY_MAX_SECONDS."""
    return float(min(RETRY_FIRST_SECONDS * 2 ** min(attempt - 1, 30), RETRY_MAX_SECONDS))
