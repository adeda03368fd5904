"""The active restore test end to end: moto RDS restores, a real PostgreSQL checked with SQL.

moto's restored instance cannot serve SQL, so a PostgreSQL started on loopback here stands
in for it (the runner's checker gets the restored endpoint; the tests point it at this
server instead, as `--check-dsn` does).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from botocore.exceptions import ClientError
from click.testing import CliRunner
from moto.rds.models import rds_backends

from drwatch.cli.main import cli
from drwatch.config import AwsConfig
from drwatch.exporter.aws import ReadOnlyViolationError, refuse_writes
from drwatch.exporter.drill_runner import (
    RUN_TAG_KEY,
    CheckResult,
    Endpoint,
    RestoreRequest,
    SqlCheck,
    allow_runner_calls,
    read_checks,
    run_restore_test,
    run_sql_checks,
    runner_client,
    runner_iam_actions,
    runner_policy_document,
)
from drwatch.history.chain import verify_chain
from drwatch.history.drill_status import load_restore_tests
from drwatch.history.drills import load_drills
from drwatch.history.store import open_reader
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.validation import validate_response
from tests.conftest import OperationRecorder

REGION = "eu-central-1"
MOTO_ACCOUNT = "123456789012"  # static sandbox keys land in moto's default account
SOURCE = "orders-drill-src"

CHECKS_OK = """\
-- check: orders are present
SELECT count(*) > 0 FROM orders;
-- check: no order without a customer
SELECT NOT EXISTS (SELECT 1 FROM orders WHERE customer IS NULL);
"""
CHECKS_FAILING = """\
-- check: orders are present
SELECT count(*) > 0 FROM orders;
-- check: totals are never negative
SELECT NOT EXISTS (SELECT 1 FROM orders WHERE total < 0);
"""


# --- a real PostgreSQL on loopback -------------------------------------------------------


def postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    assert found, f"{name} is required: scripts/system-deps installs postgresql"
    return found


def as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; the Debian package creates this user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass(frozen=True)
class Postgres:
    dsn: str


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    with tempfile.TemporaryDirectory(prefix="drwatch-pg-") as directory:
        yield from _running_postgres(Path(directory))


def _running_postgres(base: Path) -> Iterator[Postgres]:
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        as_postgres_user(
            [
                postgres_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = postgres_bin("pg_ctl")
    subprocess.run(
        as_postgres_user(
            [pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(base / "log"), "start"]
        ),
        check=True,
        capture_output=True,
    )
    dsn = f"host=127.0.0.1 port={port} dbname=postgres user=postgres connect_timeout=5"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric)")
            conn.execute("INSERT INTO orders VALUES (1, 'ada', 10), (2, 'grace', -5)")
        yield Postgres(dsn)
    finally:
        subprocess.run(
            as_postgres_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            check=True,
            capture_output=True,
        )


# --- the sandbox RDS instance with a snapshot --------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner uses the process's own credentials (the drill-runner role), not drwatch's.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def source(sandbox: Sandbox) -> Iterator[dict[str, Any]]:
    rds = sandbox.client("rds", REGION)
    rds.create_db_instance(
        DBInstanceIdentifier=SOURCE,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-a-secret-1",
        AllocatedStorage=20,
        BackupRetentionPeriod=7,
        Tags=[{"Key": "dr-tier", "Value": "premium"}],
    )
    rds.create_db_snapshot(DBInstanceIdentifier=SOURCE, DBSnapshotIdentifier=f"{SOURCE}-manual")
    snapshots = rds.describe_db_snapshots(DBInstanceIdentifier=SOURCE)["DBSnapshots"]
    try:
        yield {"rds": rds, "newest": max(snapshots, key=lambda s: s["SnapshotCreateTime"])}
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=SOURCE, SkipFinalSnapshot=True)
        rds.delete_db_snapshot(DBSnapshotIdentifier=f"{SOURCE}-manual")


def client(sandbox: Sandbox, recorder: OperationRecorder | None = None) -> Any:
    handlers: list[tuple[str, Any]] = [("after-call.*.*", validate_response)]
    if recorder is not None:
        handlers.append(("before-call.*.*", recorder))
    return runner_client(
        AwsConfig(endpoint_url=sandbox.endpoint_url), REGION, extra_handlers=handlers
    )


def instance_exists(rds: Any, identifier: str) -> bool:
    try:
        rds.describe_db_instances(DBInstanceIdentifier=identifier)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code != "DBInstanceNotFound":
            raise
        return False
    return True


class Clock:
    """Each reading is 90 s after the previous one, so durations are known exactly."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=90)
        return self.now


