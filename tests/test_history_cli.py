"""`drwatch history` commands, the history config section, docs and the simulated backfill."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drwatch.cli.main import cli
from drwatch.config import HistoryConfig, parse_config
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
from drwatch.history.chain import row_hash, verify_chain
from drwatch.history.figures import RpoPolicy, raw_figures
from drwatch.history.schema import CHAINED_COLUMNS
from drwatch.history.store import HistoryStore, resource_key
from drwatch.sandbox.backfill import BackfillSpec, plan_incidents, replay_results
from drwatch.sandbox.estate import capture_plan
from drwatch.sandbox.fleet import FleetSpec, plan_fleet

ROOT = Path(__file__).parent.parent
T0 = datetime(2026, 10, 1, tzinfo=UTC)
UNIT = UnitKey("rds", "111111111111", "eu-west-1")
REF = ResourceRef(UNIT.account_id, UNIT.region, "rds", "db_instance", "db1")
MINIMAL = {"accounts": [{"id": "111111111111"}], "regions": ["eu-west-1"]}


def poll(moment: datetime) -> UnitResult:
    state = RecoveryState(REF, Mechanism.PITR, UNIT.account_id, UNIT.region, True, moment)
    job = JobEvent(f"job-{moment:%Y%m%d}", "backup", "COMPLETED", REF, moment)
    observations = Observations((Resource(REF, "db1", "premium"),), (state,), (job,))
    return UnitResult(UnitRun(UNIT, moment, 1.0, True), observations)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two months of 6-hourly polls of one database."""
    path = tmp_path / "history.db"
    with HistoryStore(path) as store:
        for hours in range(0, 60 * 24, 6):
            store.ingest(poll(T0 + timedelta(hours=hours)))
    return path


