"""The demo's simulated history (the same backfill `drwatch demo` writes) renders a
management review whose storage matches the fleet plan's snapshot sizes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest

from drwatch.cli.report import policies_from
from drwatch.config.price_table import load_price_table
from drwatch.history.store import HistoryStore
from drwatch.reports.management import parse_month, write_report
from drwatch.sandbox.backfill import BackfillSpec, backfill_results
from drwatch.sandbox.demo import sandbox_config
from drwatch.sandbox.fleet import FleetSpec, plan_fleet

END = datetime(2026, 11, 1, tzinfo=UTC)


def test_demo_history_renders_the_management_review(tmp_path: Path) -> None:
    spec = FleetSpec(seed=7, rds_instances=4, aurora_clusters=2, now=END)
    plan = plan_fleet(spec)
    history = tmp_path / "demo-history.db"
    # Six-hourly polls keep the test fast; `drwatch demo` polls hourly.
    backfill = BackfillSpec(end=END, days=62, interval=timedelta(hours=6))
    with HistoryStore(history) as store:
        for result in backfill_results(plan, backfill):
            store.ingest(result)
    # A 30-day minimum: the plan's databases keeping 7 or 14 days fall short of it.
    retention = {"classes": {"default": {"min_days": 30}}}
    config = sandbox_config("http://127.0.0.1:1", spec, retention=retention)
    companion = tmp_path / "demo.json"
    result = write_report(
        history,
        parse_month("2026-10"),
        tmp_path / "demo.pdf",
        prices=load_price_table(config.pricing),
        manual_snapshot_max_age_days=config.pricing.manual_snapshot_max_age_days,
        policies=policies_from(config),
        now=END,
        json_out=companion,
    )
    summary = " ".join(pypdf.PdfReader(result.path).pages[1].extract_text().split())
    assert "Executive summary" in summary
    assert "rds" in summary
    data = json.loads(companion.read_text())
    assert data["summary"]["observed_days"] == 31
    # The backfill replays every collector's records: the review prices every service the
    # exporter prices (not RDS alone), its total the sum of its per-service lines.
    services = {row["label"]: row["cost"] for row in data["breakdowns"]["service"]}
    assert {"rds", "dynamodb", "ec2", "elasticache"} <= set(services)
    assert data["summary"]["total_cost"] == pytest.approx(sum(services.values()))
    assert f"${data['summary']['total_cost']:,.2f}" in summary
    # Under-retention: PITR and snapshots of each database keeping less than 30 days.
    short = [db for db in plan.databases if 0 < db.backup_retention_days < 30]
    assert short
    # Every service is in the review now: the databases' two findings are among them.
    rds_rows = [r for r in data["retention_findings"] if r["service"].startswith("rds/")]
    assert len(rds_rows) == 2 * len(short)
    assert {row["finding"] for row in data["retention_findings"]} == {"under"}
    assert data["summary"]["under_retention"] >= len(short)
    assert {row["control_id"] for row in data["retention_controls"]} <= {"DRW-03", "DRW-04"}
