"""Storage and estimated cost: a fleet of known sizes written to a real history store, and
every figure compared with the value computed by hand from the shipped price table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drwatch.config import PriceOverride, PricingConfig, parse_config
from drwatch.config.price_table import load_price_table
from drwatch.core.model import (
    Mechanism,
    Observations,
    RecoveryState,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
    VaultState,
)
from drwatch.core.pricing import PriceTable, storage_items
from drwatch.core.units import GIB
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.poller import UnitSchedule, UnitStatus
from drwatch.history.compact import compact
from drwatch.history.figures import RpoPolicy
from drwatch.history.store import HistoryStore, open_reader
from drwatch.reports.cost import (
    StorageHistory,
    forecast,
    load_storage,
    month_bounds,
    month_figures,
    months_after,
    potential_saving,
    retention_outliers,
)
from tests.test_metrics import samples

A = "111111111111"
WEST, CENTRAL = "eu-west-1", "eu-central-1"
OCT_START, NOV_START = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
SEP_START = datetime(2026, 9, 1, tzinfo=UTC)

# Hand-picked prices from drwatch/config/prices/aws-storage-prices.yml (asserted below, so a change
# of the table shows up here rather than as a mysterious difference).
RDS_WARM, EC2_WARM_CENTRAL, DDB_WARM, DDB_COLD, TRANSFER = 0.095, 0.054, 0.10, 0.03, 0.02


def ref(service: str, rtype: str, rid: str, region: str = WEST) -> ResourceRef:
    return ResourceRef(A, region, service, rtype, rid)


DB1 = ref("rds", "db_instance", "db1")
VOL1 = ref("ec2", "volume", "vol-1", CENTRAL)
TABLE = ref("dynamodb", "table", "orders")


def fleet(day: datetime) -> list[UnitResult]:
    """Four units; the cross-region copy of the table grows from 30 to 40 GiB on Oct 16."""
    copy_gib = 40 if day >= datetime(2026, 10, 16, tzinfo=UTC) else 30
    at = day.replace(hour=12)
    rds = Observations(
        resources=(Resource(DB1, "db1", "premium"),),
        recovery_states=(
            RecoveryState(DB1, Mechanism.SNAPSHOT, A, WEST, True, point_count=7,
                          size_bytes=100 * GIB),
            RecoveryState(DB1, Mechanism.MANUAL_SNAPSHOT, A, WEST, True, point_count=4,
                          never_expire_count=4, size_bytes=20 * GIB,
                          oldest_point=NOV_START - timedelta(days=200),
                          newest_point=NOV_START - timedelta(days=10)),
        ),
    )  # fmt: skip
    ebs = Observations(
        resources=(Resource(VOL1, "vol-1", "standard"),),
        recovery_states=(
            RecoveryState(VOL1, Mechanism.SNAPSHOT, A, CENTRAL, True, point_count=3,
                          size_bytes=50 * GIB),
        ),
    )  # fmt: skip
    backup_west = Observations(
        recovery_states=(
            RecoveryState(TABLE, Mechanism.AWS_BACKUP, A, WEST, True, point_count=3,
                          size_bytes=30 * GIB),
        ),
        vault_states=(VaultState(A, WEST, "main", "BACKUP_VAULT", "AWS_OWNED_KMS_KEY", False,
                                 warm_bytes=20 * GIB, cold_bytes=10 * GIB),),
    )  # fmt: skip
    backup_central = Observations(
        recovery_states=(
            RecoveryState(TABLE, Mechanism.AWS_BACKUP, A, CENTRAL, True, point_count=3,
                          size_bytes=copy_gib * GIB),
        ),
        vault_states=(VaultState(A, CENTRAL, "dr", "BACKUP_VAULT", "AWS_OWNED_KMS_KEY", True,
                                 warm_bytes=copy_gib * GIB),),
    )  # fmt: skip
    units = [
        (UnitKey("rds", A, WEST), rds),
        (UnitKey("ebs", A, CENTRAL), ebs),
        (UnitKey("backup", A, WEST), backup_west),
        (UnitKey("backup", A, CENTRAL), backup_central),
    ]
    return [UnitResult(UnitRun(unit, at, 1.0, True), obs) for unit, obs in units]


@pytest.fixture(scope="module")
def history_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cost") / "history.db"
    with HistoryStore(path) as store:
        day = SEP_START
        while day < NOV_START:
            for result in fleet(day):
                store.ingest(result)
            day += timedelta(days=1)
    return path


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return load_price_table()


@pytest.fixture(scope="module")
def history(history_path: Path) -> Iterator[StorageHistory]:
    db = open_reader(history_path)
    try:
        yield load_storage(db, SEP_START, NOV_START)
    finally:
        db.close()


def test_the_hand_picked_prices_are_the_shipped_ones(prices: PriceTable) -> None:
    assert prices.price("rds", "warm", WEST).per_gib_month == RDS_WARM
    assert prices.price("ec2", "warm", CENTRAL).per_gib_month == EC2_WARM_CENTRAL
    assert prices.price("dynamodb", "warm", WEST).per_gib_month == DDB_WARM
    assert prices.price("dynamodb", "cold", WEST).per_gib_month == DDB_COLD
    assert prices.inter_region_transfer_per_gib == TRANSFER
    assert prices.source
    assert prices.as_of == "2026-11-21"


def test_october_cost_equals_the_hand_computed_value(
    history: StorageHistory, prices: PriceTable
) -> None:
    start, end = month_bounds(2026, 10)
    october = month_figures(history, start, end, prices)
    copy = (15 * 30 + 16 * 40) / 31 * DDB_WARM  # 15 days at 30 GiB, 16 at 40 GiB
    by_service = {line.key[0]: line.cost for line in october.by["service"]}
    assert by_service["rds"] == pytest.approx(100 * RDS_WARM + 20 * RDS_WARM)
    assert by_service["ec2"] == pytest.approx(50 * EC2_WARM_CENTRAL)
    # AWS Backup: the west vault is 2/3 warm, 1/3 cold; the copy's vault is all warm.
    assert by_service["dynamodb"] == pytest.approx(20 * DDB_WARM + 10 * DDB_COLD + copy)
    assert october.total_cost == pytest.approx(
        120 * RDS_WARM + 50 * EC2_WARM_CENTRAL + 20 * DDB_WARM + 10 * DDB_COLD + copy
    )
    assert october.observed_days == october.calendar_days == 31
    # Incremental snapshots (RDS, EBS) are priced on allocated sizes: upper bounds.
    assert october.upper_bound_cost == pytest.approx(120 * RDS_WARM + 50 * EC2_WARM_CENTRAL)
    by_class = {line.key[0]: line.bytes for line in october.by["storage_class"]}
    assert by_class["cold"] == pytest.approx(10 * GIB)
    by_region = {line.key[0]: line.cost for line in october.by["region"]}
    assert by_region[CENTRAL] == pytest.approx(50 * EC2_WARM_CENTRAL + copy)
    by_tier = {line.key[0]: line.cost for line in october.by["tier"]}
    assert by_tier["premium"] == pytest.approx(120 * RDS_WARM)
    # The table has no resource record in these units: its tier is unknown, not invented.
    assert "unknown" in by_tier


def test_transfer_is_what_the_copy_grew_by(history: StorageHistory, prices: PriceTable) -> None:
    october = month_figures(history, *month_bounds(2026, 10), prices)
    assert october.transfer_bytes == 10 * GIB
    assert october.transfer_cost == pytest.approx(10 * TRANSFER)


def test_month_over_month(history: StorageHistory, prices: PriceTable) -> None:
    september = month_figures(history, *month_bounds(2026, 9), prices)
    october = month_figures(history, *month_bounds(2026, 10), prices)
    assert september.total_cost == pytest.approx(
        120 * RDS_WARM + 50 * EC2_WARM_CENTRAL + 20 * DDB_WARM + 10 * DDB_COLD + 30 * DDB_WARM
    )
    assert october.total_cost - september.total_cost == pytest.approx((16 * 10) / 31 * DDB_WARM)


def test_retention_outliers_and_what_removing_them_saves(
    history: StorageHistory, prices: PriceTable
) -> None:
    last_day = history.days_in(*month_bounds(2026, 10))[-1]
    outliers = retention_outliers(last_day, prices, max_manual_age_days=90)
    kinds = {o.kind: o for o in outliers}
    assert set(kinds) == {"never_expires", "old_manual_snapshot"}
    assert kinds["never_expires"].monthly_saving == pytest.approx(20 * RDS_WARM)
    # Points spread from 200 to 10 days old: (200 - 90) / (200 - 10) of them are > 90 days.
    old = kinds["old_manual_snapshot"]
    assert old.bytes == pytest.approx(20 * GIB * 110 / 190)
    assert old.monthly_saving == pytest.approx(20 * RDS_WARM * 110 / 190)
    assert old.points == 2
    assert old.upper_bound
    assert potential_saving(outliers) == pytest.approx(20 * RDS_WARM)
    assert retention_outliers(last_day, prices, max_manual_age_days=365) == [kinds["never_expires"]]


def test_config_overrides_beat_the_table(history: StorageHistory) -> None:
    overrides = PricingConfig(
        overrides=(PriceOverride("rds", "warm", "*", 0.05),),
        inter_region_transfer_per_gib=0.09,
    )
    prices = load_price_table(overrides)
    october = month_figures(history, *month_bounds(2026, 10), prices)
    by_service = {line.key[0]: line.cost for line in october.by["service"]}
    assert by_service["rds"] == pytest.approx(120 * 0.05)
    assert october.transfer_cost == pytest.approx(10 * 0.09)
    assert prices.price("rds", "warm", WEST).origin == "config override"


def test_forecast_extends_a_linear_growth(tmp_path: Path, prices: PriceTable) -> None:
    window_start = NOV_START - timedelta(days=90)
    volume = ref("ec2", "volume", "vol-grow", "us-east-1")
    unit = UnitKey("ebs", A, "us-east-1")
    with HistoryStore(tmp_path / "h.db") as store:
        for d in range(90):  # 10 GiB on the window's first day, one more every day
            state = RecoveryState(
                volume, Mechanism.SNAPSHOT, A, "us-east-1", True, point_count=1,
                size_bytes=(10 + d) * GIB,
            )  # fmt: skip
            run = UnitRun(unit, window_start + timedelta(days=d, hours=12), 1.0, True)
            store.ingest(UnitResult(run, Observations(recovery_states=(state,))))
    db = open_reader(tmp_path / "h.db")
    history = load_storage(db, window_start, NOV_START)
    db.close()
    result = forecast(history, int(NOV_START.timestamp()), prices, list(months_after(2026, 10, 3)))
    assert result is not None
    # The mean day of November is day 104.5 of the window: 114.5 GiB; December 145, January 176.
    assert [m.bytes / GIB for m in result.months] == pytest.approx([114.5, 145, 176])
    assert [m.cost for m in result.months] == pytest.approx([114.5 * 0.05, 145 * 0.05, 176 * 0.05])
    assert result.cost_per_day_slope == pytest.approx(0.05)
    short = load_storage(open_reader(tmp_path / "h.db"), NOV_START - timedelta(days=5), NOV_START)
    assert forecast(short, int(NOV_START.timestamp()), prices, []) is None


def test_metrics_export_storage_and_cost(prices: PriceTable) -> None:
    config = parse_config({"accounts": [{"id": A}], "regions": [WEST]})
    statuses = []
    for result in fleet(datetime(2026, 10, 20, tzinfo=UTC)):
        schedule = UnitSchedule(result.run.unit, 300, 900, 300)
        statuses.append(
            UnitStatus(schedule, result.run, result.run.started, result.observations, 1, 0, {})
        )
    text = MetricsView(lambda: statuses, ApiStats(), config.tiers, prices).render().decode()
    cost = samples(text, "drwatch_backup_storage_estimated_monthly_cost_dollars")
    storage = samples(text, "drwatch_backup_storage_bytes")

    def key(
        region: str, service: str, mechanism: str, storage_class: str
    ) -> tuple[tuple[str, str], ...]:
        labels = {"account_id": A, "region": region, "service": service,
                  "mechanism": mechanism, "storage_class": storage_class}  # fmt: skip
        return tuple(sorted(labels.items()))

    assert cost[key(WEST, "rds", "snapshot", "warm")] == pytest.approx(100 * RDS_WARM)
    assert cost[key(CENTRAL, "ec2", "snapshot", "warm")] == pytest.approx(50 * EC2_WARM_CENTRAL)
    assert cost[key(WEST, "dynamodb", "aws_backup", "cold")] == pytest.approx(10 * DDB_COLD)
    assert cost[key(CENTRAL, "dynamodb", "aws_backup", "warm")] == pytest.approx(40 * DDB_WARM)
    assert storage[key(WEST, "dynamodb", "aws_backup", "warm")] == 20 * GIB
    assert sum(cost.values()) == pytest.approx(
        120 * RDS_WARM + 50 * EC2_WARM_CENTRAL + 20 * DDB_WARM + 10 * DDB_COLD + 40 * DDB_WARM
    )


def test_aws_backup_split_adds_up_to_the_reported_size() -> None:
    state = RecoveryState(TABLE, Mechanism.AWS_BACKUP, A, WEST, True, size_bytes=1001)
    vault = VaultState(A, WEST, "v", "BACKUP_VAULT", "", False, warm_bytes=2, cold_bytes=1)
    items = storage_items([state], [vault])
    assert {i.storage_class: i.bytes for i in items} == {"warm": 668, "cold": 333}
    ebs = RecoveryState(VOL1, Mechanism.AWS_BACKUP, A, CENTRAL, True, size_bytes=10)
    vault = VaultState(A, CENTRAL, "v", "BACKUP_VAULT", "", False, cold_bytes=5)
    assert [i.storage_class for i in storage_items([ebs], [vault])] == ["archive"]


def test_compacted_days_are_priced_from_the_rollups(history_path: Path, tmp_path: Path) -> None:
    """Rollups keep each resource's largest stored bytes a day, without mechanism or class:
    priced as warm storage in the resource's region, flagged as upper bounds. Storage of a
    resource with no resource record (here the table, seen only by AWS Backup) is not in them.
    """
    copy = tmp_path / "compacted.db"
    copy.write_bytes(history_path.read_bytes())
    with HistoryStore(copy) as store:
        compact(
            store.db,
            now=datetime(2026, 11, 21, tzinfo=UTC),
            raw_days=35,
            retention_days=400,
            policy=RpoPolicy({}, 3600),
        )
    db = open_reader(copy)
    try:
        history = load_storage(db, SEP_START, NOV_START)
    finally:
        db.close()
    september = month_figures(history, *month_bounds(2026, 9), load_price_table())
    assert september.observed_days == 30
    assert {line.key for line in september.by["mechanism"]} == {("rolled_up",)}
    assert september.total_cost == pytest.approx(120 * RDS_WARM + 50 * EC2_WARM_CENTRAL)
    assert september.upper_bound_cost == september.total_cost


def test_archived_ebs_snapshots_are_priced_as_archive(prices: PriceTable) -> None:
    # 4 snapshots of a 100 GiB volume, one in the archive tier.
    state = RecoveryState(
        VOL1, Mechanism.SNAPSHOT, A, CENTRAL, True, point_count=4, archived_count=1,
        size_bytes=400 * GIB,
    )  # fmt: skip
    items = storage_items([state], [])
    assert {i.storage_class: i.bytes for i in items} == {"warm": 300 * GIB, "archive": 100 * GIB}
    assert sum(i.monthly_cost(prices) for i in items) == pytest.approx(
        300 * EC2_WARM_CENTRAL + 100 * 0.0125
    )
