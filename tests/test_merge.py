"""Merging shards' histories: the merged database verifies and equals the single exporter's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from drwatch.cli.history import rpo_policy
from drwatch.cli.main import cli
from drwatch.config import TierConfig
from drwatch.core.model import UnitResult
from drwatch.core.sharding import Shard
from drwatch.history.chain import rolled_up_until_epoch, verify_chain
from drwatch.history.compact import compact
from drwatch.history.figures import Figures, period_figures
from drwatch.history.merge import MergeError, merge_histories
from drwatch.history.store import HistoryStore, open_reader
from drwatch.reports.evaluate import evaluate
from drwatch.reports.evidence import Period, Policies
from drwatch.sandbox import demo
from drwatch.sandbox.backfill import BackfillSpec, backfill_results
from drwatch.sandbox.fleet import FleetPlan, FleetSpec, plan_fleet
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.validation import validate_response
from tests.conftest import NOW, sandbox_config
from tests.helpers import FakeClock, ImmediateExecutor

ACCOUNTS = ("111111111111", "222222222222", "333333333333", "444444444444", "555555555555")
SHARDS = 3
START = NOW - timedelta(days=2)
END = NOW + timedelta(hours=1)


def fleet_results(sandbox: Sandbox, fleet: FleetPlan) -> list[UnitResult]:
    """Two days of simulated hourly RDS polls of five accounts, then one real poll round of
    the sandbox fleet with every collector (jobs, replication, S3) at NOW."""
    plan = plan_fleet(FleetSpec(now=NOW, accounts=ACCOUNTS, rds_instances=30))
    results = list(backfill_results(plan, BackfillSpec(end=NOW, days=2)))
    live: list[UnitResult] = []
    # The collectors whose observations differ in kind (jobs, replication); others add time.
    collectors = {
        name: {"enabled": name in ("rds", "backup", "s3_replication")}
        for name in ("rds", "backup", "s3_replication", "s3_freshness", "elasticache")
    } | {"dynamodb": {"enabled": False}, "ebs": {"enabled": False}}
    exporter = demo.sandbox_exporter(
        sandbox_config(sandbox, fleet, collectors=collectors),
        clock=FakeClock(NOW),
        executor=ImmediateExecutor(),
        extra_handlers=[("after-call.*.*", validate_response)],
        on_result=live.append,
    )
    exporter.poller.run_round()
    exporter.close()
    assert {r.run.unit.collector for r in live} >= {"rds", "backup", "s3_replication"}
    return results + sorted(live, key=lambda r: r.run.unit)


def ingest(path: Path, results: Iterable[UnitResult]) -> Path:
    with HistoryStore(path) as store:
        for result in results:
            store.ingest(result)
    return path


@pytest.fixture(scope="module")
def histories(
    sandbox: Sandbox, fleet: FleetPlan, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Path]]:
    """One exporter's history of the whole fleet, and each of three shards' histories."""
    directory = tmp_path_factory.mktemp("merge")
    results = fleet_results(sandbox, fleet)
    single = ingest(directory / "single.db", results)
    shards = [
        ingest(
            directory / f"shard-{index}.db",
            (r for r in results if Shard(index, SHARDS).owns(r.run.unit.account_id)),
        )
        for index in range(SHARDS)
    ]
    return single, shards


def figures(path: Path) -> Figures:
    db = open_reader(path)
    try:
        policy = rpo_policy(TierConfig())
        return period_figures(db, START, END, policy, rolled_up_until_epoch(db))
    finally:
        db.close()


def test_merged_history_verifies_and_equals_the_single_exporter(
    histories: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    single, shards = histories
    sizes = [len(figures(shard).resources) for shard in shards]
    assert sum(1 for size in sizes if size) >= 2  # the shards really split the fleet
    merged = tmp_path / "merged.db"
    outcome = merge_histories(shards, merged, NOW)
    db = open_reader(merged)
    try:
        verified = verify_chain(db)
        assert verified.ok, verified.problem
        assert (verified.rows, verified.head_hash) == (outcome.rows, outcome.head_hash)
        sources = list(db.query("SELECT path, head_hash FROM merge_sources ORDER BY position"))
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        resources = sorted(tuple(r.values()) for r in db.query(RESOURCES))
    finally:
        db.close()
    assert sorted(s["path"] for s in sources) == [str(p) for p in shards]
    single_db = open_reader(single)
    try:
        assert verify_chain(single_db).rows == outcome.rows
        assert counts == {
            t: single_db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES
        }
        assert resources == sorted(tuple(r.values()) for r in single_db.query(RESOURCES))
    finally:
        single_db.close()
    expected = figures(single)
    assert len(expected.resources) > 60
    assert any(f.within_rpo_seconds < f.observed_seconds for f in expected.resources.values())
    assert figures(merged) == expected


TABLES = ("unit_runs", "state_keys", "states", "job_events", "open_states")
RESOURCES = "SELECT resource_key, first_seen, last_seen, gone FROM resources"


def test_merged_compliance_evaluation_equals_the_single_exporter(
    histories: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    single, shards = histories
    merged = tmp_path / "merged.db"
    merge_histories(shards, merged, NOW)
    tiers = TierConfig()
    policies = Policies(
        rpo=rpo_policy(tiers),
        rto_seconds={name: target.rto_seconds for name, target in tiers.targets.items()},
    )
    period = Period.between(START, END)
    evaluations = []
    for path in (single, merged):
        db = sqlite3.connect(path)  # evaluate reads inside its own transaction
        try:
            evaluations.append(evaluate(Database(db), period, policies))
        finally:
            db.close()
    one, other = evaluations
    assert one.results == other.results
    assert one.resources == other.resources
    assert one.units == other.units
    assert any(result.findings for result in one.results)


def test_overlapping_shards_are_refused(histories: tuple[Path, list[Path]], tmp_path: Path) -> None:
    single, shards = histories
    with pytest.raises(MergeError, match=r"is in both .*single\.db and .*shard-"):
        merge_histories([single, *shards], tmp_path / "merged.db", NOW)
    assert not (tmp_path / "merged.db").exists()


def test_a_broken_source_or_an_existing_output_is_refused(
    histories: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    _, shards = histories
    broken = tmp_path / "broken.db"
    broken.write_bytes(shards[0].read_bytes())
    with HistoryStore(broken) as store:
        store.db.execute("DROP TRIGGER unit_runs_no_update")
        store.db.execute("UPDATE unit_runs SET success = 1 - success WHERE seq = 1")
        store.db.conn.commit()
    with pytest.raises(MergeError, match=r"broken.db: chain broken: first broken row: unit_runs"):
        merge_histories([broken, *shards[1:]], tmp_path / "merged.db", NOW)
    existing = tmp_path / "exists.db"
    existing.write_bytes(b"")
    with pytest.raises(MergeError, match="already exists"):
        merge_histories(shards, existing, NOW)


def test_compacted_sources_are_refused(histories: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, shards = histories
    compacted = tmp_path / "compacted.db"
    compacted.write_bytes(shards[0].read_bytes())
    with HistoryStore(compacted) as store:
        compact(store.db, now=NOW, raw_days=1, retention_days=30, policy=rpo_policy(TierConfig()))
    with pytest.raises(MergeError, match="compacted"):
        merge_histories([compacted, *shards[1:]], tmp_path / "merged.db", NOW)


def test_history_merge_command(histories: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, shards = histories
    out = tmp_path / "merged.db"
    runner = CliRunner()
    result = runner.invoke(cli, ["history", "merge", "--out", str(out), *map(str, shards)])
    assert result.exit_code == 0, result.output
    assert f"{out}: merged {len(shards)} histories" in result.stdout
    verified = runner.invoke(cli, ["history", "verify", "--db", str(out)])
    assert verified.exit_code == 0, verified.output
    # An existing output is a usage problem (exit 2) refused before any work; --force replaces.
    again = runner.invoke(cli, ["history", "merge", "--out", str(out), *map(str, shards)])
    assert again.exit_code == 2
    assert "already exists; give --force" in again.stderr
    forced = runner.invoke(
        cli, ["history", "merge", "--force", "--out", str(out), *map(str, shards)]
    )
    assert forced.exit_code == 0, forced.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".merged.db.")]


def test_merge_across_a_change_of_shard_count(
    sandbox: Sandbox, fleet: FleetPlan, tmp_path: Path
) -> None:
    """Two shards for the first day, three after: every unit moves to another file once."""
    plan = plan_fleet(FleetSpec(now=NOW, accounts=ACCOUNTS, rds_instances=30))
    results = list(backfill_results(plan, BackfillSpec(end=NOW, days=2)))
    switch = NOW - timedelta(days=1)

    def shard_of(result: UnitResult) -> str:
        total = 2 if result.run.started < switch else 3
        index = next(i for i in range(total) if Shard(i, total).owns(result.run.unit.account_id))
        return f"{index}of{total}"

    single = ingest(tmp_path / "single.db", results)
    files = sorted({shard_of(r) for r in results})
    sources = [
        ingest(tmp_path / f"shard-{name}.db", (r for r in results if shard_of(r) == name))
        for name in files
    ]
    merged = tmp_path / "merged.db"
    # Argument order does not matter: sources are merged oldest first.
    outcome = merge_histories(list(reversed(sources)), merged, NOW)
    assert [Path(s.path).name for s in outcome.sources][:2] == ["shard-0of2.db", "shard-1of2.db"]
    db = open_reader(merged)
    try:
        assert verify_chain(db).ok
        resources = sorted(tuple(r.values()) for r in db.query(RESOURCES))
        runs = db.execute("SELECT count(*) FROM unit_runs").fetchone()[0]
    finally:
        db.close()
    single_db = open_reader(single)
    try:
        assert resources == sorted(tuple(r.values()) for r in single_db.query(RESOURCES))
        assert runs == single_db.execute("SELECT count(*) FROM unit_runs").fetchone()[0]
    finally:
        single_db.close()
    expected, got = figures(single).resources, figures(merged).resources
    assert expected.keys() == got.keys()
    # The hour between the old shard's last poll and the new one's first is vouched for by
    # no chain: it counts as not observed, never as compliant.
    gaps = {key: expected[key].observed_seconds - got[key].observed_seconds for key in expected}
    assert set(gaps.values()) <= {0, 3600}
    assert 3600 in gaps.values()
    for key, figure in got.items():
        assert figure.within_rpo_seconds <= expected[key].within_rpo_seconds