def checks_file(tmp_path: Path, text: str) -> tuple[SqlCheck, ...]:
    path = tmp_path / "checks.sql"
    path.write_text(text)
    return read_checks(path)


# --- tests -------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_restores_newest_snapshot_checks_measures_and_deletes(
    sandbox: Sandbox, source: dict[str, Any], postgres: Postgres, tmp_path: Path
) -> None:
    recorder = OperationRecorder()
    rds = client(sandbox, recorder)
    checks = checks_file(tmp_path, CHECKS_OK)
    seen: list[Endpoint] = []

    def checker(endpoint: Endpoint) -> list[CheckResult]:
        seen.append(endpoint)
        assert instance_exists(source["rds"], "drwatch-drill-run1")  # it exists while checked
        return run_sql_checks(postgres.dsn, checks)

    start = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    request = RestoreRequest(SOURCE, REGION, "run1")
    outcome = run_restore_test(rds, request, checker, clock=Clock(start), sleep=lambda _: None)

    assert outcome.passed, outcome
    assert [c.name for c in outcome.checks] == ["orders are present", "no order without a customer"]
    assert seen[0].host.startswith("drwatch-drill-run1.")
    assert outcome.source == source["newest"]["DBSnapshotIdentifier"]
    assert outcome.restore_point == source["newest"]["SnapshotCreateTime"].astimezone(UTC)
    # Clock readings: start, wait deadline, available (first poll), checks done.
    assert outcome.started == start + timedelta(seconds=90)
    assert outcome.available_at == outcome.started + timedelta(seconds=180)
    assert outcome.checked_at == outcome.available_at + timedelta(seconds=90)
    assert outcome.tier_tag == "premium"
    assert outcome.cleanup == "deleted"
    assert not instance_exists(source["rds"], request.target_id)
    called = {f"rds:{op}" for service, op in recorder.operations if service == "rds"}
    assert {"rds:RestoreDBInstanceFromDBSnapshot", "rds:DeleteDBInstance"} <= called
    assert called <= set(runner_iam_actions())


@pytest.mark.usefixtures("aws_env")
def test_a_failed_check_fails_the_run_and_still_deletes_the_instance(
    sandbox: Sandbox, source: dict[str, Any], postgres: Postgres, tmp_path: Path
) -> None:
    rds = client(sandbox)
    checks = checks_file(tmp_path, CHECKS_FAILING)
    request = RestoreRequest(SOURCE, REGION, "run2")
    outcome = run_restore_test(
        rds,
        request,
        lambda _: run_sql_checks(postgres.dsn, checks),
        clock=Clock(datetime(2026, 11, 21, tzinfo=UTC)),
        sleep=lambda _: None,
    )
    assert not outcome.passed
    assert [c.passed for c in outcome.checks] == [True, False]
    assert outcome.checks[1].detail == "returned False (a check returns true)"
    assert outcome.cleanup == "deleted"
    assert not instance_exists(source["rds"], request.target_id)


@pytest.mark.usefixtures("aws_env")
def test_an_unreachable_database_is_a_recorded_failure_and_the_instance_is_deleted(
    sandbox: Sandbox, source: dict[str, Any], tmp_path: Path
) -> None:
    rds = client(sandbox)
    checks = checks_file(tmp_path, CHECKS_OK)
    dead = f"host=127.0.0.1 port={free_port()} dbname=postgres user=postgres connect_timeout=2"
    request = RestoreRequest(SOURCE, REGION, "run3")
    outcome = run_restore_test(
        rds,
        request,
        lambda _: run_sql_checks(dead, checks),
        clock=Clock(datetime(2026, 11, 21, tzinfo=UTC)),
        sleep=lambda _: None,
    )
    assert outcome.error.startswith("OperationalError")
    assert outcome.checked_at is None
    assert not outcome.passed
    assert outcome.cleanup == "deleted"
    assert not instance_exists(source["rds"], request.target_id)