def invoke(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(cli, list(args))
    return outcome.exit_code, outcome.output


def test_stats_counts_rows(db: Path) -> None:
    code, output = invoke("history", "stats", "--db", str(db), "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["rows"]["unit_runs"] == 240
    assert summary["resources"] == 1
    assert summary["first_poll"] == T0.isoformat()
    code, text = invoke("history", "stats", "--db", str(db))
    assert code == 0
    assert f"chain head: seq {summary['chain_head']['seq']}" in text


def test_verify_reports_ok_and_exits_1_on_a_broken_chain(db: Path) -> None:
    code, output = invoke("history", "verify", "--db", str(db))
    assert code == 0, output
    assert ": ok, " in output
    with HistoryStore(db) as store:
        store.db.execute("DROP TRIGGER unit_runs_no_update")
        store.db.execute("UPDATE unit_runs SET success = 0 WHERE seq = 1")
    code, output = invoke("history", "verify", "--db", str(db))
    assert code == 1
    assert "first broken row: unit_runs seq 1" in output


def test_compact_rolls_up_and_keeps_the_chain(db: Path) -> None:
    code, output = invoke("history", "compact", "--db", str(db), "--raw-days", "1")
    assert code == 0, output
    assert "rollups added" in output
    with HistoryStore(db) as store:
        assert store.db.table("daily_rollups").count > 0
        assert verify_chain(store.db).ok


def test_compact_refuses_retention_below_raw(db: Path) -> None:
    code, output = invoke(
        "history", "compact", "--db", str(db), "--raw-days", "30", "--retention-days", "10"
    )
    assert code == 2
    assert "must be >= raw days (30)" in output


def test_export_json_rows_can_be_rehashed_by_an_auditor(db: Path) -> None:
    args = ["history", "export", "--db", str(db), "--since", "2026-10-05", "--until", "2026-10-06"]
    outcome = CliRunner().invoke(cli, args)
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)
    runs = [row for row in document["rows"] if row["table"] == "unit_runs"]
    assert len(runs) == 4
    for row in document["rows"]:
        assert row_hash(row["table"], row["prev_hash"], row) == row["row_hash"]
    assert set(CHAINED_COLUMNS["states"]) <= set(document["rows"][1])


def test_export_csv_has_one_line_per_row(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.csv"
    args = ["--since", "2026-10-05", "--until", "2026-10-07", "--format", "csv"]
    code, output = invoke("history", "export", "--db", str(db), *args, "--output", str(out))
    assert code == 0, output
    lines = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sum(1 for line in lines if line["table"] == "unit_runs") == 8
    assert f"{len(lines)} rows exported" in output


def test_export_refuses_an_empty_period(db: Path) -> None:
    code, output = invoke(
        "history", "export", "--db", str(db), "--since", "2026-10-05", "--until", "2026-10-05"
    )
    assert code == 2
    assert "must be after --since" in output


def test_history_needs_a_config_or_a_db() -> None:
    code, output = invoke("history", "verify")
    assert code == 2
    assert "give --config" in output


def test_history_reports_a_missing_database(tmp_path: Path) -> None:
    code, output = invoke("history", "stats", "--db", str(tmp_path / "nope.db"))
    assert code == 2
    assert "no history database here" in output


def test_history_uses_the_configured_path(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "drwatch.yml"
    config.write_text(
        f'accounts: [{{id: "111111111111"}}]\nregions: [eu-west-1]\nhistory: {{path: "{db}"}}\n',
        encoding="utf-8",
    )
    code, output = invoke("history", "verify", "--config", str(config))
    assert code == 0, output
    assert str(db) in output


# --- config ---------------------------------------------------------------------------


def test_history_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.history == HistoryConfig("drwatch-history.db", 35, 2557)


def test_old_history_path_key_still_sets_the_path() -> None:
    config = parse_config({**MINIMAL, "history_path": "old.db"})
    assert config.history.path == "old.db"
    assert config.history_path == "old.db"


def test_example_documents_every_history_field() -> None:
    text = (ROOT / "drwatch.example.yml").read_text(encoding="utf-8")
    section = text[text.index("\nhistory:") :]
    for name in ("path", "raw_days", "retention_days"):
        assert re.search(rf"\b{name}:", section), name


def test_docs_describe_every_history_command() -> None:
    text = (ROOT / "docs" / "history.md").read_text(encoding="utf-8")
    group = cli.commands["history"]
    assert hasattr(group, "commands")
    for name in group.commands:
        assert f"drwatch history {name}" in text, name


# --- backfill ---------------------------------------------------------------------------


def test_backfill_is_deterministic_and_shows_its_incidents(tmp_path: Path) -> None:
    end = datetime(2026, 11, 1, tzinfo=UTC)
    plan = plan_fleet(FleetSpec(now=end))
    spec = BackfillSpec(end=end, days=61, interval=timedelta(hours=6))
    incidents = plan_incidents(plan, spec)
    # Deterministic from one capture (moto draws its own resource ids on each seeding).
    estate = capture_plan(plan)
    first = list(replay_results(estate, plan, spec))
    assert first == list(replay_results(estate, plan, spec))
    with HistoryStore(tmp_path / "h.db") as store:
        for result in first:
            store.ingest(result)
        window = incidents.stale_window
        figures = raw_figures(
            store.db,
            int(window.start.timestamp()),
            int(window.end.timestamp()),
            RpoPolicy({}, 3600.0),
        )
        # The outage: no unit of its account and region ran (the history has no run).
        outage = incidents.outage_window
        silent = store.db.execute(
            "SELECT count(*) FROM unit_runs WHERE account_id = ? AND region = ? "
            "AND started_epoch >= ? AND started_epoch < ?",
            (*incidents.outage, int(outage.start.timestamp()), int(outage.end.timestamp())),
        )
        # The streak: AWS Backup jobs the backup collector read as FAILED (ACCESS_DENIED).
        failed_jobs = store.db.execute(
            "SELECT count(*) FROM job_events WHERE state = 'FAILED' AND value LIKE ?",
            ("%ACCESS_DENIED%",),
        )
        spikes = store.db.execute("SELECT count(*) FROM states WHERE value LIKE '%5400.0%'")
        assert silent.fetchone()[0] == 0
        assert failed_jobs.fetchone()[0] >= 5
        assert spikes.fetchone()[0] >= 1
        assert verify_chain(store.db).ok
    stale = next(db for db in plan.databases if db.identifier == incidents.stale)
    stale_ref = ResourceRef(stale.account_id, stale.region, "rds", stale.kind, stale.identifier)
    worst = figures.resources[resource_key(stale_ref)].worst_age_seconds
    assert worst is not None
    assert worst >= 6 * 86400


def test_serve_fails_cleanly_when_the_history_cannot_be_opened(tmp_path: Path) -> None:
    config = tmp_path / "drwatch.yml"
    missing_dir = tmp_path / "no" / "such" / "dir" / "h.db"
    config.write_text(
        f'accounts: [{{id: "111111111111"}}]\nregions: [eu-west-1]\n'
        f'history: {{path: "{missing_dir}"}}\n',
        encoding="utf-8",
    )
    code, output = invoke("serve", "--config", str(config))
    assert code == 1
    assert f"history database {missing_dir}" in output
    assert "Traceback" not in output
