"""`drwatch report`: compliance reports (PDF/A-3u + JSON companion) from the history.

Reports read only the history database, never AWS. Each `--framework` choice is one entry
of `REPORT_WRITERS`, so another report (the management review) is one more entry.
This module does not import `exporter.cli` (which registers it), so either can be imported
first.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import click

from drwatch import __version__
from drwatch.cli.common import (
    UTC_DATE,
    UsageProblem,
    config_option,
    db_option,
    output_options,
    require_database,
    resolve_history,
)
from drwatch.cli.outputs import Input, OutputPolicy, database_inputs, plan_outputs, staged
from drwatch.config import (
    DEFAULT_TIER_TARGETS,
    Config,
    PricingConfig,
    TierConfig,
)
from drwatch.config.price_table import load_price_table
from drwatch.core.controls import ControlError, ControlParameters
from drwatch.core.retention import RetentionPolicy
from drwatch.history.figures import RpoPolicy
from drwatch.history.store import HistoryError, open_reader
from drwatch.reports import management
from drwatch.reports.catalogue import load_framework
from drwatch.reports.compliance import TEMPLATE, build_context, companion
from drwatch.reports.evidence import EvaluationError, Period, Policies
from drwatch.reports.render import Attachment, RenderError, render_pdf


class ReportUsageError(UsageProblem):
    """A report request that cannot be served (bad period, empty history): exit 2."""


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """`out` and `json_out` are the staged files (cli/outputs.py), installed when complete."""

    db_path: Path
    config: Config | None
    period: Period
    out: Path
    json_out: Path | None
    progress: Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    pdf: Path
    pages: int
    size_bytes: int
    seconds: float
    json_path: Path | None


ReportWriter = Callable[[ReportRequest], ReportOutcome]


def policies_from(config: Config | None) -> Policies:
    """Targets, retention classes and control thresholds: the config's, else the defaults."""
    tiers = config.tiers if config else TierConfig()
    default = tiers.targets.get(tiers.default_tier, DEFAULT_TIER_TARGETS["standard"])
    return Policies(
        rpo=RpoPolicy(
            {name: t.rpo_seconds for name, t in tiers.targets.items()}, default.rpo_seconds
        ),
        rto_seconds=MappingProxyType({name: t.rto_seconds for name, t in tiers.targets.items()}),
        retention=config.retention if config else RetentionPolicy(),
        parameters=config.controls if config else ControlParameters(),
    )


def compliance_writer(framework_key: str) -> ReportWriter:
    """The compliance report for one framework."""

    def write(request: ReportRequest) -> ReportOutcome:
        framework = load_framework(framework_key)
        db = open_reader(request.db_path)
        try:
            context = build_context(
                db,
                request.period,
                framework,
                policies_from(request.config),
                generated_at=datetime.now(UTC),
                version=__version__,
                progress=request.progress,
            )
        finally:
            db.close()
        data = (json.dumps(companion(context), indent=1, ensure_ascii=False) + "\n").encode()
        if request.json_out is not None:
            request.json_out.write_bytes(data)
        request.progress(f"rendering {request.out.name}")
        result = render_pdf(
            TEMPLATE,
            context,
            request.out,
            attachments=(
                Attachment(
                    name=f"{request.out.stem}.json",
                    data=data,
                    description="Machine-readable companion: every finding with its facts",
                ),
            ),
            progress=request.progress,
        )
        return ReportOutcome(
            result.path, result.pages, result.size_bytes, result.seconds, request.json_out
        )

    return write


def management_writer(request: ReportRequest) -> ReportOutcome:
    """The management review: storage, estimated cost, retention outliers (docs/cost.md)."""
    pricing = request.config.pricing if request.config else PricingConfig()
    try:
        result = management.write_report(
            request.db_path,
            management.month_of(request.period.start, request.period.end),
            request.out,
            prices=load_price_table(pricing),
            manual_snapshot_max_age_days=pricing.manual_snapshot_max_age_days,
            policies=policies_from(request.config),
            now=datetime.now(UTC),
            json_out=request.json_out,
        )
    except management.ManagementError as error:
        raise ReportUsageError(f"{request.db_path}: {error}") from error
    return ReportOutcome(
        result.path, result.pages, result.size_bytes, result.seconds, request.json_out
    )


REPORT_WRITERS: Mapping[str, ReportWriter] = MappingProxyType(
    {
        "soc2": compliance_writer("soc2"),
        "pci-dss": compliance_writer("pci-dss"),
        "gdpr": compliance_writer("gdpr"),
        "management": management_writer,
    }
)


def parse_period(month: str | None, since: datetime | None, until: datetime | None) -> Period:
    if month is not None and (since is not None or until is not None):
        raise click.UsageError("give --period, or --from and --until, not both")
    if month is not None:
        try:
            return Period.month(month)
        except EvaluationError as error:
            raise click.BadParameter(str(error), param_hint="--period") from error
    if since is None or until is None:
        raise click.UsageError("give --period YYYY-MM, or --from and --until")
    start, end = since.replace(tzinfo=UTC), until.replace(tzinfo=UTC)
    if end <= start:
        raise click.BadParameter("must be after --from", param_hint="--until")
    return Period.between(start, end)


