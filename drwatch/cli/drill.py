"""`drwatch drill`: record, import, list and run DR drills (docs/drills.md).

Drills are evidence: `record`, `finish` and `import` append chained rows to the history
database; `start` keeps a drill in progress outside the chain until `finish`. `run` is the
active restore test, the one command that changes AWS (exporter/drill_runner.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from psycopg.conninfo import make_conninfo

from drwatch.cli.common import (
    F,
    UsageProblem,
    history_options,
    require_database,
    resolve_history,
)
from drwatch.config import DEFAULT_TIER_TARGETS, AwsConfig, Config
from drwatch.core.tiers import TierTarget
from drwatch.core.units import DAY_SECONDS
from drwatch.exporter.drill_runner import (
    DEFAULT_TIMEOUT_SECONDS,
    CheckResult,
    DrillRunnerError,
    Endpoint,
    RestoreRequest,
    RunOutcome,
    read_checks,
    run_restore_test,
    run_sql_checks,
    runner_client,
    write_evidence,
)
from drwatch.exporter.metrics.drill import DrillMetrics
from drwatch.exporter.service import Exporter
from drwatch.history.drill_import import (
    DrillImportError,
    drill_from_row,
    parse_aware,
    read_drill_file,
)
from drwatch.history.drill_status import read_drill_status, runner_scope
from drwatch.history.drills import (
    RESULTS,
    SCENARIOS,
    SOURCE_RUNNER,
    DrillError,
    DrillRecord,
    drill_to_json,
    evidence_file,
    finish_drill,
    load_drills,
    load_open_drills,
    record_drills,
    start_drill,
)
from drwatch.history.read import newest_tier, resource_observed
from drwatch.history.store import HistoryStore, open_reader


class DrillProblem(UsageProblem):
    """A drill that cannot be recorded as given: exit 2, like a usage error."""


class AwareDateTime(click.ParamType[datetime, Any]):
    """ISO 8601 with a time zone (`2026-11-02T09:00:00+01:00`, `...Z`): drills span zones."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_aware(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


TIME = AwareDateTime()


def outcome_options(function: F) -> F:
    """What a drill found: shared by `record` and `finish`."""
    for option in reversed(
        [
            click.option("--restored-at", type=TIME, help="Service restored (with zone)."),
            click.option("--restore-point", type=TIME, help="Time of the data restored to."),
            click.option("--result", type=click.Choice(RESULTS), help="Default: from targets."),
            click.option("--issue", "issues", multiple=True, help="Issue found (repeatable)."),
            click.option("--follow-up", "follow_ups", multiple=True, help="Follow-up action."),
            click.option(
                "--evidence",
                "evidence",
                multiple=True,
                type=click.Path(path_type=Path, dir_okay=False, exists=True),
                help="Evidence file; its SHA-256 goes into the chain (repeatable).",
            ),
            click.option("--notes", default="", help="Free text, e.g. lessons learned."),
        ]
    ):
        function = option(function)
    return function


def incident_options(function: F) -> F:
    """What a drill is: shared by `record` and `start`."""
    for option in reversed(
        [
            click.option("--id", "drill_id", help="Drill id (default: scenario and start)."),
            click.option(
                "--scenario",
                type=click.Choice(list(SCENARIOS)),
                required=True,
                help="What was simulated.",
            ),
            click.option(
                "--scope",
                multiple=True,
                required=True,
                help="A resource id, or tier:NAME for a whole tier (repeatable).",
            ),
            click.option("--tier", help="Tier whose targets apply (default: from the scope)."),
            click.option(
                "--incident-start",
                type=TIME,
                help="Incident start (with zone); `start` defaults to now.",
            ),
            click.option("--detected-at", type=TIME, help="Detection time (with zone)."),
        ]
    ):
        function = option(function)
    return function


@click.group()
def drill() -> None:
    """Record, import, list and run DR drills and restore tests (docs/drills.md).

    Example: drwatch drill list --config drwatch.yml
    """


