"""Scheduling, overlap, atomic swap and staleness of the poller, with injected time."""

from __future__ import annotations

import logging
import threading

import pytest

from drwatch.core.model import Observations, Resource, ResourceRef, UnitKey, UnitResult, UnitRun
from drwatch.exporter.poller import Poller, UnitSchedule
from tests.helpers import FakeClock, ImmediateExecutor, ManualExecutor

KEY = UnitKey("rds", "111111111111", "eu-west-1")
OTHER = UnitKey("rds", "111111111111", "us-east-1")


def schedule(key: UnitKey = KEY) -> UnitSchedule:
    return UnitSchedule(key, interval_seconds=60, stale_after_seconds=180, timeout_seconds=60)


def observations(name: str) -> Observations:
    ref = ResourceRef("111111111111", "eu-west-1", "rds", "db_instance", name)
    return Observations(resources=(Resource(ref=ref, name=name, tier="standard"),))


class ScriptedRunner:
    """Returns the next scripted outcome: a resource name for success, an error code otherwise."""

    def __init__(self, clock: FakeClock, outcomes: list[str]) -> None:
        self.clock = clock
        self.outcomes = outcomes
        self.calls: list[UnitKey] = []

    def __call__(self, unit: UnitSchedule) -> UnitResult:
        self.calls.append(unit.key)
        outcome = self.outcomes.pop(0)
        failed = outcome.startswith("error:")
        run = UnitRun(
            unit.key,
            self.clock.now(),
            0.5,
            not failed,
            error_code=outcome.removeprefix("error:") if failed else "",
        )
        return UnitResult(run, Observations() if failed else observations(outcome))


def names(poller: Poller) -> list[list[str]]:
    return [
        [r.name for r in s.observations.resources] if s.observations else []
        for s in poller.snapshot()
    ]


def test_units_run_on_their_interval_and_not_before() -> None:
    clock = FakeClock()
    runner = ScriptedRunner(clock, ["a", "b"])
    poller = Poller([schedule()], runner, ImmediateExecutor(), clock)
    assert not poller.ready
    poller.submit_due()
    assert poller.ready
    assert names(poller) == [["a"]]
    clock.advance(59)
    assert poller.submit_due() == []
    assert len(runner.calls) == 1
    assert poller.seconds_until_next_due() == 1
    clock.advance(1)
    poller.submit_due()
    assert names(poller) == [["b"]]


def test_a_unit_never_overlaps_itself_and_skips_are_counted() -> None:
    clock = FakeClock()
    executor = ManualExecutor()
    runner = ScriptedRunner(clock, ["a", "b"])
    poller = Poller([schedule()], runner, executor, clock)
    poller.submit_due()
    clock.advance(60)
    assert poller.submit_due() == []  # still running: skipped
    clock.advance(60)
    poller.submit_due()
    (status,) = poller.snapshot()
    assert status.skipped == 2
    assert status.runs == 0
    executor.run_pending()
    assert len(runner.calls) == 1
    assert poller.snapshot()[0].runs == 1


def test_failed_unit_keeps_last_good_data_until_stale_after() -> None:
    clock = FakeClock()
    runner = ScriptedRunner(
        clock, ["a", "error:AccessDenied", "error:AccessDenied", "error:Throttling"]
    )
    poller = Poller([schedule()], runner, ImmediateExecutor(), clock)
    poller.submit_due()
    for _ in range(3):
        clock.advance(60)
        poller.submit_due()
        (status,) = poller.snapshot()
        assert not status.healthy
    assert names(poller) == [["a"]]  # 180 s after the good run: still served
    assert status.errors_by_code == {"AccessDenied": 2, "Throttling": 1}
    clock.advance(1)
    assert names(poller) == [[]]  # past stale_after: dropped
    assert poller.snapshot()[0].last_success is not None


def test_one_failing_unit_does_not_affect_another() -> None:
    clock = FakeClock()
    outcomes = {KEY: ["error:AccessDenied"], OTHER: ["b"]}

    def runner(unit: UnitSchedule) -> UnitResult:
        return ScriptedRunner(clock, outcomes[unit.key])(unit)

    poller = Poller([schedule(KEY), schedule(OTHER)], runner, ImmediateExecutor(), clock)
    poller.run_round()
    by_key = {s.schedule.key: s for s in poller.snapshot()}
    assert not by_key[KEY].healthy
    assert by_key[OTHER].healthy
    assert by_key[OTHER].observations == observations("b")


def test_results_reach_the_sink_after_they_are_served() -> None:
    clock = FakeClock()
    seen: list[tuple[str, list[list[str]]]] = []
    poller: Poller

    def sink(result: UnitResult) -> None:
        seen.append((result.observations.resources[0].name, names(poller)))

    poller = Poller(
        [schedule()], ScriptedRunner(clock, ["a"]), ImmediateExecutor(), clock, on_result=sink
    )
    poller.run_round()
    assert seen == [("a", [["a"]])]


def test_scheduler_thread_polls_and_stops() -> None:
    clock = FakeClock()
    runner = ScriptedRunner(clock, ["a"] * 100)
    polled = threading.Event()
    poller = Poller(
        [schedule()], runner, ImmediateExecutor(), clock, on_result=lambda _: polled.set()
    )
    poller.start()
    try:
        assert polled.wait(timeout=5)
    finally:
        poller.stop()
    assert runner.calls == [KEY]  # the fake clock never advanced: exactly one run


def test_a_failing_result_sink_reaches_the_log_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scheduler loop discards its futures: an exception in a worker must not die there."""
    clock = FakeClock()

    def full_disk(result: UnitResult) -> None:
        raise OSError("database or disk is full")

    poller = Poller(
        [schedule()], ScriptedRunner(clock, ["a"]), ImmediateExecutor(), clock, full_disk
    )
    with caplog.at_level(logging.ERROR, logger="drwatch.exporter.poller"):
        poller.submit_due()
    assert poller.worker_errors == 1
    assert "poller worker failed: database or disk is full" in caplog.text
    assert names(poller) == [["a"]]  # the poll itself is still served


def test_a_crashing_unit_runner_is_logged_counted_and_runs_again() -> None:
    clock = FakeClock()

    def broken(unit: UnitSchedule) -> UnitResult:
        raise RuntimeError("bug in a collector")

    poller = Poller([schedule()], broken, ImmediateExecutor(), clock)
    poller.submit_due()
    clock.advance(60)
    poller.submit_due()
    assert poller.worker_errors == 2  # not stuck "running": the next cycle ran it again
