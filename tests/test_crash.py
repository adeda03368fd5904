"""Crash safety with real processes: SIGKILL during compaction, SIGTERM during polls.

SIGKILL during ingest is tests/test_history_crash.py. Here a child process compacts a copy of
two weeks of the history of tests/test_history_compact.py; in the first test it announces the
first DELETE of the compaction (rollups already inserted, same transaction) and blocks there
until killed; in the second it blocks (and is killed) before its middle statement and before
its COMMIT, counted from a dry run (a 16 ms compaction leaves no room for a timed
kill to land inside it). Then a real
`drwatch serve` gets SIGTERM while every unit's first poll is still waiting on a slow AWS:
the polls finish, are stored, and the process exits 0.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drwatch.core.model import UnitResult, UnitRun
from drwatch.exporter.collectors import COLLECTORS
from drwatch.history.chain import verify_chain
from drwatch.history.compact import compact
from drwatch.history.store import HistoryStore
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.fleet import FleetPlan, FleetSpec
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.server import Sandbox
from tests.helpers import serve_command
from tests.test_cli import SANDBOX_ENV, sandbox_config_file
from tests.test_history_compact import (
    AWAY,
    COMPACT_AT,
    HOME,
    POLICY,
    POLL,
    away_observations,
    home_observations,
)

ROOT = Path(__file__).parent.parent


def compactor_main(path: str, pause_at: int | str) -> None:
    """Entry point of the child: compact, blocking at statement number `pause_at` (from 1)
    or at the first statement starting with `pause_at`, until the parent kills it."""
    store = HistoryStore(path)
    count = 0

    def trace(statement: str) -> None:
        nonlocal count
        count += 1
        if count == pause_at or (
            isinstance(pause_at, str) and statement.lstrip().upper().startswith(pause_at)
        ):
            print(f"inside {count}: {statement.split()[0]}", flush=True)
            sys.stdin.readline()  # the parent kills us here, transaction open

    store.db.conn.set_trace_callback(trace)
    print("started", flush=True)
    run_compaction(store)
    print(f"compacted after {count} statements", flush=True)


def run_compaction(store: HistoryStore) -> None:
    compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)


def statements_of_a_compaction(path: Path) -> int:
    """How many SQL statements one compaction of this file executes (counted in-process)."""
    count = 0

    def trace(_: str) -> None:
        nonlocal count
        count += 1

    with HistoryStore(path) as store:
        store.db.conn.set_trace_callback(trace)
        run_compaction(store)
    return count


# Two weeks around the raw cutoff (2026-11-05): ten days to roll up, four to keep raw.
FIRST_POLL = datetime(2026, 10, 26, tzinfo=UTC)
LAST_POLL = datetime(2026, 11, 9, tzinfo=UTC)


def short_history() -> Iterator[UnitResult]:
    moment = FIRST_POLL
    while moment < LAST_POLL:
        yield UnitResult(UnitRun(HOME, moment, 1.0, True), home_observations(moment))
        yield UnitResult(UnitRun(AWAY, moment, 1.0, True), away_observations(moment))
        moment += POLL


@pytest.fixture(scope="module")
def full_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "history.db"
    with HistoryStore(path) as store:
        for result in short_history():
            store.ingest(result)
    return path


def copy_of(source: Path, target: Path) -> Path:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def receipts(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM unit_runs").fetchone()[0])


def compactions(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM compactions").fetchone()[0])


def assert_sound(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with HistoryStore(path) as store:
        outcome = verify_chain(store.db)
    assert outcome.ok, outcome.problem


def kill_compactor(path: Path, pause_at: int | str) -> list[str]:
    """Runs the child until it pauses at `pause_at`, then SIGKILLs it; returns its lines."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tests.test_crash import compactor_main; "
            f"compactor_main({str(path)!r}, {pause_at!r})",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        seen.append(line.strip())
        if line.startswith(("inside", "compacted")):
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return seen


def test_sigkill_inside_the_compaction_transaction_leaves_the_history_as_before(
    full_history: Path, tmp_path: Path
) -> None:
    path = copy_of(full_history, tmp_path / "history.db")
    before = receipts(path)
    seen = kill_compactor(path, "DELETE")
    assert seen[0] == "started"
    assert seen[1].startswith("inside")
    assert seen[1].endswith("DELETE")
    assert_sound(path)
    assert receipts(path) == before  # no completed poll lost, nothing half-removed
    assert compactions(path) == 0
    # And the next compaction runs to the end on the recovered file.
    with HistoryStore(path) as store:
        compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)
    assert_sound(path)
    assert compactions(path) == 1


def test_sigkill_at_any_statement_of_a_compaction_leaves_the_history_as_before(
    full_history: Path, tmp_path: Path
) -> None:
    """Killed before its middle or its last statement (the one that commits)."""
    total = statements_of_a_compaction(copy_of(full_history, tmp_path / "dry-run.db"))
    assert total > 10
    for position in (total // 2, total):
        path = copy_of(full_history, tmp_path / f"killed-at-{position}.db")
        before = receipts(path)
        seen = kill_compactor(path, position)
        assert seen[-1].startswith(f"inside {position}:"), seen
        assert_sound(path)
        assert (receipts(path), compactions(path)) == (before, 0), seen[-1]


def test_sigterm_finishes_the_running_polls_stores_them_and_exits_cleanly(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # No fleet needed (an empty estate polls just as well), so no seeding for this module.
    spec = FleetSpec(now=datetime.now(UTC))
    config = sandbox_config_file(tmp_path, sandbox, FleetPlan(spec, ()))
    database = tmp_path / "history.db"
    # RDS alone, so every unit starts at once (no unit waits for a pool thread).
    enabled = "".join(f"  {c.name}: {{enabled: {c.name == 'rds'}}}\n" for c in COLLECTORS)
    config.write_text(config.read_text() + f"history:\n  path: {database}\ncollectors:\n{enabled}")
    # Every RDS unit waits 2 s for its instances: SIGTERM lands while they are in flight.
    sandbox.faults.add(
        FaultRule("", latency_seconds=2.0, service="rds", operation="DescribeDBInstances")
    )
    port = free_port()
    process = subprocess.Popen(
        serve_command(config, port),
        env={**SANDBOX_ENV, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_serving(f"http://127.0.0.1:{port}/-/ready", process)
        signalled = time.time()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert_sound(database)
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT collector, started_epoch, duration_seconds, success FROM unit_runs"
        ).fetchall()
    rds = [row for row in rows if row[0] == "rds"]
    assert len(rows) == len(rds)
    units = len(spec.accounts) * len(spec.regions)
    assert len(rds) == units
    # Each was running when the signal came (started before, ended after) and succeeded.
    assert all(started <= signalled < started + duration for _, started, duration, _ in rds)
    assert all(success for *_, success in rds)


def wait_serving(ready_url: str, process: subprocess.Popen[str]) -> None:
    """Waits for the HTTP server; /-/ready answers 503 while the first polls run.

    The deadline is a safety net for a loaded machine, not an estimate of the start-up.
    """
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(ready_url, timeout=10):
                raise AssertionError("ready already: the polls were not slowed down")
        except urllib.error.HTTPError as error:
            if error.code != 503:
                raise
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"drwatch serve exited early: {process.communicate()}")
    raise AssertionError("drwatch serve never listened")