@drill.command("record")
@history_options
@incident_options
@outcome_options
def drill_record(config_path: Path | None, db_path: Path | None, **fields: Any) -> None:
    """Record a finished drill in the evidence chain.

    Example: drwatch drill record --db h.db --scenario database_failure --scope orders-db
    --incident-start 2026-11-02T09:00:00Z --restored-at 2026-11-02T09:41:00Z
    --restore-point 2026-11-02T08:55:00Z --evidence restore.log
    """
    for name in ("incident_start", "restored_at"):
        if fields[name] is None:
            hint = f"--{name.replace('_', '-')}"
            raise click.BadParameter("required for a finished drill", param_hint=hint)
    path, config = resolve_history(config_path, db_path)
    with HistoryStore(path) as store:
        record = _record_from_options(store, config, fields)
        _save(lambda: record_drills(store.db, [record]))
    _echo_recorded(record.with_result())


@drill.command("start")
@history_options
@incident_options
@click.option("--notes", default="", help="Free text.")
def drill_start(config_path: Path | None, db_path: Path | None, **fields: Any) -> None:
    """Start a drill now (or at --incident-start); finish it with `drill finish`.

    Example: drwatch drill start --db h.db --id q4-region --scenario region_failure
    --scope tier:premium --incident-start 2026-11-02T09:00:00Z
    """
    path, config = resolve_history(config_path, db_path)
    if fields["incident_start"] is None:
        fields["incident_start"] = datetime.now(UTC).replace(microsecond=0)
    with HistoryStore(path) as store:
        record = _record_from_options(store, config, fields)
        _save(lambda: start_drill(store.db, record))
    click.echo(f"drill {record.drill_id} started at {record.incident_start.isoformat()}")


@drill.command("finish")
@history_options
@click.argument("drill_id")
@outcome_options
def drill_finish(
    config_path: Path | None, db_path: Path | None, drill_id: str, **fields: Any
) -> None:
    """Finish a started drill and record it in the evidence chain.

    Example: drwatch drill finish q4-region --db h.db --restored-at 2026-11-02T10:05:00Z
    --restore-point 2026-11-02T08:58:00Z --issue "DNS TTL too long"
    """
    path, _ = resolve_history(config_path, db_path)
    if fields["restored_at"] is None:
        raise click.BadParameter("required to finish a drill", param_hint="--restored-at")
    fields["evidence"] = tuple(evidence_file(p) for p in fields["evidence"])
    with HistoryStore(path) as store:
        record = _save(lambda: finish_drill(store.db, drill_id, **fields))
    _echo_recorded(record)


