"""The DynamoDB collector: pure mapping, the rate limiter, and values against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drwatch.config import TierConfig, parse_config
from drwatch.core.model import Mechanism
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.dynamodb import DynamoDbRecords, RateLimiter, TableRecord, observe
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stores_fleet import StoresPlan, plan_stores, stores_spec_for
from tests.conftest import NOW, OperationRecorder, sandbox_config, sandbox_exporter
from tests.test_metrics import samples, value

GOLDEN = Path(__file__).parent / "golden" / "dynamodb.prom"


def tiers() -> TierConfig:
    config = parse_config({"accounts": [{"id": "111111111111"}], "regions": ["eu-west-1"]})
    return config.tiers


def context() -> ObserveContext:
    return ObserveContext("111111111111", "eu-west-1", NOW, tiers())


def table(name: str, pitr: dict[str, object], tags: dict[str, str] | None = None) -> TableRecord:
    arn = f"arn:aws:dynamodb:eu-west-1:111111111111:table/{name}"
    return TableRecord(name, arn, tags or {}, {"PointInTimeRecoveryDescription": pitr})


PITR_ON = {
    "PointInTimeRecoveryStatus": "ENABLED",
    "RecoveryPeriodInDays": 7,
    "EarliestRestorableDateTime": NOW - timedelta(days=7),
    "LatestRestorableDateTime": NOW - timedelta(minutes=3),
}
PITR_OFF = {"PointInTimeRecoveryStatus": "DISABLED"}


def backup(
    name: str, age: timedelta, status: str = "AVAILABLE", size: int = 100
) -> dict[str, object]:
    return {
        "TableName": name,
        "BackupCreationDateTime": NOW - age,
        "BackupStatus": status,
        "BackupType": "USER",
        "BackupSizeBytes": size,
    }


def test_pitr_window_tier_and_on_demand_backups() -> None:
    records = DynamoDbRecords(
        tables=(table("orders", PITR_ON, {"dr-tier": "premium"}),),
        backups=(
            backup("orders", timedelta(days=2), size=10),
            backup("orders", timedelta(days=9), size=20),
            backup("orders", timedelta(minutes=1), status="CREATING", size=0),
            backup("other-table", timedelta(days=1)),
        ),
    )
    observed = observe(records, context())
    (resource,) = observed.resources
    assert (resource.ref.service, resource.ref.resource_type, resource.tier) == (
        "dynamodb",
        "table",
        "premium",
    )
    pitr, on_demand = observed.recovery_states
    assert pitr.mechanism is Mechanism.PITR
    assert pitr.enabled
    assert pitr.newest_point == NOW - timedelta(minutes=3)
    assert pitr.oldest_point == NOW - timedelta(days=7)
    assert (pitr.retention_min_days, pitr.retention_max_days) == (7, 7)
    assert on_demand.mechanism is Mechanism.MANUAL_SNAPSHOT
    assert on_demand.enabled
    assert on_demand.point_count == 2  # the CREATING one is not restorable yet
    assert on_demand.size_bytes == 30
    assert on_demand.newest_point == NOW - timedelta(days=2)
    assert on_demand.oldest_point == NOW - timedelta(days=9)
    assert on_demand.never_expire_count == 2


def test_pitr_off_and_no_backups_is_unprotected() -> None:
    observed = observe(DynamoDbRecords(tables=(table("logs", PITR_OFF),)), context())
    (state,) = observed.recovery_states
    assert state.mechanism is Mechanism.PITR
    assert not state.enabled
    assert state.newest_point is None
    assert observed.resources[0].tier == "standard"  # the default tier


def test_backups_of_aws_backup_are_not_on_demand_points() -> None:
    aws_backup = {**backup("logs", timedelta(hours=1)), "BackupType": "AWS_BACKUP"}
    observed = observe(
        DynamoDbRecords(tables=(table("logs", PITR_OFF),), backups=(aws_backup,)), context()
    )
    assert [s.mechanism for s in observed.recovery_states] == [Mechanism.PITR]


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_allows_a_burst_then_paces_at_the_rate() -> None:
    fake = FakeTime()
    limiter = RateLimiter(rate=10, burst=10, clock=fake.clock, sleep=fake.sleep)
    for _ in range(30):
        limiter.acquire()
    assert len(fake.slept) == 20
    assert fake.slept == pytest.approx([0.1] * 20)
    assert fake.now == pytest.approx(102.0)  # 30 calls at 10/s after a burst of 10
    fake.now += 10  # idle: the burst refills
    before = len(fake.slept)
    for _ in range(10):
        limiter.acquire()
    assert len(fake.slept) == before


# --- against the sandbox -----------------------------------------------------------------


@pytest.fixture(scope="module")
def stores(fleet: FleetPlan) -> StoresPlan:
    return plan_stores(stores_spec_for(fleet))  # deterministic: what seed_fleet seeded


def dynamodb_only(
    sandbox: Sandbox, plan: FleetPlan, recorder: OperationRecorder | None = None
) -> str:
    collectors = {c.name: {"enabled": c.name == "dynamodb", "interval": 60} for c in COLLECTORS}
    exporter = sandbox_exporter(sandbox_config(sandbox, plan, collectors=collectors), recorder)
    exporter.poller.run_round()
    return exporter.metrics.render().decode()


@pytest.fixture(scope="module")
def text(sandbox: Sandbox, fleet: FleetPlan) -> str:
    return dynamodb_only(sandbox, fleet)


def info_key(labels: dict[str, str], tier: str, name: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**labels, "tier": tier, "name": name}.items()))


def epoch(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


def test_every_table_is_exported_with_its_tier_and_points(text: str, stores: StoresPlan) -> None:
    infos = samples(text, "drwatch_resource_info")
    assert len(infos) == len(stores.tables)
    scenarios = {t.scenario for t in stores.tables}
    assert scenarios == {"pitr", "on_demand_stale", "unprotected", "aws_backup_only"}
    for planned in stores.tables:
        labels = {
            "account_id": planned.account_id,
            "region": planned.region,
            "service": "dynamodb",
            "resource_type": "table",
            "resource": planned.name,
        }
        tier = dict(planned.tags).get("dr-tier", "standard")
        assert samples(text, "drwatch_resource_info").get(info_key(labels, tier, planned.name)) == 1
        pitr_on = planned.pitr_window is not None
        assert value(text, "drwatch_recovery_mechanism_enabled", mechanism="pitr", **labels) == (
            pitr_on
        )
        available = [b for b in planned.backups if b.status == "AVAILABLE"]
        newest = []
        if planned.pitr_window is not None:
            latest = epoch(planned.pitr_window[1])
            newest.append(latest)
            assert (
                value(text, "drwatch_recovery_point_timestamp_seconds", mechanism="pitr", **labels)
                == latest
            )
        if planned.backups:
            on_demand = {"mechanism": "manual_snapshot", **labels}
            assert value(text, "drwatch_recovery_points", **on_demand) == len(available)
            assert value(text, "drwatch_recovery_point_bytes", **on_demand) == sum(
                b.size_bytes for b in available
            )
            newest.extend(epoch(b.created) for b in available)
        rpo = samples(text, "drwatch_resource_recovery_point_timestamp_seconds")
        found = [v for k, v in rpo.items() if set(labels.items()) <= set(k)]
        assert found == ([max(newest)] if newest else [])


def test_unprotected_tables_have_no_enabled_mechanism(text: str, stores: StoresPlan) -> None:
    enabled = samples(text, "drwatch_recovery_mechanism_enabled")
    protected: dict[tuple[str, str, str], float] = {}
    for key, flag in enabled.items():
        labels = dict(key)
        ref = (labels["account_id"], labels["region"], labels["resource"])
        protected[ref] = max(flag, protected.get(ref, 0.0))
    expected = {
        (t.account_id, t.region, t.name)
        for t in stores.tables
        if t.scenario in ("unprotected", "aws_backup_only")
    }
    assert {ref for ref, flag in protected.items() if flag == 0} == expected


def test_calls_per_poll_are_per_table_plus_two_lists(
    sandbox: Sandbox, fleet: FleetPlan, stores: StoresPlan
) -> None:
    collectors = {c.name: {"enabled": c.name == "dynamodb", "interval": 60} for c in COLLECTORS}
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet, collectors=collectors))
    exporter.poller.run_round()
    units = len(fleet.spec.accounts) * len(fleet.spec.regions)
    calls: dict[str, int] = {}
    for status in exporter.poller.snapshot():
        assert status.last_run is not None
        for operation, count in status.last_run.api_calls.items():
            if not operation.startswith("sts:"):
                calls[operation] = calls.get(operation, 0) + count
    assert calls == {
        "dynamodb:ListTables": units,
        "dynamodb:ListTagsOfResource": len(stores.tables),
        "dynamodb:DescribeContinuousBackups": len(stores.tables),
        "dynamodb:ListBackups": units,
    }


def test_golden_dynamodb_exposition(text: str, update_golden: bool) -> None:
    lines = [line for line in text.splitlines() if not line.startswith("drwatch_build_info{")]
    body = "\n".join(lines) + "\n"
    if update_golden:
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "run pytest --update-golden and review the diff"
