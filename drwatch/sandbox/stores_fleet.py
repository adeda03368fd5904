"""DynamoDB tables and EBS volumes of the sandbox fleet, with their backup histories.

`plan_stores(spec)` is pure and deterministic (seeded; `now` is part of the spec). Per
account x region unit it plans:

- DynamoDB: `tables_per_unit` tables of its own, cycling through the scenarios
  `pitr` (PITR 1-4 min behind, a few on-demand backups, sometimes one still CREATING),
  `on_demand_stale` (PITR off, newest on-demand backup 2-9 days old) and `unprotected`
  (PITR off, no backup); plus the tables the AWS Backup fleet protects (`ddb-table-NNNN`),
  PITR off and no on-demand backup, so AWS Backup is their only protection.
- EBS: `volumes_per_unit` volumes cycling through `healthy` (snapshots every few hours, the
  newest 10-50 min old, sometimes an old one in the archive tier and one still pending),
  `stale` (newest snapshot 2-9 days old), `failing` (the newest snapshot in `error`) and
  `unprotected` (no snapshot). The first healthy volume of a unit also has a snapshot AWS
  Backup made, which belongs to the `backup` collector and not to `ebs`.

- ElastiCache: `cache_groups_per_unit` Redis replication groups cycling through `healthy`
  (retention 1-7 days, daily automatic snapshots, the newest 2-20 h old, sometimes a manual
  one), `backups_off` (retention 0, sometimes an old manual snapshot) and `failing` (the newest
  automatic snapshot failed, the last good one 2 days old); one serverless cache (daily
  snapshots) and one Memcached cluster (no backups possible). The first unit's first healthy
  group is the primary of a global datastore whose secondary is the next region's first
  healthy group.

`seed_stores(sandbox, plan)` creates the caches through the API and writes everything else
into moto's backends in-process (the collectors only read).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Backup
from moto.ec2.models import ec2_backends
from moto.elasticache.models import elasticache_backends

from drwatch.core.units import GIB
from drwatch.sandbox.backup_fleet import plan_backup_fleet, spec_for
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stores_moto import (
    elasticache_state,
    install_stores_extensions,
    plan_backup,
    plan_pitr_window,
)

TableScenario = Literal["pitr", "on_demand_stale", "unprotected", "aws_backup_only"]
VolumeScenario = Literal["healthy", "stale", "failing", "unprotected"]
CacheScenario = Literal["healthy", "backups_off", "failing"]
CACHE_SCENARIOS: tuple[CacheScenario, ...] = ("healthy", "backups_off", "failing")
TABLE_SCENARIOS: tuple[TableScenario, ...] = ("pitr", "on_demand_stale", "unprotected")
VOLUME_SCENARIOS: tuple[VolumeScenario, ...] = ("healthy", "stale", "failing", "unprotected")
TIERS = ("premium", "standard", "basic")
AWS_BACKUP_TAG = "aws:backup:source-resource"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoresSpec:
    now: datetime  # tz-aware UTC
    seed: int = 42
    accounts: tuple[str, ...] = ("111111111111", "222222222222")
    regions: tuple[str, ...] = ("eu-west-1", "us-east-1")
    tier_tag_key: str = "dr-tier"
    tables_per_unit: int = 3
    volumes_per_unit: int = 4
    cache_groups_per_unit: int = 3
    # Names of the tables AWS Backup protects, per (account, region).
    backup_tables: tuple[tuple[str, str, str], ...] = ()

    @property
    def units(self) -> tuple[tuple[str, str], ...]:
        return tuple((a, r) for a in self.accounts for r in self.regions)


@dataclass(frozen=True, slots=True)
class PlannedBackup:
    name: str
    created: datetime
    status: str  # AVAILABLE | CREATING
    size_bytes: int


@dataclass(frozen=True, slots=True)
class PlannedTable:
    account_id: str
    region: str
    name: str
    scenario: TableScenario
    tags: tuple[tuple[str, str], ...]
    pitr_window: tuple[datetime, datetime] | None
    backups: tuple[PlannedBackup, ...]


@dataclass(frozen=True, slots=True)
class PlannedEbsSnapshot:
    created: datetime
    state: str  # completed | pending | error
    storage_tier: str  # standard | archive
    encrypted: bool
    aws_backup: bool = False  # made by AWS Backup: not the ebs collector's


@dataclass(frozen=True, slots=True)
class PlannedVolume:
    account_id: str
    region: str
    volume_id: str
    scenario: VolumeScenario
    size_gib: int
    encrypted: bool
    tags: tuple[tuple[str, str], ...]
    snapshots: tuple[PlannedEbsSnapshot, ...]


@dataclass(frozen=True, slots=True)
class PlannedCacheSnapshot:
    name: str
    automatic: bool
    created: datetime
    status: str  # available | failed | creating
    size_mb: int


@dataclass(frozen=True, slots=True)
class PlannedCache:
    account_id: str
    region: str
    kind: Literal["replication_group", "serverless_cache", "cache_cluster"]
    name: str
    scenario: CacheScenario
    retention_days: int
    tags: tuple[tuple[str, str], ...]
    snapshots: tuple[PlannedCacheSnapshot, ...]

    @property
    def arn(self) -> str:
        kind = {
            "replication_group": "replicationgroup",
            "serverless_cache": "serverlesscache",
            "cache_cluster": "cluster",
        }[self.kind]
        return f"arn:aws:elasticache:{self.region}:{self.account_id}:{kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class PlannedGlobalDatastore:
    account_id: str
    name: str
    primary: tuple[str, str]  # (region, replication group)
    secondary: tuple[str, str]


@dataclass(frozen=True, slots=True)
class StoresPlan:
    spec: StoresSpec
    tables: tuple[PlannedTable, ...]
    volumes: tuple[PlannedVolume, ...]
    caches: tuple[PlannedCache, ...] = ()
    global_datastores: tuple[PlannedGlobalDatastore, ...] = ()


def plan_stores(spec: StoresSpec) -> StoresPlan:
    tables: list[PlannedTable] = []
    volumes: list[PlannedVolume] = []
    caches: list[PlannedCache] = []
    for account, region in spec.units:
        rng = random.Random(f"{spec.seed}/stores/{account}/{region}")  # noqa: S311 - simulation
        for index in range(spec.tables_per_unit):
            table_scenario = TABLE_SCENARIOS[index % len(TABLE_SCENARIOS)]
            tables.append(
                _plan_table(spec, rng, account, region, f"app-table-{index:02d}", table_scenario)
            )
        for backup_account, backup_region, name in spec.backup_tables:
            if (backup_account, backup_region) == (account, region):
                tables.append(_plan_table(spec, rng, account, region, name, "aws_backup_only"))
        for index in range(spec.volumes_per_unit):
            scenario = VOLUME_SCENARIOS[index % len(VOLUME_SCENARIOS)]
            volumes.append(_plan_volume(spec, rng, account, region, index, scenario))
        caches.extend(_plan_caches(spec, rng, account, region))
    return StoresPlan(
        spec, tuple(tables), tuple(volumes), tuple(caches), _plan_global_datastores(spec, caches)
    )


def _plan_caches(
    spec: StoresSpec, rng: random.Random, account: str, region: str
) -> list[PlannedCache]:
    caches = []
    for index in range(spec.cache_groups_per_unit):
        scenario = CACHE_SCENARIOS[index % len(CACHE_SCENARIOS)]
        name = f"cache-{index:02d}"
        retention = 0 if scenario == "backups_off" else rng.randint(1, 7)
        snapshots = _cache_snapshots(spec, rng, name, scenario, retention)
        caches.append(
            PlannedCache(
                account,
                region,
                "replication_group",
                name,
                scenario,
                retention,
                _tags(spec, rng, name),
                snapshots,
            )
        )
    serverless = "sessions-serverless"
    caches.append(
        PlannedCache(
            account,
            region,
            "serverless_cache",
            serverless,
            "healthy",
            1,
            _tags(spec, rng, serverless),
            _cache_snapshots(spec, rng, serverless, "healthy", 1),
        )
    )
    caches.append(
        PlannedCache(
            account, region, "cache_cluster", "memo", "backups_off", 0, _tags(spec, rng, "memo"), ()
        )
    )
    return caches


def _cache_snapshots(
    spec: StoresSpec, rng: random.Random, name: str, scenario: CacheScenario, retention: int
) -> tuple[PlannedCacheSnapshot, ...]:
    now = spec.now
    size = rng.choice((64, 512, 2048))
    taken: list[PlannedCacheSnapshot] = []
    if retention:
        newest = now - timedelta(hours=rng.randint(2, 20), minutes=rng.randint(0, 59))
        if scenario == "failing":
            taken.append(
                PlannedCacheSnapshot(f"{name}-auto-failed", True, _seconds(newest), "failed", 0)
            )
            newest -= timedelta(days=2)
        for day in range(retention):
            created = _seconds(newest - timedelta(days=day))
            taken.append(
                PlannedCacheSnapshot(f"{name}-auto-{day}", True, created, "available", size)
            )
    if rng.random() < 0.4:
        created = _seconds(now - timedelta(days=rng.randint(20, 300)))
        taken.append(PlannedCacheSnapshot(f"{name}-manual", False, created, "available", size))
    return tuple(taken)


def _plan_global_datastores(
    spec: StoresSpec, caches: list[PlannedCache]
) -> tuple[PlannedGlobalDatastore, ...]:
    if len(spec.regions) < 2 or spec.cache_groups_per_unit < 1:
        return ()
    account = spec.accounts[0]
    first, second = spec.regions[0], spec.regions[1]
    healthy = [c for c in caches if c.kind == "replication_group" and c.scenario == "healthy"]
    primary = next(c for c in healthy if (c.account_id, c.region) == (account, first))
    secondary = next(c for c in healthy if (c.account_id, c.region) == (account, second))
    return (
        PlannedGlobalDatastore(
            account, f"ldgnf-{primary.name}", (first, primary.name), (second, secondary.name)
        ),
    )


def _seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _tags(spec: StoresSpec, rng: random.Random, app: str) -> tuple[tuple[str, str], ...]:
    tags = [("app", app)]
    if rng.random() >= 0.2:  # a fifth stays untagged: the default tier
        tags.append((spec.tier_tag_key, rng.choice(TIERS)))
    return tuple(sorted(tags))


def _plan_table(
    spec: StoresSpec,
    rng: random.Random,
    account: str,
    region: str,
    name: str,
    scenario: TableScenario,
) -> PlannedTable:
    now = spec.now
    window = None
    backups: list[PlannedBackup] = []
    if scenario == "pitr":
        latest = _seconds(now - timedelta(seconds=rng.randint(60, 240)))
        window = (_seconds(now - timedelta(days=35)), latest)
        for n in range(rng.randint(0, 3)):
            created = _seconds(
                now - timedelta(days=rng.randint(1, 60), seconds=rng.randint(0, 86399))
            )
            backups.append(
                PlannedBackup(f"{name}-od-{n}", created, "AVAILABLE", rng.randint(1, 50) * GIB)
            )
        if rng.random() < 0.5:
            created = _seconds(now - timedelta(minutes=rng.randint(1, 20)))
            backups.append(PlannedBackup(f"{name}-od-running", created, "CREATING", 0))
    elif scenario == "on_demand_stale":
        newest = now - timedelta(days=rng.randint(2, 9), seconds=rng.randint(0, 86399))
        for n in range(rng.randint(1, 4)):
            created = _seconds(newest - timedelta(days=7 * n))
            backups.append(
                PlannedBackup(f"{name}-od-{n}", created, "AVAILABLE", rng.randint(1, 50) * GIB)
            )
    return PlannedTable(
        account, region, name, scenario, _tags(spec, rng, name), window, tuple(backups)
    )


def volume_id(spec: StoresSpec, account: str, region: str, index: int) -> str:
    digest = hashlib.sha256(f"{spec.seed}/{account}/{region}/{index}".encode()).hexdigest()
    return f"vol-{digest[:17]}"


def _plan_volume(
    spec: StoresSpec,
    rng: random.Random,
    account: str,
    region: str,
    index: int,
    scenario: VolumeScenario,
) -> PlannedVolume:
    now = spec.now
    encrypted = rng.random() < 0.8
    snapshots: list[PlannedEbsSnapshot] = []
    if scenario in ("healthy", "failing"):
        newest = now - timedelta(minutes=rng.randint(10, 50))
        for n in range(rng.randint(2, 5)):
            created = _seconds(newest - timedelta(hours=6 * n))
            snapshots.append(PlannedEbsSnapshot(created, "completed", "standard", encrypted))
        if scenario == "failing":
            failed = _seconds(now - timedelta(minutes=rng.randint(1, 5)))
            snapshots.append(PlannedEbsSnapshot(failed, "error", "standard", encrypted))
            # the last good one is a day old: the schedule has been failing since
            snapshots = [
                PlannedEbsSnapshot(
                    s.created - timedelta(days=1), s.state, s.storage_tier, s.encrypted
                )
                if s.state == "completed"
                else s
                for s in snapshots
            ]
        elif rng.random() < 0.5:
            old = _seconds(now - timedelta(days=rng.randint(100, 400)))
            snapshots.append(PlannedEbsSnapshot(old, "completed", "archive", encrypted))
        if scenario == "healthy" and rng.random() < 0.5:
            running = _seconds(now - timedelta(minutes=rng.randint(1, 8)))
            snapshots.append(PlannedEbsSnapshot(running, "pending", "standard", encrypted))
        if scenario == "healthy" and index == 0:
            made = _seconds(now - timedelta(minutes=rng.randint(1, 9)))
            snapshots.append(PlannedEbsSnapshot(made, "completed", "standard", True, True))
    elif scenario == "stale":
        newest = now - timedelta(days=rng.randint(2, 9), seconds=rng.randint(0, 86399))
        for n in range(rng.randint(1, 3)):
            snapshots.append(
                PlannedEbsSnapshot(
                    _seconds(newest - timedelta(days=n)), "completed", "standard", encrypted
                )
            )
    return PlannedVolume(
        account,
        region,
        volume_id(spec, account, region, index),
        scenario,
        rng.choice((8, 20, 100, 500)),
        encrypted,
        _tags(spec, rng, f"app-volume-{index:02d}"),
        tuple(snapshots),
    )


# --- seeding -----------------------------------------------------------------------------


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def seed_stores(sandbox: Sandbox, plan: StoresPlan) -> None:
    """Make moto hold the plan's tables, volumes and caches (on top of a reset sandbox)."""
    install_stores_extensions()
    for table in plan.tables:
        _seed_table(table)
    for volume in plan.volumes:
        _seed_volume(volume)
    for account, region in plan.spec.units:
        client = sandbox.client("elasticache", region, account_id=account)
        for cache in plan.caches:
            if (cache.account_id, cache.region) == (account, region):
                _seed_cache(client, cache)
    for datastore in plan.global_datastores:
        _seed_global_datastore(datastore)


