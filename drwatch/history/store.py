"""The history store: every unit result in SQLite, compact, append-only and hash-chained.

One `HistoryStore` per process writes (through `HistoryWriter`'s single thread); readers
open their own read-only connections (`open_reader`). WAL mode lets readers run while the
writer commits, and each unit result is ingested in one transaction, so a reader sees a poll
wholly or not at all.

Storage is by intervals: a resource, recovery state or replication state whose value is the
same as at the previous successful poll of its unit only moves its interval's `last_seen`;
a changed value opens a new chained row. Each unit run adds one chained receipt
(`unit_runs`) holding a digest of everything the run observed, which is what vouches for the
extensions. Job events are keyed by (job id, state): each transition is stored once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from drwatch.core.model import (
    JobEvent,
    Observations,
    RecoveryState,
    ReplicationState,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
    to_jsonable,
)
from drwatch.history.chain import (
    canonical_json,
    rolled_up_until_epoch,
    row_hash,
    sha256_hex,
)
from drwatch.history.schema import CHAINED_COLUMNS, migrate

# A writer waiting on a compaction run from the CLI (or the other way round) retries for
# this long before giving up with "database is locked". Generous: the writer has its own
# thread and a queue in front of it, so waiting costs nothing but queue space.
BUSY_TIMEOUT_SECONDS = 300.0


__all__ = [
    "ChainAppender",
    "HistoryError",
    "HistoryStore",
    "IngestOutcome",
    "RecoveryKey",
    "ReplicationKey",
    "connect",
    "decode_resource_key",
    "epoch",
    "open_reader",
    "recovery_key",
    "replication_key",
    "resource_key",
    "rolled_up_until_epoch",
]


class HistoryError(Exception):
    """The history database is unusable or refused an operation."""


def epoch(moment: datetime) -> int:
    """Whole UTC seconds: every stored time is on this grid, so figures add up exactly."""
    if moment.tzinfo is None:
        raise HistoryError(f"naive datetime {moment!r}: history needs tz-aware UTC times")
    return math.floor(moment.timestamp())


def resource_key(ref: ResourceRef) -> str:
    return canonical_json(
        [ref.account_id, ref.region, ref.service, ref.resource_type, ref.resource_id]
    )


def recovery_key(state: RecoveryState) -> str:
    ref = state.ref
    return canonical_json(
        [
            ref.account_id,
            ref.region,
            ref.service,
            ref.resource_type,
            ref.resource_id,
            state.mechanism.value,
            state.location_account_id,
            state.location_region,
        ]
    )


def replication_key(state: ReplicationState) -> str:
    return canonical_json(
        [
            state.kind,
            resource_key(state.source),
            state.destination_account_id,
            state.destination_region,
            state.destination,
        ]
    )


def decode_resource_key(key: str) -> ResourceRef:
    """The resource a stored resource key names (the inverse of `resource_key`)."""
    account_id, region, service, resource_type, resource_id = json.loads(key)
    return ResourceRef(account_id, region, service, resource_type, resource_id)


@dataclass(frozen=True, slots=True)
class RecoveryKey:
    """A stored recovery key, decoded: whose points, by which mechanism, stored where."""

    ref: ResourceRef
    mechanism: str
    location_account_id: str
    location_region: str

    @classmethod
    def from_key(cls, key: str) -> RecoveryKey:
        """Decode what `recovery_key` stored."""
        account_id, region, service, resource_type, resource_id, mechanism, account, place = (
            json.loads(key)
        )
        ref = ResourceRef(account_id, region, service, resource_type, resource_id)
        return cls(ref, mechanism, account, place)

    @property
    def is_copy(self) -> bool:
        """Points stored in another account or region than the resource's own."""
        location = (self.location_account_id, self.location_region)
        return location != (self.ref.account_id, self.ref.region)


@dataclass(frozen=True, slots=True)
class ReplicationKey:
    """A stored replication key, decoded; `source_key` is the source's resource key."""

    kind: str
    source_key: str
    destination_account_id: str
    destination_region: str
    destination: str

    @classmethod
    def from_key(cls, key: str) -> ReplicationKey:
        """Decode what `replication_key` stored."""
        kind, source_key, account, region, destination = json.loads(key)
        return cls(kind, source_key, account, region, destination)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    duplicate: bool  # this unit run was already stored; nothing was written
    opened: int = 0  # new state intervals
    extended: int = 0  # intervals whose last_seen moved
    job_transitions: int = 0


