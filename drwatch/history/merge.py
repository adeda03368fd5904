"""Merge the histories of several shards into one database that verifies and reports read.

Each shard's exporter keeps its own chained history of the units (collector x account x
region) it polls. Shards never poll a unit at the same time, so a merge is a union: every
evidence row of every source is re-appended, source after source (oldest first) in its own
`seq` order, to a new chain in the output (references between rows, `states.key_seq`, are
renumbered with them). The
output verifies with `drwatch history verify`; the sources' verified chain heads are kept in
`merge_sources`, so an auditor can check each shard's own chain against its original file.

A unit may appear in several sources when the number of shards changed and it moved from
one shard to another: its identities are then shared, its intervals from both sources kept,
and its current (open) states taken from the source that polled it last. The time between
the old shard's last poll and the new shard's first poll counts as not observed: no single
chain vouches for it.

Refused, with the reason: a source whose chain does not verify, a unit that two sources
polled over the same time (overlapping shards would count it twice), a drill recorded
differently in two sources, an existing output file, and compacted sources (their rollups
and chain gaps describe rows that are gone; merge raw histories, then compact the merged one).
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlite_utils import Database

from drwatch.history.chain import verify_chain
from drwatch.history.schema import EVIDENCE_TABLES
from drwatch.history.store import ChainAppender, HistoryStore, epoch, open_reader

CHAIN_FIELDS: Final = ("seq", "prev_hash", "row_hash")
SOURCES_TABLE: Final = "merge_sources"
# Tables whose rows only exist after a compaction: their meaning depends on removed rows.
COMPACTION_TABLES: Final = ("compactions", "daily_rollups")


class MergeError(Exception):
    """A merge that would not be faithful; the text names the file and the reason."""


@dataclass(frozen=True, slots=True)
class SourceHead:
    path: str
    rows: int
    head_seq: int
    head_hash: str


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    rows: int
    head_seq: int
    head_hash: str
    sources: tuple[SourceHead, ...]


Unit = tuple[str, str, str]  # collector, account_id, region


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    db: Database
    # Per unit: first and last poll (started_epoch) in this source.
    spans: Mapping[Unit, tuple[int, int]]


def merge_histories(sources: Sequence[Path], out: Path, now: datetime) -> MergeOutcome:
    """Writes the union of `sources` to the new database `out`; raises MergeError."""
    if len(sources) < 2:
        raise MergeError("give at least two histories to merge")
    if out.exists():
        raise MergeError(f"{out}: already exists; the merge writes a new database")
    readers = [open_reader(path) for path in sources]
    try:
        heads = {
            path: _checked_source(path, reader)
            for path, reader in zip(sources, readers, strict=True)
        }
        opened = [
            _Source(path, reader, _unit_spans(reader))
            for path, reader in zip(sources, readers, strict=True)
        ]
        _refuse_overlaps(opened)
        # Oldest first, so the output does not depend on the order of the arguments.
        ordered = sorted(opened, key=_first_poll)
        _write(ordered, [heads[source.path] for source in ordered], out, now)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        for reader in readers:
            reader.close()
    check = open_reader(out)
    try:
        outcome = verify_chain(check)
    finally:
        check.close()
    if not outcome.ok:  # a bug here, never the sources' fault: they verified
        raise MergeError(f"{out}: merged chain does not verify: {outcome.problem}")
    return MergeOutcome(
        outcome.rows, outcome.head_seq, outcome.head_hash, tuple(heads[s.path] for s in ordered)
    )


def _checked_source(path: Path, reader: Database) -> SourceHead:
    outcome = verify_chain(reader)
    if not outcome.ok:
        raise MergeError(f"{path}: chain broken: {outcome.problem}")
    for table in COMPACTION_TABLES:
        if _count(reader, table):
            raise MergeError(
                f"{path}: compacted ({table} has rows); merge histories before compacting them"
            )
    return SourceHead(str(path), outcome.rows, outcome.head_seq, outcome.head_hash)


def _count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def _unit_spans(db: Database) -> dict[Unit, tuple[int, int]]:
    rows = db.execute(
        "SELECT collector, account_id, region, min(started_epoch), max(started_epoch) "
        "FROM unit_runs GROUP BY collector, account_id, region"
    ).fetchall()
    return {(row[0], row[1], row[2]): (row[3], row[4]) for row in rows}


def _first_poll(source: _Source) -> tuple[int, str]:
    return min((first for first, _ in source.spans.values()), default=0), str(source.path)


def _refuse_overlaps(sources: Sequence[_Source]) -> None:
    """A unit may move between shards (N changed), but two sources must never both have
    polled it over the same time: the merge would count that time twice."""
    seen: dict[Unit, list[tuple[int, int, Path]]] = {}
    for source in sources:
        for unit, (first, last) in source.spans.items():
            for other_first, other_last, other in seen.get(unit, []):
                if first <= other_last and other_first <= last:
                    raise MergeError(
                        f"unit {'/'.join(unit)} is in both {other} and {source.path} over the "
                        "same time: the shards overlap, so a merge would count it twice"
                    )
            seen.setdefault(unit, []).append((first, last, source.path))


def _rows(db: Database, table: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for row in db.query(f"SELECT * FROM {table} ORDER BY seq"):  # noqa: S608
        yield row["seq"], table, row


def _source_rows(db: Database) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Every evidence row of one source in chain order (seq is global across tables)."""
    return heapq.merge(*(_rows(db, table) for table in EVIDENCE_TABLES), key=lambda r: r[0])


