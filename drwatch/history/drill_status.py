"""Read models over the drill evidence: restore tests, and the status the metrics view shows.

- `load_restore_tests`: finished restores, from the AWS Backup restore jobs the backup
  collector stores in `job_events` and from the active restore tests recorded as drills
  (`drwatch drill run`, whose scope `runner_scope` spells);
- `drill_status` / `read_drill_status`: the newest drill per scenario and restore-test times
  per (account, region, resource class), for the `drwatch_drill_*` metric families.

The records themselves, their JSON and their writing live in `drills`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from sqlite_utils import Database

from drwatch.core.model import DrillScenarioStatus, DrillStatus, RestoreClassStatus
from drwatch.history.drills import (
    SOURCE_AWS_BACKUP,
    SOURCE_RUNNER,
    DrillError,
    DrillRecord,
    RestoreTestRecord,
    load_drills,
    parse_time,
    resource_class,
)
from drwatch.history.store import open_reader

__all__ = ["drill_status", "load_restore_tests", "read_drill_status", "runner_scope"]

# Job states after which a restore job no longer changes.
_FINISHED_STATES: Final = frozenset({"COMPLETED", "FAILED", "ABORTED", "EXPIRED", "PARTIAL"})


def load_restore_tests(
    db: Database,
    start_epoch: int,
    end_epoch: int,
    *,
    rto_targets: Mapping[str, float] = MappingProxyType({}),
) -> list[RestoreTestRecord]:
    """Finished restores that started in [start_epoch, end_epoch), oldest first.

    AWS Backup restore jobs come from `job_events` (each job's newest recorded state); an
    active restore test (`drwatch drill run`) comes from its drill record. `rto_targets`
    maps tier to RTO seconds (from the config's tiers); the tier is the resource's newest
    observed one, and a tier without a target leaves `rto_target_seconds` None.
    """
    tests = [
        _restore_from_job(json.loads(row[0]), rto_targets, _tier_of(db, row[1]))
        for row in db.execute(
            "SELECT value, resource_key FROM job_events WHERE seq IN ("
            "SELECT max(seq) FROM job_events WHERE kind = 'restore' "
            "AND created_epoch >= ? AND created_epoch < ? GROUP BY job_id)",
            [start_epoch, end_epoch],
        ).fetchall()
    ]
    finished = [t for t in tests if t.status in _FINISHED_STATES]
    runner = [
        _restore_from_drill(drill)
        for drill in load_drills(db, start_epoch, end_epoch, include_restore_tests=True)
        if drill.source == SOURCE_RUNNER
    ]
    return sorted([*finished, *runner], key=lambda t: (t.started, t.test_id))


def _restore_from_job(
    job: Mapping[str, Any], rto_targets: Mapping[str, float], tier: str
) -> RestoreTestRecord:
    ref = job.get("ref") or {}
    started = parse_time(job["created"])
    completed = parse_time(job.get("completed"))
    if started is None:
        raise DrillError(f"restore job {job.get('job_id')!r}: stored without a creation time")
    duration = (completed - started).total_seconds() if completed else None
    service = str(ref.get("service", ""))
    return RestoreTestRecord(
        test_id=str(job["job_id"]),
        account_id=str(ref.get("account_id", "")),
        region=str(ref.get("region", "")),
        service=service,
        resource_type=str(ref.get("resource_type", "")),
        resource_id=str(ref.get("resource_id", "")),
        resource_class=resource_class(service),
        started=started,
        completed=completed,
        duration_seconds=duration,
        status=str(job["state"]),
        validation_status=str(job.get("validation_status", "")),
        rto_target_seconds=rto_targets.get(tier),
        source=SOURCE_AWS_BACKUP,
        restore_testing_plan=str(job.get("restore_testing_plan", "")),
        tier=tier,
    )


def _restore_from_drill(drill: DrillRecord) -> RestoreTestRecord:
    # The runner's scope is one "<account>/<region>/rds/db/<instance>" resource path.
    account_id, region, service, resource_type, resource_id = _split_scope(drill.scope)
    return RestoreTestRecord(
        test_id=drill.drill_id,
        account_id=account_id,
        region=region,
        service=service,
        resource_type=resource_type,
        resource_id=resource_id,
        resource_class=resource_class(service),
        started=drill.incident_start,
        completed=drill.restored_at,
        duration_seconds=drill.measured_rto_seconds,
        status="COMPLETED" if drill.restored_at else "FAILED",
        validation_status="SUCCESSFUL" if drill.result == "pass" else "FAILED",
        rto_target_seconds=drill.rto_target_seconds,
        source=SOURCE_RUNNER,
        tier=drill.tier,
    )


def runner_scope(account_id: str, region: str, instance: str) -> str:
    return f"{account_id}/{region}/rds/db/{instance}"


def _split_scope(scope: tuple[str, ...]) -> tuple[str, str, str, str, str]:
    parts = scope[0].split("/", 4) if scope else []
    if len(parts) != 5:
        raise DrillError(f"runner drill scope {scope!r} is not account/region/service/type/id")
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def _tier_of(db: Database, resource_key: str) -> str:
    """The resource's newest observed tier ("" when never observed or compacted away)."""
    if not resource_key:
        return ""
    row = db.execute(
        "SELECT s.value FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE k.kind = 'resource' AND k.resource_key = ? ORDER BY s.seq DESC LIMIT 1",
        [resource_key],
    ).fetchone()
    return str(json.loads(row[0]).get("tier", "")) if row else ""


# --- Status for the metrics view ---------------------------------------------------------

_ALL_TIME: Final = (-(2**62), 2**62)


def drill_status(db: Database) -> DrillStatus:
    """The newest drill per scenario and restore-test times per (account, region, class).

    Drills are never compacted; restore jobs are read from the raw window (`raw_days`,
    default 35: longer than any restore cadence).
    """
    with db.atomic():  # one snapshot of the database for both reads
        drills = load_drills(db, *_ALL_TIME)
        tests = load_restore_tests(db, *_ALL_TIME)
    return DrillStatus(
        scenarios=tuple(_scenario_status(drills, scenario) for scenario in _scenarios(drills)),
        restore_classes=_restore_class_status(tests),
    )


def _scenarios(drills: Sequence[DrillRecord]) -> list[str]:
    return sorted({d.scenario for d in drills if _counts_as_drill(d)})


def _counts_as_drill(record: DrillRecord) -> bool:
    return bool(record.result)


def _scenario_status(drills: Sequence[DrillRecord], scenario: str) -> DrillScenarioStatus:
    done = [d for d in drills if d.scenario == scenario and _counts_as_drill(d)]
    newest = max(done, key=lambda d: d.incident_start)
    passed = [d.incident_start.timestamp() for d in done if d.result == "pass"]
    return DrillScenarioStatus(
        scenario=scenario,
        last_timestamp=newest.incident_start.timestamp(),
        last_passed=newest.result == "pass",
        last_success_timestamp=max(passed) if passed else None,
        last_rto_seconds=newest.measured_rto_seconds,
        last_rto_target_seconds=newest.rto_target_seconds,
        last_rpo_seconds=newest.measured_rpo_seconds,
        last_rpo_target_seconds=newest.rpo_target_seconds,
    )


def _restore_class_status(tests: Sequence[RestoreTestRecord]) -> tuple[RestoreClassStatus, ...]:
    groups: dict[tuple[str, str, str], list[RestoreTestRecord]] = {}
    for test in tests:
        groups.setdefault((test.account_id, test.region, test.resource_class), []).append(test)
    return tuple(_class_status(key, groups[key]) for key in sorted(groups))


def _class_status(
    key: tuple[str, str, str], tests: Sequence[RestoreTestRecord]
) -> RestoreClassStatus:
    def finished(test: RestoreTestRecord) -> float:
        return (test.completed or test.started).timestamp()

    successes = [finished(t) for t in tests if t.succeeded]
    failures = [finished(t) for t in tests if not t.succeeded]
    newest = max(tests, key=finished)
    return RestoreClassStatus(
        account_id=key[0],
        region=key[1],
        resource_class=key[2],
        last_success_timestamp=max(successes) if successes else None,
        last_failure_timestamp=max(failures) if failures else None,
        last_duration_seconds=newest.duration_seconds,
    )


def read_drill_status(path: Path) -> DrillStatus:
    """`drill_status` on its own read-only connection, closed afterwards (one per read)."""
    db = open_reader(path)
    try:
        return drill_status(db)
    finally:
        db.close()