@pytest.mark.usefixtures("aws_env")
def test_an_interrupt_still_deletes_the_instance_then_propagates(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    rds = client(sandbox)
    request = RestoreRequest(SOURCE, REGION, "run4")

    def interrupted(_: Endpoint) -> list[CheckResult]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_restore_test(
            rds, request, interrupted, clock=Clock(datetime(2026, 11, 21, tzinfo=UTC)), sleep=print
        )
    assert not instance_exists(source["rds"], request.target_id)


@pytest.mark.usefixtures("aws_env")
def test_an_instance_without_this_runs_tag_is_never_deleted(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    rds = client(sandbox)
    request = RestoreRequest(SOURCE, REGION, "run5")
    # Someone else's instance happens to have the name this run would use.
    source["rds"].restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=request.target_id,
        DBSnapshotIdentifier=source["newest"]["DBSnapshotIdentifier"],
        Tags=[{"Key": RUN_TAG_KEY, "Value": "another-run"}],
    )
    try:
        outcome = run_restore_test(
            rds, request, lambda _: [], clock=Clock(datetime(2026, 11, 21, tzinfo=UTC)), sleep=print
        )
        assert outcome.error  # the restore itself fails: the name is taken
        assert outcome.cleanup.startswith("left alone: drwatch-drill-run5 is not tagged")
        assert outcome.cleaned_up  # nothing of this run's was left behind
        assert instance_exists(source["rds"], request.target_id)
    finally:
        source["rds"].delete_db_instance(
            DBInstanceIdentifier=request.target_id, SkipFinalSnapshot=True
        )


def test_the_runner_guard_allows_only_its_four_writes() -> None:
    @dataclass
    class Model:
        name: str

    for allowed in ("DescribeDBInstances", "RestoreDBInstanceFromDBSnapshot", "DeleteDBInstance"):
        allow_runner_calls(Model(allowed))
    for refused in ("DeleteDBSnapshot", "ModifyDBInstance", "DeleteDBCluster"):
        with pytest.raises(ReadOnlyViolationError):
            allow_runner_calls(Model(refused))
    # ... and the exporter's own guard still refuses the runner's writes.
    with pytest.raises(ReadOnlyViolationError):
        refuse_writes(Model("RestoreDBInstanceFromDBSnapshot"))


def test_runner_policy_restores_tagged_and_deletes_only_its_own() -> None:
    policy = runner_policy_document()
    statements = {s["Sid"]: s for s in policy["Statement"]}
    actions = sorted(a for s in policy["Statement"] for a in s["Action"])
    assert actions == sorted(runner_iam_actions())
    delete = statements["DrwatchDrillDeleteOwn"]
    assert delete["Resource"] == "arn:aws:rds:*:*:db:drwatch-drill-*"
    assert delete["Condition"] == {"Null": {f"aws:ResourceTag/{RUN_TAG_KEY}": "false"}}
    restore = statements["DrwatchDrillRestoreTagged"]
    assert restore["Condition"] == {"Null": {f"aws:RequestTag/{RUN_TAG_KEY}": "false"}}
    code = CliRunner().invoke(cli, ["iam-policy", "--drill-runner"])
    assert code.exit_code == 0, code.output
    assert json.loads(code.output) == policy


def sandbox_config_file(tmp_path: Path, sandbox: Sandbox) -> Path:
    path = tmp_path / "drwatch.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "accounts": [{"id": "123456789012"}],
                "regions": [REGION],
                "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 2},
                "history": {"path": str(tmp_path / "history.db")},
            }
        )
    )
    return path


@pytest.mark.usefixtures("aws_env", "source")
def test_cli_refuses_without_the_explicit_flag(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "c.sql").write_text(CHECKS_OK)
    config = sandbox_config_file(tmp_path, sandbox)
    args = ["drill", "run", "rds", "-c", str(config), "--region", REGION, "--instance", SOURCE]
    result = CliRunner().invoke(cli, [*args, "--check-sql", str(tmp_path / "c.sql")])
    assert result.exit_code == 2
    assert "--i-understand-this-changes-aws" in result.output
    assert not (tmp_path / "history.db").exists()


