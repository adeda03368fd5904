"""The one writer thread: the poller's sink puts unit results on a queue, this thread ingests.

SQLite allows one writer at a time; a single owning thread makes that a property of the
design rather than of lock timing, and keeps slow disk I/O out of the poller's pool threads.
The queue is bounded, so a stuck disk slows polling (skipped cycles are counted) instead of
growing memory without limit.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from drwatch.core.model import UnitResult
from drwatch.history.store import HistoryStore

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 256


class HistoryWriterError(Exception):
    """The writer thread stopped on an error; the cause is chained."""


_STOP = object()


class HistoryWriter:
    """`submit` is the poller's `on_result` sink; results are ingested in arrival order."""

    def __init__(self, path: str | Path, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._store = HistoryStore(path)  # opened here so a bad path fails at start-up
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="drwatch-history", daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def submit(self, result: UnitResult) -> None:
        """Queues one result; raises if the writer has already failed (nothing is lost silently)."""
        self._raise_if_failed()
        self._queue.put(result)

    def flush(self) -> None:
        """Waits until every queued result is ingested, then re-raises a writer failure."""
        self._queue.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Ingests what is queued, stops the thread, closes the database."""
        self._queue.put(_STOP)
        self._thread.join()
        self._store.close()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise HistoryWriterError(f"history writer stopped: {self._error}") from self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._error is None and isinstance(item, UnitResult):
                    self._store.ingest(item)
            except Exception as error:
                # Kept and re-raised to the poller's next submit and to close(); after a
                # failure nothing more is written, so the chain never skips a result.
                self._error = error
                log.exception("history writer failed; no further results are stored")
            finally:
                self._queue.task_done()
