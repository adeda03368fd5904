"""A deterministic fleet of RDS databases with realistic backup histories: the plan.

`plan_fleet(spec)` is pure: the same spec gives the same plan, down to the second. The plan
mixes scenarios drwatch must tell apart:

- healthy (~60%): PITR 1-4 min behind, daily automated snapshots over the retention window,
  a few manual snapshots, some very old ones (for maximum-retention checks);
- stale (~15%): log shipping broken, the latest restorable time is 2-30 h old;
- backups_disabled (~10%, instances only: Aurora cannot turn backups off): retention 0, no
  PITR, at most one old manual snapshot;
- snapshot_failing (~15%): the newest automated snapshot failed and PITR lags 1.5-12 h.

Every lag is beyond the loosest default tier RPO (60 min), so a scenario's verdict does not
depend on the tier. Tags are untrusted input: one team tag is an HTML payload, one is Unicode.

`FleetSpec` and `FleetPlan` are what the other services' fleets plan from (`spec_for`,
`stores_spec_for`); `rds_seed` seeds the databases, `seed.seed_fleet` the whole estate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

Scenario = Literal["healthy", "stale", "backups_disabled", "snapshot_failing"]
DatabaseKind = Literal["db_instance", "db_cluster"]
SnapshotType = Literal["automated", "manual"]
SnapshotStatus = Literal["available", "failed", "creating"]

# Shares of the non-healthy scenarios; healthy takes the rest.
SCENARIO_SHARES: tuple[tuple[Scenario, float], ...] = (
    ("stale", 0.15),
    ("backups_disabled", 0.10),
    ("snapshot_failing", 0.15),
)
MIN_DATABASES_FOR_EVERY_SCENARIO = 4
COPY_SHARE = 0.25  # share of eligible databases with a cross-region copy / replication

INSTANCE_ENGINES = (("postgres", "16.4", "pg"), ("mysql", "8.0.39", "my"))
CLUSTER_ENGINES = (
    ("aurora-postgresql", "16.4", "aurora-pg"),
    ("aurora-mysql", "8.0.mysql_aurora.3.07.1", "aurora-my"),
)
APPS = ("orders", "billing", "ledger", "catalog", "payments", "search", "users", "inventory")
TIERS = ("premium", "standard", "basic")
TIER_WEIGHTS = (25, 45, 30)
UNTAGGED_TIER_SHARE = 0.2
TEAMS = ("payments", "platform", "data", "identity", "growth")
HOSTILE_TEAM = "<script>alert(1)</script>"
UNICODE_TEAM = "équipe-données-データ"
RETENTION_DAYS = (7, 14, 35)
SIZES_GIB = (20, 50, 100, 200, 500, 1000, 2000)
SNAPSHOT_SETTLE = timedelta(minutes=10)  # a snapshot younger than this is still being taken


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSpec:
    seed: int = 42
    accounts: tuple[str, ...] = ("111111111111", "222222222222")
    regions: tuple[str, ...] = ("eu-west-1", "us-east-1")
    rds_instances: int = 24  # total across all account x region units, spread round-robin
    aurora_clusters: int = 8
    now: datetime  # tz-aware UTC; no default so plans never depend on the wall clock
    tier_tag_key: str = "dr-tier"

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() != timedelta(0):
            raise ValueError(f"now: must be timezone-aware UTC, got {self.now!r}")
        if not self.accounts or not all(a.isdigit() and len(a) == 12 for a in self.accounts):
            raise ValueError(f"accounts: need 12-digit account ids, got {self.accounts}")
        if not self.regions:
            raise ValueError("regions: need at least one region")
        if self.rds_instances < 0 or self.aurora_clusters < 0:
            raise ValueError("rds_instances, aurora_clusters: must be >= 0")

    @property
    def units(self) -> tuple[tuple[str, str], ...]:
        """(account, region) pairs in round-robin order."""
        return tuple((account, region) for account in self.accounts for region in self.regions)


@dataclass(frozen=True, slots=True)
class PlannedSnapshot:
    identifier: str
    snapshot_type: SnapshotType
    created: datetime
    status: SnapshotStatus
    allocated_gib: int
    encrypted: bool
    # Region this copy lives in (the database's snapshot_copy_region); None for snapshots in
    # the database's own region.
    copy_of_region: str | None = None
    copied_from: str | None = None  # identifier of the source snapshot, for copies


@dataclass(frozen=True, slots=True)
class PlannedDatabase:
    account_id: str
    region: str
    kind: DatabaseKind
    identifier: str
    engine: str
    engine_version: str
    tags: tuple[tuple[str, str], ...]
    scenario: Scenario
    backup_retention_days: int
    latest_restorable_time: datetime | None
    earliest_restorable_time: datetime | None
    storage_encrypted: bool
    deletion_protection: bool
    allocated_gib: int
    snapshots: tuple[PlannedSnapshot, ...]
    backup_replication_region: str | None  # cross-region automated backups (instances only)
    snapshot_copy_region: str | None  # newest available snapshot copied to this region
    created: datetime
    preferred_backup_window: str
    # Restore window of the replicated automated backups in backup_replication_region.
    replica_earliest_restorable_time: datetime | None = None
    replica_latest_restorable_time: datetime | None = None
    member_identifier: str | None = None  # the one Aurora instance of a cluster

    @property
    def arn(self) -> str:
        resource = "db" if self.kind == "db_instance" else "cluster"
        return f"arn:aws:rds:{self.region}:{self.account_id}:{resource}:{self.identifier}"

    def snapshot_arn(self, snapshot: PlannedSnapshot) -> str:
        resource = "snapshot" if self.kind == "db_instance" else "cluster-snapshot"
        region = snapshot.copy_of_region or self.region
        return f"arn:aws:rds:{region}:{self.account_id}:{resource}:{snapshot.identifier}"

    def snapshots_in(self, region: str) -> tuple[PlannedSnapshot, ...]:
        return tuple(s for s in self.snapshots if (s.copy_of_region or self.region) == region)

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True, slots=True)
class FleetPlan:
    spec: FleetSpec
    databases: tuple[PlannedDatabase, ...]

    def in_unit(self, account_id: str, region: str) -> tuple[PlannedDatabase, ...]:
        return tuple(
            db for db in self.databases if db.account_id == account_id and db.region == region
        )


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where a database goes and what it is, before its details are drawn."""

    kind: DatabaseKind
    index: int  # per kind
    position: int  # across the fleet
    account_id: str
    region: str