@dataclass(frozen=True, slots=True)
class _StateRow:
    kind: str
    key: str
    resource_key: str
    value: str


def connect(path: str | Path, *, read_only: bool = False) -> Database:
    """A sqlite-utils Database on its own connection (one per thread or process)."""
    if read_only:
        if not Path(path).exists():
            raise HistoryError(f"{path}: no history database here")
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    else:
        owner_only(Path(path))
        # check_same_thread=False: the store is built by the composition root and then used
        # by the writer thread alone; it is never shared between threads at once.
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    return Database(conn)


OWNER_ONLY = 0o600


def owner_only(path: Path) -> None:
    """Creates the database file readable by its owner only (the history lists the estate).

    SQLite creates the -wal and -shm files with the main file's permissions, so they follow.
    An existing file of ours that others may read is tightened; ":memory:" is left alone.
    """
    if str(path) == ":memory:":
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, OWNER_ONLY)
    except FileExistsError:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            for file in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
                if file.exists():
                    file.chmod(OWNER_ONLY)
        return
    os.close(fd)


@contextmanager
def write_transaction(db: Database) -> Iterator[None]:
    """BEGIN IMMEDIATE: takes the write lock before reading the chain head.

    Several processes append to one history (`serve`'s writer, `drill` commands, `history
    compact`). A deferred transaction reads the head, then fails with "database is locked"
    when it tries to write after another process moved the head; IMMEDIATE waits for the
    other writer instead (up to the connection's busy timeout). Inside a caller's
    transaction (a merge, a test holding the lock) it nests as a savepoint.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def open_reader(path: str | Path) -> Database:
    """A read-only connection; wrap multi-query reads in `read_snapshot` for consistency."""
    return connect(path, read_only=True)


class HistoryStore:
    """The writing side: opens (and migrates) the database, ingests unit results."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = connect(path)
        # WAL: readers keep reading the last committed state while the writer commits.
        self.db.enable_wal()
        # NORMAL in WAL mode: a killed process never loses or tears a committed poll; only a
        # power cut may drop the newest polls, whole (they are then absent, never half there).
        self.db.execute("PRAGMA synchronous=NORMAL")
        migrate(self.db)
        self._encodings: dict[UnitKey, dict[object, _StateRow]] = {}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def ingest(self, result: UnitResult) -> IngestOutcome:
        """Stores one unit result in one transaction; a result seen before is skipped."""
        with write_transaction(self.db):
            if self._already_stored(result.run):
                return IngestOutcome(duplicate=True)
            states = self._encode(result)
            chain = ChainAppender(self.db)
            chain.append("unit_runs", _receipt(result, states))
            opened = extended = jobs = 0
            if result.run.success:
                opened, extended = self._merge_states(chain, result.run, states)
                jobs = self._record_jobs(chain, result.observations.job_events, result.run)
            chain.save_head()
        return IngestOutcome(False, opened, extended, jobs)

    def _encode(self, result: UnitResult) -> list[_StateRow]:
        """The stored rows of a result's observations.

        Encoding is most of the CPU of an ingest, and most records equal the ones of the
        unit's previous poll, so that poll's encodings are reused (a cache of a pure
        function: equal records encode equally).
        """
        previous = self._encodings.get(result.run.unit, {})
        current: dict[object, _StateRow] = {}
        rows: list[_StateRow] = []
        for record, encode in _keyed_records(result.observations):
            row = previous.get(record)
            if row is None:
                row = encode(record)
            current[record] = row
            rows.append(row)
        rows.extend(_set_rows(result.observations))
        if result.run.success:
            self._encodings[result.run.unit] = current
        return rows

    def _already_stored(self, run: UnitRun) -> bool:
        rows = self.db.execute(
            "SELECT 1 FROM unit_runs WHERE collector = ? AND account_id = ? AND region = ? "
            "AND started = ?",
            [run.unit.collector, run.unit.account_id, run.unit.region, run.started.isoformat()],
        ).fetchone()
        return rows is not None

    def _merge_states(
        self, chain: ChainAppender, run: UnitRun, states: list[_StateRow]
    ) -> tuple[int, int]:
        unit = run.unit
        unit_params = [unit.collector, unit.account_id, unit.region]
        seen_at = epoch(run.started)
        keys = self._unit_keys(unit_params)
        open_now = {
            row[0]: (row[1], row[2])
            for row in self.db.execute(
                "SELECT key_seq, state_seq, value_sha256 FROM open_states "
                "WHERE collector = ? AND account_id = ? AND region = ?",
                unit_params,
            )
        }
        extend: list[tuple[int, int]] = []
        reopen: list[tuple[Any, ...]] = []
        seen: set[int] = set()
        for state in states:
            key_seq = keys.get((state.kind, state.key))
            if key_seq is None:
                key_seq = keys[(state.kind, state.key)] = self._new_key(chain, run, state)
            if key_seq in seen:
                continue  # a collector listing one thing twice must not open two intervals
            seen.add(key_seq)
            digest = sha256_hex(state.value)
            previous = open_now.get(key_seq)
            if previous is not None and previous[1] == digest:
                extend.append((seen_at, previous[0]))
                continue
            row = {
                "key_seq": key_seq,
                "value": state.value,
                "first_seen": seen_at,
                "last_seen": seen_at,
                "continues": int(previous is not None),
            }
            reopen.append((key_seq, *unit_params, chain.append("states", row), digest))
        self.db.conn.executemany("UPDATE states SET last_seen = ? WHERE seq = ?", extend)
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO open_states VALUES (?, ?, ?, ?, ?, ?)", reopen
        )
        # Absent from a successful poll: the interval closes (the thing is gone or moved).
        gone = [(key_seq,) for key_seq in open_now.keys() - seen]
        self.db.conn.executemany("DELETE FROM open_states WHERE key_seq = ?", gone)
        return len(reopen), len(extend)

    def _unit_keys(self, unit_params: list[str]) -> dict[tuple[str, str], int]:
        return {
            (row[0], row[1]): row[2]
            for row in self.db.execute(
                "SELECT kind, key, seq FROM state_keys "
                "WHERE collector = ? AND account_id = ? AND region = ?",
                unit_params,
            )
        }

    def _new_key(self, chain: ChainAppender, run: UnitRun, state: _StateRow) -> int:
        return chain.append(
            "state_keys",
            {
                "kind": state.kind,
                **_unit_columns(run),
                "key": state.key,
                "resource_key": state.resource_key,
            },
        )

    def _record_jobs(self, chain: ChainAppender, events: Iterable[JobEvent], run: UnitRun) -> int:
        rolled_up_until = rolled_up_until_epoch(self.db)
        recorded = 0
        for event in events:
            created = epoch(event.created)
            # A job whose day is already rolled up would come back as a "new" transition.
            if created < rolled_up_until or self._job_state_known(event):
                continue
            chain.append(
                "job_events",
                {
                    "job_id": event.job_id,
                    "kind": event.kind,
                    "state": event.state,
                    "resource_key": resource_key(event.ref) if event.ref else "",
                    "created_epoch": created,
                    "observed_epoch": epoch(run.started),
                    "value": canonical_json(to_jsonable(event)),
                },
            )
            recorded += 1
        return recorded

    def _job_state_known(self, event: JobEvent) -> bool:
        found = self.db.execute(
            "SELECT 1 FROM job_events WHERE job_id = ? AND state = ?", [event.job_id, event.state]
        ).fetchone()
        return found is not None


