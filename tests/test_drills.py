"""DR drill records: RTO/RPO arithmetic, the chain, the CLI's validation, YAML/CSV import,
and restore-test records derived from the backup collector's restore jobs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from drwatch.cli.main import cli
from drwatch.core.model import (
    JobEvent,
    Observations,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
)
from drwatch.history.chain import verify_chain
from drwatch.history.drill_import import FIELDS
from drwatch.history.drill_status import load_restore_tests
from drwatch.history.drills import (
    DrillError,
    DrillRecord,
    finish_drill,
    load_drills,
    load_open_drills,
    record_drill,
    start_drill,
)
from drwatch.history.store import HistoryStore, open_reader

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ALL = (-(2**40), 2**40)


def drill(**changes: object) -> DrillRecord:
    values: dict[str, object] = {
        "drill_id": "q4-db",
        "scenario": "database_failure",
        "scope": ("orders-db",),
        "tier": "standard",
        "incident_start": T0,
        "detected_at": T0 + timedelta(minutes=4),
        "restored_at": T0 + timedelta(minutes=50),
        "restore_point": T0 - timedelta(minutes=7),
        "rto_target_seconds": 3600.0,
        "rpo_target_seconds": 900.0,
    }
    values.update(changes)
    return DrillRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "h.db") as opened:
        yield opened


# --- arithmetic -----------------------------------------------------------------------


def test_measured_rto_and_rpo() -> None:
    record = drill()
    assert record.measured_rto_seconds == 50 * 60
    assert record.measured_rpo_seconds == 7 * 60
    assert record.detection_seconds == 4 * 60
    assert (record.rto_met, record.rpo_met) == (True, True)
    assert record.with_result().result == "pass"


def test_measurements_across_time_zones_use_the_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    record = drill(restored_at=datetime(2026, 11, 2, 11, 30, tzinfo=plus_two))  # 09:30 UTC
    assert record.measured_rto_seconds == 30 * 60


def test_exactly_on_target_meets_it_one_second_over_misses() -> None:
    on = drill(restored_at=T0 + timedelta(hours=1), restore_point=T0 - timedelta(minutes=15))
    assert (on.rto_met, on.rpo_met) == (True, True)
    over = drill(restored_at=T0 + timedelta(hours=1, seconds=1))
    assert over.rto_met is False
    assert over.with_result().result == "fail"


def test_unknown_measurements_or_targets_are_none_not_a_pass() -> None:
    record = drill(restored_at=None, restore_point=None, rto_target_seconds=None)
    assert record.measured_rto_seconds is None
    assert record.measured_rpo_seconds is None
    assert record.rto_met is None
    assert record.rpo_met is None
    assert record.with_result().result == ""  # in progress: nothing to judge
    assert drill(rto_target_seconds=None).rto_met is None


def test_a_restore_point_equal_to_the_incident_is_zero_data_loss() -> None:
    assert drill(restore_point=T0).measured_rpo_seconds == 0


def test_an_explicit_result_is_kept_even_within_targets() -> None:
    # Success criteria include more than time (no data loss, runbook followed...).
    assert drill(result="fail").with_result().result == "fail"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"restored_at": T0 - timedelta(seconds=1)},
            "restored_at: 2026-11-02T08:59:59+00:00 is before incident_start",
        ),
        ({"detected_at": T0 - timedelta(minutes=1)}, "detected_at: "),
        (
            {"detected_at": T0 + timedelta(hours=2)},
            "restored_at: 2026-11-02T09:50:00+00:00 is before detected_at",
        ),
        (
            {"restore_point": T0 + timedelta(minutes=1)},
            "restore_point: 2026-11-02T09:01:00+00:00 is after",
        ),
        (
            {"incident_start": datetime(2026, 11, 2, 9, 0)},
            "incident_start: 2026-11-02T09:00:00 has no time zone",
        ),
        ({"scenario": "meteor"}, "scenario: 'meteor' is not one of"),
        ({"result": "ok"}, "result: 'ok' is not one of pass, fail, partial"),
        ({"rto_target_seconds": 0.0}, "rto_target_seconds: must be a positive"),
        ({"drill_id": " "}, "drill_id: must not be empty"),
    ],
)
def test_impossible_drills_are_refused_naming_the_field(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(DrillError, match="^" + message.replace("+", r"\+")):
        drill(**changes).validate()


# --- the chain ------------------------------------------------------------------------


def test_recorded_drills_are_chained_and_read_back_by_period(store: HistoryStore) -> None:
    record_drill(store.db, drill(evidence=(("log.txt", "ab" * 32),)))
    record_drill(
        store.db,
        drill(
            drill_id="q4-db-2",
            incident_start=T0 + timedelta(days=40),
            detected_at=None,
            restored_at=T0 + timedelta(days=40, hours=2),
        ),
    )
    (first,) = load_drills(store.db, int(T0.timestamp()), int(T0.timestamp()) + 86400)
    assert first == drill(evidence=(("log.txt", "ab" * 32),), result="pass")
    both = load_drills(store.db, *ALL)
    assert [d.result for d in both] == ["pass", "fail"]
    assert verify_chain(store.db).ok
    stored = json.loads(store.db.execute("SELECT value FROM drills WHERE seq = 1").fetchone()[0])
    assert stored["measured_rto_seconds"] == 3000  # auditors read figures without code


def test_a_drill_id_is_recorded_once(store: HistoryStore) -> None:
    record_drill(store.db, drill())
    with pytest.raises(DrillError, match="drill_id: 'q4-db' is already recorded"):
        record_drill(store.db, drill(notes="again"))
    assert len(load_drills(store.db, *ALL)) == 1


def test_start_then_finish_records_one_chained_drill(store: HistoryStore) -> None:
    start_drill(store.db, drill(restored_at=None, restore_point=None))
    assert [d.drill_id for d in load_open_drills(store.db)] == ["q4-db"]
    assert load_drills(store.db, *ALL) == []  # in progress is not evidence yet
    finished = finish_drill(
        store.db,
        "q4-db",
        restored_at=T0 + timedelta(minutes=75),
        restore_point=T0 - timedelta(minutes=3),
        issues=("failover DNS TTL too long",),
    )
    assert finished.result == "fail"  # 75 min > 60 min target
    assert load_open_drills(store.db) == []
    assert load_drills(store.db, *ALL) == [finished]
    assert verify_chain(store.db).ok


# --- restore tests from AWS Backup restore jobs -----------------------------------------


def restore_job(job_id: str, state: str, minutes: int | None, validation: str = "") -> JobEvent:
    return JobEvent(
        job_id=job_id,
        kind="restore",
        state=state,
        ref=ResourceRef("111111111111", "eu-west-1", "rds", "db", "orders-db"),
        created=T0,
        completed=T0 + timedelta(minutes=minutes) if minutes is not None else None,
        restore_testing_plan="weekly" if validation else "",
        validation_status=validation,
    )


def test_restore_jobs_become_restore_tests_with_duration_validation_and_target(
    store: HistoryStore,
) -> None:
    unit = UnitKey("backup", "111111111111", "eu-west-1")
    resource = Resource(
        ResourceRef("111111111111", "eu-west-1", "rds", "db", "orders-db"), "orders", "premium"
    )
    first = Observations(
        resources=(resource,),
        job_events=(
            restore_job("r1", "RUNNING", None),
            restore_job("r2", "COMPLETED", 12, "SUCCESSFUL"),
        ),
    )
    later = Observations(
        resources=(resource,),
        job_events=(restore_job("r1", "FAILED", 40), restore_job("r3", "RUNNING", None)),
    )
    store.ingest(UnitResult(UnitRun(unit, T0 + timedelta(hours=1), 1.0, True), first))
    store.ingest(UnitResult(UnitRun(unit, T0 + timedelta(hours=2), 1.0, True), later))

    tests = load_restore_tests(store.db, *ALL, rto_targets={"premium": 900.0})

    assert [(t.test_id, t.status, t.duration_seconds, t.validation_status) for t in tests] == [
        ("r1", "FAILED", 2400.0, ""),
        ("r2", "COMPLETED", 720.0, "SUCCESSFUL"),
    ]  # r3 is still running: not a finished test
    r1, r2 = tests
    assert (r2.resource_class, r2.tier, r2.rto_target_seconds) == ("database", "premium", 900.0)
    assert (r2.succeeded, r2.within_rto) == (True, True)
    assert (r1.succeeded, r1.within_rto) == (False, False)
    assert load_restore_tests(store.db, *ALL)[1].rto_target_seconds is None


# --- CLI --------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def record_args(db: Path, *extra: str) -> list[str]:
    return [
        "drill",
        "record",
        "--db",
        str(db),
        "--scenario",
        "database_failure",
        "--scope",
        "orders-db",
        "--incident-start",
        "2026-11-02T09:00:00Z",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--restored-at", "2026-11-02T10:00:00"], "'2026-11-02T10:00:00' has no time zone"),
        (
            ["--restored-at", "2026-11-02T08:00:00Z"],
            "restored_at: 2026-11-02T08:00:00+00:00 is before incident_start",
        ),
        (["--restored-at", "yesterday"], "'yesterday' is not an ISO 8601 time"),
        ([], "--restored-at"),
        (["--restored-at", "2026-11-02T10:00:00Z", "--incident-start", ""], "is not an ISO 8601"),
        (["--restored-at", "2026-11-02T10:00:00Z", "--tier", "gold"], "unknown tier 'gold'"),
        (
            [
                "--restored-at",
                "2026-11-02T10:00:00Z",
                "--restore-point",
                "2026-11-02T09:30:00+00:00",
            ],
            "restore_point: 2026-11-02T09:30:00+00:00 is after incident_start",
        ),
    ],
)
def test_cli_refuses_bad_drills_with_exit_2(tmp_path: Path, extra: list[str], message: str) -> None:
    code, output = invoke(*record_args(tmp_path / "h.db", *extra))
    assert code == 2
    assert message in output
    assert (
        not (tmp_path / "h.db").exists() or load_drills(open_reader(tmp_path / "h.db"), *ALL) == []
    )


def test_cli_record_warns_about_unknown_resources_and_hashes_evidence(tmp_path: Path) -> None:
    evidence = tmp_path / "failover.log"
    evidence.write_text("switched over at 09:41\n")
    db = tmp_path / "h.db"
    result = CliRunner().invoke(
        cli,
        record_args(
            db,
            "--restored-at",
            "2026-11-02T10:01:00+01:00",
            "--restore-point",
            "2026-11-02T08:50:00Z",
            "--evidence",
            str(evidence),
            "--issue",
            "runbook step 4 outdated",
            "--follow-up",
            "update runbook",
        ),
    )
    assert result.exit_code == 0, result.output
    assert "warning: scope orders-db: no such resource in the history" in result.stderr
    assert "RTO 1.0 min (target 60.0 min)  RPO 10.0 min (target 15.0 min)  pass" in result.stdout
    (recorded,) = load_drills(open_reader(db), *ALL)
    assert recorded.evidence == (
        ("failover.log", hashlib.sha256(evidence.read_bytes()).hexdigest()),
    )
    assert recorded.follow_ups == ("update runbook",)
    code, listing = invoke("drill", "list", "--db", str(db), "--json")
    assert code == 0
    assert json.loads(listing)["drills"][0]["measured_rpo_seconds"] == 600


def test_cli_start_finish_and_duplicate(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    start = [
        "drill",
        "start",
        "--db",
        db,
        "--id",
        "q4-region",
        "--scenario",
        "region_failure",
        "--scope",
        "tier:premium",
        "--incident-start",
        "2026-11-02T09:00:00Z",
    ]
    assert invoke(*start)[0] == 0
    code, output = invoke(*start)
    assert (code, "drill_id: 'q4-region' already exists" in output) == (2, True)
    code, output = invoke("drill", "list", "--db", db)
    assert "q4-region  region_failure  in progress since 2026-11-02T09:00:00+00:00" in output
    code, output = invoke(
        "drill", "finish", "q4-region", "--db", db, "--restored-at", "2026-11-02T09:20:00Z"
    )
    assert code == 0, output
    assert "RTO 20.0 min (target 15.0 min)" in output  # premium, from the tier:premium scope
    assert "fail" in output
    code, output = invoke(
        "drill", "finish", "q4-region", "--db", db, "--restored-at", "2026-11-02T09:20:00Z"
    )
    assert (code, "no drill 'q4-region' in progress" in output) == (2, True)


# --- import -----------------------------------------------------------------------------

YAML_DRILLS = """\
drills:
  - drill_id: 2026-q3-ransomware
    scenario: ransomware
    scope: [orders-db, invoices-bucket]
    tier: premium
    incident_start: 2026-08-12T13:00:00+02:00
    detected_at: "2026-08-12T11:20:00Z"
    restored_at: "2026-08-12T12:40:00Z"
    restore_point: "2026-08-12T10:55:00Z"
    issues: [immutable vault copy took 40 min to find]
    follow_ups: [tag the vault]
    evidence: [notes.md]
  - drill_id: 2026-q3-pitr
    scenario: data_corruption
    scope: tier:standard
    incident_start: "2026-09-01T08:00:00Z"
    restored_at: "2026-09-01T08:45:00Z"
    restore_point: "2026-09-01T07:58:00Z"
