"""The AWS Backup collector against the sandbox: counts match the seeded fleet exactly."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drwatch.exporter.collectors import COLLECTORS
from drwatch.sandbox.backup_fleet import (
    BackupFleetPlan,
    BackupUnitPlan,
    plan_backup_fleet,
    spec_for,
)
from drwatch.sandbox.backup_records import SandboxJob, SandboxRecoveryPoint
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW, sandbox_config, sandbox_exporter
from tests.test_metrics import samples, value

GOLDEN = Path(__file__).parent / "golden" / "backup.prom"
MOTO_NOW = NOW.astimezone(UTC).replace(tzinfo=None)
WINDOW_START = MOTO_NOW - timedelta(hours=24)


def backup_only(sandbox: Sandbox, plan: FleetPlan) -> str:
    collectors = {c.name: {"enabled": c.name == "backup", "interval": 60} for c in COLLECTORS}
    exporter = sandbox_exporter(sandbox_config(sandbox, plan, collectors=collectors))
    exporter.poller.run_round()
    return exporter.metrics.render().decode()


@pytest.fixture(scope="module")
def backup_plan(fleet: FleetPlan) -> BackupFleetPlan:
    return plan_backup_fleet(spec_for(fleet))  # deterministic: what seed_fleet seeded


@pytest.fixture(scope="module")
def text(sandbox: Sandbox, fleet: FleetPlan) -> str:
    return backup_only(sandbox, fleet)


def finished_in_window(job: SandboxJob) -> bool:
    return WINDOW_START < job.completed <= MOTO_NOW


def visible(point: SandboxRecoveryPoint) -> bool:
    return point.completed <= MOTO_NOW


def epoch(naive: datetime) -> float:
    return naive.replace(tzinfo=UTC).timestamp()


def resource_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def unit_labels(unit: BackupUnitPlan) -> dict[str, str]:
    return {"account_id": unit.account_id, "region": unit.region}


def test_job_counts_by_vault_type_state_and_category_match_the_fleet(
    text: str, backup_plan: BackupFleetPlan
) -> None:
    expected: Counter[tuple[tuple[str, str], ...]] = Counter()
    for unit in backup_plan.units:
        for job in unit.jobs:
            if finished_in_window(job):
                labels = {
                    **unit_labels(unit),
                    "kind": job.kind,
                    "vault": job.vault_arn.rsplit(":", 1)[-1],
                    "resource_type": job.resource_type,
                    "state": job.final_state,
                    "message_category": "" if job.kind == "restore" else job.message_category,
                }
                expected[tuple(sorted(labels.items()))] += 1
    assert samples(text, "drwatch_backup_jobs") == {k: float(v) for k, v in expected.items()}
    states = {dict(k)["state"] for k in expected}
    assert {"COMPLETED", "FAILED", "PARTIAL"} <= states
    issues = [
        k
        for k in expected
        if dict(k)["state"] == "COMPLETED" and dict(k)["message_category"] not in ("SUCCESS", "")
    ]
    assert issues, "the fleet shows a job completed with issues"


def test_summary_counts_include_running_jobs(text: str, backup_plan: BackupFleetPlan) -> None:
    expected: Counter[tuple[tuple[str, str], ...]] = Counter()
    for unit in backup_plan.units:
        for job in unit.jobs:
            if job.kind != "backup" or not WINDOW_START < job.created <= MOTO_NOW:
                continue
            running = job.completed > MOTO_NOW
            labels = {
                **unit_labels(unit),
                "resource_type": job.resource_type,
                "state": "RUNNING" if running else job.final_state,
                "message_category": "SUCCESS" if running else job.message_category,
            }
            expected[tuple(sorted(labels.items()))] += 1
    found = samples(text, "drwatch_backup_jobs_created_last_day")
    assert found == {k: float(v) for k, v in expected.items()}
    assert any(dict(k)["state"] == "RUNNING" for k in found)


def test_newest_completed_point_per_resource_ignores_partial_points(
    text: str, backup_plan: BackupFleetPlan
) -> None:
    newest = samples(text, "drwatch_recovery_point_timestamp_seconds")
    count = 0
    for unit in backup_plan.units:
        for resource in unit.resources:
            points = [
                p
                for p in unit.points
                if p.resource_arn == resource.arn and not p.source_vault_arn and visible(p)
            ]
            completed = [p for p in points if p.status == "COMPLETED"]
            labels = {
                **unit_labels(unit),
                "resource": resource_name(resource.arn),
                "mechanism": "aws_backup",
            }
            assert value(text, "drwatch_recovery_points", **labels) == len(completed)
            assert value(text, "drwatch_recovery_points_failed", **labels) == len(points) - len(
                completed
            )
            assert value(text, "drwatch_recovery_point_timestamp_seconds", **labels) == max(
                epoch(p.created) for p in completed
            )
            count += 1
    assert len([k for k in newest if dict(k)["mechanism"] == "aws_backup"]) == count
    # Every aws_backup point feeds the per-resource RPO series, once per resource.
    rpo = samples(text, "drwatch_resource_recovery_point_timestamp_seconds")
    assert len(rpo) == count


def test_copies_are_reported_by_the_destination_region(
    text: str, backup_plan: BackupFleetPlan
) -> None:
    expected: dict[tuple[str, str, str], int] = Counter()
    for unit in backup_plan.units:
        for point in unit.points:
            if point.source_vault_arn and visible(point):
                expected[(resource_name(point.resource_arn), unit.account_id, unit.region)] += 1
    found = {
        (dict(k)["resource"], dict(k)["destination_account_id"], dict(k)["destination_region"]): v
        for k, v in samples(text, "drwatch_copy_recovery_points").items()
    }
    assert expected
    assert found == {k: float(v) for k, v in expected.items()}
    jobs = samples(text, "drwatch_backup_copy_job_last_success_timestamp_seconds")
    assert {(dict(k)["resource"], dict(k)["destination_region"]) for k in jobs} == {
        (r, region) for r, _, region in expected
    }


def test_vaults_lock_and_point_counts(text: str, backup_plan: BackupFleetPlan) -> None:
    for unit in backup_plan.units:
        by_vault = Counter(
            p.vault_name for p in unit.points if p.status == "COMPLETED" and visible(p)
        )
        for vault in ("Default", "prod", "dr"):
            labels = {**unit_labels(unit), "vault": vault}
            assert value(text, "drwatch_backup_vault_locked", **labels) == (vault != "Default")
            assert value(
                text, "drwatch_backup_vault_recovery_points", storage_class="warm", **labels
            ) == by_vault.get(vault, 0)
    unlocked = [k for k, v in samples(text, "drwatch_backup_vault_locked").items() if v == 0]
    assert len(unlocked) == len(backup_plan.units)


def test_coverage_restore_tests_and_plans(text: str, backup_plan: BackupFleetPlan) -> None:
    selected = samples(text, "drwatch_backup_resource_selected")
    expected = {
        (resource_name(r.arn), r.account_id, r.region): float(r.scenario != "unselected")
        for unit in backup_plan.units
        for r in unit.resources
        if any(p.resource_arn == r.arn and not p.source_vault_arn for p in unit.points)
    }
    found = {
        (dict(k)["resource"], dict(k)["account_id"], dict(k)["region"]): v
        for k, v in selected.items()
    }
    assert found == expected
    assert 0.0 in found.values()
    durations = samples(text, "drwatch_backup_restore_job_last_duration_seconds")
    restores = [job for unit in backup_plan.units for job in unit.jobs if job.kind == "restore"]
    assert sorted(durations.values()) == sorted(
        (j.completed - j.created).total_seconds() for j in restores
    )
    assert {dict(k)["restore_testing_plan"] for k in durations} == {"weekly_restore_test"}
    validated = samples(text, "drwatch_backup_restore_job_last_validated")
    assert sorted(validated.values()) == sorted(
        float(j.validation_status == "SUCCESSFUL") for j in restores
    )
    rules = samples(text, "drwatch_backup_plan_rule_retention_seconds")
    assert list(set(rules.values())) == [35 * 86400.0]
    assert len(rules) == len(backup_plan.units)
    copies = samples(text, "drwatch_backup_plan_rule_copy_action")
    assert len(copies) == len(backup_plan.units)


def test_golden_backup_exposition(text: str, update_golden: bool) -> None:
    lines = [line for line in text.splitlines() if not line.startswith("drwatch_build_info{")]
    body = "\n".join(lines) + "\n"
    if update_golden:
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "run pytest --update-golden and review the diff"
