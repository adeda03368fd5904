"""Where moto's RDS differs from AWS in ways drwatch can see, and how the sandbox fixes it.

`install_moto_extensions()` patches moto's classes (our fake AWS, so patching it is fair);
it runs from `Sandbox.start` and is idempotent. The gaps:

- LatestRestorableTime: moto answers "now" on every call. AWS reports when the last
  transaction log was archived (a few minutes ago when healthy, hours when log shipping is
  broken) and omits the field when backups are disabled. Resources can carry a planned value.
- Pagination: moto returns every DB snapshot, cluster, cluster snapshot and automated backup
  in one page and ignores MaxRecords/Marker; AWS pages at MaxRecords (20..100, default 100).
- DescribeDBInstanceAutomatedBackups: moto lists only instance id and status. AWS returns the
  restore window, ARNs, and cross-region replicated backups in their destination region
  (`Region` = source region); the source instance lists its replications.
- DescribeDBClusterAutomatedBackups: missing in moto; AWS lists retained backups of deleted
  clusters, which the sandbox never has, so it answers an empty (paginated) list.
- DbiResourceId: moto gives every instance the same one; AWS ids are unique per instance.
- Request overhead: moto's dispatcher lists its own package directory (hundreds of stat
  calls) twice per request to recognise backend names; the list never changes, so it is
  computed once (~15% less time per request).
- Snapshot quota: moto counts automated snapshots against its manual-snapshot quota of 1000
  per region; fleets keep far more, and drwatch never creates snapshots, so the quota is
  lifted rather than enforced.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import moto.backends
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.rds.exceptions import InvalidParameterValue
from moto.rds.models import DBCluster, DBInstance, DBInstanceClustered, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

INSTALLED_MARKER = "_drwatch_extensions_installed"
PLANNED_LATEST_RESTORABLE_TIME = "_drwatch_latest_restorable_time"
REPLICATED_BACKUPS = "_drwatch_replicated_backups"
SANDBOX_SNAPSHOT_QUOTA = 10_000_000
PAGE_SIZE_MIN, PAGE_SIZE_MAX = 20, 100  # AWS's MaxRecords range for RDS Describe* calls

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RestoreWindow:
    earliest_time: datetime | None
    latest_time: datetime | None


@dataclass(frozen=True, slots=True)
class BackupReplication:
    db_instance_automated_backups_arn: str


@dataclass(frozen=True, slots=True)
class InstanceAutomatedBackup:
    """One DBInstanceAutomatedBackup; attribute names are moto's serializer's snake_case."""

    db_instance_arn: str
    dbi_resource_id: str
    region: str
    db_instance_identifier: str
    restore_window: RestoreWindow
    allocated_storage: int
    status: str
    port: int | None
    availability_zone: str | None
    instance_create_time: datetime
    master_username: str | None
    engine: str
    engine_version: str
    license_model: str
    encrypted: bool
    storage_type: str | None
    kms_key_id: str | None
    iam_database_authentication_enabled: bool
    backup_retention_period: int
    preferred_backup_window: str | None
    db_instance_automated_backups_arn: str
    # None rather than empty: AWS omits the member when nothing is replicated.
    db_instance_automated_backups_replications: tuple[BackupReplication, ...] | None
    backup_target: str = "region"


def install_moto_extensions() -> None:
    """Patch moto's RDS model and responses (idempotent)."""
    if getattr(RDSBackend, INSTALLED_MARKER, False):
        return
    _cache_moto_module_list()
    _patch_latest_restorable_time()
    _patch_unique_dbi_resource_ids()
    _patch_snapshot_quota()
    _patch_automated_backups()
    _patch_pagination()
    setattr(RDSBackend, INSTALLED_MARKER, True)


def _cache_moto_module_list() -> None:
    modules = tuple(moto.backends.list_of_moto_modules())

    def cached_moto_modules() -> tuple[str, ...]:
        return modules

    moto.backends.list_of_moto_modules = cached_moto_modules


# --- restorable times -------------------------------------------------------------------