def write_report(
    framework: str,
    db_path: Path,
    config: Config | None,
    period: Period,
    out: Path,
    json_out: Path | None,
    progress: Callable[[str], None],
    policy: OutputPolicy,
    inputs: tuple[Input, ...] = (),
) -> ReportOutcome:
    """Runs one writer, turning expected failures into ClickExceptions (no tracebacks).

    The PDF and the JSON are checked against the history (and `inputs`) before any work,
    staged, and installed only when both are complete (cli/outputs.py).
    """
    outputs = [("--out", out)] + ([("--json", json_out)] if json_out is not None else [])
    planned = plan_outputs(outputs, database_inputs("history", db_path) + inputs, policy)
    require_database(db_path)
    try:
        with staged(policy) as staging:
            staged_json = staging.path(planned[1]) if json_out is not None else None
            request = ReportRequest(
                db_path, config, period, staging.path(planned[0]), staged_json, progress
            )
            outcome = REPORT_WRITERS[framework](request)
    except EvaluationError as error:
        raise ReportUsageError(f"{db_path}: {error}") from error
    except (HistoryError, sqlite3.DatabaseError) as error:
        raise ReportUsageError(f"{db_path}: cannot read the history: {error}") from error
    except (RenderError, OSError) as error:
        if isinstance(error, OSError) or isinstance(error.__cause__, OSError):
            raise ReportUsageError(f"{out}: cannot write the report: {error}") from error
        raise click.ClickException(f"report failed: {error}") from error
    except (ControlError, sqlite3.Error) as error:
        raise click.ClickException(f"report failed: {error}") from error
    return ReportOutcome(out, outcome.pages, outcome.size_bytes, outcome.seconds, json_out)


@click.command("report")
@click.option(
    "--framework",
    type=click.Choice(sorted(REPORT_WRITERS)),
    required=True,
    help="Which report: a compliance framework's mapping of the controls, or the "
    "management review (storage, estimated cost, retention outliers; --period only).",
)
@click.option("--period", "month", metavar="YYYY-MM", help="A calendar month (UTC).")
@click.option("--from", "since", type=UTC_DATE, help="Period start (UTC), included.")
@click.option("--until", type=UTC_DATE, help="Period end (UTC), excluded.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="PDF to write (default: drwatch-<framework>-<period start>.pdf); created 0600 "
    "unless --mode, replaced only with --force.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the JSON companion (it is attached to the PDF either way).",
)
@output_options
@db_option("--history")
@config_option("drwatch YAML config: history path, tiers, retention classes, control thresholds.")
def report(
    framework: str,
    month: str | None,
    since: datetime | None,
    until: datetime | None,
    out: Path | None,
    json_out: Path | None,
    db_path: Path | None,
    config_path: Path | None,
    output_policy: OutputPolicy,
) -> None:
    """Render a compliance report (PDF/A-3u with its JSON companion) for a period.

    Controls DRW-01..DRW-14 are evaluated from the history only, mapped to the framework's
    clauses; progress goes to stderr, the paths written to stdout.

    Example: drwatch report --framework soc2 --period 2026-10 --config drwatch.yml --out soc2.pdf
    """
    period = parse_period(month, since, until)
    path, config = resolve_history(config_path, db_path)
    target = out or Path(f"drwatch-{framework}-{period.start:%Y-%m-%d}.pdf")
    started = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {message}", err=True)

    inputs = (Input("--config", config_path),) if config_path is not None else ()
    outcome = write_report(
        framework, path, config, period, target, json_out, progress, output_policy, inputs
    )
    progress(f"done: {outcome.pages} pages, {outcome.size_bytes} bytes")
    click.echo(str(outcome.pdf))
    if outcome.json_path is not None:
        click.echo(str(outcome.json_path))


# --- the demo's reports ---------------------------------------------------------------------

DEMO_FRAMEWORKS = ("soc2", "pci-dss", "gdpr", "management")


def last_full_month(start: datetime, end: datetime) -> Period | None:
    """The newest calendar month wholly inside [start, end), if there is one."""
    month_end = end.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = Period.month(f"{(month_end - timedelta(days=1)):%Y-%m}")
    return month if month.start >= start else None


def render_demo_reports(
    history_path: Path, backfill_start: datetime, now: datetime, progress: Callable[[str], None]
) -> list[Path]:
    """The framework reports and the management review for the last full month of the
    demo's backfill."""
    month = last_full_month(backfill_start, now)
    if month is None:
        progress("no full month of history yet: no demo reports")
        return []
    written = []
    for framework in DEMO_FRAMEWORKS:
        out = history_path.parent / f"drwatch-demo-{framework}-{month.label}.pdf"
        progress(f"rendering the {framework} report for {month.label}")
        # The demo's own working directory: each run replaces the reports of the last one.
        outcome = write_report(
            framework,
            history_path,
            None,
            month,
            out,
            out.with_suffix(".json"),
            progress,
            OutputPolicy(force=True),
        )
        written.append(outcome.pdf)
    return written
