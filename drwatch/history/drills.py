"""DR drills and restore tests: the evidence that restores work within RTO and RPO.

Two kinds of records, both read from the history database:

- `DrillRecord`: a DR drill (manual, imported, or an active restore test run by
  `drwatch drill run`), stored as one chained row of the `drills` table. Its measured RTO
  is service restored minus incident start, its measured RPO incident start minus the
  restore point. Evidence files are stored as (name, SHA-256) inside the chained value, so
  the chain vouches for them.
- `RestoreTestRecord`: an AWS Backup restore job (restore testing or by hand), derived from
  the `job_events` the backup collector already stores, with its measured duration and
  validation status; active restore tests recorded as drills count as restore tests too.

A drill started with `drwatch drill start` is not evidence yet: it waits in the mutable
`open_drills` bookkeeping table until `drwatch drill finish` appends the chained row.

This module holds the records, their JSON and the reading and writing of drills; the read
models derived from them (restore tests, the metrics view's status) are in `drill_status`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from sqlite_utils import Database

from drwatch.history.chain import canonical_json
from drwatch.history.store import ChainAppender, HistoryError, epoch, write_transaction

__all__ = [
    "RESULTS",
    "SCENARIOS",
    "DrillError",
    "DrillRecord",
    "RestoreTestRecord",
    "abandon_drill",
    "evidence_file",
    "finish_drill",
    "load_drills",
    "load_open_drills",
    "record_drill",
    "record_drills",
    "resource_class",
    "start_drill",
]

# The scenarios the operations runbooks drill (issue 8).
SCENARIOS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "service_failure": "single service failure",
        "database_failure": "database failure",
        "region_failure": "region failure",
        "data_corruption": "data corruption, point-in-time recovery",
        "ransomware": "ransomware",
    }
)
RESULTS: Final = ("pass", "fail", "partial")
SOURCE_MANUAL: Final = "manual"
SOURCE_RUNNER: Final = "drill-runner"
SOURCE_AWS_BACKUP: Final = "aws-backup"

# DRW-11 sets restore cadence per resource class, not per service.
_SERVICE_CLASSES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "rds": "database",
        "dynamodb": "database",
        "docdb": "database",
        "neptune": "database",
        "redshift": "database",
        "elasticache": "cache",
        "memorydb": "cache",
        "s3": "storage",
        "ebs": "storage",
        "efs": "storage",
        "fsx": "storage",
        "ec2": "compute",
        "config": "config",
    }
)


class DrillError(HistoryError):
    """A drill record is invalid or conflicts with the stored history."""


def resource_class(service: str) -> str:
    """The DRW-11 resource class of a service (unknown services are "other")."""
    return _SERVICE_CLASSES.get(service, "other")


@dataclass(frozen=True, slots=True)
class DrillRecord:
    """One DR drill. Times are timezone-aware UTC; targets and measurements in seconds."""

    drill_id: str
    scenario: str
    scope: tuple[str, ...]  # resource ids, or "tier:<name>" for a whole tier
    tier: str
    incident_start: datetime
    detected_at: datetime | None = None
    restored_at: datetime | None = None
    restore_point: datetime | None = None
    rto_target_seconds: float | None = None
    rpo_target_seconds: float | None = None
    result: str = ""  # pass | fail | partial; "" while in progress
    issues: tuple[str, ...] = ()
    follow_ups: tuple[str, ...] = ()
    evidence: tuple[tuple[str, str], ...] = ()  # (file name, sha256)
    source: str = SOURCE_MANUAL
    notes: str = ""

    @property
    def measured_rto_seconds(self) -> float | None:
        """Service restored minus incident start; None until restored."""
        if self.restored_at is None:
            return None
        return (self.restored_at - self.incident_start).total_seconds()

    @property
    def measured_rpo_seconds(self) -> float | None:
        """Incident start minus the restore point (the data lost); None when unknown."""
        if self.restore_point is None:
            return None
        return (self.incident_start - self.restore_point).total_seconds()

    @property
    def detection_seconds(self) -> float | None:
        if self.detected_at is None:
            return None
        return (self.detected_at - self.incident_start).total_seconds()

    @property
    def rto_met(self) -> bool | None:
        """Measured RTO within target; None when either is unknown."""
        return _within(self.measured_rto_seconds, self.rto_target_seconds)

    @property
    def rpo_met(self) -> bool | None:
        return _within(self.measured_rpo_seconds, self.rpo_target_seconds)

    def validate(self) -> None:
        """Raises DrillError naming the first field that makes the record impossible."""
        if not self.drill_id.strip():
            raise DrillError("drill_id: must not be empty")
        if self.scenario not in SCENARIOS:
            raise DrillError(f"scenario: {self.scenario!r} is not one of {', '.join(SCENARIOS)}")
        if self.result and self.result not in RESULTS:
            raise DrillError(f"result: {self.result!r} is not one of {', '.join(RESULTS)}")
        for name in ("incident_start", "detected_at", "restored_at", "restore_point"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise DrillError(f"{name}: {moment.isoformat()} has no time zone")
        _not_before("detected_at", self.detected_at, self.incident_start)
        _not_before("restored_at", self.restored_at, self.incident_start)
        if self.detected_at is not None:
            _not_before("restored_at", self.restored_at, self.detected_at, "detected_at")
        if self.restore_point is not None and self.restore_point > self.incident_start:
            raise DrillError(
                f"restore_point: {self.restore_point.isoformat()} is after incident_start "
                f"{self.incident_start.isoformat()} (a restore point predates the incident)"
            )
        for name in ("rto_target_seconds", "rpo_target_seconds"):
            target = getattr(self, name)
            if target is not None and not (math.isfinite(target) and target > 0):
                raise DrillError(f"{name}: must be a positive number of seconds")

    def with_result(self) -> DrillRecord:
        """The record with `result` filled from the targets when it was left empty."""
        if self.result or self.restored_at is None:
            return self
        failed = self.rto_met is False or self.rpo_met is False
        return replace(self, result="fail" if failed else "pass")


def _within(measured: float | None, target: float | None) -> bool | None:
    if measured is None or target is None:
        return None
    return measured <= target


def _not_before(
    name: str, moment: datetime | None, reference: datetime, reference_name: str = "incident_start"
) -> None:
    if moment is not None and moment < reference:
        raise DrillError(
            f"{name}: {moment.isoformat()} is before {reference_name} {reference.isoformat()}"
        )


@dataclass(frozen=True, slots=True)
class RestoreTestRecord:
    """One finished restore: an AWS Backup restore job or an active restore test."""

    test_id: str
    account_id: str
    region: str
    service: str
    resource_type: str
    resource_id: str
    resource_class: str
    started: datetime
    completed: datetime | None
    duration_seconds: float | None
    status: str  # COMPLETED | FAILED | ABORTED ... (AWS Backup job states)
    validation_status: str  # SUCCESSFUL | FAILED | TIMED_OUT | "" when not validated
    rto_target_seconds: float | None
    source: str
    restore_testing_plan: str = ""
    tier: str = ""

    @property
    def succeeded(self) -> bool:
        """Restored, and validated when a validation ran."""
        return self.status == "COMPLETED" and self.validation_status in ("", "SUCCESSFUL")

    @property
    def within_rto(self) -> bool | None:
        return _within(self.duration_seconds, self.rto_target_seconds)


# --- Evidence files --------------------------------------------------------------------


def evidence_file(path: Path) -> tuple[str, str]:
    """(file name, SHA-256 of its content): what the chain stores for an attached file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return path.name, digest.hexdigest()