def _seed_cache(client: Any, cache: PlannedCache) -> None:
    tags = [{"Key": k, "Value": v} for k, v in cache.tags]
    if cache.kind == "cache_cluster":
        client.create_cache_cluster(
            CacheClusterId=cache.name,
            Engine="memcached",
            CacheNodeType="cache.t4g.small",
            NumCacheNodes=1,
            Tags=tags,
        )
        return
    if cache.kind == "serverless_cache":
        _seed_serverless(cache)
        return
    client.create_replication_group(
        ReplicationGroupId=cache.name,
        ReplicationGroupDescription=f"{cache.name} (drwatch sandbox)",
        Engine="redis",
        CacheNodeType="cache.r7g.large",
        NumCacheClusters=2,
        SnapshotRetentionLimit=cache.retention_days,
        SnapshotWindow="03:00-04:00",
        Tags=tags,
    )
    backend: Any = elasticache_backends[cache.account_id][cache.region]
    for planned in cache.snapshots:
        client.create_snapshot(ReplicationGroupId=cache.name, SnapshotName=planned.name)
        snapshot = backend.snapshots[planned.name]
        snapshot.snapshot_source = "automated" if planned.automatic else "manual"
        snapshot.snapshot_status = planned.status
        snapshot.node_snapshots = [
            {
                "CacheClusterId": f"{cache.name}-00{node}",
                "NodeGroupId": "0001",
                "CacheSize": f"{planned.size_mb // 2} MB",
                # the replica's node snapshot finishes a little after the primary's
                "SnapshotCreateTime": _naive(planned.created - timedelta(seconds=30 * (2 - node))),
            }
            for node in (1, 2)
        ]


