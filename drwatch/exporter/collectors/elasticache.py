"""ElastiCache (Redis OSS / Valkey / Memcached): snapshots of groups, clusters, serverless caches.

Resources: replication groups (`replication_group`), cache clusters that belong to no group
(`cache_cluster`) and serverless caches (`serverless_cache`), tier from their tags.

- `mechanism="snapshot"`: automatic snapshots. Enabled while `SnapshotRetentionLimit` > 0
  (0 turns backups off); retention is that limit. A node-based snapshot's point is its newest
  node snapshot's `SnapshotCreateTime`; size is the sum of its nodes' `CacheSize`.
- `mechanism="manual_snapshot"`: snapshots taken by hand, kept until deleted (never expire).
- Only `available` snapshots are points; `failed` ones are counted as failed.
- Global datastores: for each group that is the primary of a global datastore, one
  `elasticache_global` replication state per secondary member (its region and status).

Calls per account and region and poll: DescribeReplicationGroups, DescribeCacheClusters,
DescribeSnapshots, DescribeGlobalReplicationGroups (100 a page), DescribeServerlessCaches and
DescribeServerlessCacheSnapshots (50 a page), and ListTagsForResource per resource (the
describe calls carry no tags).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

from drwatch.core.model import (
    Mechanism,
    Observations,
    RecoveryState,
    ReplicationState,
    Resource,
    ResourceRef,
)
from drwatch.exporter.collectors.base import CollectContext, ObserveContext, sorted_tags, tags_of
from drwatch.exporter.collectors.isolation import require

SERVICE = "elasticache"
SERVERLESS_PAGE_SIZE = 50  # MaxResults upper bound of the serverless Describe calls
Record = Mapping[str, Any]
SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


@dataclass(frozen=True, slots=True)
class ElastiCacheRecords:
    replication_groups: tuple[Record, ...] = ()
    cache_clusters: tuple[Record, ...] = ()
    serverless_caches: tuple[Record, ...] = ()
    snapshots: tuple[Record, ...] = ()
    serverless_snapshots: tuple[Record, ...] = ()
    global_groups: tuple[Record, ...] = ()
    tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # by resource ARN

    def tags_for(self, arn: str) -> Mapping[str, str]:
        return self.tags.get(arn, {})


class ElastiCacheCollector:
    """Core: replication groups, cache clusters, node snapshots, tags. Optional: serverless
    caches and their snapshots (feature `serverless`), global datastores
    (`global_datastores`): not offered in every region or partition."""

    name: ClassVar[str] = "elasticache"
    iam_actions: ClassVar[tuple[str, ...]] = (
        "elasticache:DescribeReplicationGroups",
        "elasticache:DescribeCacheClusters",
        "elasticache:DescribeServerlessCaches",
        "elasticache:DescribeSnapshots",
        "elasticache:DescribeServerlessCacheSnapshots",
        "elasticache:DescribeGlobalReplicationGroups",
        "elasticache:ListTagsForResource",
    )

    def collect(self, ctx: CollectContext) -> Observations:
        return observe(fetch(ctx), ctx.observe)


def fetch(ctx: CollectContext) -> ElastiCacheRecords:
    client = ctx.client(SERVICE)
    groups = tuple(ctx.paginate(client, "describe_replication_groups", "ReplicationGroups"))
    clusters = tuple(
        c
        for c in ctx.paginate(client, "describe_cache_clusters", "CacheClusters")
        if not c.get("ReplicationGroupId")  # a group's members are the group's
    )
    serverless: tuple[Record, ...] = ctx.optional(
        "serverless",
        lambda: tuple(
            ctx.paginate(
                client,
                "describe_serverless_caches",
                "ServerlessCaches",
                page_size=SERVERLESS_PAGE_SIZE,
            )
        ),
        (),
    )
    arns = [str(r["ARN"]) for r in (*groups, *clusters, *serverless) if r.get("ARN")]
    return ElastiCacheRecords(
        replication_groups=groups,
        cache_clusters=clusters,
        serverless_caches=serverless,
        snapshots=tuple(ctx.paginate(client, "describe_snapshots", "Snapshots")),
        serverless_snapshots=ctx.optional(
            "serverless",
            lambda: tuple(
                ctx.paginate(
                    client,
                    "describe_serverless_cache_snapshots",
                    "ServerlessCacheSnapshots",
                    page_size=SERVERLESS_PAGE_SIZE,
                )
            ),
            (),
        ),
        global_groups=ctx.optional(
            "global_datastores",
            lambda: tuple(
                ctx.paginate(
                    client,
                    "describe_global_replication_groups",
                    "GlobalReplicationGroups",
                    ShowMemberInfo=True,
                )
            ),
            (),
        ),
        tags={
            arn: tags_of(client.list_tags_for_resource(ResourceName=arn).get("TagList"))
            for arn in arns
        },
    )


# --- the pure mapping --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheKind:
    resource_type: str
    id_key: str
    retention_key: str


REPLICATION_GROUP = CacheKind("replication_group", "ReplicationGroupId", "SnapshotRetentionLimit")
CACHE_CLUSTER = CacheKind("cache_cluster", "CacheClusterId", "SnapshotRetentionLimit")
SERVERLESS_CACHE = CacheKind("serverless_cache", "ServerlessCacheName", "SnapshotRetentionLimit")


@dataclass(frozen=True, slots=True)
class Point:
    """One snapshot reduced to what recovery states need."""

    owner: tuple[str, str]  # (resource type, id): names are unique per type only
    automatic: bool
    status: str
    created: datetime | None
    size_bytes: int


def observe(records: ElastiCacheRecords, ctx: ObserveContext) -> Observations:
    points = [*node_points(records.snapshots), *serverless_points(records.serverless_snapshots)]
    by_owner: dict[tuple[str, str], list[Point]] = defaultdict(list)
    for point in points:
        by_owner[point.owner].append(point)
    resources: list[Resource] = []
    states: list[RecoveryState] = []
    for kind, items in (
        (REPLICATION_GROUP, records.replication_groups),
        (CACHE_CLUSTER, records.cache_clusters),
        (SERVERLESS_CACHE, records.serverless_caches),
    ):

        def mapped(item: Record, kind: CacheKind = kind) -> tuple[Resource, list[RecoveryState]]:
            resource = resource_of(kind, item, records, ctx)
            own = by_owner.get((kind.resource_type, resource.ref.resource_id), [])
            return resource, cache_states(resource.ref, item, kind, own)

        def identify(item: Record, kind: CacheKind = kind) -> Any:
            return item.get("ARN") or item.get(kind.id_key)

        for resource, own_states in ctx.collection.each(items, identify, mapped):
            resources.append(resource)
            states.extend(own_states)
    return Observations(
        resources=tuple(resources),
        recovery_states=tuple(states),
        replication_states=tuple(global_replication(records.global_groups, ctx)),
    )


def resource_of(
    kind: CacheKind, item: Record, records: ElastiCacheRecords, ctx: ObserveContext
) -> Resource:
    identifier = str(require(item, kind.id_key))
    arn = str(item.get("ARN", ""))
    tags = records.tags_for(arn)
    return Resource(
        ref=ResourceRef(ctx.account_id, ctx.region, SERVICE, kind.resource_type, identifier),
        name=identifier,
        tier=ctx.tiers.tier_for(tags),
        arn=arn,
        tags=sorted_tags(tags),
    )


def cache_states(
    ref: ResourceRef, item: Record, kind: CacheKind, points: Sequence[Point]
) -> list[RecoveryState]:
    retention = int(item.get(kind.retention_key) or 0)
    automatic = [p for p in points if p.automatic]
    states = [
        summarise(ref, Mechanism.SNAPSHOT, automatic, enabled=retention > 0).with_retention(
            retention if retention > 0 else None
        )
    ]
    manual = [p for p in points if not p.automatic]
    if manual:
        summary = summarise(ref, Mechanism.MANUAL_SNAPSHOT, manual, enabled=False)
        states.append(summary.never_expiring())
    return states


@dataclass(frozen=True, slots=True)
class Summary:
    state: RecoveryState

    def with_retention(self, days: int | None) -> RecoveryState:
        return replace(self.state, retention_min_days=days, retention_max_days=days)

    def never_expiring(self) -> RecoveryState:
        return replace(self.state, never_expire_count=self.state.point_count)


def summarise(
    ref: ResourceRef, mechanism: Mechanism, points: Sequence[Point], enabled: bool
) -> Summary:
    available = [p for p in points if p.status == "available" and p.created is not None]
    times = [p.created for p in available if p.created is not None]
    return Summary(
        RecoveryState(
            ref=ref,
            mechanism=mechanism,
            location_account_id=ref.account_id,
            location_region=ref.region,
            enabled=enabled,
            newest_point=max(times, default=None),
            oldest_point=min(times, default=None),
            point_count=len(available),
            failed_count=sum(1 for p in points if p.status == "failed"),
            size_bytes=sum(p.size_bytes for p in available),
        )
    )


def parse_size(text: Any) -> int:
    """ElastiCache reports sizes as text ("512 MB", "1.5 GB") or a bare byte count."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?B)?\s*", str(text or "0"))
    if match is None:
        return 0
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2) or "B"])


