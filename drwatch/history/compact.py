"""Compaction: roll raw history older than the raw window up per day, then remove it.

One transaction: daily rollups (chained) for every whole day between the previous cutoff and
the new one; removal of the raw rows wholly before the cutoff (intervals still open, or whose
effective span reaches past the cutoff, are kept); removal of rollups older than the
retention; chain gap records that bridge the hash chain over every removed run; and a chained
compaction row carrying the removed counts and a digest of the gap records. The append-only
triggers let deletes through only while `maintenance.compacting` is raised, which happens
inside this transaction alone.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from sqlite_utils import Database

from drwatch.core.units import DAY_SECONDS
from drwatch.history.chain import NEVER_ROLLED_UP, Gap, canonical_json, gaps_digest
from drwatch.history.figures import (
    PollGaps,
    ResourceFigures,
    RpoPolicy,
    day_label,
    day_start,
    job_days,
    load_spans,
    resource_figures_by_day,
    unit_runs_by_day,
)
from drwatch.history.schema import EVIDENCE_TABLES
from drwatch.history.store import (
    ChainAppender,
    HistoryError,
    epoch,
    rolled_up_until_epoch,
    write_transaction,
)


@dataclass(frozen=True, slots=True)
class CompactionOutcome:
    raw_cutoff: int
    retention_cutoff: int
    rollups: int
    removed: dict[str, int]
    gaps: int


def compact(
    db: Database,
    *,
    now: datetime,
    raw_days: int,
    retention_days: int,
    policy: RpoPolicy,
) -> CompactionOutcome:
    """Rolls up and removes raw data older than `raw_days` (whole UTC days), atomically."""
    if not 1 <= raw_days <= retention_days:
        raise HistoryError("compaction needs 1 <= raw_days <= retention_days")
    cutoff = day_start(epoch(now - timedelta(days=raw_days)))
    retention_cutoff = day_start(epoch(now - timedelta(days=retention_days)))
    with write_transaction(db):
        start = _rollup_start(db, cutoff)
        chain = ChainAppender(db)
        rollups = _append_rollups(db, chain, start, cutoff, policy) if start < cutoff else 0
        doomed = _doomed_rows(db, cutoff, retention_cutoff)
        gaps = _gaps(db, doomed)
        removed = {table: len(seqs) for table, seqs in doomed.items() if seqs}
        compaction_seq = chain.append(
            "compactions",
            {
                "compacted_epoch": epoch(now),
                "raw_cutoff_epoch": max(cutoff, rolled_up_until_epoch(db)),
                "retention_cutoff_epoch": retention_cutoff,
                "removed": canonical_json(removed),
                "rollups": rollups,
                "gaps": len(gaps),
                "gaps_sha256": gaps_digest(gaps),
            },
        )
        _delete(db, doomed, gaps, compaction_seq)
        chain.save_head()
    return CompactionOutcome(cutoff, retention_cutoff, rollups, removed, len(gaps))


def _rollup_start(db: Database, cutoff: int) -> int:
    previous = rolled_up_until_epoch(db)
    if previous != NEVER_ROLLED_UP:
        return previous
    first = db.execute(
        "SELECT min(t) FROM (SELECT min(first_seen) AS t FROM states "
        "UNION ALL SELECT min(started_epoch) FROM unit_runs "
        "UNION ALL SELECT min(created_epoch) FROM job_events)"
    ).fetchone()[0]
    return cutoff if first is None else day_start(int(first))


def _append_rollups(
    db: Database, chain: ChainAppender, start: int, cutoff: int, policy: RpoPolicy
) -> int:
    days: dict[tuple[int, str], ResourceFigures] = dict(
        resource_figures_by_day(
            load_spans(db, start, cutoff), start, cutoff, policy, PollGaps.load(db, start, cutoff)
        )
    )
    for bucket, counts in job_days(db, start, cutoff).items():
        jobs = ResourceFigures(jobs_by_state=MappingProxyType(dict(counts)))
        days[bucket] = days.get(bucket, ResourceFigures()).combine(jobs)
    count = 0
    for (day, key), figures in sorted(days.items()):
        chain.append("daily_rollups", _rollup_row(day, "resource", key, figures.to_json()))
        count += 1
    for (day, unit), unit_figures in sorted(unit_runs_by_day(db, start, cutoff).items()):
        chain.append("daily_rollups", _rollup_row(day, "unit", unit, unit_figures.to_json()))
        count += 1
    return count


def _rollup_row(day: int, scope: str, key: str, figures: dict[str, object]) -> dict[str, str]:
    return {"day": day_label(day), "scope": scope, "key": key, "figures": canonical_json(figures)}


def _doomed_rows(db: Database, cutoff: int, retention_cutoff: int) -> dict[str, set[int]]:
    """Seqs to remove per table: raw rows wholly before the cutoff, rollups past retention."""
    still_open = {row[0] for row in db.execute("SELECT state_seq FROM open_states")}
    states = {
        span.seq
        for span in load_spans(db, cutoff - DAY_SECONDS, cutoff)
        if span.end <= cutoff and span.seq not in still_open
    }
    # Rows that ended two days before the cutoff cannot hold past it (MAX_HOLD is one day).
    # Other kinds carry no figures: they go once their interval ended before the cutoff.
    states |= {
        row[0]
        for row in db.execute(
            "SELECT s.seq FROM states s JOIN state_keys k ON k.seq = s.key_seq "
            "WHERE (k.kind IN ('resource', 'recovery') AND s.last_seen < ?) "
            "OR (k.kind NOT IN ('resource', 'recovery') AND s.last_seen < ?)",
            [cutoff - 2 * DAY_SECONDS, cutoff],
        )
        if row[0] not in still_open
    }
    return {
        "states": states,
        "unit_runs": _seqs(db, "SELECT seq FROM unit_runs WHERE started_epoch < ?", cutoff),
        "job_events": _seqs(db, "SELECT seq FROM job_events WHERE created_epoch < ?", cutoff),
        "daily_rollups": _seqs(
            db, "SELECT seq FROM daily_rollups WHERE day < ?", day_label(retention_cutoff)
        ),
    }


def _seqs(db: Database, sql: str, bound: object) -> set[int]:
    return {row[0] for row in db.execute(sql, [bound])}


def _present_chain(db: Database) -> Iterator[tuple[int, str, str]]:
    """(seq, prev_hash, row_hash) of every evidence row, in chain order."""
    return heapq.merge(
        *(
            db.execute(f"SELECT seq, prev_hash, row_hash FROM {table} ORDER BY seq")  # noqa: S608
            for table in EVIDENCE_TABLES
        )
    )


def _gaps(db: Database, doomed: dict[str, set[int]]) -> list[Gap]:
    """Maximal runs of removed rows (consecutive among present rows), with bridging hashes."""
    removed = set().union(*doomed.values())
    gaps: list[Gap] = []
    run: list[tuple[int, str, str]] = []
    for row in _present_chain(db):
        if row[0] in removed:
            run.append(row)
            continue
        if run:
            gaps.append(Gap(run[0][0], run[-1][0], run[0][1], run[-1][2]))
            run = []
    if run:
        raise HistoryError("compaction would remove the newest rows of the chain")
    return gaps


def _delete(
    db: Database, doomed: dict[str, set[int]], gaps: list[Gap], compaction_seq: int
) -> None:
    db.conn.execute("UPDATE maintenance SET compacting = 1 WHERE id = 1")
    for table, seqs in doomed.items():
        db.conn.executemany(
            f"DELETE FROM {table} WHERE seq = ?",  # noqa: S608
            [(seq,) for seq in sorted(seqs)],
        )
    db.conn.executemany(
        "INSERT INTO chain_gaps (compaction_seq, first_seq, last_seq, prev_hash, last_hash) "
        "VALUES (?, ?, ?, ?, ?)",
        [(compaction_seq, g.first_seq, g.last_seq, g.prev_hash, g.last_hash) for g in gaps],
    )
    db.conn.execute("UPDATE maintenance SET compacting = 0 WHERE id = 1")
