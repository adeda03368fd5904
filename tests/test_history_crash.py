"""SIGKILL a writer subprocess in the middle of ingest; the history must stay whole.

The child ingests large polls in a loop and reports each commit on stdout. In the first test
it also announces when it is inside the transaction of a poll (after the receipt and all
interval rows are written, before commit) and waits there, so the kill lands mid-transaction
for certain. In the second it never waits: the kill lands wherever the loop happens to be.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drwatch.core.model import (
    JobEvent,
    Mechanism,
    Observations,
    RecoveryState,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
)
from drwatch.history.chain import verify_chain
from drwatch.history.store import HistoryStore, epoch

ROOT = Path(__file__).parent.parent
T0 = datetime(2026, 10, 1, tzinfo=UTC)
UNIT = UnitKey("rds", "111111111111", "eu-west-1")
RESOURCES = 1500  # big enough that a poll's transaction spills pages before commit
POLL_SECONDS = 300


def poll(number: int) -> UnitResult:
    """Poll `number`: every recovery point moves, so each poll writes ~1,500 new rows."""
    at = T0 + timedelta(seconds=POLL_SECONDS * number)
    refs = [
        ResourceRef(UNIT.account_id, UNIT.region, "rds", "db_instance", f"db-{i:05d}")
        for i in range(RESOURCES)
    ]
    return UnitResult(
        UnitRun(UNIT, at, 2.0, True),
        Observations(
            resources=tuple(Resource(r, r.resource_id, "standard") for r in refs),
            recovery_states=tuple(
                RecoveryState(r, Mechanism.PITR, UNIT.account_id, UNIT.region, True, at)
                for r in refs
            ),
            job_events=(JobEvent(f"job-{number}", "backup", "COMPLETED", refs[0], at),),
        ),
    )


class PausingStore(HistoryStore):
    """Announces poll `pause_at` from inside its transaction and blocks there."""

    pause_at = -1

    def _record_jobs(self, chain, events, run):  # type: ignore[no-untyped-def]
        recorded = super()._record_jobs(chain, events, run)
        if run.started == poll(self.pause_at).run.started:
            print(f"inside {self.pause_at}", flush=True)
            sys.stdin.readline()  # the parent kills us here, transaction open
        return recorded


def writer_main(path: str, pause_at: int) -> None:
    """Entry point of the child process."""
    PausingStore.pause_at = pause_at
    store = PausingStore(path)
    number = 0
    while True:
        store.ingest(poll(number))
        print(f"committed {number}", flush=True)
        number += 1


def run_and_kill(path: Path, pause_at: int, kill_after: str) -> int:
    """Starts the child, SIGKILLs it once it prints `kill_after`; returns polls committed."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tests.test_history_crash import writer_main; "
            f"writer_main({str(path)!r}, {pause_at})",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    committed = 0
    for line in child.stdout:
        if line.startswith("committed"):
            committed += 1
        if line.strip() == kill_after:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return committed


def assert_whole(path: Path, polls: Iterable[int], absent: Iterable[int]) -> None:
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    with HistoryStore(path) as store:
        outcome = verify_chain(store.db)
        assert outcome.ok, outcome.problem
        for number in polls:
            # Poll 0 opens the resource intervals too; later ones only the moved PITR states.
            opened = 2 * RESOURCES if number == 0 else RESOURCES
            assert poll_rows(store, number) == (1, opened, 1), number
        for number in absent:
            assert poll_rows(store, number) == (0, 0, 0), number


def poll_rows(store: HistoryStore, number: int) -> tuple[int, int, int]:
    """(receipt, intervals opened, job events) stored for poll `number`."""
    at = epoch(poll(number).run.started)
    receipts = store.db.execute(
        "SELECT count(*) FROM unit_runs WHERE started_epoch = ?", [at]
    ).fetchone()[0]
    opened = store.db.execute("SELECT count(*) FROM states WHERE first_seen = ?", [at]).fetchone()[
        0
    ]
    jobs = store.db.execute(
        "SELECT count(*) FROM job_events WHERE job_id = ?", [f"job-{number}"]
    ).fetchone()[0]
    return receipts, opened, jobs


def test_sigkill_inside_the_transaction_leaves_the_poll_absent(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    committed = run_and_kill(path, pause_at=3, kill_after="inside 3")
    assert committed == 3
    assert_whole(path, polls=range(3), absent=[3])


def test_sigkill_anywhere_in_the_ingest_loop_keeps_polls_whole(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    committed = run_and_kill(path, pause_at=-1, kill_after="committed 4")
    # Poll 5 may or may not have committed before the signal landed; never in part.
    with HistoryStore(path) as store:
        stored = store.db.execute("SELECT count(*) FROM unit_runs").fetchone()[0]
    assert stored in (committed, committed + 1)
    assert_whole(path, polls=range(stored), absent=[stored])
