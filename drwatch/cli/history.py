"""`drwatch history`: inspect, verify, compact and export the evidence history.

`history merge` lives in merge.py; main.py adds it to this group.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import click

from drwatch.cli.common import (
    UTC_DATE,
    history_options,
    output_options,
    reading_history,
    require_database,
    resolve_history,
)
from drwatch.cli.outputs import Input, OutputPolicy, database_inputs, plan_outputs, staged
from drwatch.config import (
    DEFAULT_HISTORY_RAW_DAYS,
    DEFAULT_HISTORY_RETENTION_DAYS,
    DEFAULT_TIER_TARGETS,
    TierConfig,
)
from drwatch.history.chain import verify_chain
from drwatch.history.compact import compact
from drwatch.history.figures import RpoPolicy
from drwatch.history.read import stats, write_csv, write_json
from drwatch.history.store import HistoryStore, open_reader


@click.group()
def history() -> None:
    """Inspect, verify, compact and export the evidence history (SQLite).

    Example: drwatch history verify --config drwatch.yml
    """


@history.command("stats")
@history_options
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def history_stats(config_path: Path | None, db_path: Path | None, as_json: bool) -> None:
    """Print size, rows per table, time range, resources and the chain head.

    Example: drwatch history stats --db drwatch-history.db
    """
    path, _ = resolve_history(config_path, db_path)
    require_database(path)
    with reading_history(path):
        summary = stats(open_reader(path), path)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    head = summary["chain_head"]
    click.echo(f"{path}: {summary['bytes']} bytes")
    click.echo(f"  polls:      {summary['first_poll']} .. {summary['last_poll']}")
    click.echo(f"  units:      {summary['units']}, resources: {summary['resources']}")
    click.echo(f"  rolled up:  before {summary['rolled_up_until'] or 'nothing yet'}")
    click.echo(f"  chain head: seq {head['seq']} sha256 {head['row_hash']}")
    for table, count in summary["rows"].items():
        click.echo(f"  {table:<14}{count:>12} rows")


@history.command("verify")
@history_options
def history_verify(config_path: Path | None, db_path: Path | None) -> None:
    """Recompute the hash chain; exit 1 naming the first broken row.

    Example: drwatch history verify --db drwatch-history.db
    """
    path, _ = resolve_history(config_path, db_path)
    require_database(path)
    with reading_history(path):
        outcome = verify_chain(open_reader(path))
    if not outcome.ok:
        raise click.ClickException(f"{path}: chain broken: {outcome.problem}")
    click.echo(
        f"{path}: ok, {outcome.rows} rows, chain head seq {outcome.head_seq} "
        f"sha256 {outcome.head_hash}"
    )


@history.command("compact")
@history_options
@click.option("--raw-days", type=click.IntRange(1), help="Override history.raw_days.")
@click.option("--retention-days", type=click.IntRange(1), help="Override history.retention_days.")
def history_compact(
    config_path: Path | None,
    db_path: Path | None,
    raw_days: int | None,
    retention_days: int | None,
) -> None:
    """Roll raw polls older than raw_days up per day; drop rollups older than retention.

    Safe while `drwatch serve` writes to the same file (it waits for the writer's lock).

    Example: drwatch history compact --config drwatch.yml
    """
    path, config = resolve_history(config_path, db_path)
    require_database(path)
    raw = raw_days or (config.history.raw_days if config else DEFAULT_HISTORY_RAW_DAYS)
    keep = retention_days or (
        config.history.retention_days if config else DEFAULT_HISTORY_RETENTION_DAYS
    )
    if keep < raw:
        raise click.BadParameter(f"must be >= raw days ({raw})", param_hint="--retention-days")
    with reading_history(path), HistoryStore(path) as store:
        outcome = compact(
            store.db,
            now=datetime.now(UTC),
            raw_days=raw,
            retention_days=keep,
            policy=rpo_policy(config.tiers if config else TierConfig()),
        )
    removed = ", ".join(f"{table} {n}" for table, n in sorted(outcome.removed.items()))
    click.echo(
        f"{path}: rolled up to {datetime.fromtimestamp(outcome.raw_cutoff, UTC):%Y-%m-%d}: "
        f"{outcome.rollups} rollups added, removed {removed or 'nothing'}"
    )


def rpo_policy(tiers: TierConfig) -> RpoPolicy:
    targets = {name: target.rpo_seconds for name, target in tiers.targets.items()}
    default = tiers.targets.get(tiers.default_tier, DEFAULT_TIER_TARGETS["standard"])
    return RpoPolicy(targets, default.rpo_seconds)


@history.command("export")
@history_options
@click.option("--since", type=UTC_DATE, required=True, help="Start (UTC), included.")
@click.option("--until", type=UTC_DATE, required=True, help="End (UTC), excluded.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["csv", "json"]),
    default="json",
    show_default=True,
    help="json: one document with the chain head; csv: one line per evidence row.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default="-",
    help="Output file (default: stdout); created 0600 unless --mode, see docs/cli.md.",
)
@output_options
def history_export(
    config_path: Path | None,
    db_path: Path | None,
    since: datetime,
    until: datetime,
    output_format: str,
    output: Path,
    output_policy: OutputPolicy,
) -> None:
    """Export every evidence row of a period, with its hashes, for an auditor.

    The file is written whole or not at all; an existing one is replaced only with --force.

    Example: drwatch history export --db h.db --since 2026-10-01 --until 2026-11-01 --format csv
    """
    path, _ = resolve_history(config_path, db_path)
    inputs = database_inputs("history", path)
    if config_path is not None:
        inputs += (Input("--config", config_path),)
    to_stdout = str(output) == "-"
    planned = () if to_stdout else plan_outputs([("--output", output)], inputs, output_policy)
    require_database(path)
    start, end = since.replace(tzinfo=UTC), until.replace(tzinfo=UTC)
    if end <= start:
        raise click.BadParameter("must be after --since", param_hint="--until")

    def export_to(stream: TextIO) -> int:
        if output_format == "csv":
            return write_csv(open_reader(path), start, end, stream)
        return write_json(open_reader(path), start, end, stream)

    with reading_history(path):
        if to_stdout:
            count = export_to(sys.stdout)
        else:
            with staged(output_policy) as staging, staging.text(planned[0]) as stream:
                count = export_to(stream)
    click.echo(f"{count} rows exported", err=True)