@dataclass(frozen=True, slots=True)
class _Role:
    scenario: Scenario
    replication_region: str | None
    copy_region: str | None


# --- planning ----------------------------------------------------------------------------


def plan_fleet(spec: FleetSpec) -> FleetPlan:
    """The fleet for `spec`; pure and deterministic (seeded, and `now` is part of the spec)."""
    slots = _slots(spec)
    scenarios = _assign_scenarios(spec, slots)
    roles = _assign_copies(spec, slots, scenarios)
    return FleetPlan(spec, tuple(_plan_database(spec, s, roles[s.position]) for s in slots))


def _slots(spec: FleetSpec) -> list[_Slot]:
    units = spec.units
    kinds: list[tuple[DatabaseKind, int]] = [("db_instance", spec.rds_instances)]
    kinds.append(("db_cluster", spec.aurora_clusters))
    slots: list[_Slot] = []
    for kind, count in kinds:
        for index in range(count):
            account, region = units[index % len(units)]
            slots.append(_Slot(kind, index, len(slots), account, region))
    return slots


def scenario_counts(instances: int, clusters: int) -> dict[Scenario, int]:
    """How many databases get each scenario.

    From 4 databases on every scenario appears (backups_disabled needs an instance). With 2
    regions or more, at least one instance replicates its automated backups and one has a
    snapshot copy, as long as one instance has backups enabled (always, from 2 instances).
    """
    total = instances + clusters
    counts: dict[Scenario, int] = {}
    for scenario, share in SCENARIO_SHARES:
        count = round(total * share)
        if total >= MIN_DATABASES_FOR_EVERY_SCENARIO:
            count = max(1, count)
        counts[scenario] = count
    # Only instances can have backups off; keep one with backups on for replication when the
    # fleet has two instances or more.
    disabled_room = instances - 1 if instances >= 2 else instances
    counts["backups_disabled"] = min(counts["backups_disabled"], disabled_room)
    counts["healthy"] = total - sum(counts.values())
    return counts