class ChainAppender:
    """Appends rows to the evidence chain inside the caller's open transaction."""

    def __init__(self, db: Database) -> None:
        if not db.conn.in_transaction:
            raise HistoryError("chain rows must be appended inside a transaction")
        self.db = db
        head = db.execute("SELECT seq, row_hash FROM chain_head WHERE id = 1").fetchone()
        self.seq: int = head[0]
        self.hash: str = head[1]

    def append(self, table: str, values: dict[str, Any]) -> int:
        self.seq += 1
        row = {"seq": self.seq, **values}
        missing = set(CHAINED_COLUMNS[table]) - row.keys()
        if missing:
            raise HistoryError(f"{table}: chained columns missing: {sorted(missing)}")
        row["prev_hash"] = self.hash
        row["row_hash"] = self.hash = row_hash(table, self.hash, row)
        columns = ", ".join(row)
        placeholders = ", ".join("?" for _ in row)
        self.db.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608
            list(row.values()),
        )
        return self.seq

    def save_head(self) -> None:
        self.db.conn.execute(
            "UPDATE chain_head SET seq = ?, row_hash = ? WHERE id = 1", [self.seq, self.hash]
        )


def _unit_columns(run: UnitRun) -> dict[str, str]:
    return {
        "collector": run.unit.collector,
        "account_id": run.unit.account_id,
        "region": run.unit.region,
    }


