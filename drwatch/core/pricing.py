"""Backup storage and its estimated cost: price types and pure pricing functions, no I/O.

Both the exporter (storage and estimated cost per poll) and the management review (storage
priced from history) use it, so it lives in `core`. Loading the shipped price table
(`drwatch/config/prices/`) with the config's `pricing:` overrides applied is
`drwatch.config.price_table.load_price_table`.

Semantics, stated once:

- Storage is billed where the points are kept: a cross-region copy costs in the copy's
  region and account (`RecoveryState.location_*`).
- Sizes are what AWS reports. For incremental snapshots (EBS, RDS, AWS Backup of EBS/RDS)
  that is the allocated or full size of each point, while AWS bills changed blocks: those
  figures and their costs are upper bounds (`StorageItem.upper_bound`).
- AWS Backup reports warm and cold bytes per vault, not per resource: a resource's
  aws_backup bytes are split between warm and cold in the proportion of the vaults of the
  same account and region (exact when those vaults hold one storage class).
- EBS snapshots in the archive tier (`archived_count`) are `archive`: their share of the
  points, each counted at the volume size.
- Prices are USD per GiB-month (AWS's "GB-month" is 2^30 bytes averaged over the month).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from drwatch.core.model import Mechanism, RecoveryState, VaultState
from drwatch.core.units import GIB

STORAGE_CLASSES: Final = ("warm", "cold", "archive")
ANY: Final = "*"
PriceKey = tuple[str, str, str]  # service, storage class, region ("*" = any)

# Services whose snapshots are incremental: AWS reports the allocated or full size of each
# point but bills only the changed blocks, so summed sizes over-state the bill.
INCREMENTAL_SERVICES: Final = frozenset({"ec2", "ebs", "rds", "elasticfilesystem"})
# Mechanisms that hold point-in-time copies (as opposed to S3 objects or replicas).
SNAPSHOT_MECHANISMS: Final = frozenset(
    {Mechanism.SNAPSHOT, Mechanism.MANUAL_SNAPSHOT, Mechanism.AWS_BACKUP}
)


class PriceTableError(Exception):
    """The price file is missing, malformed or has no price for a storage class."""


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One price row: USD per GiB-month of (service, storage class, region).

    The shipped table's rows and the config's `pricing.overrides` rows alike.
    """

    service: str  # "*" = every service
    storage_class: str  # warm | cold | archive
    region: str  # "*" = every region
    per_gib_month: float


@dataclass(frozen=True, slots=True)
class Price:
    """A price with where it came from, so reports can show which row priced what."""

    per_gib_month: float
    service: str
    storage_class: str
    region: str
    origin: str  # "config override" | "price table"


@dataclass(frozen=True, slots=True)
class PriceTable:
    """The shipped price rows plus config overrides; `price()` picks the best match."""

    rows: Mapping[PriceKey, PriceOverride]  # by (service, storage class, region)
    overrides: Mapping[PriceKey, PriceOverride]
    inter_region_transfer_per_gib: float
    source: str
    as_of: str
    currency: str = "USD"

    def price(self, service: str, storage_class: str, region: str) -> Price:
        """Overrides first, then the table; in each, the most specific row.

        Specificity: (service, region), (service, "*"), ("*", region), ("*", "*"). An
        override for every region of a service beats a shipped row for one region: the
        operator said what that service costs.
        """
        for origin, rows in (("config override", self.overrides), ("price table", self.rows)):
            for key in _candidates(service, storage_class, region):
                row = rows.get(key)
                if row is not None:
                    return Price(row.per_gib_month, row.service, storage_class, row.region, origin)
        raise PriceTableError(f"no price for storage class {storage_class!r} (service {service})")


def index_rows(rows: Iterable[PriceOverride]) -> Mapping[PriceKey, PriceOverride]:
    return MappingProxyType({(row.service, row.storage_class, row.region): row for row in rows})


def _candidates(service: str, storage_class: str, region: str) -> list[PriceKey]:
    return [
        (service, storage_class, region),
        (service, storage_class, ANY),
        (ANY, storage_class, region),
        (ANY, storage_class, ANY),
    ]


