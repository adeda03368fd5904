"""`drwatch demo` renders the three framework reports for the last full month of its
backfilled history (the same backfill the demo writes: the sandbox estate replayed through
the collectors' own observe, polled six-hourly), over every service the exporter polls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf

from drwatch.cli.report import last_full_month, render_demo_reports
from drwatch.history.store import HistoryStore
from drwatch.sandbox.backfill import BackfillSpec, backfill_results, plan_incidents
from drwatch.sandbox.fleet import FleetSpec, plan_fleet

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def test_last_full_month_of_the_backfill() -> None:
    month = last_full_month(NOW - timedelta(days=90), NOW)
    assert month is not None
    assert month.label == "2026-10"
    # October must be whole: from 2026-09-30 12:00 it is, from 2026-10-02 12:00 it is not.
    assert last_full_month(NOW - timedelta(days=52), NOW) == month
    assert last_full_month(NOW - timedelta(days=50), NOW) is None


def test_demo_renders_soc2_pci_and_gdpr_for_the_last_full_month(tmp_path: Path) -> None:
    plan = plan_fleet(FleetSpec(seed=7, rds_instances=4, aurora_clusters=2, now=NOW))
    backfill = BackfillSpec(end=NOW, days=62, interval=timedelta(hours=6))
    history = tmp_path / "drwatch-demo-history.db"
    with HistoryStore(history) as store:
        for result in backfill_results(plan, backfill):
            store.ingest(result)
    said: list[str] = []
    paths = render_demo_reports(history, backfill.start, NOW, said.append)
    assert [p.name for p in paths] == [
        "drwatch-demo-soc2-2026-10.pdf",
        "drwatch-demo-pci-dss-2026-10.pdf",
        "drwatch-demo-gdpr-2026-10.pdf",
        "drwatch-demo-management-2026-10.pdf",
    ]
    assert "rendering the gdpr report for 2026-10" in said
    for path in paths:
        cover = " ".join(pypdf.PdfReader(path).pages[0].extract_text().split())
        assert "2026-10-01 00:00 UTC to 2026-11-01 00:00 UTC" in cover
    # The backfill's failed-backup streak (40 to 35 days before NOW) is in October.
    soc2 = json.loads(paths[0].with_suffix(".json").read_text())
    failed_jobs = [
        f for f in soc2["findings"] if f["control_id"] == "DRW-09" and f["status"] == "fail"
    ]
    # DRW-09 is judged on AWS Backup jobs (ListBackupJobs, as the backup collector reads
    # them): the streak's database, plus the backup fleet's own failing tables.
    streak = plan_incidents(plan, backfill).failed_backups.rsplit(":", 1)[-1]
    (finding,) = [f for f in failed_jobs if f["subject"].endswith(f" {streak}")]
    assert "failed from 2026-10-1" in finding["facts"]
    assert "(ACCESS_DENIED)" in finding["facts"]
    assert_estate_wide(soc2)


def assert_estate_wide(soc2: dict[str, Any]) -> None:
    """Subjects span the services the collectors poll, and the replication flows."""
    keys = [json.loads(k) for f in soc2["findings"] if (k := f["subject_key"]).startswith("[")]
    resources = {k[2] for k in keys if len(k) == 5}
    assert {"rds", "dynamodb", "ec2", "elasticache", "s3"} <= resources
    flows = {k[0] for k in keys if isinstance(k[1], str) and k[1].startswith("[")}
    assert {"s3", "msk_replicator", "rds_cross_region_backup"} <= flows
    units = {k[0] for k in keys if len(k) == 3 and str(k[1]).isdigit()}
    assert {"backup", "kafka"} <= units  # AWS Backup and MSK: 7 services in all
    assert len(resources | {"backup", "kafka"}) >= 6