def node_points(snapshots: Iterable[Record]) -> list[Point]:
    points = []
    for snapshot in snapshots:
        group = snapshot.get("ReplicationGroupId")
        owner = (
            (REPLICATION_GROUP.resource_type, str(group))
            if group
            else (CACHE_CLUSTER.resource_type, str(snapshot.get("CacheClusterId", "")))
        )
        nodes = snapshot.get("NodeSnapshots") or ()
        times = [n["SnapshotCreateTime"] for n in nodes if n.get("SnapshotCreateTime")]
        points.append(
            Point(
                owner=owner,
                automatic=snapshot.get("SnapshotSource") == "automated",
                status=str(snapshot.get("SnapshotStatus", "")),
                created=max(times, default=None),
                size_bytes=sum(parse_size(n.get("CacheSize")) for n in nodes),
            )
        )
    return points


def serverless_points(snapshots: Iterable[Record]) -> list[Point]:
    return [
        Point(
            owner=(SERVERLESS_CACHE.resource_type, serverless_cache_of(s)),
            automatic=s.get("SnapshotType") == "automated",
            status=str(s.get("Status", "")),
            created=s.get("CreateTime"),
            size_bytes=parse_size(s.get("BytesUsedForCache")),
        )
        for s in snapshots
    ]


def serverless_cache_of(snapshot: Record) -> str:
    return str((snapshot.get("ServerlessCacheConfiguration") or {}).get("ServerlessCacheName", ""))


