"""The active restore test (`drwatch drill run rds`): the one part of drwatch that changes AWS.

It restores an RDS instance's newest snapshot (or a point in time) to a temporary instance
tagged `drwatch-drill=<run id>`, waits until it is available, runs SQL integrity checks
against it, measures, and deletes the temporary instance in a `finally`, whatever failed.

Safety, in layers:
- Its own client with its own guard (`allow_runner_calls`): reads plus exactly the four
  write operations below; the exporter's clients keep refusing every write (exporter/aws.py).
- Its own IAM policy (`runner_policy_document`): restores only with the run tag on the new
  instance, and deletes only instances named `drwatch-drill-*` that carry the tag.
- Before deleting, it re-reads the target's tags and refuses to delete an instance whose
  tag is not its own run id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import botocore.session
import psycopg
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from drwatch.config import AwsConfig
from drwatch.exporter.aws import ReadOnlyViolationError, botocore_config, is_read_only

RUN_TAG_KEY: Final = "drwatch-drill"
TARGET_PREFIX: Final = "drwatch-drill-"
# The only writes the runner may send; everything else that is not a read is refused.
RUNNER_WRITE_OPERATIONS: Final = frozenset(
    {
        "RestoreDBInstanceFromDBSnapshot",
        "RestoreDBInstanceToPointInTime",
        "DeleteDBInstance",
        "AddTagsToResource",
    }
)
RUNNER_READ_ACTIONS: Final = (
    "rds:DescribeDBInstances",
    "rds:DescribeDBSnapshots",
    "rds:ListTagsForResource",
)
DEFAULT_TIMEOUT_SECONDS: Final = 3600.0
DEFAULT_POLL_SECONDS: Final = 30.0
CHECK_HEADER = re.compile(r"^--\s*check:\s*(?P<name>.+?)\s*$", re.MULTILINE)


class DrillRunnerError(RuntimeError):
    """A restore test step failed; the message says which and why."""


def allow_runner_calls(model: Any, **_: Any) -> None:
    """`before-call` guard of the runner's client: reads and the four runner writes only."""
    if not (is_read_only(model.name) or model.name in RUNNER_WRITE_OPERATIONS):
        raise ReadOnlyViolationError(f"the drill runner refuses to call {model.name}")


def runner_client(
    settings: AwsConfig,
    region: str,
    *,
    session_factory: Callable[[], botocore.session.Session] = botocore.session.Session,
    extra_handlers: Sequence[tuple[str, Callable[..., Any]]] = (),
) -> BaseClient:
    """An RDS client on the process's own credentials (the drill-runner role, not drwatch's
    read role), guarded by `allow_runner_calls`."""
    client = session_factory().create_client(
        "rds",
        region_name=region,
        endpoint_url=settings.endpoint_url,
        config=botocore_config(settings),
    )
    client.meta.events.register("before-call.*.*", allow_runner_calls)
    for event, handler in extra_handlers:
        client.meta.events.register(event, handler)
    return client


def runner_policy_document() -> dict[str, Any]:
    """The IAM policy of the drill-runner role: restore tagged, describe, delete only its own."""
    tagged_request = {"Null": {f"aws:RequestTag/{RUN_TAG_KEY}": "false"}}
    own_instances = f"arn:aws:rds:*:*:db:{TARGET_PREFIX}*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DrwatchDrillDescribe",
                "Effect": "Allow",
                "Action": list(RUNNER_READ_ACTIONS),
                "Resource": "*",
            },
            {
                # Restoring reads the source snapshot or instance and creates the target;
                # the request must carry the run tag, so every instance it creates is tagged.
                "Sid": "DrwatchDrillRestoreTagged",
                "Effect": "Allow",
                "Action": [
                    "rds:RestoreDBInstanceFromDBSnapshot",
                    "rds:RestoreDBInstanceToPointInTime",
                ],
                "Resource": "*",
                "Condition": tagged_request,
            },
            {
                # Tag-on-create needs AddTagsToResource; only on the runner's own instances.
                "Sid": "DrwatchDrillTagOnCreate",
                "Effect": "Allow",
                "Action": ["rds:AddTagsToResource"],
                "Resource": own_instances,
                "Condition": tagged_request,
            },
            {
                "Sid": "DrwatchDrillDeleteOwn",
                "Effect": "Allow",
                "Action": ["rds:DeleteDBInstance"],
                "Resource": own_instances,
                "Condition": {"Null": {f"aws:ResourceTag/{RUN_TAG_KEY}": "false"}},
            },
        ],
    }


def runner_iam_actions() -> tuple[str, ...]:
    return tuple(sorted({*RUNNER_READ_ACTIONS, *(f"rds:{op}" for op in RUNNER_WRITE_OPERATIONS)}))


# --- Integrity checks ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqlCheck:
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


