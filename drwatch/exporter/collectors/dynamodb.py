"""DynamoDB: point-in-time recovery and on-demand backups per table.

Calls per account and region and poll (T tables, B on-demand backups):

- ListTables: ceil(T / 100) pages.
- ListTagsOfResource per table (tags decide the tier; DynamoDB lists no tags in bulk): T.
- DescribeContinuousBackups per table (PITR status and restorable window): T.
- ListBackups with `BackupType=USER`: ceil(B / 100) pages. Backups AWS Backup made
  (`AWS_BACKUP`) are the `backup` collector's `aws_backup` points and are not read here;
  `SYSTEM` backups belong to deleted tables.

DescribeContinuousBackups and ListTagsOfResource are documented at 10 calls per second per
account; the per-table calls go through one rate limiter per account, region and operation,
so 500 tables take about 50 s per poll and never get throttled.

DynamoDB encrypts every table and backup at rest, so `encrypted` is always true.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from drwatch.core.model import Mechanism, Observations, RecoveryState, Resource, ResourceRef
from drwatch.exporter.collectors.base import (
    CollectContext,
    ObserveContext,
    UnitDeadlineError,
    sorted_tags,
    tags_of,
)
from drwatch.exporter.collectors.isolation import MISSING_FIELD, RecordError

SERVICE = "dynamodb"
RESOURCE_TYPE = "table"  # the backup collector's label for `arn:...:table/<name>` too
CALLS_PER_SECOND = 10.0  # DescribeContinuousBackups and ListTagsOfResource, per account
BURST = 10
USER_BACKUPS = "USER"
Record = Mapping[str, Any]


class RateLimiter:
    """At most `rate` calls a second after a burst of `burst` (GCRA), thread-safe.

    Clock and sleeper are injected: tests pass a fake clock and a recording sleeper.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._theoretical_arrival = float("-inf")

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            arrival = max(self._theoretical_arrival, now)
            wait = arrival - now - (self._burst - 1) * self._interval
            self._theoretical_arrival = arrival + self._interval
        # Sleep outside the lock: the slot is reserved, other callers queue behind it.
        if wait > 0:
            self._sleep(wait)


@dataclass(frozen=True, slots=True)
class TableRecord:
    """One table as read: its tags and its DescribeContinuousBackups answer."""

    name: str
    arn: str
    tags: Mapping[str, str]
    continuous_backups: Record


@dataclass(frozen=True, slots=True)
class DynamoDbRecords:
    tables: tuple[TableRecord, ...] = ()
    backups: tuple[Record, ...] = ()  # ListBackups summaries (BackupType USER)


