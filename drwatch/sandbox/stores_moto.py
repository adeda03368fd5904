"""Where moto 5.2's DynamoDB and EC2 differ from AWS in ways drwatch can see, and the fixes.

`install_stores_extensions()` patches moto's classes (idempotent; runs from `Sandbox.start`):

- DynamoDB ListBackups: moto ignores `Limit`, `ExclusiveStartBackupArn` and `BackupType`, so
  every backup comes back in one page whatever was asked. AWS pages at `Limit` (at most
  100) and filters by type (`USER` by default). Fixed here, so call counts are AWS's.
- DynamoDB backup sizes: moto reports 123 bytes for every backup; a planned size is kept.
- DynamoDB PITR window: moto sets both restorable times to the moment PITR was enabled and
  never moves them. The fleet writes the planned window into the table in-process
  (`plan_pitr_window`), which moto then serves as is.
- EC2 DescribeSnapshots ignores `OwnerIds`, so `["self"]` also returns the snapshots behind
  moto's built-in AMIs (owned by another account); AWS returns only the caller's own.
- EC2 DescribeSnapshots and DescribeVolumes ignore `MaxResults`/`NextToken` and answer in one
  page; AWS pages (snapshots up to 1000, volumes up to 500 a page).
- ElastiCache DescribeServerlessCaches, DescribeServerlessCacheSnapshots and
  DescribeGlobalReplicationGroups: not implemented in moto. Answered here from sandbox state
  kept on moto's ElastiCache backend (so moto's reset forgets it), paged like AWS.
- ElastiCache snapshots: moto has no `NodeSnapshots` (so no snapshot time or size), makes
  every snapshot `manual` and `creating`; the fleet sets source, status and node snapshots
  in-process, which moto then serves as is.
- ElastiCache DescribeSnapshots ignores `MaxRecords`/`Marker` and answers in one page; AWS
  pages at `MaxRecords` (20..100, default 100).
- ElastiCache ListTagsForResource rejects serverless cache ARNs; AWS tags them like any cache.
- EBS snapshot state, tier and time: moto completes every snapshot at once in the standard
  tier at "now"; the fleet sets state (`pending`, `error`), `StorageTier` and start time
  in-process, which moto then serves as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.models.table import Backup, Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.elasticache.models import ElastiCacheBackend, elasticache_backends
from moto.elasticache.responses import ElastiCacheResponse

INSTALLED_MARKER = "_drwatch_stores_extensions_installed"
PLANNED_SIZE = "_drwatch_size_bytes"
LIST_BACKUPS_MAX = 100
DEFAULT_BACKUP_TYPE = "USER"


def install_stores_extensions() -> None:
    if getattr(Backup, INSTALLED_MARKER, False):
        return
    _patch_backup_sizes()
    _patch_list_backups()
    _patch_ebs_paging()
    _add_elasticache_operations()
    setattr(Backup, INSTALLED_MARKER, True)


# --- DynamoDB ----------------------------------------------------------------------------


def plan_backup(backup: Backup, created: datetime, status: str, size_bytes: int) -> None:
    """Give a moto Backup its planned creation time (tz-aware UTC), status and size."""
    backup.creation_date_time = created.astimezone(UTC).replace(tzinfo=None)
    backup.status = status
    setattr(backup, PLANNED_SIZE, size_bytes)


def plan_pitr_window(table: Table, window: tuple[datetime, datetime] | None) -> None:
    """PITR on with the planned (earliest, latest) restorable times, or off (None)."""
    if window is None:
        table.continuous_backups = {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"},
        }
        return
    earliest, latest = window
    table.continuous_backups = {
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": {
            "PointInTimeRecoveryStatus": "ENABLED",
            "RecoveryPeriodInDays": 35,
            "EarliestRestorableDateTime": earliest.timestamp(),
            "LatestRestorableDateTime": latest.timestamp(),
        },
    }


def _size_of(backup: Backup) -> int:
    return int(getattr(backup, PLANNED_SIZE, 123))


def _patch_backup_sizes() -> None:
    summary: Any = vars(Backup)["summary"].fget
    details: Any = vars(Backup)["details"].fget

    def sized_summary(self: Backup) -> dict[str, Any]:
        return {**summary(self), "BackupSizeBytes": _size_of(self)}

    def sized_details(self: Backup) -> dict[str, Any]:
        return {**details(self), "BackupSizeBytes": _size_of(self)}

    Backup.summary = property(sized_summary)  # type: ignore[method-assign, assignment]
    Backup.details = property(sized_details)  # type: ignore[method-assign, assignment]


def _patch_list_backups() -> None:
    def list_backups(self: DynamoHandler) -> ActionResult:
        body = self.body
        backups: Iterable[Backup] = self.dynamodb_backend.list_backups(body.get("TableName"))
        wanted = body.get("BackupType", DEFAULT_BACKUP_TYPE)
        if wanted != "ALL":
            backups = [b for b in backups if b.type == wanted]
        ordered = sorted(backups, key=lambda b: (b.creation_date_time, b.arn))
        start = body.get("ExclusiveStartBackupArn")
        if start:
            arns = [b.arn for b in ordered]
            ordered = ordered[arns.index(start) + 1 :] if start in arns else []
        limit = min(int(body.get("Limit") or LIST_BACKUPS_MAX), LIST_BACKUPS_MAX)
        page = ordered[:limit]
        response: dict[str, Any] = {"BackupSummaries": [b.summary for b in page]}
        if len(ordered) > limit:
            response["LastEvaluatedBackupArn"] = page[-1].arn
        return DynamoResult(response)

    DynamoHandler.list_backups = list_backups  # type: ignore[method-assign]


# --- EC2 ---------------------------------------------------------------------------------


def _page(items: list[Any], token: str | None, max_results: int | None) -> tuple[list[Any], str]:
    """AWS's NextToken paging over a stable order: the token is the next item's index."""
    start = int(token) if token else 0
    if max_results is None:
        return items[start:], ""
    end = start + max_results
    return items[start:end], (str(end) if end < len(items) else "")


def _patch_ebs_paging() -> None:
    def describe_snapshots(self: ElasticBlockStore) -> ActionResult:
        snapshots = self.ec2_backend.describe_snapshots(
            snapshot_ids=self._get_param("SnapshotIds", []),
            filters=self._filters_from_querystring(),
        )
        owner_ids = self._get_param("OwnerIds", [])
        if owner_ids:
            owners = {self.current_account if o == "self" else o for o in owner_ids}
            snapshots = [s for s in snapshots if s.owner_id in owners]
        snapshots = sorted(snapshots, key=lambda s: s.id)
        page, token = _page(
            snapshots, self._get_param("NextToken"), self._get_int_param("MaxResults")
        )
        result: dict[str, Any] = {"Snapshots": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    def describe_volumes(self: ElasticBlockStore) -> ActionResult:
        volumes = self.ec2_backend.describe_volumes(
            volume_ids=self._get_param("VolumeIds", []),
            filters=self._filters_from_querystring(),
        )
        volumes = sorted(volumes, key=lambda v: v.id)
        page, token = _page(
            volumes, self._get_param("NextToken"), self._get_int_param("MaxResults")
        )
        result: dict[str, Any] = {"Volumes": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    ElasticBlockStore.describe_snapshots = describe_snapshots  # type: ignore[method-assign]
    ElasticBlockStore.describe_volumes = describe_volumes  # type: ignore[method-assign]


# --- ElastiCache -------------------------------------------------------------------------

ELASTICACHE_STATE = "_drwatch_elasticache_state"
SERVERLESS_PAGE_MAX = 50
GLOBAL_PAGE_MAX = 100  # and every other node-based Describe call's


@dataclass
class ElastiCacheSandboxState:
    """What moto cannot hold, in AWS's output shapes (plain dicts, naive UTC datetimes)."""

    serverless_caches: list[dict[str, Any]] = field(default_factory=list)
    serverless_snapshots: list[dict[str, Any]] = field(default_factory=list)
    # Global datastores are listed by every region that holds a member.
    global_groups: list[dict[str, Any]] = field(default_factory=list)