def read_checks(path: Path) -> tuple[SqlCheck, ...]:
    """Checks from a SQL file: each starts with a `-- check: <name>` line and is one query
    returning one row whose first column is true (a file without headers is one check)."""
    text = path.read_text(encoding="utf-8")
    headers = list(CHECK_HEADER.finditer(text))
    if not headers:
        checks = [SqlCheck(path.stem, text.strip().rstrip(";"))]
    else:
        ends = [h.start() for h in headers[1:]] + [len(text)]
        checks = [
            SqlCheck(h.group("name"), text[h.end() : end].strip().rstrip(";").strip())
            for h, end in zip(headers, ends, strict=True)
        ]
    empty = [c.name for c in checks if not c.sql]
    if empty:
        raise DrillRunnerError(f"{path}: check {empty[0]!r} has no SQL")
    return tuple(checks)


def run_sql_checks(
    conninfo: str, checks: Sequence[SqlCheck], timeout_seconds: float = 30.0
) -> list[CheckResult]:
    """Runs each check in its own read-only transaction; a failing query fails that check."""
    with psycopg.connect(conninfo, connect_timeout=max(1, int(timeout_seconds))) as conn:
        conn.read_only = True
        return [_run_check(conn, check) for check in checks]


def _run_check(conn: psycopg.Connection[Any], check: SqlCheck) -> CheckResult:
    try:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(check.sql.encode())
            row = cursor.fetchone()
    except psycopg.Error as error:
        # A broken query is a failed check (recorded as evidence), not a crashed run.
        return CheckResult(check.name, False, f"error: {str(error).strip()}")
    if row is None:
        return CheckResult(check.name, False, "returned no row (a check returns true)")
    if row[0] is not True:
        return CheckResult(check.name, False, f"returned {row[0]!r} (a check returns true)")
    return CheckResult(check.name, True, "true")


# --- The run ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    instance_id: str
    region: str
    run_id: str  # letters, digits and hyphens: it is part of the temporary instance name
    point_in_time: datetime | None = None  # None: the newest available snapshot
    latest_restorable: bool = False  # point-in-time restore to the latest restorable time
    instance_class: str | None = None  # None: the source's class
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    poll_seconds: float = DEFAULT_POLL_SECONDS

    @property
    def target_id(self) -> str:
        return f"{TARGET_PREFIX}{self.run_id}"[:63]

    @property
    def point_in_time_restore(self) -> bool:
        return self.point_in_time is not None or self.latest_restorable


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class RunOutcome:
    request: RestoreRequest
    account_id: str
    source: str  # snapshot id, or "point-in-time"
    tier_tag: str
    started: datetime
    restore_point: datetime | None
    available_at: datetime | None
    checked_at: datetime | None
    checks: tuple[CheckResult, ...]
    cleanup: str  # deleted | not created | left alone: <not ours> | failed: <why>
    error: str = ""

    @property
    def passed(self) -> bool:
        checks_ok = bool(self.checks) and all(c.passed for c in self.checks)
        return not self.error and self.available_at is not None and checks_ok

    @property
    def cleaned_up(self) -> bool:
        """Nothing this run created is left behind."""
        return not self.cleanup.startswith("failed")

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "instance": self.request.instance_id,
            "region": self.request.region,
            "account_id": self.account_id,
            "temporary_instance": self.request.target_id,
            "run_id": self.request.run_id,
            "source": self.source,
            "started": iso(self.started),
            "restore_point": iso(self.restore_point),
            "available_at": iso(self.available_at),
            "checked_at": iso(self.checked_at),
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
            "cleanup": self.cleanup,
            "error": self.error,
            "passed": self.passed,
        }


class Clock(Protocol):
    def __call__(self) -> datetime: ...


Checker = Callable[[Endpoint], Sequence[CheckResult]]


def run_restore_test(
    rds: Any,
    request: RestoreRequest,
    checker: Checker,
    *,
    clock: Clock,
    sleep: Callable[[float], None],
) -> RunOutcome:
    """Restore, wait, check, measure; the temporary instance is deleted in any case.

    AWS and database failures end the run early and are recorded in the outcome's `error`
    (the drill failed: that is evidence, and the CLI exits non-zero). Anything else,
    including an interrupt, still deletes the instance and then propagates.
    """
    # Read before the clock starts: the latest restorable time must not postdate the start.
    source_info = _describe_source(rds, request.instance_id)
    started = clock()
    state: dict[str, Any] = {"available_at": None, "checked_at": None, "checks": ()}
    source, restore_point, error = "", None, ""
    try:
        source, restore_point = _restore(rds, request, source_info["latest_restorable"])
        endpoint = _wait_available(rds, request, clock, sleep)
        state["available_at"] = clock()
        state["checks"] = tuple(checker(endpoint))
        state["checked_at"] = clock()
    except (BotoCoreError, ClientError, DrillRunnerError, psycopg.Error) as failure:
        error = f"{type(failure).__name__}: {failure}"
    finally:
        cleanup = _delete_own_instance(rds, request)
    return RunOutcome(
        request=request,
        account_id=source_info["account_id"],
        source=source,
        tier_tag=source_info["tier_tag"],
        started=started,
        restore_point=restore_point,
        available_at=state["available_at"],
        checked_at=state["checked_at"],
        checks=state["checks"],
        cleanup=cleanup,
        error=error,
    )


