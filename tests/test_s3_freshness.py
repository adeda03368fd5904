"""The s3_freshness collector against the sandbox: the newest file under each configured
prefix is the target's recovery point; an empty prefix has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from drwatch.exporter.collectors import COLLECTORS
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.s3_fleet import EXPORT_OBJECT_BYTES, S3FleetPlan, plan_s3_fleet
from drwatch.sandbox.server import Sandbox
from tests.conftest import sandbox_config, sandbox_exporter
from tests.test_metrics import samples, value

GOLDEN = Path(__file__).parent / "golden" / "s3_freshness.prom"


@pytest.fixture(scope="module")
def s3_plan(fleet: FleetPlan) -> S3FleetPlan:
    return plan_s3_fleet(fleet.spec.now, fleet.spec.accounts, fleet.spec.regions)


@pytest.fixture(scope="module")
def text(sandbox: Sandbox, fleet: FleetPlan) -> str:
    collectors = {c.name: {"enabled": c.name == "s3_freshness", "interval": 60} for c in COLLECTORS}
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet, collectors=collectors))
    exporter.poller.run_round()
    return exporter.metrics.render().decode()


def test_every_target_is_a_resource_with_its_tier(text: str, s3_plan: S3FleetPlan) -> None:
    for target in s3_plan.freshness_targets:
        labels = {
            "account_id": target.account_id,
            "region": target.region,
            "service": "s3",
            "resource_type": "backup_file_set",
            "resource": f"{target.bucket}/{target.prefix}",
        }
        assert value(text, "drwatch_resource_info", tier=target.tier, **labels) == 1
        points = samples(text, "drwatch_resource_recovery_point_timestamp_seconds")
        found = [v for k, v in points.items() if set(labels.items()) <= set(k)]
        if target.newest is None:
            assert found == [], "an empty prefix has no recovery point"
            assert value(text, "drwatch_recovery_points", mechanism="export", **labels) == 0
            continue
        assert found == [target.newest.timestamp()]
        assert (
            value(text, "drwatch_recovery_points", mechanism="export", **labels) == target.objects
        )
        assert value(text, "drwatch_backup_file_newest_bytes", **labels) == EXPORT_OBJECT_BYTES
        assert value(text, "drwatch_backup_file_expected_interval_seconds", **labels) == 1800
    assert len(samples(text, "drwatch_resource_info")) == len(s3_plan.freshness_targets)


def test_one_list_call_per_target_of_under_1000_objects(text: str, s3_plan: S3FleetPlan) -> None:
    calls = value(text, "drwatch_aws_api_requests_total", operation="ListObjectsV2")
    assert calls == len(s3_plan.freshness_targets)


def test_golden_s3_freshness_exposition(text: str, update_golden: bool) -> None:
    lines = [line for line in text.splitlines() if not line.startswith("drwatch_build_info{")]
    body = "\n".join(lines) + "\n"
    if update_golden:
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "run pytest --update-golden and review the diff"