def _seed_serverless(cache: PlannedCache) -> None:
    state = elasticache_state(cache.account_id, cache.region)
    created = _naive(cache.snapshots[-1].created) if cache.snapshots else None
    state.serverless_caches.append(
        {
            "ServerlessCacheName": cache.name,
            "Description": "drwatch sandbox",
            "CreateTime": created or _naive(datetime(2026, 1, 1, tzinfo=UTC)),
            "Status": "available",
            "Engine": "valkey",
            "MajorEngineVersion": "8",
            "FullEngineVersion": "8.0",
            "SnapshotRetentionLimit": cache.retention_days,
            "DailySnapshotTime": "03:00",
            "ARN": cache.arn,
        }
    )
    backend: Any = elasticache_backends[cache.account_id][cache.region]
    backend.tagging_service.tag_resource(cache.arn, [{"Key": k, "Value": v} for k, v in cache.tags])
    for planned in cache.snapshots:
        state.serverless_snapshots.append(
            {
                "ServerlessCacheSnapshotName": planned.name,
                "ARN": cache.arn.replace(":serverlesscache:", ":serverlesscachesnapshot:").rsplit(
                    ":", 1
                )[0]
                + f":{planned.name}",
                "SnapshotType": "automated" if planned.automatic else "manual",
                "Status": planned.status,
                "CreateTime": _naive(planned.created),
                "BytesUsedForCache": str(planned.size_mb * 1024**2),
                "ServerlessCacheConfiguration": {
                    "ServerlessCacheName": cache.name,
                    "Engine": "valkey",
                    "MajorEngineVersion": "8",
                },
            }
        )


