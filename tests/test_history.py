"""History store: idempotent ingest, intervals, transitions, the hash chain and tampering."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
from drwatch.history.chain import canonical_json, row_hash, sha256_hex, verify_chain
from drwatch.history.store import HistoryError, HistoryStore, open_reader
from drwatch.history.writer import HistoryWriter, HistoryWriterError

T0 = datetime(2026, 10, 1, tzinfo=UTC)
UNIT = UnitKey("rds", "111111111111", "eu-west-1")


def ref(name: str, unit: UnitKey = UNIT) -> ResourceRef:
    return ResourceRef(unit.account_id, unit.region, "rds", "db_instance", name)


def pitr(name: str, newest: datetime | None, unit: UnitKey = UNIT) -> RecoveryState:
    return RecoveryState(
        ref(name, unit), Mechanism.PITR, unit.account_id, unit.region, True, newest_point=newest
    )


def result(
    at: datetime,
    states: tuple[RecoveryState, ...] = (),
    jobs: tuple[JobEvent, ...] = (),
    *,
    names: tuple[str, ...] | None = None,
    unit: UnitKey = UNIT,
    success: bool = True,
) -> UnitResult:
    if names is None:
        names = tuple(sorted({s.ref.resource_id for s in states}))
    resources = tuple(Resource(ref(n, unit), n, "standard") for n in names)
    observations = Observations(resources, states, jobs) if success else Observations()
    run = UnitRun(unit, at, 1.0, success, "" if success else "ThrottlingException")
    return UnitResult(run, observations)


def job(job_id: str, state: str, name: str = "db1") -> JobEvent:
    return JobEvent(job_id, "backup", state, ref(name), created=T0)


def count(store: HistoryStore, sql: str) -> int:
    return int(store.db.execute(sql).fetchone()[0])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "history.db") as opened:
        yield opened


def test_database_uses_wal_and_migrations_are_recorded(store: HistoryStore) -> None:
    assert store.db.journal_mode == "wal"
    applied = [row["name"] for row in store.db.query("SELECT name FROM _sqlite_migrations")]
    assert applied[0] == "m001_evidence_tables"
    assert len(applied) == 4


def test_reopening_applies_no_migration_twice(tmp_path: Path) -> None:
    HistoryStore(tmp_path / "h.db").close()
    with HistoryStore(tmp_path / "h.db") as again:
        assert count(again, "SELECT count(*) FROM _sqlite_migrations") == 4


def test_same_unit_result_twice_is_stored_once(store: HistoryStore) -> None:
    poll = result(T0, (pitr("db1", T0),), (job("j1", "RUNNING"),))
    first = store.ingest(poll)
    second = store.ingest(poll)
    assert (first.duplicate, first.opened, first.job_transitions) == (False, 2, 1)
    assert second.duplicate
    assert count(store, "SELECT count(*) FROM unit_runs") == 1
    assert count(store, "SELECT count(*) FROM states") == 2
    assert count(store, "SELECT count(*) FROM job_events") == 1


def test_unchanged_state_extends_its_interval(store: HistoryStore) -> None:
    for minutes in range(0, 60, 5):
        store.ingest(result(T0 + timedelta(minutes=minutes), (pitr("db1", T0),)))
    rows = list(store.db.query("SELECT first_seen, last_seen FROM states"))
    assert len(rows) == 2  # the resource and its PITR state: one interval each
    assert {row["last_seen"] - row["first_seen"] for row in rows} == {55 * 60}
    assert count(store, "SELECT count(*) FROM unit_runs") == 12


def test_changed_state_opens_a_continuing_interval(store: HistoryStore) -> None:
    store.ingest(result(T0, (pitr("db1", T0),)))
    store.ingest(result(T0 + timedelta(minutes=5), (pitr("db1", T0 + timedelta(minutes=4)),)))
    continues = [
        row["continues"]
        for row in store.db.query(
            "SELECT s.continues FROM states s JOIN state_keys k ON k.seq = s.key_seq "
            "WHERE k.kind = 'recovery' ORDER BY s.seq"
        )
    ]
    assert continues == [0, 1]


def test_absent_resource_closes_its_interval(store: HistoryStore) -> None:
    store.ingest(result(T0, (pitr("db1", T0), pitr("db2", T0))))
    store.ingest(result(T0 + timedelta(minutes=5), (pitr("db1", T0),)))
    store.ingest(result(T0 + timedelta(minutes=10), (pitr("db1", T0), pitr("db2", T0))))
    db2 = list(
        store.db.query(
            "SELECT s.first_seen, s.continues FROM states s JOIN state_keys k "
            "ON k.seq = s.key_seq WHERE k.kind = 'recovery' AND k.resource_key LIKE '%db2%' "
            "ORDER BY s.seq"
        )
    )
    # Back after a poll without it: a new interval that does not continue the old one.
    assert [row["continues"] for row in db2] == [0, 0]


def test_resources_view_tells_first_seen_last_seen_and_gone(store: HistoryStore) -> None:
    store.ingest(result(T0, (pitr("db1", T0), pitr("db2", T0))))
    store.ingest(result(T0 + timedelta(minutes=5), (pitr("db1", T0),)))
    rows = {
        row["resource_key"].split('"')[-2]: (row["last_seen"] - row["first_seen"], row["gone"])
        for row in store.db.query("SELECT * FROM resources")
    }
    assert rows == {"db1": (300, 0), "db2": (0, 1)}


def test_failed_poll_is_recorded_and_keeps_intervals_open(store: HistoryStore) -> None:
    store.ingest(result(T0, (pitr("db1", T0),)))
    store.ingest(result(T0 + timedelta(minutes=5), success=False))
    store.ingest(result(T0 + timedelta(minutes=10), (pitr("db1", T0),)))
    runs = [row["success"] for row in store.db.query("SELECT success FROM unit_runs")]
    assert runs == [1, 0, 1]
    assert count(store, "SELECT count(*) FROM states") == 2


def test_each_job_transition_is_recorded_once(store: HistoryStore) -> None:
    states = ["CREATED", "RUNNING", "RUNNING", "COMPLETED", "COMPLETED"]
    for minutes, state in enumerate(states):
        store.ingest(result(T0 + timedelta(minutes=minutes), jobs=(job("j1", state),), names=()))
    recorded = [row["state"] for row in store.db.query("SELECT state FROM job_events ORDER BY seq")]
    assert recorded == ["CREATED", "RUNNING", "COMPLETED"]


def test_naive_datetime_is_refused(store: HistoryStore) -> None:
    with pytest.raises(HistoryError, match="naive datetime"):
        store.ingest(result(datetime(2026, 10, 1), (pitr("db1", T0),)))
    assert count(store, "SELECT count(*) FROM unit_runs") == 0


@dataclass(frozen=True, slots=True)
class MoreObservations(Observations):
    """Observations as a future collector might extend them."""

    widgets: tuple[str, ...] = ()


def test_new_observation_kinds_are_stored_as_set_intervals(store: HistoryStore) -> None:
    # Tuple fields of Observations beyond the keyed ones are kept as one set-valued interval
    # per unit, so history keeps up with collectors that add observation kinds.
    for minutes, widgets in ((0, ("a", "b")), (5, ("b", "a")), (10, ("c",))):
        run = UnitRun(UNIT, T0 + timedelta(minutes=minutes), 1.0, True)
        store.ingest(UnitResult(run, MoreObservations(widgets=widgets)))
    values = [
        row["value"]
        for row in store.db.query(
            "SELECT s.value FROM states s JOIN state_keys k ON k.seq = s.key_seq "
            "WHERE k.kind = 'widgets' ORDER BY s.seq"
        )
    ]
    assert values == ['["a","b"]', '["c"]']


def test_verify_passes_on_an_intact_history(store: HistoryStore) -> None:
    for minutes in range(0, 30, 5):
        moment = T0 + timedelta(minutes=minutes)
        store.ingest(result(moment, (pitr("db1", moment), pitr("db2", T0))))
    outcome = verify_chain(store.db)
    assert outcome.ok, outcome.problem
    assert outcome.rows == count(store, "SELECT seq FROM chain_head")


# --- tampering --------------------------------------------------------------------------


def tampered_history(store: HistoryStore) -> None:
    for minutes in range(0, 30, 5):
        moment = T0 + timedelta(minutes=minutes)
        store.ingest(result(moment, (pitr("db1", moment),), (job(f"j{minutes}", "COMPLETED"),)))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE states SET value = '{}' WHERE seq = (SELECT min(seq) FROM states)",
        "UPDATE states SET first_seen = 0",
        "UPDATE states SET last_seen = 0",
        "UPDATE unit_runs SET success = 0",
        "UPDATE job_events SET state = 'FAILED'",
        "UPDATE state_keys SET key = 'x'",
        "DELETE FROM states",
        "DELETE FROM unit_runs",
        "DELETE FROM job_events",
        "DELETE FROM state_keys",
    ],
)
def test_triggers_refuse_edits_of_evidence(store: HistoryStore, statement: str) -> None:
    tampered_history(store)
    with pytest.raises(sqlite3.IntegrityError, match="drwatch history"):
        store.db.execute(statement)
    assert verify_chain(store.db).ok


def test_verify_names_a_row_edited_behind_the_triggers(store: HistoryStore) -> None:
    tampered_history(store)
    victim = count(store, "SELECT seq FROM states ORDER BY seq LIMIT 1 OFFSET 3")
    # An attacker with file access drops the trigger and edits the row.
    store.db.execute("DROP TRIGGER states_frozen")
    store.db.execute(
        "UPDATE states SET value = replace(value, '2026', '2027') WHERE seq = ?", [victim]
    )
    outcome = verify_chain(store.db)
    assert not outcome.ok
    assert (outcome.broken_table, outcome.broken_seq) == ("states", victim)
    assert f"states seq {victim}" in outcome.problem
    assert "edited" in outcome.problem


def test_verify_detects_a_row_edited_and_rehashed(store: HistoryStore) -> None:
    tampered_history(store)
    victim = count(store, "SELECT seq FROM job_events ORDER BY seq LIMIT 1 OFFSET 2")
    store.db.execute("DROP TRIGGER job_events_no_update")
    store.db.execute("UPDATE job_events SET state = 'FAILED' WHERE seq = ?", [victim])
    # The attacker even recomputes this row's hash; the next row no longer links to it.
    row = next(store.db.query("SELECT * FROM job_events WHERE seq = ?", [victim]))
    store.db.execute(
        "UPDATE job_events SET row_hash = ? WHERE seq = ?",
        [row_hash("job_events", row["prev_hash"], row), victim],
    )
    outcome = verify_chain(store.db)
    assert not outcome.ok
    assert outcome.broken_seq == victim + 1


def test_verify_detects_a_deleted_row(store: HistoryStore) -> None:
    tampered_history(store)
    victim = count(store, "SELECT seq FROM unit_runs ORDER BY seq LIMIT 1 OFFSET 2")
    store.db.execute("DROP TRIGGER unit_runs_no_delete")
    store.db.execute("DELETE FROM unit_runs WHERE seq = ?", [victim])
    outcome = verify_chain(store.db)
    assert not outcome.ok
    assert outcome.broken_seq == victim + 1
    assert "rows missing" in outcome.problem


def test_verify_detects_the_newest_row_deleted(store: HistoryStore) -> None:
    tampered_history(store)
    store.db.execute("DROP TRIGGER job_events_no_delete")
    store.db.execute("DELETE FROM job_events WHERE seq = (SELECT max(seq) FROM job_events)")
    outcome = verify_chain(store.db)
    assert not outcome.ok
    assert "newest rows missing" in outcome.problem


# --- readers and the writer thread ------------------------------------------------------


def test_reader_sees_committed_polls_while_writer_holds_a_transaction(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with HistoryStore(path) as writer:
        writer.ingest(result(T0, (pitr("db1", T0),)))
        reader = open_reader(path)
        with writer.db.atomic():
            writer.db.execute("UPDATE chain_head SET seq = seq WHERE id = 1")
            # The open write transaction neither blocks the reader nor shows through.
            assert reader.execute("SELECT count(*) FROM unit_runs").fetchone()[0] == 1
        reader.close()


def test_writer_thread_ingests_results_from_many_threads(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.db")
    units = [UnitKey("rds", "111111111111", f"eu-west-{n}") for n in range(1, 5)]

    def poll(unit: UnitKey) -> None:
        for minutes in range(0, 50, 5):
            moment = T0 + timedelta(minutes=minutes)
            writer.submit(result(moment, (pitr("db1", moment, unit),), unit=unit))

    threads = [threading.Thread(target=poll, args=(unit,)) for unit in units]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    with HistoryStore(tmp_path / "h.db") as store:
        assert count(store, "SELECT count(*) FROM unit_runs") == 40
        assert verify_chain(store.db).ok


def test_writer_failure_is_raised_not_swallowed(tmp_path: Path) -> None:
    # A result that cannot be stored for a reason of its own is retried, then rejected and
    # reported; the writer goes on with the next (tests/test_history_writer.py has more).
    writer = HistoryWriter(tmp_path / "h.db", sleep=lambda _: None)
    writer.submit(result(datetime(2026, 10, 1), (pitr("db1", T0),)))
    with pytest.raises(HistoryWriterError, match="naive datetime"):
        writer.flush()
    writer.submit(result(T0, (pitr("db1", T0),)))
    writer.close()
    assert writer.status().dropped["rejected"] == 1


def test_verify_detects_an_interval_stretched_past_its_polls(store: HistoryStore) -> None:
    tampered_history(store)
    # Moving last_seen forward is what ingest does, so the trigger allows it; but no poll
    # of the unit happened at the new time, and the receipts say so.
    victim = count(store, "SELECT min(seq) FROM states")
    store.db.execute("UPDATE states SET last_seen = last_seen + 7 WHERE seq = ?", [victim])
    outcome = verify_chain(store.db)
    assert not outcome.ok
    assert f"states seq {victim}:" in outcome.problem


def test_receipt_digest_can_be_recomputed_from_the_intervals(store: HistoryStore) -> None:
    for minutes in range(0, 30, 5):
        moment = T0 + timedelta(minutes=minutes)
        store.ingest(result(moment, (pitr("db1", moment), pitr("db2", T0))))
    receipts = list(store.db.query("SELECT started_epoch, observations_sha256 FROM unit_runs"))
    for receipt in receipts:
        covering = sorted(
            [row["kind"], row["key"], row["value"]]
            for row in store.db.query(
                "SELECT k.kind, k.key, s.value FROM states s JOIN state_keys k "
                "ON k.seq = s.key_seq WHERE s.first_seen <= ? AND s.last_seen >= ?",
                [receipt["started_epoch"], receipt["started_epoch"]],
            )
        )
        assert sha256_hex(canonical_json(covering)) == receipt["observations_sha256"]
    assert len(receipts) == 6