def global_replication(groups: Iterable[Record], ctx: ObserveContext) -> list[ReplicationState]:
    """Primary groups of this unit replicate to each secondary member of their datastore."""
    return [
        state
        for states in ctx.collection.each(
            groups,
            lambda g: g.get("GlobalReplicationGroupId"),
            lambda g: global_group_replication(g, ctx),
        )
        for state in states
    ]


def global_group_replication(group: Record, ctx: ObserveContext) -> list[ReplicationState]:
    states = []
    members = group.get("Members") or ()
    primaries = [
        m
        for m in members
        if m.get("Role") == "PRIMARY" and m.get("ReplicationGroupRegion") == ctx.region
    ]
    for primary in primaries:
        source = ResourceRef(
            ctx.account_id,
            ctx.region,
            SERVICE,
            REPLICATION_GROUP.resource_type,
            str(require(primary, "ReplicationGroupId")),
        )
        for member in members:
            if member.get("Role") == "PRIMARY":
                continue
            states.append(
                ReplicationState(
                    kind="elasticache_global",
                    source=source,
                    destination_account_id=ctx.account_id,
                    destination_region=str(member.get("ReplicationGroupRegion", "")),
                    destination=str(member.get("ReplicationGroupId", "")),
                    state=str(member.get("Status", "")),
                )
            )
    return states