def _assign_scenarios(spec: FleetSpec, slots: list[_Slot]) -> dict[int, Scenario]:
    rng = random.Random(f"{spec.seed}/scenarios")  # noqa: S311 - a simulation, not crypto
    counts = scenario_counts(spec.rds_instances, spec.aurora_clusters)
    instances = [s.position for s in slots if s.kind == "db_instance"]
    rng.shuffle(instances)
    disabled = set(instances[: counts["backups_disabled"]])
    rest = [s.position for s in slots if s.position not in disabled]
    rng.shuffle(rest)
    labels: list[Scenario] = ["stale"] * counts["stale"]
    labels += ["snapshot_failing"] * counts["snapshot_failing"]
    labels += ["healthy"] * counts["healthy"]
    assigned: dict[int, Scenario] = dict.fromkeys(disabled, "backups_disabled")
    assigned.update(zip(rest, labels, strict=True))
    return assigned


def _assign_copies(
    spec: FleetSpec, slots: list[_Slot], scenarios: dict[int, Scenario]
) -> dict[int, _Role]:
    """Cross-region replication (instances) and snapshot copies, at least one of each."""
    roles = {s.position: _Role(scenarios[s.position], None, None) for s in slots}
    if len(spec.regions) < 2:
        return roles
    rng = random.Random(f"{spec.seed}/copies")  # noqa: S311 - a simulation, not crypto
    eligible = [s for s in slots if scenarios[s.position] != "backups_disabled"]
    replicated = [s for s in eligible if s.kind == "db_instance" and rng.random() < COPY_SHARE]
    copied = [s for s in eligible if rng.random() < COPY_SHARE]
    instances = [s for s in eligible if s.kind == "db_instance"]
    healthy_first = sorted(instances, key=lambda s: scenarios[s.position] != "healthy")
    if not replicated and healthy_first:
        replicated = [healthy_first[0]]
    if healthy_first and not any(s.kind == "db_instance" for s in copied):
        copied.append(healthy_first[0])
    for slot in replicated:
        role = roles[slot.position]
        roles[slot.position] = replace(role, replication_region=_next_region(spec, slot))
    for slot in copied:
        roles[slot.position] = replace(roles[slot.position], copy_region=_next_region(spec, slot))
    return roles


def _next_region(spec: FleetSpec, slot: _Slot) -> str:
    regions = spec.regions
    return regions[(regions.index(slot.region) + 1) % len(regions)]