@pytest.mark.usefixtures("aws_env", "source")
def test_cli_point_in_time_run_is_recorded_as_a_drill_and_restore_test(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    (tmp_path / "c.sql").write_text(CHECKS_FAILING)
    config = sandbox_config_file(tmp_path, sandbox)
    result = CliRunner().invoke(
        cli,
        [
            "drill",
            "run",
            "rds",
            "-c",
            str(config),
            "--region",
            REGION,
            "--instance",
            SOURCE,
            "--check-sql",
            str(tmp_path / "c.sql"),
            "--latest-restorable",
            "--check-dsn",
            postgres.dsn,
            "--evidence-dir",
            str(tmp_path / "ev"),
            "--i-understand-this-changes-aws",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "check totals are never negative: FAILED" in result.output
    assert "an integrity check failed" in result.output
    db = open_reader(tmp_path / "history.db")
    assert load_drills(db, 0, 2**40) == []  # a restore test, not a DR drill
    (drill,) = load_drills(db, 0, 2**40, include_restore_tests=True)
    assert drill.scenario == "data_corruption"
    assert drill.result == "fail"
    assert drill.tier == "premium"  # from the source's dr-tier tag
    assert drill.rto_target_seconds == 15 * 60
    assert drill.issues == (
        "check totals are never negative: returned False (a check returns true)",
    )
    assert drill.scope == (f"123456789012/{REGION}/rds/db/{SOURCE}",)
    (evidence_name, digest) = drill.evidence[0]
    evidence = tmp_path / "ev" / evidence_name
    assert json.loads(evidence.read_text())["cleanup"] == "deleted"
    assert hashlib.sha256(evidence.read_bytes()).hexdigest() == digest
    (test,) = load_restore_tests(db, 0, 2**40)
    assert (test.resource_class, test.status, test.validation_status) == (
        "database",
        "COMPLETED",
        "FAILED",
    )
    assert verify_chain(db).ok
    remaining = [
        i["DBInstanceIdentifier"]
        for i in sandbox.client("rds", REGION).describe_db_instances()["DBInstances"]
    ]
    assert remaining == [SOURCE]


@pytest.mark.usefixtures("aws_env")
def test_point_in_time_restore_records_the_requested_time(
    sandbox: Sandbox, source: dict[str, Any], postgres: Postgres, tmp_path: Path
) -> None:
    rds = client(sandbox)
    (instance,) = source["rds"].describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"]
    point = instance["LatestRestorableTime"].astimezone(UTC) - timedelta(seconds=1)
    request = RestoreRequest(SOURCE, REGION, "run6", point_in_time=point)
    checks = checks_file(tmp_path, CHECKS_OK)
    outcome = run_restore_test(
        rds,
        request,
        lambda _: run_sql_checks(postgres.dsn, checks),
        clock=Clock(datetime(2026, 11, 21, tzinfo=UTC)),
        sleep=print,
    )
    assert outcome.passed, outcome
    assert (outcome.source, outcome.restore_point) == ("point-in-time", point)
    assert not instance_exists(source["rds"], request.target_id)


@pytest.mark.usefixtures("aws_env")
def test_cli_unknown_instance_exits_2_and_records_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "c.sql").write_text(CHECKS_OK)
    config = sandbox_config_file(tmp_path, sandbox)
    result = CliRunner().invoke(
        cli,
        [
            *("drill", "run", "rds", "-c", str(config), "--region", REGION),
            *("--instance", "no-such-db", "--check-sql", str(tmp_path / "c.sql")),
            "--i-understand-this-changes-aws",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "instance no-such-db:" in result.output
    assert "DBInstanceNotFound" in result.output
    assert (
        not (tmp_path / "history.db").exists()
        or load_drills(open_reader(tmp_path / "history.db"), 0, 2**40, include_restore_tests=True)
        == []
    )


@pytest.mark.usefixtures("aws_env")
def test_cli_names_an_instance_it_could_not_delete(
    sandbox: Sandbox, source: dict[str, Any], postgres: Postgres, tmp_path: Path
) -> None:
    (tmp_path / "c.sql").write_text(CHECKS_OK)
    config = sandbox_config_file(tmp_path, sandbox)
    # AWS refuses the deletion (e.g. a permissions boundary): the operator must be told.
    sandbox.faults.add(
        FaultRule(error_code="AccessDenied", service="rds", operation="DeleteDBInstance")
    )
    result = CliRunner().invoke(
        cli,
        [
            *("drill", "run", "rds", "-c", str(config), "--region", REGION),
            *("--instance", SOURCE, "--check-sql", str(tmp_path / "c.sql")),
            *("--check-dsn", postgres.dsn, "--evidence-dir", str(tmp_path / "ev")),
            "--i-understand-this-changes-aws",
        ],
    )
    sandbox.faults.clear()
    leftover = [
        i["DBInstanceIdentifier"]
        for i in source["rds"].describe_db_instances()["DBInstances"]
        if i["DBInstanceIdentifier"] != SOURCE
    ]
    for identifier in leftover:
        source["rds"].delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)
    assert result.exit_code == 1, result.output
    (target,) = leftover
    assert f"temporary instance {target} was NOT deleted" in result.output
    assert "delete it by hand" in result.output
    (drill,) = load_drills(
        open_reader(tmp_path / "history.db"), 0, 2**40, include_restore_tests=True
    )
    assert drill.result == "pass"  # the restore itself worked; the cleanup is the problem
    assert f"{target}: failed:" in drill.notes
    assert drill.issues[0].startswith(f"temporary instance {target} not deleted: failed:")


def creating_after_restore(target: str) -> Any:
    """after-call hook: the simulated instance starts in "creating", as a real restore does
    (moto makes it available at once)."""

    def hook(model: Any, **_: Any) -> None:
        if model.name.startswith("RestoreDBInstance"):
            rds_backends[MOTO_ACCOUNT][REGION].databases[target].status = "creating"

    return hook


@pytest.mark.usefixtures("aws_env", "source")
def test_waits_while_creating_at_the_poll_interval(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    request = RestoreRequest(SOURCE, REGION, "run7", poll_seconds=30)
    rds = client(sandbox)
    rds.meta.events.register("after-call.rds.*", creating_after_restore(request.target_id))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:  # AWS finishes the restore during the third wait
            rds_backends[MOTO_ACCOUNT][REGION].databases[request.target_id].status = "available"

    checks = checks_file(tmp_path, CHECKS_OK)
    outcome = run_restore_test(
        rds,
        request,
        lambda _: run_sql_checks(postgres.dsn, checks),
        clock=Clock(datetime(2026, 11, 21, tzinfo=UTC)),
        sleep=sleep,
    )
    assert outcome.passed, outcome
    assert slept == [30, 30, 30]
    # Readings: start, deadline, one per "creating" poll, then available.
    assert outcome.available_at == outcome.started + timedelta(seconds=90 * 5)
    assert outcome.cleanup == "deleted"


@pytest.mark.usefixtures("aws_env", "source")
def test_a_restore_that_never_becomes_available_times_out_and_is_deleted(
    sandbox: Sandbox,
) -> None:
    request = RestoreRequest(SOURCE, REGION, "run8", timeout_seconds=600, poll_seconds=60)
    rds = client(sandbox)
    rds.meta.events.register("after-call.rds.*", creating_after_restore(request.target_id))
    slept: list[float] = []
    outcome = run_restore_test(
        rds,
        request,
        lambda _: [],
        clock=Clock(datetime(2026, 11, 21, tzinfo=UTC)),
        sleep=slept.append,
    )
    assert outcome.error == (
        "DrillRunnerError: drwatch-drill-run8: not available after 600 s (status creating)"
    )
    assert outcome.available_at is None
    assert len(slept) == 6  # 90 s per clock reading: the deadline passes after six waits
    assert outcome.cleanup == "deleted"
    assert not instance_exists(sandbox.client("rds", REGION), request.target_id)