def _latest_owner(sources: Sequence[_Source]) -> dict[Unit, Path]:
    """Per unit, the source that polled it last: its open states are the current ones."""
    latest: dict[Unit, tuple[int, Path]] = {}
    for source in sources:
        for unit, (_, last) in source.spans.items():
            if unit not in latest or last > latest[unit][0]:
                latest[unit] = (last, source.path)
    return {unit: path for unit, (_, path) in latest.items()}


def _write(
    sources: Sequence[_Source], heads: Sequence[SourceHead], out: Path, now: datetime
) -> None:
    owners = _latest_owner(sources)
    with HistoryStore(out) as store, store.db.atomic():
        chain = ChainAppender(store.db)
        drills: dict[str, str] = {}
        for source, head in zip(sources, heads, strict=True):
            renumbered = _copy_source(source.db, head, chain, drills)
            _copy_open_states(source, store.db, renumbered, owners)
        chain.save_head()
        _record_sources(store.db, heads, now)


def _copy_source(
    reader: Database, head: SourceHead, chain: ChainAppender, drills: dict[str, str]
) -> dict[str, dict[int, int]]:
    """Appends one source's rows; returns its old -> new seq of state keys and states."""
    renumbered: dict[str, dict[int, int]] = {"state_keys": {}, "states": {}}
    for seq, table, row in _source_rows(reader):
        values = {k: v for k, v in row.items() if k not in CHAIN_FIELDS}
        if table == "states":
            values["key_seq"] = renumbered["state_keys"][row["key_seq"]]
        elif table == "state_keys":
            # A unit that moved between shards: its identities exist from the earlier source.
            known = _known_key(chain.db, values)
            if known is not None:
                renumbered[table][seq] = known
                continue
        elif table == "job_events" and _job_state_known(chain.db, values):
            continue  # both shards read the job in this state around the move: record it once
        elif table == "drills" and _seen_drill(drills, row, head):
            continue
        try:
            new_seq = chain.append(table, values)
        except sqlite3.IntegrityError as error:
            raise MergeError(
                f"{head.path}: {table} seq {seq} clashes with another source: {error}"
            ) from error
        if table in renumbered:
            renumbered[table][seq] = new_seq
    return renumbered


def _known_key(db: Database, values: Mapping[str, Any]) -> int | None:
    row = db.execute(
        "SELECT seq FROM state_keys WHERE collector IS ? AND account_id IS ? AND region IS ? "
        "AND kind = ? AND key = ?",
        [
            values["collector"],
            values["account_id"],
            values["region"],
            values["kind"],
            values["key"],
        ],
    ).fetchone()
    return None if row is None else int(row[0])


def _job_state_known(db: Database, values: Mapping[str, Any]) -> bool:
    found = db.execute(
        "SELECT 1 FROM job_events WHERE job_id = ? AND state = ?",
        [values["job_id"], values["state"]],
    ).fetchone()
    return found is not None


def _seen_drill(drills: dict[str, str], row: Mapping[str, Any], head: SourceHead) -> bool:
    """A drill recorded in several shards' histories is kept once if every copy agrees."""
    known = drills.get(row["drill_id"])
    if known is None:
        drills[row["drill_id"]] = row["value"]
        return False
    if known != row["value"]:
        raise MergeError(f"{head.path}: drill {row['drill_id']} differs from another source's")
    return True


def _copy_open_states(
    source: _Source,
    out: Database,
    renumbered: Mapping[str, Mapping[int, int]],
    owners: Mapping[Unit, Path],
) -> None:
    """The writer's index of each unit's current states, from the source that polled the
    unit last (a shard that lost the unit kept its states open: they are not current)."""
    for row in source.db.query("SELECT * FROM open_states"):
        if owners.get((row["collector"], row["account_id"], row["region"])) != source.path:
            continue
        out.conn.execute(
            "INSERT INTO open_states (key_seq, collector, account_id, region, state_seq, "
            "value_sha256) VALUES (?, ?, ?, ?, ?, ?)",
            [
                renumbered["state_keys"][row["key_seq"]],
                row["collector"],
                row["account_id"],
                row["region"],
                renumbered["states"][row["state_seq"]],
                row["value_sha256"],
            ],
        )


def _record_sources(db: Database, heads: Sequence[SourceHead], now: datetime) -> None:
    # Provenance, not evidence: each source's chain head as verified just before the merge.
    db.table(SOURCES_TABLE).insert_all(
        [
            {
                "position": position,
                "path": head.path,
                "rows": head.rows,
                "head_seq": head.head_seq,
                "head_hash": head.head_hash,
                "merged_epoch": epoch(now),
            }
            for position, head in enumerate(heads)
        ],
        pk="position",
    )
