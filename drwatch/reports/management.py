"""The management review: backup storage, estimated cost and retention outliers of a month.

`build_context(db, month, ...)` is pure over the history database (read-only, one read
transaction) and returns plain data for `templates/management.html.j2`: figures, top-10
tables and chart geometry (numbers only; the SVG markup is in the template). Sizes of
incremental snapshots are allocated sizes, so figures built on them are labelled upper
bounds; costs are estimates from the price table (exporter/pricing.py); the forecast is a
straight line through the last 90 days, labelled as an estimate.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlite_utils import Database

from drwatch import __version__
from drwatch.core.model import RecoveryState, to_jsonable
from drwatch.core.pricing import PriceTable, storage_items
from drwatch.core.retention import RetentionPolicy
from drwatch.core.units import DAY_SECONDS
from drwatch.history.read import chain_head
from drwatch.history.store import open_reader, resource_key
from drwatch.reports.catalogue import Status
from drwatch.reports.cost import (
    FORECAST_WINDOW_DAYS,
    Forecast,
    Line,
    MonthFigures,
    Outlier,
    ResourceTuple,
    StorageDay,
    StorageHistory,
    daily_totals,
    forecast,
    load_storage,
    month_bounds,
    month_figures,
    months_after,
    potential_saving,
    retention_outliers,
    vault_storage,
)
from drwatch.reports.evaluate import evaluate
from drwatch.reports.evidence import Evaluation, Period, Policies
from drwatch.reports.render import Attachment, RenderResult, render_pdf

TEMPLATE: Final = "management.html.j2"
TOP: Final = 10
_MONTH_RE: Final = re.compile(r"(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])")


class ManagementError(Exception):
    """The period is malformed or the history cannot answer it."""


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def bounds(self) -> tuple[int, int]:
        return month_bounds(self.year, self.month)

    def previous(self) -> Month:
        index = self.year * 12 + self.month - 2
        return Month(index // 12, index % 12 + 1)


def month_of(start: datetime, end: datetime) -> Month:
    """The calendar month [start, end) is; the review compares whole months."""
    month = Month(start.year, start.month)
    if (int(start.timestamp()), int(end.timestamp())) != month.bounds():
        raise ManagementError("the management review covers a calendar month: use --period YYYY-MM")
    return month


def parse_month(text: str) -> Month:
    match = _MONTH_RE.fullmatch(text.strip())
    if match is None:
        raise ManagementError(f"period {text!r}: expected a month such as 2026-10")
    return Month(int(match["year"]), int(match["month"]))


@dataclass(frozen=True, slots=True)
class RetentionFinding:
    """A mechanism keeping points shorter or longer than its data class allows (DRW-03/04)."""

    finding: str  # under | over
    state: RecoveryState
    data_class: str
    configured_days: int
    policy_days: int
    monthly_saving: float  # over-retention: the share of the cost beyond the maximum


# --- building the context -----------------------------------------------------------------


def build_context(
    db: Database,
    month: Month,
    prices: PriceTable,
    *,
    manual_snapshot_max_age_days: int,
    policies: Policies,
    now: datetime,
) -> dict[str, Any]:
    """Everything the template shows, from history alone."""
    start, end = month.bounds()
    window_start = min(month.previous().bounds()[0], end - FORECAST_WINDOW_DAYS * DAY_SECONDS)
    with db.atomic():
        history = load_storage(db, _moment(window_start), _moment(end))
        head = chain_head(db)
        resources = _resource_records(db, window_start, end)
        scope = _scope(db, start, end)
    current = month_figures(history, start, end, prices)
    previous = month_figures(history, *month.previous().bounds(), prices)
    if current.observed_days == 0:
        raise ManagementError(f"{month.label}: the history holds no storage for this month")
    # Over- and under-retention are the controls' own verdicts (DRW-04, DRW-03).
    evaluation = evaluate(db, Period.month(month.label), policies)
    ahead = forecast(history, end, prices, list(months_after(month.year, month.month, 3)))
    last_day = history.days_in(start, end)[-1]
    outliers = retention_outliers(last_day, prices, manual_snapshot_max_age_days)
    findings = retention_findings(last_day, resources, policies.retention, prices)
    controls = _retention_controls(evaluation, findings)
    summary = _summary(current, previous, ahead, outliers, findings, controls)
    return {
        "document": {
            "title": f"Management review {month.label}",
            "report_id": _report_id(month, head.row_hash),
            "generated_at": now,
            "version": __version__,
        },
        "period": {"label": month.label, "start": _moment(start), "end": _moment(end)},
        "scope": scope,
        "chain_head": {"seq": head.seq, "row_hash": head.row_hash},
        "prices": {
            "source": prices.source,
            "as_of": prices.as_of,
            "currency": prices.currency,
            "transfer_per_gib": prices.inter_region_transfer_per_gib,
            "overrides": len(prices.overrides),
        },
        "summary": summary,
        "breakdowns": {
            name: _lines(current.by[name], current.total_cost)
            for name in ("service", "account", "region", "tier", "storage_class", "mechanism")
        },
        "vaults": [
            {
                "vault": v.vault,
                "account_id": v.account_id,
                "region": v.region,
                "locked": v.locked,
                "warm_bytes": warm,
                "cold_bytes": cold,
            }
            for v, warm, cold in vault_storage(history.days_in(start, end))[:TOP]
        ],
        "top_resources": _top_resources(current, previous, history),
        "top_growth": _top_growth(current, previous),
        "outliers": [_outlier_row(o) for o in outliers[:TOP]],
        "outlier_count": len(outliers),
        "retention_findings": [_finding_row(f) for f in findings[:TOP]],
        "retention_finding_count": len(findings),
        "retention_controls": controls[:TOP],
        "retention_control_count": len(controls),
        "manual_snapshot_max_age_days": manual_snapshot_max_age_days,
        "forecast": _forecast_rows(ahead),
        "charts": {
            "trend": trend_chart(history, window_start, end, prices),
            "cost_by_service": bar_chart(
                [(line["label"], line["cost"]) for line in _lines(current.by["service"], 1)]
            ),
            "outliers": bar_chart([(_outlier_label(o), o.monthly_saving) for o in outliers[:TOP]]),
        },
    }


def _moment(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def _report_id(month: Month, head_hash: str) -> str:
    return f"MGMT-{month.label}-{head_hash[:8]}"


def _scope(db: Database, start: int, end: int) -> dict[str, list[str]]:
    rows = list(
        db.query(
            "SELECT DISTINCT collector, account_id, region FROM unit_runs "
            "WHERE started_epoch >= ? AND started_epoch < ?",
            [start, end],
        )
    )
    return {
        "accounts": sorted({r["account_id"] for r in rows}),
        "regions": sorted({r["region"] for r in rows}),
        "collectors": sorted({r["collector"] for r in rows}),
    }


def _resource_records(db: Database, start: int, end: int) -> dict[ResourceTuple, dict[str, Any]]:
    """Each resource's latest stored record in the window (tier, tags)."""
    records: dict[ResourceTuple, dict[str, Any]] = {}
    rows = db.query(
        "SELECT k.key, s.value FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE k.kind = 'resource' AND s.first_seen < ? AND s.last_seen >= ? "
        "ORDER BY s.first_seen, s.seq",
        [end, start],
    )
    for row in rows:
        account, region, service, rtype, rid = json.loads(row["key"])
        records[(account, region, service, rtype, rid)] = json.loads(row["value"])
    return records


