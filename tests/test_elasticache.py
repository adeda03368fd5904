"""The ElastiCache collector: pure mapping and values against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drwatch.config import parse_config
from drwatch.core.model import Mechanism, ReplicationState
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.elasticache import ElastiCacheRecords, observe, parse_size
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stores_fleet import StoresPlan, plan_stores, stores_spec_for
from tests.conftest import NOW, sandbox_config, sandbox_exporter
from tests.test_metrics import samples, value

GOLDEN = Path(__file__).parent / "golden" / "elasticache.prom"

ACCOUNT, REGION = "111111111111", "eu-west-1"


def context() -> ObserveContext:
    config = parse_config({"accounts": [{"id": ACCOUNT}], "regions": [REGION]})
    return ObserveContext(ACCOUNT, REGION, NOW, config.tiers)


def arn(kind: str, name: str) -> str:
    return f"arn:aws:elasticache:{REGION}:{ACCOUNT}:{kind}:{name}"


def node_snapshot(
    group: str, age: timedelta, source: str = "automated", status: str = "available"
) -> dict[str, object]:
    return {
        "ReplicationGroupId": group,
        "SnapshotSource": source,
        "SnapshotStatus": status,
        "NodeSnapshots": [
            {"CacheSize": "512 MB", "SnapshotCreateTime": NOW - age - timedelta(minutes=2)},
            {"CacheSize": "1 GB", "SnapshotCreateTime": NOW - age},
        ],
    }


def test_groups_clusters_and_serverless_caches_with_their_snapshots() -> None:
    records = ElastiCacheRecords(
        replication_groups=(
            {
                "ReplicationGroupId": "sessions",
                "ARN": arn("replicationgroup", "sessions"),
                "SnapshotRetentionLimit": 7,
            },
            {
                "ReplicationGroupId": "scratch",
                "ARN": arn("replicationgroup", "scratch"),
                "SnapshotRetentionLimit": 0,
            },
        ),
        cache_clusters=({"CacheClusterId": "memo", "ARN": arn("cluster", "memo")},),
        serverless_caches=(
            {
                "ServerlessCacheName": "api",
                "ARN": arn("serverlesscache", "api"),
                "SnapshotRetentionLimit": 1,
            },
        ),
        snapshots=(
            node_snapshot("sessions", timedelta(hours=3)),
            node_snapshot("sessions", timedelta(days=1)),
            node_snapshot("sessions", timedelta(minutes=30), status="failed"),
            node_snapshot("sessions", timedelta(days=40), source="manual"),
        ),
        serverless_snapshots=(
            {
                "ServerlessCacheConfiguration": {"ServerlessCacheName": "api"},
                "SnapshotType": "automated",
                "Status": "available",
                "CreateTime": NOW - timedelta(hours=5),
                "BytesUsedForCache": "2048",
            },
        ),
        tags={arn("replicationgroup", "sessions"): {"dr-tier": "premium"}},
    )
    observed = observe(records, context())
    kinds = [(r.ref.resource_type, r.ref.resource_id, r.tier) for r in observed.resources]
    assert kinds == [
        ("replication_group", "sessions", "premium"),
        ("replication_group", "scratch", "standard"),
        ("cache_cluster", "memo", "standard"),
        ("serverless_cache", "api", "standard"),
    ]
    states = {(s.ref.resource_id, s.mechanism): s for s in observed.recovery_states}
    automatic = states[("sessions", Mechanism.SNAPSHOT)]
    assert automatic.enabled
    assert automatic.newest_point == NOW - timedelta(hours=3)  # newest node snapshot
    assert automatic.oldest_point == NOW - timedelta(days=1)
    assert (automatic.point_count, automatic.failed_count) == (2, 1)
    assert automatic.size_bytes == 2 * (512 + 1024) * 1024**2
    assert automatic.retention_min_days == 7
    manual = states[("sessions", Mechanism.MANUAL_SNAPSHOT)]
    assert (manual.enabled, manual.point_count, manual.never_expire_count) == (False, 1, 1)
    off = states[("scratch", Mechanism.SNAPSHOT)]
    assert not off.enabled
    assert off.newest_point is None
    assert not states[("memo", Mechanism.SNAPSHOT)].enabled
    serverless = states[("api", Mechanism.SNAPSHOT)]
    assert serverless.enabled
    assert serverless.newest_point == NOW - timedelta(hours=5)
    assert serverless.size_bytes == 2048


def test_global_datastore_primary_replicates_to_each_secondary() -> None:
    group = {
        "GlobalReplicationGroupId": "ldgnf-global",
        "Members": [
            {
                "ReplicationGroupId": "sessions",
                "ReplicationGroupRegion": REGION,
                "Role": "PRIMARY",
                "Status": "associated",
            },
            {
                "ReplicationGroupId": "sessions-us",
                "ReplicationGroupRegion": "us-east-1",
                "Role": "SECONDARY",
                "Status": "associated",
            },
        ],
    }
    (state,) = observe(ElastiCacheRecords(global_groups=(group,)), context()).replication_states
    assert (state.kind, state.source.resource_id, state.destination_region) == (
        "elasticache_global",
        "sessions",
        "us-east-1",
    )
    assert state.destination == "sessions-us"
    assert state.latency_seconds is None
    # The secondary region's unit reports nothing: the primary's unit owns the series.
    secondary = ObserveContext(ACCOUNT, "us-east-1", NOW, context().tiers)
    assert observe(ElastiCacheRecords(global_groups=(group,)), secondary).replication_states == ()


def test_sizes_as_elasticache_writes_them() -> None:
    assert parse_size("512 MB") == 512 * 1024**2
    assert parse_size("1.5 GB") == int(1.5 * 1024**3)
    assert parse_size("123") == 123
    assert parse_size(None) == 0


# --- against the sandbox -----------------------------------------------------------------


@pytest.fixture(scope="module")
def stores(fleet: FleetPlan) -> StoresPlan:
    return plan_stores(stores_spec_for(fleet))


@pytest.fixture(scope="module")
def run(sandbox: Sandbox, fleet: FleetPlan) -> tuple[str, list[ReplicationState]]:
    collectors = {c.name: {"enabled": c.name == "elasticache", "interval": 60} for c in COLLECTORS}
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet, collectors=collectors))
    exporter.poller.run_round()
    replications = [
        r
        for status in exporter.poller.snapshot()
        if status.observations is not None
        for r in status.observations.replication_states
    ]
    return exporter.metrics.render().decode(), replications


@pytest.fixture(scope="module")
def text(run: tuple[str, list[ReplicationState]]) -> str:
    return run[0]


def epoch(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


def test_every_cache_matches_the_seeded_fleet(text: str, stores: StoresPlan) -> None:
    infos = samples(text, "drwatch_resource_info")
    assert len(infos) == len(stores.caches)
    assert {c.scenario for c in stores.caches} == {"healthy", "backups_off", "failing"}
    for cache in stores.caches:
        labels = {
            "account_id": cache.account_id,
            "region": cache.region,
            "service": "elasticache",
            "resource_type": cache.kind,
            "resource": cache.name,
        }
        tier = dict(cache.tags).get("dr-tier", "standard")
        key = tuple(sorted({**labels, "tier": tier, "name": cache.name}.items()))
        assert infos.get(key) == 1
        automatic = [s for s in cache.snapshots if s.automatic]
        good = [s for s in automatic if s.status == "available"]
        mechanism = {"mechanism": "snapshot", **labels}
        assert value(text, "drwatch_recovery_mechanism_enabled", **mechanism) == bool(
            cache.retention_days
        )
        assert value(text, "drwatch_recovery_points", **mechanism) == len(good)
        assert value(text, "drwatch_recovery_points_failed", **mechanism) == sum(
            1 for s in automatic if s.status == "failed"
        )
        assert value(text, "drwatch_recovery_point_bytes", **mechanism) == sum(
            s.size_mb * 1024**2 for s in good
        )
        points = [s for s in cache.snapshots if s.status == "available"]
        rpo = samples(text, "drwatch_resource_recovery_point_timestamp_seconds")
        found = [v for k, v in rpo.items() if set(labels.items()) <= set(k)]
        assert found == ([max(epoch(s.created) for s in points)] if points else [])


def test_global_datastore_is_observed_once_by_the_primary_region(
    run: tuple[str, list[ReplicationState]], stores: StoresPlan
) -> None:
    (datastore,) = stores.global_datastores
    (replication,) = run[1]
    assert replication.kind == "elasticache_global"
    assert (replication.source.region, replication.source.resource_id) == datastore.primary
    assert (replication.destination_region, replication.destination) == datastore.secondary
    assert replication.state == "associated"


def test_golden_elasticache_exposition(text: str, update_golden: bool) -> None:
    lines = [line for line in text.splitlines() if not line.startswith("drwatch_build_info{")]
    body = "\n".join(lines) + "\n"
    if update_golden:
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "run pytest --update-golden and review the diff"