def _receipt(result: UnitResult, states: list[_StateRow]) -> dict[str, Any]:
    """The chained record of one unit run.

    `observations_sha256` digests the states the run observed in their stored encoding:
    the sorted [kind, key, value] of each (job events are chained rows of their own, one
    per transition). For a successful run these are
    the values of its unit's intervals with first_seen <= started <= last_seen, so the
    digest can be recomputed from the intervals (docs/history.md, limitations).
    """
    run, observations = result.run, result.observations
    observed = sorted([state.kind, state.key, state.value] for state in states)
    return {
        **_unit_columns(run),
        "started": run.started.isoformat(),
        "started_epoch": epoch(run.started),
        "duration_seconds": run.duration_seconds,
        "success": int(run.success),
        "error_code": run.error_code,
        "error_message": run.error_message,
        "api_calls": canonical_json(dict(run.api_calls)),
        "observations_sha256": sha256_hex(canonical_json(observed)),
        "resources": len(observations.resources),
        "recovery_states": len(observations.recovery_states),
        "job_events": len(observations.job_events),
        "replication_states": len(observations.replication_states),
    }


# Observation kinds stored one row per record, keyed by identity; every other tuple field of
# Observations (vaults, plan rules, job counts... as collectors add them) is stored as one
# set-valued interval per unit and field, so history keeps up without a schema change.
_KEYED_FIELDS = frozenset({"resources", "recovery_states", "replication_states", "job_events"})
# Per-partition Kafka offsets (kafka.partition_detail) change on every poll and would rewrite
# hundreds of rows each time; the per-topic lag they sum to is stored, the detail is only
# served as metrics.
_METRICS_ONLY_FIELDS = frozenset({"kafka_partitions"})


def compact_json(record: Any, identity: tuple[str, ...]) -> str:
    """A record's JSON without its identity fields (they are in the key) and default values.

    Defaults are restored on reading from the model's own dataclass defaults, so the stored
    text stays short without losing anything.
    """
    values: dict[str, Any] = {}
    record_type: Any = type(record)
    for name, default in _field_defaults(record_type):
        value = getattr(record, name)
        if name in identity or value == default:
            continue
        # Plain values skip the generic converter: this runs for every record of every poll.
        if isinstance(value, datetime):
            values[name] = value.isoformat()
        elif value is None or isinstance(value, (str, int, float)):
            values[name] = value
        else:
            values[name] = to_jsonable(value)
    return canonical_json(values)


@functools.cache
def _field_defaults(cls: Any) -> tuple[tuple[str, object], ...]:
    return tuple((item.name, item.default) for item in dataclasses.fields(cls))


_RECOVERY_IDENTITY = ("ref", "mechanism", "location_account_id", "location_region")
_REPLICATION_IDENTITY = (
    "kind",
    "source",
    "destination_account_id",
    "destination_region",
    "destination",
)


def _set_rows(observations: Observations) -> Iterator[_StateRow]:
    for item in dataclasses.fields(observations):
        if item.name in _KEYED_FIELDS or item.name in _METRICS_ONLY_FIELDS:
            continue
        records = getattr(observations, item.name)
        if records:
            values = sorted(canonical_json(to_jsonable(record)) for record in records)
            yield _StateRow(item.name, item.name, "", "[" + ",".join(values) + "]")


def _keyed_records(observations: Observations) -> Iterator[tuple[Any, Callable[[Any], _StateRow]]]:
    for resource in observations.resources:
        yield resource, _resource_row
    for state in observations.recovery_states:
        yield state, _recovery_row
    for replication in observations.replication_states:
        yield replication, _replication_row


def _recovery_row(state: RecoveryState) -> _StateRow:
    return _StateRow(
        "recovery",
        recovery_key(state),
        resource_key(state.ref),
        compact_json(state, _RECOVERY_IDENTITY),
    )


def _replication_row(replication: ReplicationState) -> _StateRow:
    return _StateRow(
        "replication",
        replication_key(replication),
        resource_key(replication.source),
        compact_json(replication, _REPLICATION_IDENTITY),
    )


def _resource_row(resource: Resource) -> _StateRow:
    key = resource_key(resource.ref)
    return _StateRow("resource", key, key, compact_json(resource, ("ref",)))