def _summary(
    current: MonthFigures,
    previous: MonthFigures,
    ahead: Forecast | None,
    outliers: Sequence[Outlier],
    findings: Sequence[RetentionFinding],
    controls: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    change = current.total_cost - previous.total_cost if previous.observed_days else None
    top_service = current.by["service"][0] if current.by["service"] else None
    return {
        "total_cost": current.total_cost,
        "total_bytes": current.total_bytes,
        "upper_bound_cost": current.upper_bound_cost,
        "upper_bound_share": current.upper_bound_cost / current.total_cost
        if current.total_cost
        else 0.0,
        "transfer_bytes": current.transfer_bytes,
        "transfer_cost": current.transfer_cost,
        "observed_days": current.observed_days,
        "calendar_days": current.calendar_days,
        "previous_cost": previous.total_cost if previous.observed_days else None,
        "previous_observed_days": previous.observed_days,
        "change": change,
        "change_share": change / previous.total_cost
        if change is not None and previous.total_cost
        else None,
        "top_service": None
        if top_service is None
        else {"name": top_service.key[0], "cost": top_service.cost},
        "forecast_next": ahead.months[0].cost if ahead else None,
        "outliers": len(outliers),
        "potential_saving": potential_saving(outliers)
        + sum(f.monthly_saving for f in findings if f.finding == "over"),
        "under_retention": sum(1 for c in controls if c["control_id"] == "DRW-03"),
        "over_retention": sum(1 for c in controls if c["control_id"] == "DRW-04"),
    }


def _lines(lines: Sequence[Line], total: float) -> list[dict[str, Any]]:
    return [
        {
            "label": " / ".join(line.key),
            "bytes": line.bytes,
            "cost": line.cost,
            "share": line.cost / total if total else 0.0,
            "upper_bound": line.upper_bound,
        }
        for line in lines
    ]


def _top_resources(
    current: MonthFigures, previous: MonthFigures, history: StorageHistory
) -> list[dict[str, Any]]:
    before = {line.key: line for line in previous.by["resource"]}
    rows = []
    for line in current.by["resource"][:TOP]:
        account, region, service, rtype, rid = line.key
        rows.append(
            {
                "resource": rid,
                "service": f"{service}/{rtype}",
                "account_id": account,
                "region": region,
                "tier": history.tiers.get((account, region, service, rtype, rid), "unknown"),
                "bytes": line.bytes,
                "cost": line.cost,
                "previous_cost": before[line.key].cost if line.key in before else None,
                "upper_bound": line.upper_bound,
            }
        )
    return rows


def _top_growth(current: MonthFigures, previous: MonthFigures) -> list[dict[str, Any]]:
    before = {line.key: line for line in previous.by["resource"]}
    grown = []
    for line in current.by["resource"]:
        old = before.get(line.key)
        delta = line.cost - (old.cost if old else 0.0)
        if delta > 0:
            grown.append((delta, line, old))
    grown.sort(key=lambda item: (-item[0], item[1].key))
    return [
        {
            "resource": line.key[4],
            "service": f"{line.key[2]}/{line.key[3]}",
            "account_id": line.key[0],
            "region": line.key[1],
            "bytes_change": line.bytes - (old.bytes if old else 0.0),
            "cost_change": delta,
            "new": old is None,
            "upper_bound": line.upper_bound,
        }
        for delta, line, old in grown[:TOP]
    ]


def _outlier_label(outlier: Outlier) -> str:
    return f"{outlier.ref.resource_id}: {outlier.kind.replace('_', ' ')}"


def _outlier_row(outlier: Outlier) -> dict[str, Any]:
    return {
        "kind": outlier.kind.replace("_", " "),
        "resource": outlier.ref.resource_id,
        "service": f"{outlier.ref.service}/{outlier.ref.resource_type}",
        "mechanism": outlier.mechanism,
        "location": f"{outlier.location_account_id} {outlier.location_region}",
        "points": outlier.points,
        "bytes": outlier.bytes,
        "oldest_point": outlier.oldest_point,
        "monthly_saving": outlier.monthly_saving,
        "upper_bound": outlier.upper_bound,
    }


def _retention_controls(
    evaluation: Evaluation, findings: Sequence[RetentionFinding]
) -> list[dict[str, Any]]:
    """Failed DRW-03 (under) and DRW-04 (over) findings of the month, with the estimated
    monthly saving of trimming each over-retained resource to its class maximum."""
    savings: dict[str, float] = defaultdict(float)
    for finding in findings:
        if finding.finding == "over":
            savings[resource_key(finding.state.ref)] += finding.monthly_saving
    rows = [
        {
            "control_id": control_id,
            "finding": "under" if control_id == "DRW-03" else "over",
            "subject": item.subject,
            "facts": item.facts,
            "first_seen": None if item.first_seen is None else _moment(item.first_seen),
            "open": item.open,
            "monthly_saving": savings.get(item.subject_key, 0.0)
            if control_id == "DRW-04"
            else None,
        }
        for control_id in ("DRW-03", "DRW-04")
        for item in evaluation.result(control_id).findings
        if item.status == Status.FAIL
    ]
    return sorted(
        rows, key=lambda r: (-(r["monthly_saving"] or 0.0), r["control_id"], r["subject"])
    )


def _finding_row(finding: RetentionFinding) -> dict[str, Any]:
    ref = finding.state.ref
    return {
        "finding": finding.finding,
        "resource": ref.resource_id,
        "service": f"{ref.service}/{ref.resource_type}",
        "mechanism": finding.state.mechanism.value,
        "data_class": finding.data_class,
        "configured_days": finding.configured_days,
        "policy_days": finding.policy_days,
        "monthly_saving": finding.monthly_saving,
    }


def _forecast_rows(ahead: Forecast | None) -> dict[str, Any] | None:
    if ahead is None:
        return None
    return {
        "observed_days": ahead.observed_days,
        "window_start": _moment(ahead.window_start),
        "window_end": _moment(ahead.window_end),
        "slope_per_month": ahead.cost_per_day_slope * 30,
        "months": [
            {"label": _moment(m.start).strftime("%Y-%m"), "cost": m.cost, "bytes": m.bytes}
            for m in ahead.months
        ],
    }


# --- retention against the data classes (DRW-03 minimum, DRW-04 maximum) --------------------


def retention_findings(
    day: StorageDay,
    resources: Mapping[ResourceTuple, Mapping[str, Any]],
    retention: RetentionPolicy,
    prices: PriceTable,
) -> list[RetentionFinding]:
    """Local mechanisms whose configured retention is below the class minimum or above its
    maximum. Over-retention saves the share of the cost beyond the maximum, assuming points
    spread evenly over the retention (an estimate)."""
    findings = []
    for state in day.states:
        if state.is_copy or not state.enabled:
            continue
        ref = state.ref
        record = resources.get(
            (ref.account_id, ref.region, ref.service, ref.resource_type, ref.resource_id), {}
        )
        tags = {str(k): str(v) for k, v in record.get("tags", [])}
        data_class = retention.class_for(ref.service, ref.resource_type, tags)
        policy = retention.classes.get(data_class)
        if policy is None:
            continue
        if state.retention_min_days is not None and state.retention_min_days < policy.min_days:
            findings.append(
                RetentionFinding(
                    "under", state, data_class, state.retention_min_days, policy.min_days, 0.0
                )
            )
        longest = state.retention_max_days
        if policy.max_days is not None and longest is not None and longest > policy.max_days:
            cost = sum(item.monthly_cost(prices) for item in storage_items([state], day.vaults))
            saving = cost * (longest - policy.max_days) / longest
            findings.append(
                RetentionFinding("over", state, data_class, longest, policy.max_days, saving)
            )
    return sorted(findings, key=lambda f: (-f.monthly_saving, f.finding, f.state.ref))


# --- charts: geometry only, the SVG is in templates/management_charts.html.j2 ----------------

CHART_WIDTH: Final = 640
CHART_HEIGHT: Final = 234
PLOT_LEFT: Final = 70
PLOT_TOP: Final = 24
PLOT_WIDTH: Final = CHART_WIDTH - PLOT_LEFT - 10
PLOT_HEIGHT: Final = CHART_HEIGHT - PLOT_TOP - 30
BAR_LABEL_WIDTH: Final = 200
BAR_HEIGHT: Final = 16
BAR_GAP: Final = 6


def trend_chart(
    history: StorageHistory, start: int, end: int, prices: PriceTable
) -> dict[str, Any]:
    """Daily stored bytes, total and per storage class, over the forecast window."""
    totals = daily_totals(history, start, end, prices)
    top = max((b for _, b, _, _ in totals), default=0.0) or 1.0
    span = max(end - start - DAY_SECONDS, DAY_SECONDS)

    def point(day: int, value: float) -> str:
        x = PLOT_LEFT + (day - start) / span * PLOT_WIDTH
        y = PLOT_TOP + PLOT_HEIGHT - value / top * PLOT_HEIGHT
        return f"{x:.1f},{y:.1f}"

    classes = sorted({c for _, _, _, by_class in totals for c in by_class})
    series = [{"name": "total", "points": " ".join(point(d, b) for d, b, _, _ in totals)}]
    series += [
        {
            "name": storage_class,
            "points": " ".join(point(d, by.get(storage_class, 0.0)) for d, _, _, by in totals),
        }
        for storage_class in classes
    ]
    ticks = [
        {"value": top * i / 4, "y": PLOT_TOP + PLOT_HEIGHT - PLOT_HEIGHT * i / 4} for i in range(5)
    ]
    labels = [
        {"x": PLOT_LEFT + (d - start) / span * PLOT_WIDTH, "day": _moment(d)}
        for d in (start, start + (end - start) // 2 // DAY_SECONDS * DAY_SECONDS, end - DAY_SECONDS)
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": PLOT_LEFT,
        "top": PLOT_TOP,
        "plot_width": PLOT_WIDTH,
        "plot_height": PLOT_HEIGHT,
        "series": series,
        "ticks": ticks,
        "labels": labels,
        "days": len(totals),
    }


def bar_chart(values: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """Horizontal bars, largest value = full width."""
    top = max((v for _, v in values), default=0.0) or 1.0
    width = CHART_WIDTH - BAR_LABEL_WIDTH - 80
    bars = [
        {
            "label": label,
            "value": value,
            "y": i * (BAR_HEIGHT + BAR_GAP),
            "width": max(1.0, value / top * width),
        }
        for i, (label, value) in enumerate(values)
    ]
    return {
        "width": CHART_WIDTH,
        "height": max(1, len(bars)) * (BAR_HEIGHT + BAR_GAP),
        "label_width": BAR_LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
        "bars": bars,
    }


# --- the whole report ----------------------------------------------------------------------


def write_report(
    history_path: Path,
    month: Month,
    out: Path,
    *,
    prices: PriceTable,
    manual_snapshot_max_age_days: int,
    policies: Policies,
    now: datetime,
    json_out: Path | None = None,
) -> RenderResult:
    """Renders the PDF with the JSON companion embedded (and written to `json_out` if given)."""
    db = open_reader(history_path)
    try:
        context = build_context(
            db,
            month,
            prices,
            manual_snapshot_max_age_days=manual_snapshot_max_age_days,
            policies=policies,
            now=now,
        )
    finally:
        db.close()
    companion = companion_json(context)
    if json_out is not None:
        json_out.write_bytes(companion)
    return render_pdf(
        TEMPLATE,
        context,
        out,
        attachments=(
            Attachment(
                name=f"{out.stem}.json",
                data=companion,
                description="Figures of this management review (machine-readable)",
            ),
        ),
    )


def companion_json(context: Mapping[str, Any]) -> bytes:
    """The figures as JSON (charts left out: they are drawings of the same figures)."""
    data = {k: v for k, v in context.items() if k != "charts"}
    text = json.dumps(to_jsonable(data), indent=1, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode()
