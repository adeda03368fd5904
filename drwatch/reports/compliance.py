"""The compliance report: evaluation + framework mapping -> template context and JSON companion.

`build_context(db, period, framework, policies, ...)` is pure given the database state: it
reads only the history (through `reports.evaluate`), maps controls to the framework's
clauses, and returns plain data for `templates/compliance.html.j2`. `companion(context)`
is the machine-readable twin (schema `drwatch.compliance-report/v1`, docs/reports.md)
embedded in the PDF and written by `--json`.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from drwatch.core.controls import ControlParameters
from drwatch.history.drills import DrillRecord
from drwatch.history.figures import day_label
from drwatch.history.read import chain_head, export_rows
from drwatch.reports.catalogue import (
    Clause,
    Framework,
    Status,
    worst,
)
from drwatch.reports.charts import share_chart, stacked_chart
from drwatch.reports.evaluate import evaluate
from drwatch.reports.evidence import (
    ControlResult,
    Evaluation,
    EvaluationError,
    Finding,
    Period,
    Policies,
    ResourceEvidence,
)

SCHEMA = "drwatch.compliance-report/v1"
TEMPLATE = "compliance.html.j2"
# Subjects sharing an exception's control, status and facts from which the PDF lists it
# once with every affected subject instead of once per subject.
COMMON_MIN = 3

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default progress sink: says nothing."""


@dataclass(frozen=True, slots=True)
class ClauseOutcome:
    clause: Clause
    status: Status
    reasons: tuple[str, ...]  # framework minimums the configuration does not meet
    control_statuses: tuple[tuple[str, Status], ...]


def clause_outcomes(
    framework: Framework, evaluation: Evaluation, parameters: ControlParameters
) -> list[ClauseOutcome]:
    """A clause fails when a control fails or a parameter is looser than the framework allows.

    A clause without controls (evidence drwatch does not collect) is "not applicable" with
    the framework file's note as the reason.
    """
    outcomes = []
    for clause in framework.clauses:
        statuses = tuple((c, evaluation.result(c).status) for c in clause.controls)
        reasons = tuple(
            reason for m in clause.minimums if (reason := m.violation(parameters)) is not None
        )
        status = worst(s for _, s in statuses)
        if reasons:
            status = Status.FAIL
        if not clause.controls:
            status, reasons = Status.NOT_APPLICABLE, (clause.note,)
        outcomes.append(ClauseOutcome(clause, status, reasons, statuses))
    return outcomes


def report_id(framework: Framework, period: Period, head_hash: str) -> str:
    """Stable for the same framework, period and evidence: a re-render has the same id."""
    digest = hashlib.sha256(f"{framework.key}|{period.label}|{head_hash}".encode()).hexdigest()
    return f"DRW-{period.start:%Y%m%d}-{digest[:10]}"


def evidence_sets(db: Database, period: Period) -> list[dict[str, Any]]:
    """Per evidence table: the period's rows (as `history export` gives them) and a SHA-256
    over their row hashes in chain order, so an auditor can tie the report to the export."""
    hashes: dict[str, list[str]] = defaultdict(list)
    seqs: dict[str, list[int]] = defaultdict(list)
    for row in export_rows(db, period.start, period.end):
        hashes[row["table"]].append(str(row["row_hash"]))
        seqs[row["table"]].append(int(row["seq"]))
    return [
        {
            "name": table,
            "rows": len(hashes[table]),
            "first_seq": seqs[table][0] if seqs[table] else None,
            "last_seq": seqs[table][-1] if seqs[table] else None,
            "sha256": hashlib.sha256("\n".join(hashes[table]).encode()).hexdigest(),
        }
        for table in sorted(hashes)
    ]


