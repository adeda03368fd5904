"""The EBS collector: pure mapping and values against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drwatch.config import parse_config
from drwatch.core.model import Mechanism
from drwatch.core.units import GIB
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.ebs import EbsRecords, observe
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stores_fleet import StoresPlan, plan_stores, stores_spec_for
from tests.conftest import NOW, sandbox_config, sandbox_exporter
from tests.test_metrics import samples, value

GOLDEN = Path(__file__).parent / "golden" / "ebs.prom"


def context() -> ObserveContext:
    config = parse_config({"accounts": [{"id": "111111111111"}], "regions": ["eu-west-1"]})
    return ObserveContext("111111111111", "eu-west-1", NOW, config.tiers)


def snapshot(
    volume: str, age: timedelta, state: str = "completed", **extra: object
) -> dict[str, object]:
    return {
        "VolumeId": volume,
        "StartTime": NOW - age,
        "State": state,
        "VolumeSize": 10,
        "Encrypted": True,
        "StorageTier": "standard",
        **extra,
    }


def test_completed_archived_failed_and_aws_backup_snapshots() -> None:
    volume = {
        "VolumeId": "vol-1",
        "Tags": [{"Key": "Name", "Value": "db-data"}, {"Key": "dr-tier", "Value": "basic"}],
    }
    records = EbsRecords(
        volumes=(volume, {"VolumeId": "vol-2"}),
        snapshots=(
            snapshot("vol-1", timedelta(minutes=30)),
            snapshot("vol-1", timedelta(days=200), StorageTier="archive"),
            snapshot("vol-1", timedelta(minutes=5), state="error"),
            snapshot("vol-1", timedelta(minutes=1), state="pending"),
            snapshot(
                "vol-1",
                timedelta(minutes=2),
                Tags=[{"Key": "aws:backup:source-resource", "Value": "arn"}],
            ),
            snapshot("vol-gone", timedelta(hours=1)),  # of a deleted volume: no resource
        ),
    )
    observed = observe(records, context())
    first, second = observed.resources
    assert (first.ref.service, first.ref.resource_type, first.ref.resource_id) == (
        "ec2",
        "volume",
        "vol-1",
    )
    assert (first.name, first.tier) == ("db-data", "basic")
    assert first.arn == "arn:aws:ec2:eu-west-1:111111111111:volume/vol-1"
    state, unprotected = observed.recovery_states
    assert state.mechanism is Mechanism.SNAPSHOT
    assert state.enabled
    assert state.newest_point == NOW - timedelta(minutes=30)  # not AWS Backup's, not pending
    assert state.archived_count == 1
    assert state.oldest_point == NOW - timedelta(days=200)  # archived points count
    assert (state.point_count, state.failed_count, state.size_bytes) == (2, 1, 20 * GIB)
    assert state.encrypted is True
    assert second.name == "vol-2"
    assert not unprotected.enabled
    assert unprotected.newest_point is None


@pytest.fixture(scope="module")
def stores(fleet: FleetPlan) -> StoresPlan:
    return plan_stores(stores_spec_for(fleet))


@pytest.fixture(scope="module")
def ebs_run(sandbox: Sandbox, fleet: FleetPlan) -> tuple[str, dict[str, int]]:
    collectors = {c.name: {"enabled": c.name == "ebs", "interval": 60} for c in COLLECTORS}
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet, collectors=collectors))
    exporter.poller.run_round()
    calls: dict[str, int] = {}
    for status in exporter.poller.snapshot():
        assert status.last_run is not None
        for operation, count in status.last_run.api_calls.items():
            if not operation.startswith("sts:"):
                calls[operation] = calls.get(operation, 0) + count
    return exporter.metrics.render().decode(), calls


def info_key(labels: dict[str, str], tier: str, name: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**labels, "tier": tier, "name": name}.items()))


def epoch(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


def test_every_volume_matches_the_seeded_fleet(
    ebs_run: tuple[str, dict[str, int]], stores: StoresPlan
) -> None:
    text, _ = ebs_run
    assert len(samples(text, "drwatch_resource_info")) == len(stores.volumes)
    assert {v.scenario for v in stores.volumes} == {"healthy", "stale", "failing", "unprotected"}
    for planned in stores.volumes:
        labels = {
            "account_id": planned.account_id,
            "region": planned.region,
            "service": "ec2",
            "resource_type": "volume",
            "resource": planned.volume_id,
        }
        tier = dict(planned.tags).get("dr-tier", "standard")
        assert (
            samples(text, "drwatch_resource_info").get(info_key(labels, tier, planned.volume_id))
            == 1
        )
        own = [s for s in planned.snapshots if not s.aws_backup]
        completed = [s for s in own if s.state == "completed"]
        mechanism = {"mechanism": "snapshot", **labels}
        assert value(text, "drwatch_recovery_mechanism_enabled", **mechanism) == bool(own)
        assert value(text, "drwatch_recovery_points", **mechanism) == len(completed)
        assert value(text, "drwatch_recovery_points_failed", **mechanism) == sum(
            1 for s in own if s.state == "error"
        )
        assert value(text, "drwatch_recovery_point_bytes", **mechanism) == (
            len(completed) * planned.size_gib * GIB
        )
        rpo = samples(text, "drwatch_resource_recovery_point_timestamp_seconds")
        found = [v for k, v in rpo.items() if set(labels.items()) <= set(k)]
        assert found == ([max(epoch(s.created) for s in completed)] if completed else [])
    archived = [s for v in stores.volumes for s in v.snapshots if s.storage_tier == "archive"]
    assert archived, "the fleet has archived snapshots"


def test_two_list_calls_per_unit(ebs_run: tuple[str, dict[str, int]], fleet: FleetPlan) -> None:
    _, calls = ebs_run
    units = len(fleet.spec.accounts) * len(fleet.spec.regions)
    assert calls == {"ec2:DescribeVolumes": units, "ec2:DescribeSnapshots": units}


def test_golden_ebs_exposition(ebs_run: tuple[str, dict[str, int]], update_golden: bool) -> None:
    lines = [line for line in ebs_run[0].splitlines() if not line.startswith("drwatch_build_info{")]
    body = "\n".join(lines) + "\n"
    if update_golden:
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "run pytest --update-golden and review the diff"
