"""Schema of the history database: tables, indexes and append-only triggers, as migrations.

Evidence tables share one hash chain ordered by `seq` (a global sequence, not per table):
each row carries `prev_hash` and `row_hash = sha256(prev_hash || canonical_json(row))` over
the columns listed in `CHAINED_COLUMNS`. `states.last_seen` is deliberately outside the hash:
it is the one column that moves (an unchanged state extends its interval instead of adding a
row), and the chained poll receipt in `unit_runs` is what vouches for each extension.

Triggers refuse UPDATE and DELETE of evidence; only a compaction, which raises the
`maintenance.compacting` flag inside its own transaction, may delete, and it appends a
chained record of what it removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

GENESIS_HASH: Final = "0" * 64

# Hashed columns of every evidence table, in canonical order (seq first).
CHAINED_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "unit_runs": (
            "seq",
            "collector",
            "account_id",
            "region",
            "started",
            "started_epoch",
            "duration_seconds",
            "success",
            "error_code",
            "error_message",
            "api_calls",
            "observations_sha256",
            "resources",
            "recovery_states",
            "job_events",
            "replication_states",
        ),
        "state_keys": (
            "seq",
            "kind",
            "collector",
            "account_id",
            "region",
            "key",
            "resource_key",
        ),
        "states": ("seq", "key_seq", "value", "first_seen", "continues"),
        "job_events": (
            "seq",
            "job_id",
            "kind",
            "state",
            "resource_key",
            "created_epoch",
            "observed_epoch",
            "value",
        ),
        "drills": ("seq", "drill_id", "scenario", "started_epoch", "value"),
        "daily_rollups": ("seq", "day", "scope", "key", "figures"),
        "compactions": (
            "seq",
            "compacted_epoch",
            "raw_cutoff_epoch",
            "retention_cutoff_epoch",
            "removed",
            "rollups",
            "gaps",
            "gaps_sha256",
        ),
    }
)
EVIDENCE_TABLES: Final = tuple(CHAINED_COLUMNS)

migrations = Migrations("drwatch.history")


def _chain_columns() -> dict[str, type]:
    return {"prev_hash": str, "row_hash": str}


@migrations()
def m001_evidence_tables(db: Database) -> None:
    db.table("unit_runs").create(
        {
            "seq": int,
            "collector": str,
            "account_id": str,
            "region": str,
            "started": str,
            "started_epoch": int,
            "duration_seconds": float,
            "success": int,
            "error_code": str,
            "error_message": str,
            "api_calls": str,
            "observations_sha256": str,
            "resources": int,
            "recovery_states": int,
            "job_events": int,
            "replication_states": int,
            **_chain_columns(),
        },
        pk="seq",
        not_null={"collector", "account_id", "region", "started", "started_epoch"},
    )
    # One receipt per unit run: re-ingesting the same result is a no-op.
    db.table("unit_runs").create_index(
        ["collector", "account_id", "region", "started"], unique=True, index_name="unit_run_once"
    )
    db.table("unit_runs").create_index(["collector", "account_id", "region", "started_epoch"])
    # One row per thing ever observed (its identity); intervals refer to it by seq, so a
    # long key is stored once, not once per changed value.
    db.table("state_keys").create(
        {
            "seq": int,
            "kind": str,  # resource | recovery | replication | an Observations field name
            "collector": str,
            "account_id": str,
            "region": str,
            "key": str,
            "resource_key": str,
            **_chain_columns(),
        },
        pk="seq",
        not_null={"kind", "key"},
    )
    db.table("state_keys").create_index(
        ["collector", "account_id", "region", "kind", "key"], unique=True
    )
    db.table("state_keys").create_index(["resource_key"])
    db.table("states").create(
        {
            "seq": int,
            "key_seq": int,
            "value": str,  # canonical JSON without identity fields and default values
            "first_seen": int,
            "last_seen": int,
            "continues": int,
            **_chain_columns(),
        },
        pk="seq",
        not_null={"key_seq", "value", "first_seen", "last_seen"},
    )
    db.table("states").create_index(["key_seq", "first_seen"])
    db.table("states").create_index(["last_seen"])
    db.table("job_events").create(
        {
            "seq": int,
            "job_id": str,
            "kind": str,
            "state": str,
            "resource_key": str,
            "created_epoch": int,
            "observed_epoch": int,
            "value": str,
            **_chain_columns(),
        },
        pk="seq",
        not_null={"job_id", "state"},
    )
    # Reading the same job in the same state twice records it once.
    db.table("job_events").create_index(
        ["job_id", "state"], unique=True, index_name="job_state_once"
    )
    db.table("job_events").create_index(["created_epoch"])
    db.table("drills").create(
        {"seq": int, "drill_id": str, "scenario": str, "started_epoch": int, "value": str}
        | _chain_columns(),
        pk="seq",
    )
    db.table("drills").create_index(["drill_id"], unique=True)
    db.table("daily_rollups").create(
        {"seq": int, "day": str, "scope": str, "key": str, "figures": str} | _chain_columns(),
        pk="seq",
    )
    db.table("daily_rollups").create_index(["scope", "day", "key"], unique=True)
    db.table("compactions").create(
        {
            "seq": int,
            "compacted_epoch": int,
            "raw_cutoff_epoch": int,
            "retention_cutoff_epoch": int,
            "removed": str,
            "rollups": int,
            "gaps": int,
            "gaps_sha256": str,
            **_chain_columns(),
        },
        pk="seq",
    )


@migrations()
def m002_bookkeeping_tables(db: Database) -> None:
    # Mutable indexes for the writer, not evidence: each can be rebuilt from evidence.
    db.table("open_states").create(
        {
            "key_seq": int,
            "collector": str,
            "account_id": str,
            "region": str,
            "state_seq": int,
            "value_sha256": str,
        },
        pk="key_seq",
    )
    db.table("open_states").create_index(["collector", "account_id", "region"])
    db.table("chain_head").create({"id": int, "seq": int, "row_hash": str}, pk="id")
    db.table("chain_head").insert({"id": 1, "seq": 0, "row_hash": GENESIS_HASH})
    # Runs of rows a compaction removed, with the hashes that bridge the chain over them.
    db.table("chain_gaps").create(
        {
            "compaction_seq": int,
            "first_seq": int,
            "last_seq": int,
            "prev_hash": str,
            "last_hash": str,
        },
        pk="first_seq",
    )
    db.table("maintenance").create({"id": int, "compacting": int}, pk="id")
    db.table("maintenance").insert({"id": 1, "compacting": 0})


@migrations()
def m003_append_only_triggers(db: Database) -> None:
    for table in (*EVIDENCE_TABLES, "chain_gaps"):
        # Table names come from this module, never from input.
        db.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "  # noqa: S608
            "WHEN (SELECT compacting FROM maintenance WHERE id = 1) = 0 "
            f"BEGIN SELECT RAISE(ABORT, 'drwatch history: {table} is append-only'); END"
        )
    for table in EVIDENCE_TABLES:
        if table == "states":
            continue
        db.execute(
            f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, 'drwatch history: {table} is append-only'); END
            """
        )
    db.execute(
        "CREATE TRIGGER chain_gaps_no_update BEFORE UPDATE ON chain_gaps "
        "BEGIN SELECT RAISE(ABORT, 'drwatch history: chain_gaps is append-only'); END"
    )
    # An interval may only be extended forward in time; everything hashed is frozen.
    frozen = ", ".join(c for c in (*CHAINED_COLUMNS["states"], "prev_hash", "row_hash"))
    db.execute(
        f"""
        CREATE TRIGGER states_frozen BEFORE UPDATE OF {frozen} ON states
        BEGIN SELECT RAISE(ABORT, 'drwatch history: states rows are append-only'); END
        """
    )
    db.execute(
        """
        CREATE TRIGGER states_last_seen_forward BEFORE UPDATE OF last_seen ON states
        WHEN NEW.last_seen < OLD.last_seen
        BEGIN SELECT RAISE(ABORT, 'drwatch history: last_seen only moves forward'); END
        """
    )


@migrations()
def m004_resources_view(db: Database) -> None:
    # Resources with first seen, last seen and gone (absent from their unit's latest
    # successful poll), derived from the intervals rather than kept as a mutable table.
    db.execute(
        """
        CREATE VIEW resources AS
        SELECT k.resource_key, k.collector, k.account_id, k.region,
               min(s.first_seen) AS first_seen, max(s.last_seen) AS last_seen,
               k.seq NOT IN (SELECT key_seq FROM open_states) AS gone
        FROM state_keys k JOIN states s ON s.key_seq = k.seq
        WHERE k.kind = 'resource'
        GROUP BY k.seq
        """
    )


def migrate(db: Database) -> None:
    """Brings the schema up to date; safe on every open (applied migrations are skipped)."""
    migrations.apply(db)