def _plan_database(spec: FleetSpec, slot: _Slot, role: _Role) -> PlannedDatabase:
    # One generator per database: changing the fleet size does not redraw the others.
    rng = random.Random(f"{spec.seed}/{slot.kind}/{slot.index}")  # noqa: S311 - not crypto
    now = spec.now
    engine, version, prefix = rng.choice(
        INSTANCE_ENGINES if slot.kind == "db_instance" else CLUSTER_ENGINES
    )
    identifier = f"{prefix}-{rng.choice(APPS)}-{slot.index:04d}"
    retention = 0 if role.scenario == "backups_disabled" else rng.choice(RETENTION_DAYS)
    encrypted = rng.random() < 0.85
    allocated = rng.choice(SIZES_GIB)
    window_start = timedelta(hours=rng.randrange(22), minutes=rng.choice(range(0, 60, 10)))
    latest = _latest_restorable_time(rng, role.scenario, now)
    taken = _automated_snapshots(rng, identifier, role.scenario, retention, window_start, latest)
    taken += _manual_snapshots(rng, identifier, role.scenario, now)
    own = [_planned(t, allocated, encrypted) for t in sorted(taken, key=lambda t: t.created)]
    automated_times = [s.created for s in own if s.snapshot_type == "automated"]
    # AWS can restore back to the oldest retained automated snapshot.
    earliest = min(automated_times, default=latest) if latest else None
    copies = _copy_of_newest(rng, identifier, own, role.copy_region, now)
    replica = _replica_window(rng, earliest, latest) if role.replication_region else None
    created = _creation_time(rng, own, earliest, retention, now)
    return PlannedDatabase(
        account_id=slot.account_id,
        region=slot.region,
        kind=slot.kind,
        identifier=identifier,
        engine=engine,
        engine_version=version,
        tags=_tags(spec, rng, slot),
        scenario=role.scenario,
        backup_retention_days=retention,
        latest_restorable_time=latest,
        earliest_restorable_time=earliest,
        storage_encrypted=encrypted,
        deletion_protection=rng.random() < 0.6,
        allocated_gib=allocated,
        snapshots=(*own, *copies),
        backup_replication_region=role.replication_region,
        snapshot_copy_region=role.copy_region if copies else None,
        created=created,
        preferred_backup_window=_backup_window(window_start),
        replica_earliest_restorable_time=replica[0] if replica else None,
        replica_latest_restorable_time=replica[1] if replica else None,
        member_identifier=f"{identifier}-instance-1" if slot.kind == "db_cluster" else None,
    )


def _tags(spec: FleetSpec, rng: random.Random, slot: _Slot) -> tuple[tuple[str, str], ...]:
    tags: list[tuple[str, str]] = []
    if rng.random() >= UNTAGGED_TIER_SHARE:
        tags.append((spec.tier_tag_key, rng.choices(TIERS, TIER_WEIGHTS)[0]))
    # Tags are untrusted input: the first two databases carry markup and non-ASCII text.
    special = {0: HOSTILE_TEAM, 1: UNICODE_TEAM}.get(slot.position)
    tags.append(("team", special or rng.choice(TEAMS)))
    tags.append(("env", "prod"))
    return tuple(tags)


def _seconds(dt: datetime) -> datetime:
    return dt.replace(microsecond=0)


def _latest_restorable_time(
    rng: random.Random, scenario: Scenario, now: datetime
) -> datetime | None:
    lag_seconds = {
        "healthy": (60, 240),
        "stale": (2 * 3600, 30 * 3600),
        "snapshot_failing": (90 * 60, 12 * 3600),
    }
    if scenario == "backups_disabled":
        return None
    low, high = lag_seconds[scenario]
    return _seconds(now - timedelta(seconds=rng.randint(low, high)))


@dataclass(frozen=True, slots=True)
class _Taken:
    identifier: str
    snapshot_type: SnapshotType
    created: datetime
    status: SnapshotStatus


def _automated_snapshots(
    rng: random.Random,
    identifier: str,
    scenario: Scenario,
    retention: int,
    window_start: timedelta,
    latest: datetime | None,
) -> list[_Taken]:
    """One snapshot a day in the backup window over the retention period, newest first.

    Snapshots are only planned up to the latest restorable time: a snapshot is itself a
    restorable point, so a stale database must not have a fresh one.
    """
    if retention == 0 or latest is None:
        return []
    midnight = latest.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = timedelta(minutes=rng.randint(1, 20))
    taken: list[_Taken] = []
    for days_ago in range(retention + 1):
        jitter = timedelta(seconds=rng.randint(0, 300))
        created = midnight - timedelta(days=days_ago) + window_start + offset + jitter
        if created > latest - SNAPSHOT_SETTLE or created < latest - timedelta(days=retention):
            continue
        name = f"rds:{identifier}-{created:%Y-%m-%d-%H-%M}"
        taken.append(_Taken(name, "automated", created, "available"))
    if scenario == "snapshot_failing" and taken:
        newest = taken[0]
        taken[0] = _Taken(newest.identifier, "automated", newest.created, "failed")
    return taken