def elasticache_state(account_id: str, region: str) -> ElastiCacheSandboxState:
    backend: ElastiCacheBackend = elasticache_backends[account_id][region]
    state: ElastiCacheSandboxState = backend.__dict__.setdefault(
        ELASTICACHE_STATE, ElastiCacheSandboxState()
    )
    return state


def _add_elasticache_operations() -> None:
    def state(self: ElastiCacheResponse) -> ElastiCacheSandboxState:
        return elasticache_state(self.current_account, self.region)

    def paged(
        self: ElastiCacheResponse, items: list[Any], key: str, token: str, limit: str, most: int
    ) -> ActionResult:
        size = min(self._get_int_param(limit) or most, most)
        page, following = _page(items, self._get_param(token), size)
        result: dict[str, Any] = {key: page}
        if following:
            result[token] = following
        return ActionResult(result)

    def describe_serverless_caches(self: ElastiCacheResponse) -> ActionResult:
        items = state(self).serverless_caches
        return paged(
            self, items, "ServerlessCaches", "NextToken", "MaxResults", SERVERLESS_PAGE_MAX
        )

    def describe_serverless_cache_snapshots(self: ElastiCacheResponse) -> ActionResult:
        items = state(self).serverless_snapshots
        return paged(
            self, items, "ServerlessCacheSnapshots", "NextToken", "MaxResults", SERVERLESS_PAGE_MAX
        )

    def describe_global_replication_groups(self: ElastiCacheResponse) -> ActionResult:
        groups = state(self).global_groups
        if not self._get_bool_param("ShowMemberInfo", False):
            groups = [{k: v for k, v in g.items() if k != "Members"} for g in groups]
        return paged(
            self, groups, "GlobalReplicationGroups", "Marker", "MaxRecords", GLOBAL_PAGE_MAX
        )

    list_tags = ElastiCacheBackend.list_tags_for_resource

    def list_tags_for_resource(self: ElastiCacheBackend, arn: str) -> Any:
        if ":serverlesscache:" in arn:
            return self.tagging_service.list_tags_for_resource(arn)
        return list_tags(self, arn)

    ElastiCacheBackend.list_tags_for_resource = list_tags_for_resource  # type: ignore[method-assign]

    def describe_snapshots(self: ElastiCacheResponse) -> ActionResult:
        snapshots = self.elasticache_backend.describe_snapshots(
            replication_group_id=self._get_param("ReplicationGroupId"),
            cache_cluster_id=self._get_param("CacheClusterId"),
            snapshot_name=self._get_param("SnapshotName"),
            snapshot_source=self._get_param("SnapshotSource"),
        )
        ordered = sorted(snapshots, key=lambda s: s.snapshot_name or "")
        return paged(self, ordered, "Snapshots", "Marker", "MaxRecords", GLOBAL_PAGE_MAX)

    operations = {
        "describe_snapshots": describe_snapshots,
        "describe_serverless_caches": describe_serverless_caches,
        "describe_serverless_cache_snapshots": describe_serverless_cache_snapshots,
        "describe_global_replication_groups": describe_global_replication_groups,
    }
    for name, handler in operations.items():
        setattr(ElastiCacheResponse, name, handler)