class DynamoDbCollector:
    name: ClassVar[str] = "dynamodb"
    iam_actions: ClassVar[tuple[str, ...]] = (
        "dynamodb:ListTables",
        "dynamodb:ListTagsOfResource",
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:ListBackups",
    )

    def __init__(
        self,
        rate: float = CALLS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[tuple[str, str, str], RateLimiter] = {}
        self._lock = threading.Lock()  # guards the dict; limiters are thread-safe

    def limiter(self, account_id: str, region: str, operation: str) -> RateLimiter:
        with self._lock:
            key = (account_id, region, operation)
            if key not in self._limiters:
                self._limiters[key] = RateLimiter(self._rate, BURST, self._clock, self._sleep)
            return self._limiters[key]

    def collect(self, ctx: CollectContext) -> Observations:
        return observe(self.fetch(ctx), ctx.observe)

    def fetch(self, ctx: CollectContext) -> DynamoDbRecords:
        client = ctx.client(SERVICE)
        account, region = ctx.observe.account_id, ctx.observe.region
        tags_limit = self.limiter(account, region, "ListTagsOfResource")
        pitr_limit = self.limiter(account, region, "DescribeContinuousBackups")
        tables = []
        for name in ctx.paginate(client, "list_tables", "TableNames"):
            arn = table_arn(region, account, str(name))
            tags_limit.acquire()
            tags = tags_of(list(resource_tags(ctx, client, arn)))
            pitr_limit.acquire()
            described = client.describe_continuous_backups(TableName=name)
            tables.append(
                TableRecord(
                    str(name), arn, tags, described.get("ContinuousBackupsDescription") or {}
                )
            )
            check_deadline(ctx, "DescribeContinuousBackups")
        backups = tuple(
            ctx.paginate(client, "list_backups", "BackupSummaries", BackupType=USER_BACKUPS)
        )
        return DynamoDbRecords(tables=tuple(tables), backups=backups)


def check_deadline(ctx: CollectContext, operation: str) -> None:
    if ctx.monotonic() > ctx.deadline:
        raise UnitDeadlineError(f"{operation} still running at the unit deadline")


def resource_tags(ctx: CollectContext, client: Any, arn: str) -> Iterator[Record]:
    """ListTagsOfResource pages by NextToken and takes no page size: follow it by hand."""
    params: dict[str, Any] = {"ResourceArn": arn}
    while True:
        page = client.list_tags_of_resource(**params)
        yield from page.get("Tags", ())
        token = page.get("NextToken")
        if not token:
            return
        check_deadline(ctx, "ListTagsOfResource")
        params["NextToken"] = token


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def table_arn(region: str, account_id: str, name: str) -> str:
    """ListTables names tables only; their ARN follows from the unit (no DescribeTable)."""
    return f"arn:{partition_of(region)}:dynamodb:{region}:{account_id}:table/{name}"


# --- the pure mapping --------------------------------------------------------------------


def observe(records: DynamoDbRecords, ctx: ObserveContext) -> Observations:
    backups_by_table = group_backups(records.backups)
    resources: list[Resource] = []
    states: list[RecoveryState] = []

    def mapped(table: TableRecord) -> tuple[Resource, list[RecoveryState]]:
        # Without the (optional) description, PITR is unknown: skipped, never taken for off.
        if not table.continuous_backups:
            raise RecordError(MISSING_FIELD, "ContinuousBackupsDescription absent")
        resource = resource_of(table, ctx)
        own_states = [pitr_state(resource.ref, table.continuous_backups, ctx)]
        own = backups_by_table.get(table.name, ())
        if own:
            own_states.append(on_demand_state(resource.ref, own, ctx))
        return resource, own_states

    for resource, own_states in ctx.collection.each(records.tables, lambda t: t.arn, mapped):
        resources.append(resource)
        states.extend(own_states)
    return Observations(resources=tuple(resources), recovery_states=tuple(states))


def group_backups(backups: Iterable[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for backup in backups:
        if backup.get("BackupType", USER_BACKUPS) == USER_BACKUPS:
            groups[str(backup.get("TableName", ""))].append(backup)
    return groups


def resource_of(table: TableRecord, ctx: ObserveContext) -> Resource:
    return Resource(
        ref=ResourceRef(ctx.account_id, ctx.region, SERVICE, RESOURCE_TYPE, table.name),
        name=table.name,
        tier=ctx.tiers.tier_for(table.tags),
        arn=table.arn,
        tags=sorted_tags(table.tags),
    )


def pitr_state(ref: ResourceRef, described: Record, ctx: ObserveContext) -> RecoveryState:
    """PITR: restorable to any second between the earliest and latest restorable time."""
    pitr = described.get("PointInTimeRecoveryDescription") or {}
    enabled = pitr.get("PointInTimeRecoveryStatus") == "ENABLED"
    # AWS's default recovery period is 35 days when the table does not report one.
    period = int(pitr.get("RecoveryPeriodInDays") or 35) if enabled else None
    return RecoveryState(
        ref=ref,
        mechanism=Mechanism.PITR,
        location_account_id=ctx.account_id,
        location_region=ctx.region,
        enabled=enabled,
        newest_point=pitr.get("LatestRestorableDateTime") if enabled else None,
        oldest_point=pitr.get("EarliestRestorableDateTime") if enabled else None,
        retention_min_days=period,
        retention_max_days=period,
        encrypted=True,
    )


def on_demand_state(
    ref: ResourceRef, backups: Sequence[Record], ctx: ObserveContext
) -> RecoveryState:
    """On-demand backups: kept until deleted. DynamoDB has no schedule of its own for them,
    so the mechanism counts as enabled while the table has an available one; how old the
    newest one is, is the RPO's business."""
    available = [b for b in backups if b.get("BackupStatus") == "AVAILABLE"]
    times: list[datetime] = [b["BackupCreationDateTime"] for b in available]
    return RecoveryState(
        ref=ref,
        mechanism=Mechanism.MANUAL_SNAPSHOT,
        location_account_id=ctx.account_id,
        location_region=ctx.region,
        enabled=bool(available),
        newest_point=max(times, default=None),
        oldest_point=min(times, default=None),
        point_count=len(available),
        size_bytes=sum(int(b.get("BackupSizeBytes") or 0) for b in available),
        never_expire_count=sum(1 for b in available if b.get("BackupExpiryDateTime") is None),
        encrypted=True if available else None,
    )