@drill.command("list")
@history_options
@click.option("--since", type=TIME, help="Incident start from (with zone; default: all).")
@click.option("--until", type=TIME, help="Incident start before (with zone).")
@click.option("--json", "as_json", is_flag=True, help="Print the drills as JSON.")
def drill_list(
    config_path: Path | None,
    db_path: Path | None,
    since: datetime | None,
    until: datetime | None,
    as_json: bool,
) -> None:
    """List recorded drills (and those in progress) with measured RTO and RPO.

    Example: drwatch drill list --db h.db --since 2026-10-01T00:00:00Z --json
    """
    path, _ = resolve_history(config_path, db_path)
    require_database(path)
    db = open_reader(path)
    start = int(since.timestamp()) if since else -(2**62)
    end = int(until.timestamp()) if until else 2**62
    recorded = load_drills(db, start, end, include_restore_tests=True)
    open_drills = load_open_drills(db)
    if as_json:
        document = {
            "drills": [drill_to_json(d) for d in recorded],
            "in_progress": [drill_to_json(d) for d in open_drills],
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    for record in recorded:
        click.echo(_summary(record))
    for record in open_drills:
        click.echo(
            f"{record.drill_id}  {record.scenario}  in progress since "
            f"{record.incident_start.isoformat()}"
        )


@drill.command("import")
@history_options
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def drill_import(config_path: Path | None, db_path: Path | None, file: Path) -> None:
    """Import drills run elsewhere from a YAML or CSV file (all or nothing).

    Example: drwatch drill import --db h.db drills-2026-q3.yml
    """
    path, config = resolve_history(config_path, db_path)
    try:
        records = read_drill_file(file, _targets(config), _default_tier(config))
    except DrillImportError as error:
        raise DrillProblem(str(error)) from error
    with HistoryStore(path) as store:
        for record in records:
            _warn_unknown(store, record.scope, config)
        _save(lambda: record_drills(store.db, records))
    click.echo(f"{file}: {len(records)} drills recorded")


def _save(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except DrillError as error:
        raise DrillProblem(str(error)) from error


def _targets(config: Config | None) -> dict[str, TierTarget]:
    return dict(config.tiers.targets if config else DEFAULT_TIER_TARGETS)


def _default_tier(config: Config | None) -> str:
    return config.tiers.default_tier if config else "standard"


def _record_from_options(
    store: HistoryStore, config: Config | None, fields: dict[str, Any]
) -> DrillRecord:
    scope = tuple(dict.fromkeys(fields["scope"]))  # each once, in the order given
    targets = _targets(config)
    tier = fields.get("tier") or _tier_from_scope(store, scope) or _default_tier(config)
    if tier not in targets:
        raise click.BadParameter(
            f"unknown tier {tier!r} (known: {', '.join(sorted(targets))})", param_hint="--tier"
        )
    _warn_unknown(store, scope, config)
    start: datetime = fields["incident_start"]
    evidence = tuple(evidence_file(p) for p in fields.get("evidence", ()))
    return DrillRecord(
        drill_id=fields["drill_id"] or f"{fields['scenario']}-{start:%Y%m%dT%H%M%SZ}",
        scenario=fields["scenario"],
        scope=scope,
        tier=tier,
        incident_start=start,
        detected_at=fields.get("detected_at"),
        restored_at=fields.get("restored_at"),
        restore_point=fields.get("restore_point"),
        rto_target_seconds=targets[tier].rto_seconds,
        rpo_target_seconds=targets[tier].rpo_seconds,
        result=fields.get("result") or "",
        issues=tuple(fields.get("issues", ())),
        follow_ups=tuple(fields.get("follow_ups", ())),
        evidence=evidence,
        notes=fields.get("notes", ""),
    )


def _tier_from_scope(store: HistoryStore, scope: Sequence[str]) -> str:
    """tier:NAME names it; else the strictest observed tier of the scoped resources."""
    for item in scope:
        if item.startswith("tier:"):
            return item.removeprefix("tier:")
    tiers = {t for item in scope if (t := newest_tier(store.db, item))}
    order = ("premium", "standard", "basic")
    ranked = sorted(tiers, key=lambda t: order.index(t) if t in order else len(order))
    return ranked[0] if ranked else ""


def _warn_unknown(store: HistoryStore, scope: Iterable[str], config: Config | None) -> None:
    """Warns (never fails): a drill may cover resources drwatch does not watch."""
    tiers = _targets(config)
    for item in scope:
        if item.startswith("tier:"):
            if item.removeprefix("tier:") not in tiers:
                click.echo(f"warning: scope {item}: no such tier in the config", err=True)
            continue
        if not resource_observed(store.db, item):
            click.echo(
                f"warning: scope {item}: no such resource in the history (never observed)",
                err=True,
            )


def _summary(record: DrillRecord) -> str:
    return (
        f"{record.drill_id}  {record.scenario}  {record.incident_start.isoformat()}  "
        f"RTO {_minutes(record.measured_rto_seconds)} (target "
        f"{_minutes(record.rto_target_seconds)})  RPO {_minutes(record.measured_rpo_seconds)} "
        f"(target {_minutes(record.rpo_target_seconds)})  {record.result or 'in progress'}"
    )


def _minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"


def _echo_recorded(record: DrillRecord) -> None:
    click.echo(f"recorded: {_summary(record)}")


# --- drill run: the active restore test ------------------------------------------------


@drill.group("run")
def drill_run() -> None:
    """Run an active restore test: it CHANGES AWS (restores, then deletes, a temporary copy).

    Example: drwatch drill run rds --config drwatch.yml --region eu-west-1 --instance orders
    --check-sql checks.sql --i-understand-this-changes-aws
    """


@drill_run.command("rds")
@history_options
@click.option("--instance", required=True, help="RDS instance whose backups to restore.")
@click.option("--region", required=True, help="Region of the instance.")
@click.option(
    "--check-sql",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="SQL integrity checks: `-- check: name` blocks, each returning true.",
)
@click.option(
    "--i-understand-this-changes-aws",
    "confirmed",
    is_flag=True,
    help="Required: the test creates and deletes an RDS instance (docs/drills.md).",
)
@click.option("--point-in-time", type=TIME, help="Restore this time (default: newest snapshot).")
@click.option("--latest-restorable", is_flag=True, help="Point-in-time restore to the latest time.")
@click.option("--instance-class", help="Class of the temporary instance (default: the source's).")
@click.option(
    "--check-dsn",
    help="libpq conninfo to check instead of the restored endpoint (sandbox stand-in).",
)
@click.option("--check-database", default="postgres", show_default=True, help="Database to check.")
@click.option(
    "--check-user", default="postgres", show_default=True, help="User (password: PGPASSWORD)."
)
@click.option(
    "--timeout", default=DEFAULT_TIMEOUT_SECONDS, show_default=True, help="Seconds to wait."
)
@click.option(
    "--evidence-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("drill-evidence"),
    show_default=True,
    help="Where the run's JSON evidence file is written.",
)
def drill_run_rds(
    config_path: Path | None,
    db_path: Path | None,
    confirmed: bool,
    **options: Any,
) -> None:
    """Restore an RDS instance to a temporary copy, check it with SQL, measure, delete it.

    Records the run as a drill (source drill-runner) with measured RTO and RPO; exits 1 if
    the restore or a check failed, or if the temporary instance could not be deleted.

    Example: drwatch drill run rds --config drwatch.yml --region eu-west-1 --instance orders
    --check-sql checks.sql --i-understand-this-changes-aws
    """
    if not confirmed:
        raise click.UsageError(
            "this restores and deletes an RDS instance in your account: "
            "add --i-understand-this-changes-aws to run it"
        )
    if options["point_in_time"] and options["latest_restorable"]:
        raise click.BadParameter(
            "give --point-in-time or --latest-restorable, not both", param_hint="--point-in-time"
        )
    path, config = resolve_history(config_path, db_path)
    try:
        checks = read_checks(options["check_sql"])
    except DrillRunnerError as error:
        raise DrillProblem(str(error)) from error
    started = datetime.now(UTC)
    request = RestoreRequest(
        instance_id=options["instance"],
        region=options["region"],
        run_id=f"{started:%Y%m%dt%H%M%S}",
        point_in_time=options["point_in_time"],
        latest_restorable=options["latest_restorable"],
        instance_class=options["instance_class"],
        timeout_seconds=options["timeout"],
    )
    rds = runner_client(config.aws if config else AwsConfig(), request.region)

    def checker(endpoint: Endpoint) -> list[CheckResult]:
        conninfo = options["check_dsn"] or make_conninfo(
            host=endpoint.host,
            port=endpoint.port,
            dbname=options["check_database"],
            user=options["check_user"],
        )
        return run_sql_checks(conninfo, checks)

    try:
        outcome = run_restore_test(
            rds, request, checker, clock=lambda: datetime.now(UTC), sleep=time.sleep
        )
    except DrillRunnerError as error:
        raise DrillProblem(str(error)) from error
    record = _record_run(path, config, outcome, options["evidence_dir"])
    _report_run(outcome, record)


def _record_run(
    path: Path, config: Config | None, outcome: RunOutcome, evidence_dir: Path
) -> DrillRecord:
    request = outcome.request
    drill_id = f"restore-test-{request.instance_id}-{request.run_id}"
    evidence = evidence_file(write_evidence(outcome, evidence_dir, drill_id))
    targets = _targets(config)
    tier = outcome.tier_tag if outcome.tier_tag in targets else _default_tier(config)
    record = DrillRecord(
        drill_id=drill_id,
        scenario="data_corruption" if outcome.request.point_in_time_restore else "database_failure",
        scope=(
            runner_scope(outcome.account_id, outcome.request.region, outcome.request.instance_id),
        ),
        tier=tier,
        incident_start=outcome.started,
        detected_at=outcome.started,
        # Restored means available and checked: the service could take traffic again.
        restored_at=outcome.checked_at,
        restore_point=outcome.restore_point,
        rto_target_seconds=targets[tier].rto_seconds,
        # No RPO target: the snapshot's age is the recovery point age (DRW-02), not data
        # lost in an incident; the restore point is still recorded.
        rpo_target_seconds=None,
        result="" if outcome.passed else "fail",
        issues=_run_issues(outcome),
        evidence=(evidence,),
        source=SOURCE_RUNNER,
        notes=f"restored from {outcome.source or 'nothing'}; temporary instance "
        f"{outcome.request.target_id}: {outcome.cleanup}",
    )
    with HistoryStore(path) as store:
        _save(lambda: record_drills(store.db, [record]))
    return record.with_result()


def _run_issues(outcome: RunOutcome) -> tuple[str, ...]:
    issues = [f"check {c.name}: {c.detail}" for c in outcome.checks if not c.passed]
    if outcome.error:
        issues.append(outcome.error)
    if not outcome.cleaned_up:
        target = outcome.request.target_id
        issues.insert(0, f"temporary instance {target} not deleted: {outcome.cleanup}")
    return tuple(issues)


def _report_run(outcome: RunOutcome, record: DrillRecord) -> None:
    for check in outcome.checks:
        click.echo(f"check {check.name}: {'ok' if check.passed else 'FAILED'} ({check.detail})")
    click.echo(f"recorded: {_summary(record)}")
    problems = []
    if not outcome.cleaned_up:
        problems.append(
            f"temporary instance {outcome.request.target_id} was NOT deleted "
            f"({outcome.cleanup}): delete it by hand"
        )
    if outcome.error:
        problems.append(f"restore test failed: {outcome.error}")
    elif not outcome.passed:
        problems.append("restore test failed: an integrity check failed")
    if problems:
        raise click.ClickException("; ".join(problems))


# --- wiring for serve and demo (cli.py is the composition root; it calls these) ----------


def with_drill_metrics(exporter: Exporter, history_path: Path) -> Exporter:
    """Adds the drill and restore-test cadence metrics, read from the history file.

    The cadences are the config's `controls` (the same the reports judge DRW-11 and DRW-13
    by), as loaded at start-up.
    """
    controls = exporter.config.controls
    exporter.metrics.register(
        DrillMetrics(
            lambda: read_drill_status(history_path),
            restore_cadence={
                resource_class: days * DAY_SECONDS
                for resource_class, days in controls.restore_cadence_days.items()
            },
            drill_cadence=controls.drill_cadence_days * DAY_SECONDS,
        )
    )
    return exporter


def record_demo_drills(history_path: Path, rows: Sequence[Mapping[str, str]]) -> int:
    """Records the demo's drills (exporter/sandbox/backfill.py) as `drill import` would."""
    targets = _targets(None)
    records = [
        drill_from_row(row, targets, _default_tier(None), history_path.parent) for row in rows
    ]
    with HistoryStore(history_path) as store:
        return len(record_drills(store.db, records))
