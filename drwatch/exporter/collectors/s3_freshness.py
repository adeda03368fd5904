"""Backup-file freshness: the newest object under each configured S3 bucket/prefix.

Any job that writes files (logical database dumps, cache exports, config exports,
cluster-state backups) gets a recovery point this way: the newest object's LastModified,
with the target's tier, so the generic RPO alerts cover it. An empty or missing prefix has
no recovery point at all, which is what "no recent backup" alerts on.

Calls per target and poll: ListObjectsV2 under the prefix, 1000 keys a page (S3's maximum),
so ceil(objects / 1000) calls: S3 lists keys in name order, never by time, so finding the
newest object means reading every key under the prefix. Keep prefixes narrow (a dated
layout such as `dumps/2026/11/` is cheap only if the target names it) or expire old
objects with a lifecycle rule: 100,000 dumps under one prefix cost 100 calls a poll.

Each target is read by the unit of its own account and region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import unquote

from drwatch.config import FreshnessTarget
from drwatch.core.model import (
    BackupFileSetState,
    Mechanism,
    Observations,
    RecoveryState,
    Resource,
    ResourceRef,
)
from drwatch.exporter.collectors.base import CollectContext, ObserveContext
from drwatch.exporter.collectors.isolation import MISSING_FIELD

SERVICE = "s3"
RESOURCE_TYPE = "backup_file_set"
PAGE_SIZE = 1000  # ListObjectsV2's largest page


@dataclass(frozen=True, slots=True)
class PrefixSummary:
    """What the listing of one target's prefix adds up to."""

    target: FreshnessTarget
    objects: int
    newest: datetime | None
    newest_bytes: int
    oldest: datetime | None
    total_bytes: int


class S3FreshnessCollector:
    name: ClassVar[str] = "s3_freshness"
    # ListObjectsV2 is authorised by the s3:ListBucket action.
    iam_actions: ClassVar[tuple[str, ...]] = ("s3:ListBucket",)

    def collect(self, ctx: CollectContext) -> Observations:
        return observe(fetch(ctx), ctx.observe)


def unit_targets(ctx: CollectContext) -> list[FreshnessTarget]:
    targets = ctx.config.s3_freshness.targets if ctx.config is not None else ()
    return [
        t
        for t in targets
        if (t.account_id, t.region) == (ctx.observe.account_id, ctx.observe.region)
    ]


def fetch(ctx: CollectContext) -> tuple[PrefixSummary, ...]:
    targets = unit_targets(ctx)
    if not targets:
        return ()
    s3 = ctx.client(SERVICE)
    return tuple(summarise(ctx, s3, target) for target in targets)


def summarise(ctx: CollectContext, s3: Any, target: FreshnessTarget) -> PrefixSummary:
    """One pass over the listing, keeping only aggregates (prefixes may hold millions)."""
    count = total = newest_bytes = 0
    newest: datetime | None = None
    oldest: datetime | None = None
    for item in ctx.paginate(
        s3,
        "list_objects_v2",
        "Contents",
        page_size=PAGE_SIZE,
        Bucket=target.bucket,
        Prefix=target.prefix,
        # Asked for explicitly, botocore leaves keys encoded instead of decoding
        # Contents[].Key in place, which fails the whole listing on an object without one.
        EncodingType="url",
    ):
        if unquote(str(item.get("Key", ""))).endswith("/"):
            continue  # a console "folder" marker is no backup file
        modified: datetime | None = item.get("LastModified")
        if modified is None:
            key = unquote(str(item.get("Key", "?")))
            ctx.observe.collection.skip(key, MISSING_FIELD, "LastModified")
            continue
        size = int(item.get("Size", 0))
        count += 1
        total += size
        if newest is None or modified > newest:
            newest, newest_bytes = modified, size
        if oldest is None or modified < oldest:
            oldest = modified
    return PrefixSummary(target, count, newest, newest_bytes, oldest, total)


def observe(summaries: Sequence[PrefixSummary], ctx: ObserveContext) -> Observations:
    resources = []
    states = []
    file_sets = []
    for summary in summaries:
        target = summary.target
        ref = ResourceRef(
            ctx.account_id, ctx.region, SERVICE, RESOURCE_TYPE, f"{target.bucket}/{target.prefix}"
        )
        resources.append(
            Resource(
                ref=ref, name=ref.resource_id, tier=target.tier, arn=f"arn:aws:s3:::{target.bucket}"
            )
        )
        states.append(
            RecoveryState(
                ref=ref,
                mechanism=Mechanism.EXPORT,
                location_account_id=ctx.account_id,
                location_region=ctx.region,
                enabled=True,  # configured by the operator: the job is expected to write
                newest_point=summary.newest,
                oldest_point=summary.oldest,
                point_count=summary.objects,
                size_bytes=summary.total_bytes,
            )
        )
        file_sets.append(
            BackupFileSetState(
                ref=ref,
                newest_bytes=summary.newest_bytes if summary.objects else None,
                expected_interval_seconds=target.expected_interval_seconds,
            )
        )
    return Observations(
        resources=tuple(resources),
        recovery_states=tuple(states),
        backup_file_sets=tuple(file_sets),
    )