# --- Encoding ------------------------------------------------------------------------

_TIME_FIELDS: Final = ("incident_start", "detected_at", "restored_at", "restore_point")


def drill_to_json(record: DrillRecord) -> dict[str, Any]:
    """Plain JSON of a drill, with its measurements (stored, so auditors need no code)."""
    value: dict[str, Any] = {
        "drill_id": record.drill_id,
        "scenario": record.scenario,
        "scope": list(record.scope),
        "tier": record.tier,
        "rto_target_seconds": record.rto_target_seconds,
        "rpo_target_seconds": record.rpo_target_seconds,
        "result": record.result,
        "issues": list(record.issues),
        "follow_ups": list(record.follow_ups),
        "evidence": [{"name": name, "sha256": sha} for name, sha in record.evidence],
        "source": record.source,
        "notes": record.notes,
        "measured_rto_seconds": record.measured_rto_seconds,
        "measured_rpo_seconds": record.measured_rpo_seconds,
    }
    for name in _TIME_FIELDS:
        moment: datetime | None = getattr(record, name)
        value[name] = moment.astimezone(UTC).isoformat() if moment else None
    return value


def drill_from_json(value: Mapping[str, Any]) -> DrillRecord:
    times = {name: parse_time(value.get(name)) for name in _TIME_FIELDS}
    incident_start = times.pop("incident_start")
    if incident_start is None:
        raise DrillError(f"drill {value.get('drill_id')!r}: stored without incident_start")
    return DrillRecord(
        drill_id=str(value["drill_id"]),
        scenario=str(value["scenario"]),
        scope=tuple(str(s) for s in value.get("scope", ())),
        tier=str(value.get("tier", "")),
        incident_start=incident_start,
        rto_target_seconds=_optional_float(value.get("rto_target_seconds")),
        rpo_target_seconds=_optional_float(value.get("rpo_target_seconds")),
        result=str(value.get("result", "")),
        issues=tuple(str(i) for i in value.get("issues", ())),
        follow_ups=tuple(str(f) for f in value.get("follow_ups", ())),
        evidence=tuple((str(e["name"]), str(e["sha256"])) for e in value.get("evidence", ())),
        source=str(value.get("source", SOURCE_MANUAL)),
        notes=str(value.get("notes", "")),
        **times,
    )


def parse_time(text: object) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(str(text)).astimezone(UTC)


def _optional_float(value: object) -> float | None:
    return None if value is None else float(str(value))


# --- Writing -------------------------------------------------------------------------


def record_drill(db: Database, record: DrillRecord) -> int:
    """Appends a finished drill to the evidence chain; returns its seq.

    A drill id is recorded once: the chain is append-only, so a correction is a new drill
    (for example `Q3-2026-db-2`) whose notes say what it corrects.
    """
    return record_drills(db, [record])[0]