def plan_latest_restorable_time(resource: Any, value: datetime | None) -> None:
    """Make a moto DBInstance/DBCluster report `value` (naive UTC; None = omitted)."""
    setattr(resource, PLANNED_LATEST_RESTORABLE_TIME, value)


def _latest_restorable_time(resource: Any) -> datetime | None:
    if PLANNED_LATEST_RESTORABLE_TIME in resource.__dict__:
        planned: datetime | None = resource.__dict__[PLANNED_LATEST_RESTORABLE_TIME]
        return planned
    if not resource.backup_retention_period:
        return None  # AWS omits it when automated backups are off
    return utcnow()


def _patch_latest_restorable_time() -> None:
    for model in (DBInstance, DBCluster):
        model.latest_restorable_time = property(_latest_restorable_time)  # type: ignore[assignment, method-assign]


# --- identities and quotas ---------------------------------------------------------------


def stable_token(*parts: str, length: int = 26) -> str:
    """A deterministic upper-case base32 token, shaped like AWS resource ids."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().rstrip("=")[:length]


def _patch_unique_dbi_resource_ids() -> None:
    original_init = DBInstance.__init__

    def init_with_unique_dbi_resource_id(self: DBInstance, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.dbi_resource_id = "db-" + stable_token(
            self.account_id, self.region, self.db_instance_identifier
        )

    DBInstance.__init__ = init_with_unique_dbi_resource_id  # type: ignore[method-assign]


def _patch_snapshot_quota() -> None:
    RDSBackend.SNAPSHOT_QUOTA = SANDBOX_SNAPSHOT_QUOTA  # type: ignore[assignment]


# --- automated backups -------------------------------------------------------------------


def automated_backup_arn(account_id: str, region: str, source_arn: str) -> str:
    return f"arn:aws:rds:{region}:{account_id}:auto-backup:ab-{stable_token(region, source_arn)}"


def register_backup_replication(
    source: DBInstance, destination_region: str, earliest: datetime, latest: datetime
) -> str:
    """Replicate `source`'s automated backups to `destination_region` (naive UTC window).

    The replica appears in the destination region's DescribeDBInstanceAutomatedBackups with
    Status "replicating", and the source lists it under DBInstanceAutomatedBackupsReplications.
    Returns the replica's DBInstanceAutomatedBackupsArn.
    """
    destination = rds_backends[source.account_id][destination_region]
    arn = automated_backup_arn(source.account_id, destination_region, source.db_instance_arn)
    replica = _backup_view(
        source,
        status="replicating",
        window=RestoreWindow(earliest, latest),
        arn=arn,
        replications=(),
    )
    _replicated_backups(destination)[arn] = replica
    existing = getattr(source, "db_instance_automated_backups_replications", None) or []
    if all(ref.db_instance_automated_backups_arn != arn for ref in existing):
        source.db_instance_automated_backups_replications = [*existing, BackupReplication(arn)]  # type: ignore[attr-defined]
    return arn


def _replicated_backups(backend: RDSBackend) -> dict[str, InstanceAutomatedBackup]:
    # Kept on the backend object so moto's reset forgets it with everything else.
    store: dict[str, InstanceAutomatedBackup] = backend.__dict__.setdefault(REPLICATED_BACKUPS, {})
    return store


def _backup_view(
    db: Any,
    status: str,
    window: RestoreWindow,
    arn: str,
    replications: tuple[BackupReplication, ...],
) -> InstanceAutomatedBackup:
    return InstanceAutomatedBackup(
        db_instance_arn=db.db_instance_arn,
        dbi_resource_id=db.dbi_resource_id,
        region=db.region,
        db_instance_identifier=db.db_instance_identifier,
        restore_window=window,
        allocated_storage=db.allocated_storage,
        status=status,
        port=db.port,
        availability_zone=db.availability_zone,
        instance_create_time=db.created,
        master_username=db.master_username,
        engine=db.engine,
        engine_version=db.engine_version,
        license_model=db.license_model,
        encrypted=bool(db.storage_encrypted),
        storage_type=db.storage_type,
        kms_key_id=db.kms_key_id,
        iam_database_authentication_enabled=bool(db.enable_iam_database_authentication),
        backup_retention_period=db.backup_retention_period,
        preferred_backup_window=db.preferred_backup_window,
        db_instance_automated_backups_arn=arn,
        db_instance_automated_backups_replications=replications or None,
    )


def _active_backup(
    backend: RDSBackend, db: DBInstance, oldest_snapshot: dict[str, datetime]
) -> InstanceAutomatedBackup:
    earliest = getattr(db, "earliest_restorable_time", None) or oldest_snapshot.get(
        db.db_instance_identifier
    )
    replications = tuple(getattr(db, "db_instance_automated_backups_replications", None) or ())
    return _backup_view(
        db,
        status="active",
        window=RestoreWindow(earliest, db.latest_restorable_time),
        arn=automated_backup_arn(backend.account_id, backend.region_name, db.db_instance_arn),
        replications=replications,
    )


def _oldest_automated_snapshots(backend: RDSBackend) -> dict[str, datetime]:
    oldest: dict[str, datetime] = {}
    for snapshot in backend.database_snapshots.values():
        if snapshot.snapshot_type == "automated":
            db_id = snapshot.db_instance_identifier
            oldest[db_id] = min(snapshot.created, oldest.get(db_id, snapshot.created))
    return oldest


def _retained_backups(backend: RDSBackend) -> list[InstanceAutomatedBackup]:
    """Automated snapshots outliving their instance, as moto (and AWS) report them."""
    grouped: dict[str, list[Any]] = {}
    for snapshot in backend.database_snapshots.values():
        if snapshot.snapshot_type != "automated":
            continue
        if snapshot.db_instance_identifier in backend.databases:
            continue
        grouped.setdefault(snapshot.db_instance_identifier, []).append(snapshot)
    retained = []
    for snapshots in grouped.values():
        times = [snapshot.created for snapshot in snapshots]
        db = snapshots[0].database
        retained.append(
            _backup_view(
                db,
                status="retained",
                window=RestoreWindow(min(times), max(times)),
                arn=automated_backup_arn(
                    backend.account_id, backend.region_name, db.db_instance_arn
                ),
                replications=(),
            )
        )
    return retained


def list_instance_automated_backups(backend: RDSBackend) -> list[InstanceAutomatedBackup]:
    """Active backups of instances with retention > 0, retained and replicated ones."""
    oldest_snapshot = _oldest_automated_snapshots(backend)
    active = [
        _active_backup(backend, db, oldest_snapshot)
        for db in backend.databases.values()
        # Aurora members have no instance-level backups: the cluster owns them.
        if not isinstance(db, DBInstanceClustered) and db.backup_retention_period
    ]
    replicated = list(_replicated_backups(backend).values())
    return active + _retained_backups(backend) + replicated


def _filter_automated_backups(
    backups: Iterable[InstanceAutomatedBackup], params: Any
) -> list[InstanceAutomatedBackup]:
    wanted: dict[str, set[str]] = {}
    for name, values in _filters_of(params).items():
        wanted[name] = set(values)
    for param, name in (
        ("DBInstanceIdentifier", "db-instance-id"),
        ("DbiResourceId", "dbi-resource-id"),
        ("DBInstanceAutomatedBackupsArn", "db-instance-automated-backups-arn"),
    ):
        if params.get(param):
            wanted.setdefault(name, set()).add(str(params.get(param)))
    unknown = set(wanted) - {
        "db-instance-id",
        "dbi-resource-id",
        "status",
        "db-instance-automated-backups-arn",
    }
    if unknown:
        raise InvalidParameterValue(f"Unrecognized filter name: {sorted(unknown)[0]}")

    def keep(backup: InstanceAutomatedBackup) -> bool:
        attributes = {
            "db-instance-id": {backup.db_instance_identifier, backup.db_instance_arn},
            "dbi-resource-id": {backup.dbi_resource_id},
            "status": {backup.status},
            "db-instance-automated-backups-arn": {backup.db_instance_automated_backups_arn},
        }
        return all(attributes[name] & values for name, values in wanted.items())

    return [backup for backup in backups if keep(backup)]


def _filters_of(params: Any) -> dict[str, list[str]]:
    return {f["Name"]: list(f["Values"]) for f in (params.get("Filters") or [])}


def _describe_db_instance_automated_backups(self: RDSResponse) -> ActionResult:
    backups = _filter_automated_backups(list_instance_automated_backups(self.backend), self.params)
    page, marker = paginate(backups, lambda b: b.db_instance_automated_backups_arn, self.params)
    return ActionResult({"DBInstanceAutomatedBackups": page, "Marker": marker})


def _describe_db_cluster_automated_backups(self: RDSResponse) -> ActionResult:
    retained: list[str] = []  # the sandbox never deletes clusters, so nothing is retained
    page, marker = paginate(retained, str, self.params)
    return ActionResult({"DBClusterAutomatedBackups": page, "Marker": marker})


def _patch_automated_backups() -> None:
    RDSResponse.describe_db_instance_automated_backups = _describe_db_instance_automated_backups  # type: ignore[method-assign]
    # moto dispatches on method names found on the class, so adding one adds the action.
    RDSResponse.describe_db_cluster_automated_backups = _describe_db_cluster_automated_backups  # type: ignore[attr-defined]


# --- pagination ---------------------------------------------------------------------------


def page_size(max_records: Any) -> int:
    if max_records is None:
        return PAGE_SIZE_MAX
    size = int(max_records)
    if not PAGE_SIZE_MIN <= size <= PAGE_SIZE_MAX:
        raise InvalidParameterValue(
            f"Invalid value {size} for MaxRecords. Must be between "
            f"{PAGE_SIZE_MIN} and {PAGE_SIZE_MAX}"
        )
    return size


def encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_marker(marker: str) -> str:
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise InvalidParameterValue(f"Invalid marker: {marker}") from error


def paginate(
    items: Sequence[T], key: Callable[[T], str], params: Any
) -> tuple[list[T], str | None]:
    """One page of `items` and the Marker of the next page (None on the last page)."""
    size = page_size(params.get("MaxRecords"))
    start = 0
    marker = params.get("Marker")
    if marker:
        wanted = decode_marker(str(marker))
        start = next((i for i, item in enumerate(items) if key(item) == wanted), -1)
        if start < 0:
            raise InvalidParameterValue(f"Invalid marker: {marker}")
    end = start + size
    next_marker = encode_marker(key(items[end])) if end < len(items) else None
    return list(items[start:end]), next_marker


def _paginated(result_key: str, key: Callable[[Any], str]) -> Callable[..., Any]:
    """Wrap an RDSResponse method whose moto version returns everything in one page."""

    def decorate(original: Callable[[RDSResponse], ActionResult]) -> Callable[..., ActionResult]:
        def paginated(self: RDSResponse) -> ActionResult:
            result: dict[str, Any] = original(self).result  # type: ignore[assignment]
            page, marker = paginate(list(result[result_key]), key, self.params)
            return ActionResult({**result, result_key: page, "Marker": marker})

        paginated.__name__ = original.__name__
        return paginated

    return decorate


def _patch_pagination() -> None:
    wrap_snapshots = _paginated("DBSnapshots", lambda s: str(s.db_snapshot_arn))
    wrap_clusters = _paginated("DBClusters", lambda c: str(c.db_cluster_arn))
    wrap_cluster_snapshots = _paginated(
        "DBClusterSnapshots", lambda s: str(s.db_cluster_snapshot_arn)
    )
    RDSResponse.describe_db_snapshots = wrap_snapshots(RDSResponse.describe_db_snapshots)  # type: ignore[method-assign]
    RDSResponse.describe_db_clusters = wrap_clusters(RDSResponse.describe_db_clusters)  # type: ignore[method-assign]
    RDSResponse.describe_db_cluster_snapshots = wrap_cluster_snapshots(  # type: ignore[method-assign]
        RDSResponse.describe_db_cluster_snapshots
    )