def build_context(
    db: Database,
    period: Period,
    framework: Framework,
    policies: Policies,
    *,
    generated_at: datetime,
    version: str,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Everything the compliance template shows, as plain data (no markup)."""
    progress(f"evaluating {period.label}")
    evaluation = evaluate(db, period, policies)
    if not evaluation.resources and not evaluation.units:
        raise EvaluationError(f"no polls and no resources in {period.label}")
    previous = _previous(db, period, policies, progress)
    progress("hashing evidence sets")
    with db.atomic():
        head = chain_head(db)
        sets = evidence_sets(db, period)
    outcomes = clause_outcomes(framework, evaluation, policies.parameters)
    in_framework = sorted({c for clause in framework.clauses for c in clause.controls})
    results = [evaluation.result(c) for c in in_framework]
    identifier = report_id(framework, period, head.row_hash)
    exceptions = exception_rows(results)
    return {
        "schema": SCHEMA,
        "document": {
            "title": f"{framework.name} backup and DR compliance, {period.label}",
            "report_id": identifier,
            "generated_at": generated_at,
            "version": version,
        },
        "framework": {"key": framework.key, "name": framework.name, "version": framework.version},
        "period": {"label": period.label, "start": period.start, "end": period.end},
        "scope": _scope(evaluation),
        "chain_head": {"seq": head.seq, "row_hash": head.row_hash},
        "parameters": _parameters(policies),
        "summary": _summary(outcomes, results, previous),
        "clauses": [_clause_row(o) for o in outcomes],
        "controls": [_control_row(r, framework) for r in results],
        "exceptions": exceptions,
        "exception_groups": group_exceptions(exceptions, evaluation.resources, results),
        "retention": _retention(evaluation, policies),
        "drills": [_drill_row(d) for d in evaluation.drills],
        "restores": _restores(evaluation),
        "charts": _charts(evaluation, policies),
        "evidence_sets": sets,
        "monitoring_gaps": _gaps(evaluation),
        "findings": [_finding_row(f) for r in results for f in r.findings],
    }


def _previous(
    db: Database, period: Period, policies: Policies, progress: Progress
) -> Evaluation | None:
    before = period.previous()
    first = db.execute("SELECT min(started_epoch) FROM unit_runs").fetchone()[0]
    rolled = db.execute("SELECT min(day) FROM daily_rollups").fetchone()[0]
    has_history = (first is not None and first < period.start_epoch) or (
        rolled is not None and rolled < day_label(period.start_epoch)
    )
    if not has_history:
        return None
    progress(f"evaluating {before.label} for the trend")
    try:
        return evaluate(db, before, policies)
    except EvaluationError:
        return None


def _scope(evaluation: Evaluation) -> dict[str, Any]:
    resources = evaluation.resources
    kinds = Counter((r.service, r.resource_type) for r in resources)
    return {
        "accounts": sorted(
            {r.account_id for r in resources} | {u.account_id for u in evaluation.units}
        ),
        "regions": sorted({r.region for r in resources} | {u.region for u in evaluation.units}),
        "resources": len(resources),
        "by_type": [
            {"service": s, "resource_type": t, "count": n} for (s, t), n in sorted(kinds.items())
        ],
        "units": len(evaluation.units),
        "created": sum(1 for r in resources if r.created_in(evaluation.period)),
        "deleted": sum(1 for r in resources if r.deleted_in(evaluation.period)),
        "tiers": dict(sorted(Counter(r.tier for r in resources).items())),
    }


def _parameters(policies: Policies) -> dict[str, Any]:
    parameters = {f.name: getattr(policies.parameters, f.name) for f in fields(policies.parameters)}
    parameters["restore_cadence_days"] = dict(policies.parameters.restore_cadence_days)
    return {
        **parameters,
        "rpo_seconds": dict(policies.rpo.targets),
        "rto_seconds": dict(policies.rto_seconds),
    }


def _applicable_share(result: ControlResult) -> float | None:
    counts = result.counts
    judged = counts[Status.PASS] + counts[Status.FAIL] + counts[Status.INSUFFICIENT]
    return counts[Status.PASS] / judged if judged else None


def _summary(
    outcomes: list[ClauseOutcome], results: list[ControlResult], previous: Evaluation | None
) -> dict[str, Any]:
    trend = []
    for result in results:
        now = _applicable_share(result)
        before = _applicable_share(previous.result(result.control.control_id)) if previous else None
        trend.append(
            {
                "control_id": result.control.control_id,
                "title": result.control.title,
                "share": now,
                "previous": before,
                "delta": None if now is None or before is None else now - before,
            }
        )
    return {
        "clauses": {s.value: sum(1 for o in outcomes if o.status is s) for s in Status},
        "controls": {s.value: sum(1 for r in results if r.status is s) for s in Status},
        "clause_count": len(outcomes),
        "control_count": len(results),
        "previous_period": previous.period.label if previous else None,
        "trend": trend,
    }


def _clause_row(outcome: ClauseOutcome) -> dict[str, Any]:
    clause = outcome.clause
    return {
        "id": clause.clause_id,
        "title": clause.title,
        "summary": clause.summary,
        "controls": list(clause.controls),
        "status": outcome.status.value,
        "status_label": outcome.status.label,
        "reasons": list(outcome.reasons),
        "control_statuses": [{"id": c, "status": s.value} for c, s in outcome.control_statuses],
    }


def _control_row(result: ControlResult, framework: Framework) -> dict[str, Any]:
    control = result.control
    counts = result.counts
    failing = [f for f in result.findings if f.status in (Status.FAIL, Status.INSUFFICIENT)]
    shown = failing[0] if failing else (result.findings[0] if result.findings else None)
    return {
        "id": control.control_id,
        "title": control.title,
        "parameters": control.parameters,
        "population_kind": control.population,
        "population": len(result.findings),
        "clauses": [c.clause_id for c in framework.clauses if control.control_id in c.controls],
        "counts": {s.value: counts[s] for s in Status},
        "status": result.status.value,
        "status_label": result.status.label,
        "example": shown.facts if shown else "no population in the period",
        "example_subject": shown.subject if shown else "",
    }


def _finding_row(finding: Finding) -> dict[str, Any]:
    return {
        "control_id": finding.control_id,
        "subject": finding.subject,
        "subject_key": finding.subject_key,
        "status": finding.status.value,
        "facts": finding.facts,
        "first_seen": _iso(finding.first_seen),
        "duration_seconds": finding.duration_seconds,
        "open": finding.open,
    }


def _iso(moment: int | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


def _exception_state(finding: Finding) -> str | None:
    """How an exception stands at the period end; None for a finding that is no exception."""
    if finding.status is Status.FAIL:
        return "open" if finding.open else "resolved"
    if finding.status is Status.INSUFFICIENT:
        return "insufficient evidence"
    return None


def exception_rows(results: Iterable[ControlResult]) -> list[dict[str, Any]]:
    """Every failed or insufficient-evidence finding, by control and subject."""
    rows = []
    for result in results:
        for finding in result.findings:
            state = _exception_state(finding)
            if state is None:
                continue
            rows.append(
                {
                    "control_id": finding.control_id,
                    "subject": finding.subject,
                    "subject_key": finding.subject_key,
                    "status": finding.status.value,
                    "first_seen": finding.first_seen,
                    "duration_seconds": finding.duration_seconds,
                    "state": state,
                    "facts": finding.facts,
                }
            )
    return sorted(rows, key=lambda r: (r["control_id"], r["subject"]))


def group_exceptions(
    exceptions: list[dict[str, Any]],
    evidence: Iterable[ResourceEvidence],
    results: Iterable[ControlResult],
) -> dict[str, Any]:
    """The exceptions as the PDF shows them: each in full, but never one row per finding.

    An exception whose control, status and facts are the same for `COMMON_MIN` or more
    subjects (a fleet-wide gap such as "no copy in another account") is one row naming
    every affected subject, or, when they are most of the control's population, every
    subject of the population that is not affected (`inverted`). The rest
    are grouped by subject: one row per resource (or tier, or unit) with all its exceptions.
    Nothing is dropped; per-subject first-seen times of common exceptions are in the JSON
    companion's findings.
    """
    populations = {r.control.control_id: r.findings for r in results}
    resources: dict[str, ResourceEvidence] = {item.key: item for item in evidence}
    alike: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in exceptions:
        alike[(row["control_id"], row["status"], row["facts"])].append(row)
    common = []
    by_subject: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for (control_id, _, facts), rows in alike.items():
        if len(rows) < COMMON_MIN:
            for row in rows:
                by_subject[(row["subject"], row["subject_key"])].append(row)
            continue
        first_seen = [row["first_seen"] for row in rows if row["first_seen"] is not None]
        population = populations[control_id]
        # Most of the population affected: naming the few others is shorter and as exact.
        affected = {row["subject_key"] for row in rows}
        others = [
            {"subject": f.subject, "subject_key": f.subject_key}
            for f in population
            if f.subject_key not in affected
        ]
        listed, inverted = (others, True) if len(others) < len(rows) else (rows, False)
        common.append(
            {
                "control_id": control_id,
                "status": rows[0]["status"],
                "facts": facts,
                "count": len(rows),
                "population": len(population),
                "states": dict(sorted(Counter(row["state"] for row in rows).items())),
                "first_seen": min(first_seen) if first_seen else None,
                "inverted": inverted,
                "places": _places(listed, resources),
            }
        )
    subjects: list[dict[str, Any]] = [
        {
            "subject": subject,
            "tier": _tier(resources.get(key)),
            "exceptions": sorted(own, key=lambda row: row["control_id"]),
        }
        for (subject, key), own in sorted(by_subject.items())
    ]
    return {
        "common": sorted(common, key=lambda g: (g["control_id"], -g["count"], g["facts"])),
        "subjects": subjects,
        "common_min": COMMON_MIN,
    }


def _tier(resource: ResourceEvidence | None) -> str:
    return resource.tier if resource is not None else ""


def _places(
    rows: list[dict[str, Any]], resources: Mapping[str, ResourceEvidence]
) -> list[dict[str, Any]]:
    """Affected subjects by account, region and type, so each place is named once."""
    places: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        resource = resources.get(row["subject_key"])
        if resource is None:  # a tier or a monitoring unit: its label says it all
            places[""].append(row["subject"])
            continue
        where = (
            f"{resource.account_id} {resource.region} {resource.service}/{resource.resource_type}"
        )
        name = resource.name if resource.name and resource.name != resource.resource_id else ""
        places[where].append(f"{resource.resource_id} ({name})" if name else resource.resource_id)
    return [{"place": place, "subjects": sorted(names)} for place, names in sorted(places.items())]


def _retention(evaluation: Evaluation, policies: Policies) -> dict[str, Any]:
    drw03 = {f.subject_key: f for f in evaluation.result("DRW-03").findings}
    drw04 = {f.subject_key: f for f in evaluation.result("DRW-04").findings}
    classes = []
    for name, policy in policies.retention.classes.items():
        members = [r for r in evaluation.resources if r.data_class == name]
        classes.append(
            {
                "name": name,
                "min_days": policy.min_days,
                "max_days": policy.max_days,
                "resources": len(members),
                "under": sum(1 for r in members if drw03[r.key].status is Status.FAIL),
                "over": sum(1 for r in members if drw04[r.key].status is Status.FAIL),
            }
        )
    findings = [
        {"kind": kind, "subject": f.subject, "facts": f.facts}
        for kind, group in (("under minimum", drw03), ("over maximum", drw04))
        for f in group.values()
        if f.status is Status.FAIL
    ]
    return {
        "tag_key": policies.retention.tag_key,
        "default_class": policies.retention.default_class,
        "classes": classes,
        "findings": findings,
    }


SIMULATED_NOTE = "(simulated)"


def _drill_row(drill: DrillRecord) -> dict[str, Any]:
    return {
        "drill_id": drill.drill_id,
        "scenario": drill.scenario,
        "tier": drill.tier,
        "incident_start": drill.incident_start,
        "rto_target_seconds": drill.rto_target_seconds,
        "rto_seconds": drill.measured_rto_seconds,
        "rpo_target_seconds": drill.rpo_target_seconds,
        "rpo_seconds": drill.measured_rpo_seconds,
        "result": drill.result or "unfinished",
        "issues": list(drill.issues),
        "follow_ups": list(drill.follow_ups),
        # Recorded from a sandbox (the demo's drills say so in their notes), not performed.
        "simulated": SIMULATED_NOTE in drill.notes,
    }


def _restores(evaluation: Evaluation) -> dict[str, Any]:
    start, end = evaluation.period.start_epoch, evaluation.period.end_epoch
    tests = {
        t.test_id: t
        for r in evaluation.resources
        for t in r.restores
        if start <= int(t.started.timestamp()) < end
    }
    return {
        "count": len(tests),
        "validated": sum(1 for t in tests.values() if t.validation_status == "SUCCESSFUL"),
        "failed": sum(1 for t in tests.values() if t.status != "COMPLETED"),
    }


def _charts(evaluation: Evaluation, policies: Policies) -> dict[str, Any]:
    days = evaluation.period.day_starts()
    labels = [day_label(d) for d in days]
    shares: list[float | None] = []
    for day in days:
        figures = evaluation.daily_resources.get(day)
        observed = figures.observed_seconds if figures else 0
        shares.append(figures.within_rpo_seconds / observed if figures and observed else None)
    jobs = [evaluation.daily_jobs.get(day, {}) for day in days]
    good = [j.get("COMPLETED", 0) for j in jobs]
    bad = [sum(n for s, n in j.items() if s != "COMPLETED") for j in jobs]
    return {
        "rpo": share_chart(
            "Share of observed resource time within RPO, by day",
            labels,
            shares,
            policies.parameters.rpo_compliance,
        ),
        "jobs": stacked_chart("Backup jobs by day: completed and failed", labels, good, bad),
    }


def _gaps(evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = [
        {
            "unit": unit.label,
            "start": datetime.fromtimestamp(start, UTC),
            "end": datetime.fromtimestamp(end, UTC),
            "duration_seconds": end - start,
            "errors": errors,
        }
        for unit in evaluation.units
        for start, end, errors in unit.gaps
    ]
    return sorted(rows, key=lambda r: (r["start"], r["unit"]))


def companion(context: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON companion: the context without presentation-only parts, times in ISO 8601."""
    document = context["document"]
    data: dict[str, Any] = _jsonable(
        {
            "schema": context["schema"],
            "report_id": document["report_id"],
            "generated_at": document["generated_at"],
            "tool_version": document["version"],
            "framework": context["framework"],
            "period": context["period"],
            "scope": context["scope"],
            "chain_head": context["chain_head"],
            "parameters": context["parameters"],
            "summary": context["summary"],
            "clauses": context["clauses"],
            "controls": context["controls"],
            "findings": context["findings"],
            "retention": context["retention"],
            "drills": context["drills"],
            "restores": context["restores"],
            "monitoring_gaps": context["monitoring_gaps"],
            "evidence_sets": context["evidence_sets"],
        }
    )
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