def _seed_global_datastore(datastore: PlannedGlobalDatastore) -> None:
    members = [
        {
            "ReplicationGroupId": group,
            "ReplicationGroupRegion": region,
            "Role": role,
            "AutomaticFailover": "enabled",
            "Status": "associated",
        }
        for (region, group), role in (
            (datastore.primary, "PRIMARY"),
            (datastore.secondary, "SECONDARY"),
        )
    ]
    group = {
        "GlobalReplicationGroupId": datastore.name,
        "Status": "available",
        "Engine": "redis",
        "Members": members,
        "ARN": f"arn:aws:elasticache::{datastore.account_id}:globalreplicationgroup:"
        + datastore.name,
    }
    for region in (datastore.primary[0], datastore.secondary[0]):
        elasticache_state(datastore.account_id, region).global_groups.append(group)


def _seed_table(planned: PlannedTable) -> None:
    backend = dynamodb_backends[planned.account_id][planned.region]
    table = backend.create_table(
        planned.name,
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        throughput=None,
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[{"Key": k, "Value": v} for k, v in planned.tags],
        deletion_protection_enabled=None,
        warm_throughput=None,
    )
    plan_pitr_window(table, planned.pitr_window)
    for planned_backup in planned.backups:
        backup = Backup(planned.account_id, planned.region, planned_backup.name, table)
        plan_backup(
            backup, planned_backup.created, planned_backup.status, planned_backup.size_bytes
        )
        backend.backups[backup.arn] = backup


