"""Drill and restore-test cadence metrics from the history, and the demo's drills."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from drwatch.cli.drill import record_demo_drills, with_drill_metrics
from drwatch.config import parse_config
from drwatch.core.model import DrillStatus
from drwatch.exporter.metrics.drill import DrillMetrics
from drwatch.exporter.service import build_exporter
from drwatch.history.chain import verify_chain
from drwatch.history.drill_status import load_restore_tests, read_drill_status
from drwatch.history.drills import load_drills
from drwatch.history.store import open_reader
from drwatch.sandbox.backfill import BackfillSpec, demo_drill_rows
from drwatch.sandbox.fleet import FleetSpec, plan_fleet

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ALL = (-(2**40), 2**40)


@pytest.fixture(scope="module")
def demo_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "history.db"
    rows = demo_drill_rows(plan_fleet(FleetSpec(now=NOW)), BackfillSpec(end=NOW, days=90))
    assert record_demo_drills(path, rows) == len(rows)
    return path


def samples(metrics: DrillMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_demo_history_has_a_drill_per_scenario_one_missing_its_rto(demo_history: Path) -> None:
    db = open_reader(demo_history)
    drills = load_drills(db, *ALL)
    assert {d.source for d in drills} == {"import"}  # restore tests are not DR drills
    assert sorted(d.scenario for d in drills) == [
        "data_corruption",
        "database_failure",
        "ransomware",
        "region_failure",
        "service_failure",
    ]
    missed = [d for d in drills if d.rto_met is False]
    assert [(d.scenario, d.measured_rto_seconds, d.rto_target_seconds) for d in missed] == [
        ("region_failure", 55 * 60, 15 * 60)
    ]
    assert missed[0].result == "fail"
    # In the previous calendar month: the period the demo's monthly reports cover.
    assert missed[0].incident_start == datetime(2026, 10, 15, 10, 0, tzinfo=UTC)
    assert all(d.result == "pass" for d in drills if d not in missed)
    assert all(NOW - timedelta(days=90) <= d.incident_start < NOW for d in drills)
    tests = load_restore_tests(db, *ALL)
    assert len(tests) == 13  # weekly over 90 days
    assert {(t.resource_class, t.source, t.succeeded) for t in tests} == {
        ("database", "drill-runner", True)
    }
    assert verify_chain(db).ok


def test_metrics_from_the_demo_history(demo_history: Path) -> None:
    values = samples(DrillMetrics(lambda: read_drill_status(demo_history)))
    region = (("scenario", "region_failure"),)
    assert values[("drwatch_drill_last_passed", region)] == 0
    assert values[("drwatch_drill_last_rto_seconds", region)] == 55 * 60
    assert values[("drwatch_drill_last_rto_target_seconds", region)] == 15 * 60
    assert ("drwatch_drill_last_success_timestamp_seconds", region) not in values
    corruption = (("scenario", "data_corruption"),)
    assert values[("drwatch_drill_last_passed", corruption)] == 1
    assert values[("drwatch_drill_last_rpo_seconds", corruption)] == 12 * 60
    # Weekly restore tests are restore tests (DRW-11), not DR drills (DRW-13): the newest
    # database_failure drill is the one 62 days ago, not last week's restore test.
    database = (("scenario", "database_failure"),)
    newest_drill = (NOW - timedelta(days=62)).replace(hour=10, minute=0)
    assert values[("drwatch_drill_last_timestamp_seconds", database)] == newest_drill.timestamp()
    (cls,) = [k for k in values if k[0] == "drwatch_restore_test_last_success_timestamp_seconds"]
    assert dict(cls[1])["resource_class"] == "database"
    assert NOW.timestamp() - values[cls] < 7 * 86400
    assert values[("drwatch_restore_test_cadence_seconds", (("resource_class", "cache"),))] == (
        30 * 86400
    )
    assert values[("drwatch_drill_cadence_seconds", ())] == 92 * 86400
    assert values[("drwatch_drill_status_read_success", ())] == 1


def test_exposition_passes_promtool(demo_history: Path) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DrillMetrics(lambda: read_drill_status(demo_history)))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: make system-deps installs it"
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry).decode(),
        text=True,
        capture_output=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_reads_at_most_once_per_refresh_and_keeps_the_last_good_status_on_failure(
    demo_history: Path, tmp_path: Path
) -> None:
    now = [1000.0]
    reads: list[str] = []
    path = [demo_history]

    def read() -> DrillStatus:
        reads.append("read")
        return read_drill_status(path[0])

    metrics = DrillMetrics(read, monotonic=lambda: now[0], refresh_seconds=60)
    good = samples(metrics)
    samples(metrics)
    assert len(reads) == 1  # the second scrape used the cached status
    path[0] = tmp_path / "missing.db"
    now[0] += 60
    failed = samples(metrics)
    assert len(reads) == 2
    assert failed[("drwatch_drill_status_read_success", ())] == 0
    key = ("drwatch_drill_last_passed", (("scenario", "region_failure"),))
    assert failed[key] == good[key] == 0  # last good status still served


def test_the_exporter_serves_drill_metrics_next_to_its_own(
    demo_history: Path, tmp_path: Path
) -> None:
    config = parse_config(
        {
            "accounts": [{"id": "111111111111"}],
            "regions": ["eu-west-1"],
            "controls": {"restore_cadence": {"database": "3d"}, "drill_cadence": "30d"},
        }
    )
    exporter = build_exporter(config)
    try:
        with_drill_metrics(exporter, demo_history)
        body = exporter.metrics.render().decode()
        missing = build_exporter(config)
        with_drill_metrics(missing, tmp_path / "no-history.db")
        missing_body = missing.metrics.render().decode()
        missing.close()
    finally:
        exporter.close()
    assert 'drwatch_drill_last_passed{scenario="region_failure"} 0.0' in body
    assert "drwatch_build_info{" in body
    assert "drwatch_drill_status_read_success 1.0" in body
    # Cadences follow the config's controls, as the reports do.
    assert 'drwatch_restore_test_cadence_seconds{resource_class="database"} 259200.0' in body
    assert "drwatch_drill_cadence_seconds 2.592e+06" in body
    assert "drwatch_drill_status_read_success 0.0" in missing_body