"""

CSV_HEADER = ",".join(FIELDS)
C1 = {
    "drill_id": "c1",
    "scenario": "service_failure",
    "scope": "api;worker",
    "tier": "basic",
    "incident_start": "2026-10-01T10:00:00Z",
    "restored_at": "2026-10-01T13:00:00Z",
    "restore_point": "2026-10-01T09:30:00Z",
}
C2 = {
    "drill_id": "c2",
    "scenario": "region_failure",
    "scope": "tier:premium",
    "incident_start": "2026-10-05T10:00:00Z",
    "detected_at": "2026-10-05T10:05:00Z",
    "restored_at": "2026-10-05T10:30:00Z",
    "restore_point": "2026-10-05T09:59:00Z",
    "result": "partial",
    "issues": "DNS slow;no runbook",
    "follow_ups": "write runbook",
    "evidence": "notes.md",
    "notes": "lessons, with a comma",
}


def csv_text(*rows: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


CSV_DRILLS = csv_text(C1, C2)


def test_import_yaml(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("what we learned\n")
    (tmp_path / "drills.yml").write_text(YAML_DRILLS)
    db = tmp_path / "h.db"
    code, output = invoke("drill", "import", "--db", str(db), str(tmp_path / "drills.yml"))
    assert code == 0, output
    first, second = load_drills(open_reader(db), *ALL)
    # The unquoted YAML timestamp with +02:00 is the same instant as 11:00Z.
    assert first.incident_start == datetime(2026, 8, 12, 11, 0, tzinfo=UTC)
    assert (first.measured_rto_seconds, first.measured_rpo_seconds) == (100 * 60, 5 * 60)
    assert (first.rto_target_seconds, first.result) == (900.0, "fail")
    assert first.evidence[0][1] == hashlib.sha256(b"what we learned\n").hexdigest()
    assert first.source == "import"
    assert (second.tier, second.scope, second.result) == ("standard", ("tier:standard",), "pass")


def test_import_csv(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("n\n")
    (tmp_path / "drills.csv").write_text(CSV_DRILLS)
    db = tmp_path / "h.db"
    code, output = invoke("drill", "import", "--db", str(db), str(tmp_path / "drills.csv"))
    assert code == 0, output
    c1, c2 = load_drills(open_reader(db), *ALL)
    assert c1.scope == ("api", "worker")
    assert (c1.measured_rto_seconds, c1.rto_target_seconds, c1.result) == (
        3 * 3600,
        4 * 3600,
        "pass",
    )
    assert c2.tier == "premium"
    assert c2.issues == ("DNS slow", "no runbook")
    assert (c2.result, c2.notes) == ("partial", "lessons, with a comma")


C3 = {
    "drill_id": "c3",
    "scenario": "ransomware",
    "scope": "db",
    "tier": "basic",
    "incident_start": "2026-10-01T10:00:00Z",
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"incident_start": "2026-10-01 10:00:00"},
            "drill 1 (c3): incident_start: '2026-10-01 10:00:00' has no time zone",
        ),
        (
            {"restored_at": "2026-10-01T09:00:00Z"},
            "drill 1 (c3): restored_at: 2026-10-01T09:00:00+00:00 is before incident_start",
        ),
        ({"tier": "gold"}, "drill 1 (c3): tier: 'gold' is not a configured tier"),
        ({"drill_id": ""}, "drill 1: drill_id: required"),
        ({"evidence": "missing.txt"}, "drill 1 (c3): evidence: missing.txt: no such file"),
        ({"rto_target_seconds": "soon"}, "rto_target_seconds: 'soon' is not a number of seconds"),
    ],
)
def test_import_refuses_a_bad_file_whole(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    (tmp_path / "bad.csv").write_text(csv_text({**C3, **changes}, C1))
    db = tmp_path / "h.db"
    code, output = invoke("drill", "import", "--db", str(db), str(tmp_path / "bad.csv"))
    assert code == 2
    assert message in output.replace("\n", " ")
    assert output.startswith("Error: bad.csv: drill 1")
    assert not db.exists() or load_drills(open_reader(db), *ALL) == []


def test_import_refuses_unknown_fields_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    minimal = "drill_id: a, scenario: ransomware, scope: x, incident_start: '2026-10-01T10:00:00Z'"
    path.write_text(f"- {{{minimal}, owner: me}}\n")
    code, output = invoke("drill", "import", "--db", str(tmp_path / "h.db"), str(path))
    assert code == 2
    assert "d.yaml: drill 1 (a): owner: unknown field" in output
    path.write_text(f"- {{{minimal}}}\n" * 2)
    code, output = invoke("drill", "import", "--db", str(tmp_path / "h.db"), str(path))
    assert (code, "drill 2 (a): drill_id: appears twice in the file" in output) == (2, True)


def test_recording_while_the_poll_writer_holds_the_lock_waits_and_keeps_one_chain(
    tmp_path: Path,
) -> None:
    """`drwatch drill record` runs while `serve` ingests polls into the same file."""
    path = tmp_path / "h.db"
    with HistoryStore(path) as writer, HistoryStore(path) as recorder:
        unit = UnitKey("backup", "111111111111", "eu-west-1")
        errors: list[BaseException] = []

        def record() -> None:
            try:
                record_drill(recorder.db, drill())
            except BaseException as error:  # reported to the test thread below
                errors.append(error)

        with writer.db.atomic():  # the poll writer mid-ingest: it holds the write lock
            writer.ingest(UnitResult(UnitRun(unit, T0, 1.0, True), Observations()))
            thread = threading.Thread(target=record)
            thread.start()
            thread.join(timeout=0.3)
            assert thread.is_alive()  # waiting for the lock, not failing
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert errors == []
        assert [row[0] for row in writer.db.execute("SELECT seq FROM drills")] == [2]
        assert verify_chain(writer.db).ok


def test_cli_takes_the_tier_of_an_observed_resource_without_warning(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with HistoryStore(db) as store:
        unit = UnitKey("rds", "111111111111", "eu-west-1")
        ref = ResourceRef("111111111111", "eu-west-1", "rds", "db_instance", "orders-db")
        observed = Observations(resources=(Resource(ref, "orders", "premium"),))
        store.ingest(UnitResult(UnitRun(unit, T0 - timedelta(days=1), 1.0, True), observed))
    result = CliRunner().invoke(
        cli, record_args(db, "--restored-at", "2026-11-02T09:10:00Z", "--scope", "tier:basic")
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    (recorded,) = load_drills(open_reader(db), *ALL)
    assert recorded.tier == "basic"  # an explicit tier: scope wins over observed tiers
    result = CliRunner().invoke(
        cli,
        [
            *record_args(db, "--restored-at", "2026-11-02T09:10:00Z"),
            *("--id", "second"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    second = load_drills(open_reader(db), *ALL)[1]
    assert (second.tier, second.rto_target_seconds, second.rpo_target_seconds) == (
        "premium",
        900.0,
        300.0,
    )


def test_cli_start_defaults_to_now_record_requires_the_start(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    before = datetime.now(UTC).replace(microsecond=0)
    code, output = invoke(
        "drill", "start", "--db", str(db), "--id", "now", "--scenario", "ransomware",
        "--scope", "tier:premium",
    )  # fmt: skip
    assert code == 0, output
    (started,) = load_open_drills(open_reader(db))
    assert before <= started.incident_start <= datetime.now(UTC)
    code, output = invoke(
        "drill", "record", "--db", str(db), "--scenario", "ransomware", "--scope", "x",
        "--restored-at", "2026-11-02T10:00:00Z",
    )  # fmt: skip
    assert code == 2
    assert "--incident-start" in output
