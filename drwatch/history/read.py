"""Reading the history for people and auditors: summary statistics and period exports.

Every read here runs inside one read transaction, so it sees one committed state of the
database (never half a poll) while the writer goes on committing (WAL).
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlite_utils import Database

from drwatch.history.chain import NEVER_ROLLED_UP, rolled_up_until_epoch
from drwatch.history.schema import EVIDENCE_TABLES

# How each evidence table places its rows in time, for --since/--until.
_EXPORT_SQL = {
    "unit_runs": "SELECT * FROM unit_runs WHERE started_epoch >= :since AND started_epoch < :until",
    "state_keys": "SELECT * FROM state_keys WHERE seq IN (SELECT key_seq FROM states "
    "WHERE first_seen < :until AND last_seen >= :since)",
    "states": "SELECT * FROM states WHERE first_seen < :until AND last_seen >= :since",
    "job_events": "SELECT * FROM job_events "
    "WHERE observed_epoch >= :since AND observed_epoch < :until",
    "drills": "SELECT * FROM drills WHERE started_epoch >= :since AND started_epoch < :until",
    "daily_rollups": "SELECT * FROM daily_rollups WHERE day >= :since_day AND day < :until_day",
    "compactions": "SELECT * FROM compactions "
    "WHERE compacted_epoch >= :since AND compacted_epoch < :until",
}
CSV_COLUMNS = ("table", "seq", "prev_hash", "row_hash", "data")


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    row_hash: str


def chain_head(db: Database) -> ChainHead:
    row = db.execute("SELECT seq, row_hash FROM chain_head WHERE id = 1").fetchone()
    return ChainHead(int(row[0]), str(row[1]))


def stats(db: Database, path: Path) -> dict[str, Any]:
    """Sizes, row counts, time range, chain head and compaction state, as plain data."""
    with db.atomic():
        head = chain_head(db)
        counts = {table: db.table(table).count for table in EVIDENCE_TABLES}
        first, last = db.execute("SELECT min(started), max(started) FROM unit_runs").fetchone()
        resources = db.execute(
            "SELECT count(DISTINCT resource_key) FROM state_keys WHERE kind = 'resource'"
        ).fetchone()[0]
        units = db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT collector, account_id, region FROM unit_runs)"
        ).fetchone()[0]
        rolled = rolled_up_until_epoch(db)
    return {
        "path": str(path),
        "bytes": sum(p.stat().st_size for p in _database_files(path)),
        "chain_head": {"seq": head.seq, "row_hash": head.row_hash},
        "rows": counts,
        "units": units,
        "resources": resources,
        "first_poll": first,
        "last_poll": last,
        "rolled_up_until": _iso(rolled) if rolled != NEVER_ROLLED_UP else None,
    }


def _database_files(path: Path) -> list[Path]:
    candidates = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    return [p for p in candidates if p.exists()]


def _iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def export_rows(db: Database, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
    """Every evidence row of the period, in chain order, with its hashes.

    Each row keeps its stored columns, so an auditor can recompute `row_hash` from
    `prev_hash` and the chained columns (docs/history.md names them).
    """
    params = {
        "since": int(since.timestamp()),
        "until": int(until.timestamp()),
        "since_day": since.date().isoformat(),
        "until_day": until.date().isoformat(),
    }
    # Each table streams in seq order and the streams are merged: a month of a large estate
    # is millions of rows, which sorting in memory would hold all at once.
    streams = [_table_rows(db, table, params) for table in EVIDENCE_TABLES]
    yield from heapq.merge(*streams, key=lambda row: int(row["seq"]))


def _table_rows(db: Database, table: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for row in db.query(_EXPORT_SQL[table] + " ORDER BY seq", params):
        yield {"table": table, **row}


def write_json(db: Database, since: datetime, until: datetime, out: TextIO) -> int:
    with db.atomic():
        head = chain_head(db)
        rows = list(export_rows(db, since, until))
    document = {
        "period": {"since": since.isoformat(), "until": until.isoformat()},
        "generated": datetime.now(UTC).isoformat(),
        "chain_head": {"seq": head.seq, "row_hash": head.row_hash},
        "rows": rows,
    }
    json.dump(document, out, indent=1, sort_keys=True, ensure_ascii=False)
    out.write("\n")
    return len(rows)


def write_csv(db: Database, since: datetime, until: datetime, out: TextIO) -> int:
    """One line per evidence row; `data` is the row's other columns as JSON."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    with db.atomic():
        rows = list(export_rows(db, since, until))
    for row in rows:
        data = {k: v for k, v in row.items() if k not in CSV_COLUMNS}
        writer.writerow(
            [
                row["table"],
                row["seq"],
                row["prev_hash"],
                row["row_hash"],
                json.dumps(data, sort_keys=True, ensure_ascii=False),
            ]
        )
    return len(rows)


# --- lookups the drill commands and the demo make ------------------------------------------


def has_polls(db: Database) -> bool:
    """True once any unit poll is stored (False for a database not migrated yet)."""
    if not db["unit_runs"].exists():
        return False
    return db.execute("SELECT 1 FROM unit_runs LIMIT 1").fetchone() is not None


def newest_tier(db: Database, resource_id: str) -> str:
    """The tier of the newest stored state of the resource with this id ("" if never seen)."""
    row = db.execute(
        "SELECT s.value FROM state_keys k JOIN states s ON s.key_seq = k.seq "
        "WHERE k.kind = 'resource' AND k.resource_key LIKE ? ESCAPE '\\' "
        "ORDER BY s.seq DESC LIMIT 1",
        [_resource_id_pattern(resource_id)],
    ).fetchone()
    return str(json.loads(row[0]).get("tier", "")) if row else ""


def resource_observed(db: Database, resource_id: str) -> bool:
    """True when the history holds any state of a resource with this id."""
    found = db.execute(
        "SELECT 1 FROM state_keys WHERE kind = 'resource' AND resource_key LIKE ? "
        "ESCAPE '\\' LIMIT 1",
        [_resource_id_pattern(resource_id)],
    ).fetchone()
    return found is not None


def _resource_id_pattern(resource_id: str) -> str:
    # resource_key is a JSON list ending with the resource id.
    escaped = json.dumps(resource_id).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%,{escaped}]"