def _seed_volume(planned: PlannedVolume) -> None:
    backend: Any = ec2_backends[planned.account_id][planned.region]
    volume: Any = backend.create_volume(
        size=planned.size_gib,
        zone_name=f"{planned.region}a",
        encrypted=planned.encrypted,
        kms_key_id=f"arn:aws:kms:{planned.region}:{planned.account_id}:key/ebs"
        if planned.encrypted
        else None,
    )
    # Stable ids: the volume id is the `resource` label of golden files.
    del backend.volumes[volume.id]
    volume.id = planned.volume_id
    backend.volumes[volume.id] = volume
    backend.create_tags([volume.id], dict(planned.tags))
    for index, planned_snapshot in enumerate(planned.snapshots):
        snapshot: Any = backend.create_snapshot(volume.id, f"{volume.id} snapshot {index}")
        snapshot.start_time = _naive(planned_snapshot.created)
        snapshot.status = planned_snapshot.state
        snapshot.storage_tier = planned_snapshot.storage_tier
        snapshot.encrypted = planned_snapshot.encrypted
        if planned_snapshot.aws_backup:
            arn = f"arn:aws:ec2:{planned.region}:{planned.account_id}:volume/{volume.id}"
            backend.create_tags([snapshot.id], {AWS_BACKUP_TAG: arn})


def stores_spec_for(fleet: FleetPlan, **overrides: Any) -> StoresSpec:
    """The stores of an RDS fleet's estate, including the tables its AWS Backup fleet backs
    up (they exist in DynamoDB too, with AWS Backup as their only protection)."""
    backup = plan_backup_fleet(spec_for(fleet))
    tables = tuple(
        (unit.account_id, unit.region, resource.arn.rsplit("/", 1)[-1])
        for unit in backup.units
        for resource in unit.resources
        if resource.resource_type == "DynamoDB"
    )
    spec = fleet.spec
    settings: dict[str, Any] = {
        "now": spec.now,
        "seed": spec.seed,
        "accounts": spec.accounts,
        "regions": spec.regions,
        "tier_tag_key": spec.tier_tag_key,
        "backup_tables": tables,
        **overrides,
    }
    return StoresSpec(**settings)