@dataclass(frozen=True, slots=True, order=True)
class StorageItem:
    """Bytes of one mechanism of one resource in one storage class, where they are billed."""

    account_id: str  # where the points are stored (billed)
    region: str
    service: str
    resource_type: str
    resource_id: str
    source_account_id: str  # the protected resource's own account and region
    source_region: str
    mechanism: str
    storage_class: str
    bytes: int
    upper_bound: bool

    @property
    def is_copy(self) -> bool:
        return (self.account_id, self.region) != (self.source_account_id, self.source_region)

    @property
    def is_cross_region(self) -> bool:
        return self.region != self.source_region

    def monthly_cost(self, prices: PriceTable) -> float:
        return monthly_cost(self.bytes, prices.price(self.service, self.storage_class, self.region))


def monthly_cost(size_bytes: float, price: Price) -> float:
    """USD for keeping `size_bytes` for a whole month at `price`."""
    return size_bytes / GIB * price.per_gib_month


def is_upper_bound(service: str, mechanism: str) -> bool:
    return service in INCREMENTAL_SERVICES and mechanism in SNAPSHOT_MECHANISMS


def cold_class(service: str) -> str:
    """AWS Backup's cold tier is the EBS snapshot archive for EBS volumes, cold elsewhere."""
    return "archive" if service in {"ec2", "ebs"} else "cold"


def cold_shares(vaults: Iterable[VaultState]) -> dict[tuple[str, str], tuple[int, int]]:
    """(cold bytes, all bytes) of the AWS Backup vaults per (account, region)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for vault in vaults:
        total = totals[(vault.account_id, vault.region)]
        total[0] += vault.cold_bytes
        total[1] += vault.cold_bytes + vault.warm_bytes
    return {key: (cold, whole) for key, (cold, whole) in totals.items()}


def storage_items(
    states: Iterable[RecoveryState], vaults: Sequence[VaultState]
) -> list[StorageItem]:
    """Every recovery state with stored bytes, split by storage class (see module doc)."""
    shares = cold_shares(vaults)
    items: list[StorageItem] = []
    for state in states:
        if state.size_bytes <= 0:
            continue
        cold = 0
        if state.mechanism == Mechanism.AWS_BACKUP:
            cold_bytes, whole = shares.get(
                (state.location_account_id, state.location_region), (0, 0)
            )
            # Integer arithmetic: the warm and cold parts add up to the reported size exactly.
            cold = state.size_bytes * cold_bytes // whole if whole else 0
        elif state.archived_count and state.point_count:
            # EBS snapshots in the archive tier: each point is counted at the volume's size,
            # so the archived share of the bytes is the archived share of the points.
            cold = (
                state.size_bytes
                * min(state.archived_count, state.point_count)
                // (state.point_count)
            )
        parts = (("warm", state.size_bytes - cold), (cold_class(state.ref.service), cold))
        items.extend(_item(state, storage_class, size) for storage_class, size in parts if size)
    return items


def _item(state: RecoveryState, storage_class: str, size: int) -> StorageItem:
    ref = state.ref
    return StorageItem(
        account_id=state.location_account_id,
        region=state.location_region,
        service=ref.service,
        resource_type=ref.resource_type,
        resource_id=ref.resource_id,
        source_account_id=ref.account_id,
        source_region=ref.region,
        mechanism=state.mechanism.value,
        storage_class=storage_class,
        bytes=size,
        upper_bound=is_upper_bound(ref.service, state.mechanism.value),
    )


StorageKey = tuple[str, str, str, str, str]  # account_id, region, service, mechanism, class


def storage_by_key(items: Iterable[StorageItem]) -> dict[StorageKey, int]:
    """Bytes per (account, region, service, mechanism, storage class): the metric's labels."""
    totals: dict[StorageKey, int] = defaultdict(int)
    for item in items:
        totals[
            (item.account_id, item.region, item.service, item.mechanism, item.storage_class)
        ] += item.bytes
    return dict(totals)
