"""`drwatch history merge`: one history from several shards' histories (history_merge.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import click

from drwatch.cli.common import UsageProblem, output_options, refuse_non_history
from drwatch.cli.outputs import OutputPolicy, database_inputs, plan_outputs, staged
from drwatch.history.merge import MergeError, merge_histories
from drwatch.history.store import HistoryError


@click.command("merge")
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The merged history to create (an existing file is replaced only with --force).",
)
@click.argument(
    "sources", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@output_options
def history_merge(out: Path, sources: tuple[Path, ...], output_policy: OutputPolicy) -> None:
    """Merge the histories of sharded exporters into one that verifies and reports read.

    Every source must verify, and no two sources may have polled a unit (collector,
    account, region) over the same time; a unit that moved between shards when their
    number changed is fine. The sources' chain heads are kept in the merged database
    (merge_sources).

    Example: drwatch history merge --out merged.db shard-0.db shard-1.db shard-2.db
    """
    inputs = tuple(item for source in sources for item in database_inputs("source history", source))
    (planned,) = plan_outputs([("--out", out)], inputs, output_policy)
    for source_path in sources:
        refuse_non_history(source_path)
    building: Path | None = None
    try:
        with staged(output_policy) as staging:
            # Built under its own name in a private directory beside --out; renamed into
            # place once it verifies, so a failed merge leaves nothing behind.
            building = staging.new_path(planned)
            outcome = merge_histories(list(sources), building, datetime.now(UTC))
    except (MergeError, HistoryError) as error:
        message = str(error)
        raise click.ClickException(
            message.replace(str(building), str(out)) if building else message
        ) from error
    except sqlite3.DatabaseError as error:
        raise UsageProblem(f"cannot read a source history: {error}") from error
    click.echo(
        f"{out}: merged {len(sources)} histories, {outcome.rows} rows, "
        f"chain head seq {outcome.head_seq} sha256 {outcome.head_hash}"
    )
    for source in outcome.sources:
        click.echo(f"  {source.path}: {source.rows} rows, chain head sha256 {source.head_hash}")
