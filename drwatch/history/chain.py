"""The evidence hash chain: canonical row encoding, hashing, and verification.

`row_hash = sha256(prev_hash || canonical_json(row))`, over the chained columns of the row
(see `history_schema.CHAINED_COLUMNS`), in one global order by `seq` across every evidence
table. A compaction removes runs of old rows; it records, per run, the hash before the run and
the hash of its last row (`chain_gaps`), so the chain stays checkable over the hole, and the
compaction row itself carries a digest of those records.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from drwatch.history.schema import CHAINED_COLUMNS, EVIDENCE_TABLES, GENESIS_HASH

# Built once: json.dumps would build an encoder per call, and this runs for every record.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# rolled_up_until_epoch before any compaction: earlier than any stored time.
NEVER_ROLLED_UP = -(2**62)


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept (hashes depend on it)."""
    return _CANONICAL.encode(value)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def row_hash(table: str, prev_hash: str, row: Mapping[str, Any]) -> str:
    content = {"table": table, **{column: row[column] for column in CHAINED_COLUMNS[table]}}
    return sha256_hex(prev_hash + canonical_json(content))


@dataclass(frozen=True, slots=True)
class ChainRow:
    table: str
    seq: int
    prev_hash: str
    row_hash: str
    computed_hash: str


@dataclass(frozen=True, slots=True)
class Gap:
    first_seq: int
    last_seq: int
    prev_hash: str
    last_hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    problem: str = ""  # names the first broken row when not ok
    broken_table: str = ""
    broken_seq: int | None = None


def iter_chain(db: Database) -> Iterator[ChainRow]:
    """Every evidence row in seq order, with its stored and recomputed hash."""
    return heapq.merge(*(_table_rows(db, table) for table in EVIDENCE_TABLES), key=_by_seq)


def _by_seq(row: ChainRow) -> int:
    return row.seq


def _table_rows(db: Database, table: str) -> Iterator[ChainRow]:
    columns = ", ".join(("prev_hash", "row_hash", *CHAINED_COLUMNS[table]))
    for row in db.query(f"SELECT {columns} FROM {table} ORDER BY seq"):  # noqa: S608
        yield ChainRow(
            table=table,
            seq=row["seq"],
            prev_hash=row["prev_hash"],
            row_hash=row["row_hash"],
            computed_hash=row_hash(table, row["prev_hash"], row),
        )


def load_gaps(db: Database) -> dict[str, list[Gap]]:
    """Gaps keyed by the hash just before them (several may share one across compactions)."""
    gaps: dict[str, list[Gap]] = {}
    for row in db.query("SELECT * FROM chain_gaps ORDER BY first_seq"):
        gap = Gap(row["first_seq"], row["last_seq"], row["prev_hash"], row["last_hash"])
        gaps.setdefault(gap.prev_hash, []).append(gap)
    return gaps


def gaps_digest(gaps: Sequence[Gap]) -> str:
    return sha256_hex(
        canonical_json([[g.first_seq, g.last_seq, g.prev_hash, g.last_hash] for g in gaps])
    )


def verify_chain(db: Database) -> VerifyResult:
    """Recomputes every row hash and link; stops at the first broken row and names it."""
    gaps = load_gaps(db)
    expected, previous_seq, count = GENESIS_HASH, 0, 0
    for row in iter_chain(db):
        count += 1
        if row.computed_hash != row.row_hash:
            return _broken(count, row, "content does not match its row_hash (row edited)")
        bridged = _bridge(gaps, expected, previous_seq, row)
        if bridged != row.prev_hash:
            return _broken(
                count, row, f"prev_hash does not link to seq {previous_seq} (rows missing)"
            )
        expected, previous_seq = row.row_hash, row.seq
    problem = (
        _check_gap_digests(db)
        or _check_head(db, previous_seq, expected)
        or _check_interval_receipts(db)
    )
    if problem:
        return VerifyResult(False, count, previous_seq, expected, problem)
    return VerifyResult(True, count, previous_seq, expected)


def _bridge(gaps: Mapping[str, list[Gap]], expected: str, previous_seq: int, row: ChainRow) -> str:
    """Follows recorded compaction gaps from `expected` towards `row` (not past it)."""
    current = expected
    while current != row.prev_hash:
        step = next(
            (
                g
                for g in gaps.get(current, ())
                if previous_seq < g.first_seq and g.last_seq < row.seq
            ),
            None,
        )
        if step is None:
            return current
        current, previous_seq = step.last_hash, step.last_seq
    return current


def _broken(count: int, row: ChainRow, why: str) -> VerifyResult:
    return VerifyResult(
        ok=False,
        rows=count,
        head_seq=row.seq,
        head_hash=row.row_hash,
        problem=f"first broken row: {row.table} seq {row.seq}: {why}",
        broken_table=row.table,
        broken_seq=row.seq,
    )


def _check_gap_digests(db: Database) -> str:
    """Each compaction's gap records must hash to the digest chained in its row."""
    for compaction in db.query("SELECT seq, gaps_sha256 FROM compactions ORDER BY seq"):
        gaps = [
            Gap(g["first_seq"], g["last_seq"], g["prev_hash"], g["last_hash"])
            for g in db.query(
                "SELECT * FROM chain_gaps WHERE compaction_seq = ? ORDER BY first_seq",
                [compaction["seq"]],
            )
        ]
        if gaps_digest(gaps) != compaction["gaps_sha256"]:
            return f"chain_gaps of compaction seq {compaction['seq']} were altered"
    return ""


def _check_interval_receipts(db: Database) -> str:
    """Both ends of every interval must be successful polls of its unit.

    `last_seen` is outside the row hash (it moves as polls extend the interval); this ties
    it to the chained receipts, so moving it to a time no poll saw is detected. Intervals
    reaching back before the last compaction keep no receipt for their start.
    """
    row = db.execute(
        "SELECT s.seq FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE s.last_seen >= :rolled AND NOT EXISTS (SELECT 1 FROM unit_runs r "
        "WHERE r.collector = k.collector AND r.account_id = k.account_id "
        "AND r.region = k.region AND r.started_epoch = s.last_seen AND r.success = 1) "
        "OR s.first_seen >= :rolled AND NOT EXISTS (SELECT 1 FROM unit_runs r "
        "WHERE r.collector = k.collector AND r.account_id = k.account_id "
        "AND r.region = k.region AND r.started_epoch = s.first_seen AND r.success = 1) "
        "ORDER BY s.seq LIMIT 1",
        {"rolled": rolled_up_until_epoch(db)},
    ).fetchone()
    if row is None:
        return ""
    return f"states seq {row[0]}: an end of the interval matches no successful poll of its unit"


def rolled_up_until_epoch(db: Database) -> int:
    """Raw data before this instant has been rolled up (and removed, or kept as open)."""
    row = db.execute("SELECT max(raw_cutoff_epoch) FROM compactions").fetchone()
    return int(row[0]) if row[0] is not None else NEVER_ROLLED_UP


def _check_head(db: Database, last_seq: int, last_hash: str) -> str:
    head = next(db.query("SELECT seq, row_hash FROM chain_head WHERE id = 1"))
    if (head["seq"], head["row_hash"]) != (last_seq, last_hash):
        return (
            f"chain head says seq {head['seq']} but the last row is seq {last_seq} "
            "(newest rows missing)"
        )
    return ""
