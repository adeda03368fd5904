"""Compaction keeps the facts reports use: a month's figures are identical before and after."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
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
from drwatch.history.chain import verify_chain
from drwatch.history.compact import compact
from drwatch.history.figures import Figures, RpoPolicy, period_figures, raw_figures
from drwatch.history.store import HistoryStore, rolled_up_until_epoch

START = datetime(2026, 9, 20, tzinfo=UTC)
END = datetime(2026, 11, 29, tzinfo=UTC)
OCTOBER = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
NOVEMBER = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
COMPACT_AT = datetime(2026, 12, 10, 7, 30, tzinfo=UTC)  # raw cutoff: 2026-11-05
POLICY = RpoPolicy({"premium": 300.0, "standard": 900.0, "basic": 3600.0}, 900.0)
HOME = UnitKey("rds", "111111111111", "eu-west-1")
AWAY = UnitKey("rds", "111111111111", "us-east-1")
POLL = timedelta(hours=2)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def ref(name: str) -> ResourceRef:
    return ResourceRef(HOME.account_id, HOME.region, "rds", "db_instance", name)


def state(name: str, mechanism: Mechanism, newest: datetime, region: str = "") -> RecoveryState:
    return RecoveryState(
        ref(name),
        mechanism,
        HOME.account_id,
        region or HOME.region,
        True,
        newest_point=newest,
        size_bytes=10**9 * (1 + newest.day % 3),
    )


def home_observations(moment: datetime) -> Observations:
    """db-a healthy; db-b stale for a week and failing backups; db-c away three days."""
    daily = moment.replace(hour=1, minute=0) - timedelta(days=0 if moment.hour >= 1 else 1)
    b_frozen = at(10, 10) <= moment < at(10, 17)
    c_away = at(10, 20) <= moment < at(10, 22, 12)
    c_tier = "basic" if moment >= at(10, 16) else "standard"
    resources = [
        Resource(ref("db-a"), "db-a", "premium"),
        Resource(ref("db-b"), "db-b", "standard"),
    ]
    states = [
        state("db-a", Mechanism.PITR, moment - timedelta(minutes=3)),
        state("db-a", Mechanism.SNAPSHOT, daily),
        state("db-b", Mechanism.PITR, at(10, 10) if b_frozen else moment - timedelta(minutes=8)),
    ]
    if not c_away:
        resources.append(Resource(ref("db-c"), "db-c", c_tier))
        states.append(state("db-c", Mechanism.SNAPSHOT, daily))
    jobs = [daily_job(name, daily, moment) for name in ("db-a", "db-b")]
    return Observations(tuple(resources), tuple(states), tuple(jobs))


def daily_job(name: str, created: datetime, moment: datetime) -> JobEvent:
    """RUNNING for the first three hours, then COMPLETED (FAILED for db-b early October)."""
    failing = name == "db-b" and at(10, 5) <= created < at(10, 9)
    final = "FAILED" if failing else "COMPLETED"
    running = moment - created < timedelta(hours=3)
    return JobEvent(
        f"{name}-{created:%Y%m%d}", "backup", "RUNNING" if running else final, ref(name), created
    )


def away_observations(moment: datetime) -> Observations:
    """The cross-region copy of db-a, observed by the unit of the region holding it."""
    copy = state("db-a", Mechanism.SNAPSHOT, moment - timedelta(hours=5), region=AWAY.region)
    return Observations(recovery_states=(copy,))


def history() -> Iterator[UnitResult]:
    moment = START
    while moment < END:
        yield UnitResult(UnitRun(HOME, moment, 1.0, True), home_observations(moment))
        outage = at(10, 15, 6) <= moment < at(10, 15, 12)
        away_run = UnitRun(AWAY, moment, 1.0, not outage, "Throttling" if outage else "")
        yield UnitResult(away_run, Observations() if outage else away_observations(moment))
        moment += POLL


@pytest.fixture(scope="module")
def history_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.db"
    with HistoryStore(path) as store:
        for result in history():
            store.ingest(result)
    return path


@pytest.fixture
def store(history_path: Path, tmp_path: Path) -> Iterator[HistoryStore]:
    copy = tmp_path / "history.db"
    source = sqlite3.connect(history_path)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    with HistoryStore(copy) as opened:
        yield opened


def month_figures(store: HistoryStore, period: tuple[datetime, datetime]) -> Figures:
    return period_figures(store.db, *period, POLICY, rolled_up_until_epoch(store.db))


def resource(name: str) -> str:
    return f'["111111111111","eu-west-1","rds","db_instance","{name}"]'


def test_figures_show_the_incidents(store: HistoryStore) -> None:
    figures = month_figures(store, OCTOBER)
    b = figures.resources[resource("db-b")]
    assert b.worst_age_seconds is not None
    assert b.worst_age_seconds >= 7 * 86400
    assert b.jobs_by_state["FAILED"] == 4
    c = figures.resources[resource("db-c")]
    assert c.observed_seconds < 29 * 86400  # away for two and a half days
    away = figures.units['["rds","111111111111","us-east-1"]']
    assert away.runs - away.successful_runs == 3  # the six-hour outage at two-hour polls


def test_compaction_keeps_a_months_figures(store: HistoryStore) -> None:
    before = raw_figures(store.db, *(int(m.timestamp()) for m in OCTOBER), POLICY)
    raw_rows = store.db.execute("SELECT count(*) FROM states").fetchone()[0]
    outcome = compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)
    assert outcome.raw_cutoff == int(at(11, 5).timestamp())
    assert outcome.rollups > 0
    assert outcome.gaps > 0
    assert store.db.execute("SELECT count(*) FROM states").fetchone()[0] < raw_rows / 2
    october_raw = store.db.execute(
        "SELECT count(*) FROM unit_runs WHERE started_epoch < ?", [int(at(11, 1).timestamp())]
    ).fetchone()[0]
    assert october_raw == 0
    after = month_figures(store, OCTOBER)
    assert after == before
    assert len(after.resources) == 3
    check = verify_chain(store.db)
    assert check.ok, check.problem


def test_compaction_keeps_a_month_split_between_rollups_and_raw(store: HistoryStore) -> None:
    before = month_figures(store, NOVEMBER)
    compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)
    assert month_figures(store, NOVEMBER) == before


def test_repeated_compactions_keep_figures_and_chain(store: HistoryStore) -> None:
    october = month_figures(store, OCTOBER)
    november = month_figures(store, NOVEMBER)
    for days_later in (0, 0, 10, 20):
        compact(
            store.db,
            now=COMPACT_AT + timedelta(days=days_later),
            raw_days=35,
            retention_days=2557,
            policy=POLICY,
        )
        check = verify_chain(store.db)
        assert check.ok, check.problem
    assert month_figures(store, OCTOBER) == october
    assert month_figures(store, NOVEMBER) == november


def test_retention_removes_old_rollups_and_keeps_the_chain(store: HistoryStore) -> None:
    compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)
    outcome = compact(
        store.db, now=COMPACT_AT + timedelta(days=40), raw_days=35, retention_days=60, policy=POLICY
    )
    assert outcome.removed["daily_rollups"] > 0
    oldest = store.db.execute("SELECT min(day) FROM daily_rollups").fetchone()[0]
    assert oldest >= "2026-10-20"
    check = verify_chain(store.db)
    assert check.ok, check.problem


def test_deletes_are_refused_again_after_compaction(store: HistoryStore) -> None:
    compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("DELETE FROM daily_rollups")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("DELETE FROM chain_gaps")


def test_altered_gap_record_is_detected(store: HistoryStore) -> None:
    compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)
    store.db.execute("DROP TRIGGER chain_gaps_no_update")
    store.db.execute("UPDATE chain_gaps SET last_seq = last_seq + 0, prev_hash = prev_hash")
    assert verify_chain(store.db).ok  # a no-op edit changes nothing
    store.db.execute(
        "UPDATE chain_gaps SET last_seq = last_seq - 1 "
        "WHERE first_seq = (SELECT max(first_seq) FROM chain_gaps)"
    )
    outcome = verify_chain(store.db)
    assert not outcome.ok
    assert "chain_gaps" in outcome.problem


def test_old_job_read_again_after_compaction_is_not_new(store: HistoryStore) -> None:
    compact(store.db, now=COMPACT_AT, raw_days=35, retention_days=2557, policy=POLICY)
    old = daily_job("db-a", at(10, 3, 1), at(10, 4))
    run = UnitRun(HOME, COMPACT_AT, 1.0, True)
    outcome = store.ingest(UnitResult(run, Observations(job_events=(old,))))
    assert outcome.job_transitions == 0
