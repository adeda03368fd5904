"""`drwatch history merge`: one history from several shards' histories (history_merge.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from drwatch.history.merge import MergeError, merge_histories
from drwatch.history.store import HistoryError


@click.command("merge")
@click.option(
    "--out",
    "-o",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The merged history to create (must not exist yet).",
)
@click.argument(
    "sources", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
def history_merge(out: Path, sources: tuple[Path, ...]) -> None:
    """Merge the histories of sharded exporters into one that verifies and reports read.

    Every source must verify, and no two sources may have polled a unit (collector,
    account, region) over the same time; a unit that moved between shards when their
    number changed is fine. The sources' chain heads are kept in the merged database
    (merge_sources).

    Example: drwatch history merge --out merged.db shard-0.db shard-1.db shard-2.db
    """
    try:
        outcome = merge_histories(list(sources), out, datetime.now(UTC))
    except (MergeError, HistoryError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{out}: merged {len(sources)} histories, {outcome.rows} rows, "
        f"chain head seq {outcome.head_seq} sha256 {outcome.head_hash}"
    )
    for source in outcome.sources:
        click.echo(f"  {source.path}: {source.rows} rows, chain head sha256 {source.head_hash}")