def record_drills(db: Database, records: Iterable[DrillRecord]) -> list[int]:
    """Appends drills in one transaction: all are recorded, or none (an import is whole)."""
    finished = [record.with_result() for record in records]
    for record in finished:
        record.validate()
    with write_transaction(db):
        _ensure_open_table(db)
        chain = ChainAppender(db)
        seqs = [_append(db, chain, record) for record in finished]
        chain.save_head()
    return seqs


def _append(db: Database, chain: ChainAppender, record: DrillRecord) -> int:
    if _drill_stored(db, record.drill_id):
        raise DrillError(f"drill_id: {record.drill_id!r} is already recorded")
    seq = chain.append(
        "drills",
        {
            "drill_id": record.drill_id,
            "scenario": record.scenario,
            "started_epoch": epoch(record.incident_start),
            "value": canonical_json(drill_to_json(record)),
        },
    )
    db.conn.execute("DELETE FROM open_drills WHERE drill_id = ?", [record.drill_id])
    return seq


def start_drill(db: Database, record: DrillRecord) -> None:
    """Keeps a drill in progress (not evidence yet) until `finish_drill`."""
    record.validate()
    if record.restored_at is not None:
        raise DrillError("restored_at: a drill being started is not restored yet (use record)")
    with write_transaction(db):
        _ensure_open_table(db)
        if _drill_stored(db, record.drill_id) or _open_drill(db, record.drill_id) is not None:
            raise DrillError(f"drill_id: {record.drill_id!r} already exists")
        db.conn.execute(
            "INSERT INTO open_drills (drill_id, value) VALUES (?, ?)",
            [record.drill_id, canonical_json(drill_to_json(record))],
        )


def finish_drill(db: Database, drill_id: str, **changes: Any) -> DrillRecord:
    """Completes a started drill with `changes` (restored_at, result...) and records it."""
    with db.atomic():
        _ensure_open_table(db)
    started = _open_drill(db, drill_id)
    if started is None:
        raise DrillError(f"drill_id: no drill {drill_id!r} in progress (see `drill list`)")
    merged = _merge(started, changes)
    if merged.restored_at is None:
        raise DrillError("restored_at: required to finish a drill")
    record_drill(db, merged)
    return merged.with_result()


def abandon_drill(db: Database, drill_id: str) -> None:
    with write_transaction(db):
        _ensure_open_table(db)
        cursor = db.conn.execute("DELETE FROM open_drills WHERE drill_id = ?", [drill_id])
    if cursor.rowcount == 0:
        raise DrillError(f"drill_id: no drill {drill_id!r} in progress")


def _merge(started: DrillRecord, changes: Mapping[str, Any]) -> DrillRecord:
    """Changes that are None or empty leave the started value alone; lists are appended."""
    updates: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None or value == () or value == "":
            continue
        if name in ("issues", "follow_ups", "evidence"):
            value = (*getattr(started, name), *value)
        updates[name] = value
    return replace(started, **updates)


def _ensure_open_table(db: Database) -> None:
    # Bookkeeping, not evidence: created on first use so readers need no migration.
    db.conn.execute(
        "CREATE TABLE IF NOT EXISTS open_drills (drill_id TEXT PRIMARY KEY, value TEXT NOT NULL)"
    )


def _drill_stored(db: Database, drill_id: str) -> bool:
    found = db.execute("SELECT 1 FROM drills WHERE drill_id = ?", [drill_id]).fetchone()
    return found is not None


def _open_drill(db: Database, drill_id: str) -> DrillRecord | None:
    if not db["open_drills"].exists():
        return None
    row = db.execute("SELECT value FROM open_drills WHERE drill_id = ?", [drill_id]).fetchone()
    return drill_from_json(json.loads(row[0])) if row else None


# --- Reading -------------------------------------------------------------------------


def load_drills(
    db: Database, start_epoch: int, end_epoch: int, *, include_restore_tests: bool = False
) -> list[DrillRecord]:
    """Recorded DR drills whose incident started in [start_epoch, end_epoch), oldest first.

    Active restore tests (`drwatch drill run`, source drill-runner) are stored as drills but
    prove one restore, not a DR drill: they come from `drill_status.load_restore_tests`
    (DRW-11/12) unless `include_restore_tests` asks for every stored record.
    """
    rows = db.execute(
        "SELECT value FROM drills WHERE started_epoch >= ? AND started_epoch < ? "
        "ORDER BY started_epoch, seq",
        [start_epoch, end_epoch],
    ).fetchall()
    records = [drill_from_json(json.loads(row[0])) for row in rows]
    if include_restore_tests:
        return records
    return [record for record in records if record.source != SOURCE_RUNNER]


def load_open_drills(db: Database) -> list[DrillRecord]:
    """Drills started but not finished (not evidence: they are in no chain yet)."""
    if not db["open_drills"].exists():
        return []
    rows = db.execute("SELECT value FROM open_drills ORDER BY drill_id").fetchall()
    return [drill_from_json(json.loads(row[0])) for row in rows]