def _describe_source(rds: Any, instance_id: str) -> dict[str, Any]:
    try:
        (instance,) = rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"]
    except ClientError as error:
        raise DrillRunnerError(f"instance {instance_id}: {error}") from error
    arn = str(instance["DBInstanceArn"])
    tags = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
    latest = instance.get("LatestRestorableTime")
    return {
        "account_id": arn.split(":")[4],
        "tier_tag": tags.get("dr-tier", ""),
        "latest_restorable": latest.astimezone(UTC) if latest else None,
    }


def _run_tags(request: RestoreRequest) -> list[dict[str, str]]:
    return [{"Key": RUN_TAG_KEY, "Value": request.run_id}]


def _restore(
    rds: Any, request: RestoreRequest, latest_restorable: datetime | None
) -> tuple[str, datetime | None]:
    """Starts the restore; returns the source and the time of the data restored."""
    common: dict[str, Any] = {"Tags": _run_tags(request), "PubliclyAccessible": False}
    if request.instance_class:
        common["DBInstanceClass"] = request.instance_class
    if request.point_in_time_restore:
        timing: dict[str, Any] = (
            {"UseLatestRestorableTime": True}
            if request.point_in_time is None
            else {"RestoreTime": request.point_in_time}
        )
        rds.restore_db_instance_to_point_in_time(
            SourceDBInstanceIdentifier=request.instance_id,
            TargetDBInstanceIdentifier=request.target_id,
            **timing,
            **common,
        )
        # Restoring "latest" restores at least up to the time read before starting.
        return "point-in-time", request.point_in_time or latest_restorable
    snapshot = _newest_snapshot(rds, request.instance_id)
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=request.target_id,
        DBSnapshotIdentifier=snapshot["DBSnapshotIdentifier"],
        **common,
    )
    return str(snapshot["DBSnapshotIdentifier"]), snapshot["SnapshotCreateTime"].astimezone(UTC)


def _newest_snapshot(rds: Any, instance_id: str) -> dict[str, Any]:
    snapshots = [
        s
        for page in rds.get_paginator("describe_db_snapshots").paginate(
            DBInstanceIdentifier=instance_id
        )
        for s in page["DBSnapshots"]
        if s.get("Status") == "available" and s.get("SnapshotCreateTime")
    ]
    if not snapshots:
        raise DrillRunnerError(f"instance {instance_id}: no available snapshot to restore")
    return max(snapshots, key=lambda s: s["SnapshotCreateTime"])


def _wait_available(
    rds: Any, request: RestoreRequest, clock: Clock, sleep: Callable[[float], None]
) -> Endpoint:
    deadline = clock().timestamp() + request.timeout_seconds
    while True:
        (instance,) = rds.describe_db_instances(DBInstanceIdentifier=request.target_id)[
            "DBInstances"
        ]
        status = instance["DBInstanceStatus"]
        if status == "available" and instance.get("Endpoint"):
            return Endpoint(instance["Endpoint"]["Address"], int(instance["Endpoint"]["Port"]))
        if status in ("failed", "incompatible-restore", "incompatible-parameters"):
            raise DrillRunnerError(f"{request.target_id}: restore ended in status {status}")
        if clock().timestamp() >= deadline:
            raise DrillRunnerError(
                f"{request.target_id}: not available after {request.timeout_seconds:.0f} s "
                f"(status {status})"
            )
        sleep(request.poll_seconds)


def _delete_own_instance(rds: Any, request: RestoreRequest) -> str:
    """Deletes the temporary instance if it exists and carries this run's tag."""
    try:
        found = rds.describe_db_instances(DBInstanceIdentifier=request.target_id)["DBInstances"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
            return "not created"
        return f"failed: {error}"
    (instance,) = found
    tags = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
    if tags.get(RUN_TAG_KEY) != request.run_id:
        # Someone else's instance under the name this run wanted: never ours to delete.
        return f"left alone: {request.target_id} is not tagged {RUN_TAG_KEY}={request.run_id}"
    try:
        rds.delete_db_instance(
            DBInstanceIdentifier=request.target_id,
            SkipFinalSnapshot=True,
            DeleteAutomatedBackups=True,
        )
    except (BotoCoreError, ClientError) as error:
        return f"failed: {error}"
    return "deleted"


def write_evidence(outcome: RunOutcome, directory: Path, name: str) -> Path:
    """The run as JSON, hashed into the drill record (evidence an auditor can re-hash)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(outcome.to_json(), indent=2, sort_keys=True) + "\n")
    return path
