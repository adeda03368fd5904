"""Reading drills run elsewhere from YAML or CSV files (`drwatch drill import`).

Both formats carry the same fields (docs/drills.md); CSV separates several values in one
cell (scope, issues, follow_ups, evidence) with ";". Every time must name its zone. A file
is read and validated whole before anything is recorded, and each problem names the drill
(its position and id) and the field.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from drwatch.core.tiers import TierTarget
from drwatch.history.drills import SOURCE_RUNNER, DrillError, DrillRecord, evidence_file

FIELDS: Final = (
    "drill_id",
    "scenario",
    "scope",
    "tier",
    "incident_start",
    "detected_at",
    "restored_at",
    "restore_point",
    "rto_target_seconds",
    "rpo_target_seconds",
    "result",
    "issues",
    "follow_ups",
    "evidence",
    "notes",
    "source",  # who recorded it elsewhere; default "import" ("drill-runner": a restore test)
)
_REQUIRED: Final = ("drill_id", "scenario", "scope", "incident_start")
_LISTS: Final = ("scope", "issues", "follow_ups", "evidence")
_TIMES: Final = ("incident_start", "detected_at", "restored_at", "restore_point")
CSV_SEPARATOR: Final = ";"


class DrillImportError(Exception):
    """The file cannot be imported; the message names the drill and the field."""


def parse_aware(text: str) -> datetime:
    """An ISO 8601 time that names its zone, in UTC; a naive time is refused (ambiguous)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or +HH:MM)")
    return moment.astimezone(UTC)


def read_drill_file(
    path: Path, targets: Mapping[str, TierTarget], default_tier: str
) -> list[DrillRecord]:
    """Every drill of the file, validated; raises DrillImportError on the first bad one."""
    rows = _read_rows(path)
    records, seen = [], set()
    for position, row in enumerate(rows, start=1):
        where = f"{path.name}: drill {position}"
        if isinstance(row, Mapping) and row.get("drill_id"):
            where += f" ({row['drill_id']})"
        try:
            record = drill_from_row(row, targets, default_tier, path.parent)
            record.validate()
        except (DrillError, ValueError) as error:
            raise DrillImportError(f"{where}: {error}") from error
        if record.drill_id in seen:
            raise DrillImportError(f"{where}: drill_id: appears twice in the file")
        seen.add(record.drill_id)
        records.append(record.with_result())
    if not records:
        raise DrillImportError(f"{path.name}: no drills in the file")
    return records


def _read_rows(path: Path) -> list[Any]:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if suffix not in (".yml", ".yaml"):
        raise DrillImportError(f"{path.name}: unknown format (use .yml, .yaml or .csv)")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DrillImportError(f"{path.name}: not valid YAML: {error}") from error
    if isinstance(document, Mapping) and set(document) == {"drills"}:
        document = document["drills"]
    if not isinstance(document, list):
        raise DrillImportError(f"{path.name}: expected a list of drills (or drills: [...])")
    return document


def drill_from_row(
    row: Any, targets: Mapping[str, TierTarget], default_tier: str, base: Path
) -> DrillRecord:
    """One drill from a YAML mapping or CSV row; empty cells mean "not given"."""
    if not isinstance(row, Mapping):
        raise ValueError("expected a mapping of field names to values")
    given = {str(k): v for k, v in row.items() if v is not None and v != ""}
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: {', '.join(FIELDS)})")
    missing = [name for name in _REQUIRED if name not in given]
    if missing:
        raise ValueError(f"{missing[0]}: required")
    values: dict[str, Any] = {name: _list(given.get(name)) for name in _LISTS}
    values |= {name: _time(name, given.get(name)) for name in _TIMES}
    tier = str(given.get("tier") or _tier_in_scope(values["scope"]) or default_tier)
    if tier not in targets:
        raise ValueError(f"tier: {tier or '(none)'!r} is not a configured tier")
    values["evidence"] = tuple(evidence_file(_evidence_path(base, p)) for p in values["evidence"])
    return DrillRecord(
        drill_id=str(given["drill_id"]),
        scenario=str(given["scenario"]),
        tier=tier,
        rto_target_seconds=_seconds(given, "rto_target_seconds", targets[tier].rto_seconds),
        rpo_target_seconds=_seconds(
            given, "rpo_target_seconds", _rpo_default(given, targets[tier])
        ),
        result=str(given.get("result", "")),
        notes=str(given.get("notes", "")),
        source=str(given.get("source", "import")),
        **values,
    )


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(CSV_SEPARATOR) if part.strip())
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    raise ValueError(f"expected a list or text, got {value!r}")


def _time(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # YAML reads unquoted timestamps itself; a naive one is as ambiguous as naive text.
        if value.tzinfo is None:
            raise ValueError(f"{name}: {value.isoformat()} has no time zone")
        return value.astimezone(UTC)
    if isinstance(value, date):
        raise ValueError(f"{name}: {value.isoformat()} is a date, not a time with a zone")
    try:
        return parse_aware(str(value))
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def _rpo_default(given: Mapping[str, Any], target: TierTarget) -> float | None:
    # A restore test proves restorability and restore time; how old its snapshot was is
    # the recovery point age (DRW-02), not data lost in an incident: no RPO target.
    return None if given.get("source") == SOURCE_RUNNER else target.rpo_seconds


def _seconds(given: Mapping[str, Any], name: str, default: float | None) -> float | None:
    if name not in given:
        return default
    try:
        return float(given[name])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: {given[name]!r} is not a number of seconds") from error


def _tier_in_scope(scope: tuple[str, ...]) -> str:
    return next((s.removeprefix("tier:") for s in scope if s.startswith("tier:")), "")


def _evidence_path(base: Path, name: str) -> Path:
    # Evidence paths are relative to the imported file, so a drill folder moves as a whole.
    path = (base / name) if not Path(name).is_absolute() else Path(name)
    if not path.is_file():
        raise ValueError(f"evidence: {name}: no such file")
    return path
