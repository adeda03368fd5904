"""EBS: snapshots of every volume, owned by the account itself.

Two list calls per account and region, whatever the fleet size: DescribeVolumes (tags
included, 500 a page) and DescribeSnapshots with `OwnerIds=["self"]` (1000 a page). There is
no per-resource call.

Labels follow the volume's ARN (`arn:aws:ec2:<region>:<account>:volume/<id>`): service `ec2`,
resource type `volume`, as the `backup` collector labels EBS volumes AWS Backup protects.
Snapshots AWS Backup made (tagged `aws:backup:source-resource`) are that collector's
`aws_backup` points and are left out here, so no point is counted twice.

Every other snapshot of the volume is mechanism `snapshot`, whoever took it (Data Lifecycle
Manager, a script, a person): `completed` ones are restorable points, including those in the
archive tier (restorable after a 24-72 h tier restore: an RTO concern, counted in
`drwatch_recovery_points`), `error` ones are failed, `pending` ones not yet points. A volume
without any snapshot has the mechanism disabled. Sizes are the volume size of each snapshot:
an upper bound, since EBS snapshots are incremental.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from drwatch.core.model import Mechanism, Observations, RecoveryState, Resource, ResourceRef
from drwatch.core.units import GIB
from drwatch.exporter.collectors.base import CollectContext, ObserveContext, sorted_tags, tags_of
from drwatch.exporter.collectors.dynamodb import partition_of
from drwatch.exporter.collectors.isolation import require

SERVICE = "ec2"
RESOURCE_TYPE = "volume"
VOLUMES_PAGE_SIZE = 500  # DescribeVolumes MaxResults upper bound
SNAPSHOTS_PAGE_SIZE = 1000  # DescribeSnapshots MaxResults upper bound
AWS_BACKUP_TAG_PREFIX = "aws:backup:"
Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EbsRecords:
    volumes: tuple[Record, ...] = ()
    snapshots: tuple[Record, ...] = ()


class EbsCollector:
    name: ClassVar[str] = "ebs"
    iam_actions: ClassVar[tuple[str, ...]] = ("ec2:DescribeVolumes", "ec2:DescribeSnapshots")

    def collect(self, ctx: CollectContext) -> Observations:
        return observe(fetch(ctx), ctx.observe)


def fetch(ctx: CollectContext) -> EbsRecords:
    client = ctx.client("ec2")
    volumes = ctx.paginate(client, "describe_volumes", "Volumes", page_size=VOLUMES_PAGE_SIZE)
    snapshots = ctx.paginate(
        client,
        "describe_snapshots",
        "Snapshots",
        page_size=SNAPSHOTS_PAGE_SIZE,
        OwnerIds=["self"],
    )
    return EbsRecords(volumes=tuple(volumes), snapshots=tuple(snapshots))


# --- the pure mapping --------------------------------------------------------------------


def observe(records: EbsRecords, ctx: ObserveContext) -> Observations:
    skips = ctx.collection
    by_volume = snapshots_by_volume(
        skips.keep(records.snapshots, lambda s: s.get("SnapshotId"), check_snapshot)
    )
    resources = []
    states = []

    def mapped(volume: Record) -> tuple[Resource, RecoveryState]:
        resource = resource_of(volume, ctx)
        own = by_volume.get(resource.ref.resource_id, ())
        return resource, snapshot_state(resource.ref, own)

    for resource, state in skips.each(records.volumes, lambda v: v.get("VolumeId"), mapped):
        resources.append(resource)
        states.append(state)
    return Observations(resources=tuple(resources), recovery_states=tuple(states))


def check_snapshot(snapshot: Record) -> None:
    """A completed snapshot is a restorable point only with its time."""
    if snapshot.get("State") == "completed":
        require(snapshot, "StartTime")


def made_by_aws_backup(snapshot: Record) -> bool:
    return any(key.startswith(AWS_BACKUP_TAG_PREFIX) for key in tags_of(snapshot.get("Tags")))


def snapshots_by_volume(snapshots: Iterable[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for snapshot in snapshots:
        if not made_by_aws_backup(snapshot):
            groups[str(snapshot.get("VolumeId", ""))].append(snapshot)
    return groups


def resource_of(volume: Record, ctx: ObserveContext) -> Resource:
    tags = tags_of(volume.get("Tags"))
    volume_id = str(require(volume, "VolumeId"))
    arn = f"arn:{partition_of(ctx.region)}:ec2:{ctx.region}:{ctx.account_id}:volume/{volume_id}"
    return Resource(
        ref=ResourceRef(ctx.account_id, ctx.region, SERVICE, RESOURCE_TYPE, volume_id),
        name=tags.get("Name") or volume_id,
        tier=ctx.tiers.tier_for(tags),
        arn=arn,
        tags=sorted_tags(tags),
    )


def snapshot_state(ref: ResourceRef, snapshots: Sequence[Record]) -> RecoveryState:
    completed = [s for s in snapshots if s.get("State") == "completed"]
    times: list[datetime] = [s["StartTime"] for s in completed]
    return RecoveryState(
        ref=ref,
        mechanism=Mechanism.SNAPSHOT,
        location_account_id=ref.account_id,
        location_region=ref.region,
        enabled=bool(snapshots),
        newest_point=max(times, default=None),
        oldest_point=min(times, default=None),
        point_count=len(completed),
        failed_count=sum(1 for s in snapshots if s.get("State") == "error"),
        archived_count=sum(1 for s in completed if s.get("StorageTier") == "archive"),
        size_bytes=sum(int(s.get("VolumeSize") or 0) * GIB for s in completed),
        encrypted=all(bool(s.get("Encrypted")) for s in completed) if completed else None,
    )