def _manual_snapshots(
    rng: random.Random, identifier: str, scenario: Scenario, now: datetime
) -> list[_Taken]:
    """A few recent ones, sometimes a very old one, sometimes one being taken right now."""
    ages: list[timedelta] = []
    if scenario == "backups_disabled":
        if rng.random() < 0.5:
            ages.append(timedelta(days=rng.randint(30, 400), seconds=rng.randint(0, 86399)))
    else:
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            ages.append(timedelta(days=rng.randint(1, 90), seconds=rng.randint(0, 86399)))
        if rng.random() < 0.2:
            ages.append(timedelta(days=rng.randint(400, 1500), seconds=rng.randint(0, 86399)))
    taken = []
    for age in ages:
        created = _seconds(now - age)
        name = f"{identifier}-manual-{created:%Y%m%d-%H%M%S}"
        taken.append(_Taken(name, "manual", created, "available"))
    if scenario == "healthy" and rng.random() < 0.1:
        created = _seconds(now - timedelta(seconds=rng.randint(60, 1200)))
        name = f"{identifier}-manual-{created:%Y%m%d-%H%M%S}"
        taken.append(_Taken(name, "manual", created, "creating"))
    return taken


def _planned(taken: _Taken, allocated: int, encrypted: bool) -> PlannedSnapshot:
    return PlannedSnapshot(
        identifier=taken.identifier,
        snapshot_type=taken.snapshot_type,
        created=taken.created,
        status=taken.status,
        allocated_gib=allocated,
        encrypted=encrypted,
    )


def _copy_of_newest(
    rng: random.Random,
    identifier: str,
    own: list[PlannedSnapshot],
    destination: str | None,
    now: datetime,
) -> tuple[PlannedSnapshot, ...]:
    """The newest available snapshot whose copy has finished by `now`, copied."""
    if destination is None:
        return ()
    delay = timedelta(minutes=rng.randint(15, 90))
    finished = [s for s in own if s.status == "available" and s.created + delay <= now]
    if not finished:
        return ()
    source = max(finished, key=lambda s: s.created)
    copy = PlannedSnapshot(
        identifier=f"{identifier}-copy-{source.created:%Y%m%d-%H%M%S}",
        snapshot_type="manual",  # in AWS a copy is always a manual snapshot
        created=source.created + delay,
        status="available",
        allocated_gib=source.allocated_gib,
        encrypted=source.encrypted,
        copy_of_region=destination,
        copied_from=source.identifier,
    )
    return (copy,)


def _replica_window(
    rng: random.Random, earliest: datetime | None, latest: datetime | None
) -> tuple[datetime, datetime] | None:
    """Replicated backups trail the source by seconds to minutes and may start later."""
    if earliest is None or latest is None:
        return None
    replica_latest = latest - timedelta(seconds=rng.randint(30, 600))
    replica_earliest = min(earliest + timedelta(hours=rng.randint(0, 48)), replica_latest)
    return replica_earliest, replica_latest


def _creation_time(
    rng: random.Random,
    own: list[PlannedSnapshot],
    earliest: datetime | None,
    retention: int,
    now: datetime,
) -> datetime:
    """Before every snapshot and restorable point, and before the retention window."""
    bound = min([now - timedelta(days=retention + 30), *(s.created for s in own)])
    if earliest is not None:
        bound = min(bound, earliest)
    age = timedelta(days=rng.randint(1, 400), seconds=rng.randint(0, 86399))
    return _seconds(bound - age)


def _backup_window(start: timedelta) -> str:
    end = start + timedelta(minutes=30)
    return f"{_clock(start)}-{_clock(end)}"


def _clock(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
