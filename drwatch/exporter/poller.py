"""Runs every (collector, account, region) unit on its own interval in a bounded pool.

Scrapes never call AWS: they read `snapshot()`, which returns immutable statuses whose
observations were swapped in whole when a unit run completed. A unit never overlaps itself:
when it is due while still running, the cycle is skipped and counted. A failing unit keeps
serving its last good observations until `stale_after`, then they are dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from drwatch.core.model import Observations, UnitKey, UnitResult, UnitRun

log = logging.getLogger(__name__)

# Upper bound on how long the scheduler sleeps, so stop() and new due units are noticed soon.
MAX_SCHEDULER_SLEEP_SECONDS = 1.0


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True, slots=True)
class UnitSchedule:
    key: UnitKey
    interval_seconds: float
    stale_after_seconds: float
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class UnitStatus:
    """What the metrics view and the landing page know about one unit at one moment."""

    schedule: UnitSchedule
    last_run: UnitRun | None
    last_success: datetime | None
    observations: Observations | None  # last good data; None before success or once stale
    runs: int
    skipped: int
    errors_by_code: Mapping[str, int]
    # Records skipped by the unit's runs since start, by reason (a counter).
    records_skipped: Mapping[str, int] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.last_run is not None and self.last_run.success


@dataclass(slots=True)
class _UnitState:
    """Mutable bookkeeping of one unit; only touched under the poller's lock."""

    schedule: UnitSchedule
    next_due: float = 0.0
    running: bool = False
    last_run: UnitRun | None = None
    last_success: datetime | None = None
    last_success_monotonic: float | None = None
    observations: Observations | None = None
    runs: int = 0
    skipped: int = 0
    errors_by_code: Counter[str] = field(default_factory=Counter)
    records_skipped: Counter[str] = field(default_factory=Counter)


RunUnit = Callable[[UnitSchedule], UnitResult]  # runner.UnitRunner is the real one
ResultSink = Callable[[UnitResult], None]


class Poller:
    def __init__(
        self,
        schedules: Sequence[UnitSchedule],
        run_unit: RunUnit,
        executor: Executor,
        clock: Clock,
        on_result: ResultSink | None = None,
    ) -> None:
        self._run_unit = run_unit
        self._executor = executor
        self._clock = clock
        self._on_result = on_result
        self._lock = threading.Lock()
        self._units = {s.key: _UnitState(schedule=s) for s in schedules}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Ready latches once every unit has run: units added later (discovered accounts, a
        # reload) must not flap readiness and pull the replica out of its Service.
        self._never_run = set(self._units)
        self._was_ready = not self._never_run
        self._worker_errors = 0

    def replace_units(self, schedules: Sequence[UnitSchedule], run_unit: RunUnit) -> None:
        """Swaps in a new unit set and runner (config reload, account discovery).

        Units that stay keep their data, counters and due time (with the new schedule);
        new units are due at once; removed units are dropped, so their series disappear on
        the next scrape. A removed unit's queued run does not start; one already running
        finishes and reaches the result sink (history) but is not served.
        """
        with self._lock:
            current = self._units
            self._units = {
                s.key: _UnitState(schedule=s) if s.key not in current else current[s.key]
                for s in schedules
            }
            for schedule in schedules:
                self._units[schedule.key].schedule = schedule
            self._run_unit = run_unit
            self._never_run = {key for key, state in self._units.items() if state.last_run is None}

    # -- scheduling ---------------------------------------------------------------------

    def submit_due(self) -> list[Future[None]]:
        """Starts every unit that is due; a due unit still running is skipped and counted."""
        now = self._clock.monotonic()
        to_start: list[UnitSchedule] = []
        with self._lock:
            for state in self._units.values():
                if state.next_due > now:
                    continue
                state.next_due = now + state.schedule.interval_seconds
                if state.running:
                    state.skipped += 1
                    log.warning("unit %s still running; cycle skipped", state.schedule.key)
                    continue
                state.running = True
                to_start.append(state.schedule)
        futures = [self._executor.submit(self._run, schedule) for schedule in to_start]
        for future in futures:
            future.add_done_callback(self._report_failure)
        return futures

    def _report_failure(self, future: Future[None]) -> None:
        """The scheduler loop keeps no future, so a worker's exception (a unit runner bug, a
        history sink that raises) would vanish with it: log it and count it instead."""
        error = None if future.cancelled() else future.exception()
        if error is None:
            return
        with self._lock:
            self._worker_errors += 1
        log.error("poller worker failed: %s", error, exc_info=error)

    @property
    def worker_errors(self) -> int:
        """Exceptions raised in poller workers since start (the units' runs or the sink)."""
        with self._lock:
            return self._worker_errors

    def run_round(self) -> None:
        """Runs every unit once now and waits for all of them (for `poll --once`, tests)."""
        with self._lock:
            for state in self._units.values():
                state.next_due = 0.0
        wait(self.submit_due())

    def seconds_until_next_due(self) -> float:
        with self._lock:
            soonest = min((s.next_due for s in self._units.values()), default=float("inf"))
        return max(0.0, soonest - self._clock.monotonic())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="drwatch-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.submit_due()
            self._stop.wait(min(self.seconds_until_next_due(), MAX_SCHEDULER_SLEEP_SECONDS))

    def _run(self, schedule: UnitSchedule) -> None:
        with self._lock:
            if schedule.key not in self._units:
                return  # removed while queued (replace_units): its account is gone
            run_unit = self._run_unit
        try:
            result = run_unit(schedule)
        except BaseException:
            with self._lock:
                state = self._units.get(schedule.key)
                if state is not None:
                    state.running = False
            raise
        self._record(result)
        if self._on_result is not None:
            self._on_result(result)

    def _record(self, result: UnitResult) -> None:
        run = result.run
        with self._lock:
            state = self._units.get(run.unit)
            if state is None:
                return  # the unit was removed while it ran (see replace_units)
            self._never_run.discard(run.unit)
            self._was_ready = self._was_ready or not self._never_run
            state.running = False
            state.runs += 1
            state.last_run = run
            state.records_skipped.update(run.records_skipped)
            if run.success:
                state.last_success = run.started
                state.last_success_monotonic = self._clock.monotonic()
                state.observations = result.observations
            else:
                state.errors_by_code[run.error_code] += 1

    # -- reading ------------------------------------------------------------------------

    def snapshot(self) -> tuple[UnitStatus, ...]:
        now = self._clock.monotonic()
        with self._lock:
            return tuple(self._status(state, now) for _, state in sorted(self._units.items()))

    def _status(self, state: _UnitState, now: float) -> UnitStatus:
        observations = state.observations
        succeeded = state.last_success_monotonic
        if succeeded is not None and now - succeeded > state.schedule.stale_after_seconds:
            observations = None
        return UnitStatus(
            schedule=state.schedule,
            last_run=state.last_run,
            last_success=state.last_success,
            observations=observations,
            runs=state.runs,
            skipped=state.skipped,
            errors_by_code=dict(state.errors_by_code),
            records_skipped=dict(state.records_skipped),
        )

    @property
    def ready(self) -> bool:
        """True once every unit has completed at least one run, successful or not; stays true."""
        with self._lock:
            return self._was_ready
