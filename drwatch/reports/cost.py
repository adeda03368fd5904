"""Backup storage and estimated cost over time, from the history store only.

Storage per day: for every recovery state (and the AWS Backup vaults of every unit) the
value of its last observation that day. A month's estimated cost is the mean over its
observed days of each day's storage priced per GiB-month, which is how AWS bills storage
(average GB over the month). Days compacted into daily rollups keep only each resource's
largest stored bytes of the day, without mechanism or storage class: they are priced as
warm storage and flagged as upper bounds (docs/cost.md).

Prices and the split into storage classes come from `exporter/pricing.py`, the same code the
exporter's storage metrics use, so the report and `/metrics` agree.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from sqlite_utils import Database

from drwatch.core.model import Mechanism, RecoveryState, ResourceRef, VaultState
from drwatch.core.pricing import PriceTable, StorageItem, storage_items
from drwatch.core.units import DAY_SECONDS, GIB
from drwatch.history.figures import day_start
from drwatch.history.store import rolled_up_until_epoch

ROLLED_UP: Final = "rolled_up"  # mechanism of storage known only from daily rollups
UNKNOWN_TIER: Final = "unknown"
FORECAST_WINDOW_DAYS: Final = 90
FORECAST_MIN_DAYS: Final = 14  # fewer observed days give no forecast at all
FORECAST_MONTHS: Final = 3

ResourceTuple = tuple[str, str, str, str, str]  # account, region, service, type, id


@dataclass(frozen=True, slots=True)
class StorageDay:
    """What was stored on one UTC day (the day's last observation of each thing)."""

    day: int  # epoch of 00:00 UTC
    states: tuple[RecoveryState, ...]
    vaults: tuple[VaultState, ...]
    rolled_up: tuple[StorageItem, ...] = ()  # compacted days: per resource, no class

    def items(self) -> list[StorageItem]:
        return [*storage_items(self.states, self.vaults), *self.rolled_up]


@dataclass(frozen=True, slots=True)
class StorageHistory:
    days: Mapping[int, StorageDay]
    tiers: Mapping[ResourceTuple, str]

    def tier(self, item: StorageItem) -> str:
        key = (
            item.source_account_id,
            item.source_region,
            item.service,
            item.resource_type,
            item.resource_id,
        )
        return self.tiers.get(key, UNKNOWN_TIER)

    def days_in(self, start: int, end: int) -> list[StorageDay]:
        return [self.days[d] for d in sorted(self.days) if start <= d < end]


# --- reading history -------------------------------------------------------------------------


def load_storage(db: Database, start: datetime, end: datetime) -> StorageHistory:
    """Daily storage over [start, end) from raw intervals, or rollups for compacted days."""
    start_epoch, end_epoch = int(start.timestamp()), int(end.timestamp())
    compacted_until = max(rolled_up_until_epoch(db), start_epoch)
    latest: dict[tuple[int, int], dict[str, Any]] = {}
    tiers: dict[ResourceTuple, str] = {}
    rows = db.query(
        "SELECT s.key_seq, k.kind, k.key, s.value, s.first_seen, s.last_seen "
        "FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE k.kind IN ('resource', 'recovery', 'vault_states') "
        "AND s.first_seen < :end AND s.last_seen >= :start ORDER BY s.first_seen, s.seq",
        {"start": max(start_epoch, compacted_until), "end": end_epoch},
    )
    for row in rows:
        if row["kind"] == "resource":
            tiers[_resource_tuple(row["key"])] = str(json.loads(row["value"]).get("tier", ""))
            continue
        first = max(day_start(row["first_seen"]), day_start(max(start_epoch, compacted_until)))
        last = min(row["last_seen"], end_epoch - 1)
        for day in range(first, last + 1, DAY_SECONDS):
            latest[(day, row["key_seq"])] = row  # ordered by first_seen: the day's last wins
    days: dict[int, tuple[list[RecoveryState], list[VaultState]]] = defaultdict(lambda: ([], []))
    for (day, _), row in latest.items():
        states, vaults = days[day]
        if row["kind"] == "recovery":
            states.append(decode_recovery(row["key"], row["value"]))
        else:
            vaults.extend(decode_vaults(row["value"]))
    result = {
        day: StorageDay(day, tuple(states), tuple(vaults)) for day, (states, vaults) in days.items()
    }
    if compacted_until > start_epoch:
        result.update(_rolled_up_days(db, start_epoch, min(compacted_until, end_epoch)))
    return StorageHistory(MappingProxyType(result), MappingProxyType(tiers))


def _resource_tuple(key: str) -> ResourceTuple:
    account, region, service, resource_type, resource_id = json.loads(key)
    return (account, region, service, resource_type, resource_id)


def _rolled_up_days(db: Database, start: int, end: int) -> dict[int, StorageDay]:
    """Compacted days: each resource's largest stored bytes of the day, priced as warm."""
    items: dict[int, list[StorageItem]] = defaultdict(list)
    rows = db.query(
        "SELECT day, key, figures FROM daily_rollups WHERE scope = 'resource' "
        "AND day >= ? AND day < ?",
        [_day_label(start), _day_label(end)],
    )
    for row in rows:
        stored = int(json.loads(row["figures"])["max_stored_bytes"])
        if stored <= 0:
            continue
        account, region, service, resource_type, resource_id = json.loads(row["key"])
        day = int(datetime.fromisoformat(row["day"]).replace(tzinfo=UTC).timestamp())
        items[day].append(
            StorageItem(
                account, region, service, resource_type, resource_id, account, region,
                ROLLED_UP, "warm", stored, upper_bound=True,
            )
        )  # fmt: skip
    return {day: StorageDay(day, (), (), tuple(group)) for day, group in items.items()}


def _day_label(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


_RECOVERY_FIELDS = {f.name: f for f in dataclasses.fields(RecoveryState)}
_VAULT_FIELDS = {f.name for f in dataclasses.fields(VaultState)}
_TIME_FIELDS = frozenset({"newest_point", "oldest_point"})


def decode_recovery(key: str, value: str) -> RecoveryState:
    """A stored recovery interval back into the model (stored values omit defaults)."""
    account, region, service, rtype, rid, mechanism, location_account, location_region = json.loads(
        key
    )
    fields: dict[str, Any] = {
        name: _decode_time(v) if name in _TIME_FIELDS else v
        for name, v in json.loads(value).items()
        if name in _RECOVERY_FIELDS
    }
    return RecoveryState(
        ref=ResourceRef(account, region, service, rtype, rid),
        mechanism=Mechanism(mechanism),
        location_account_id=location_account,
        location_region=location_region,
        **fields,
    )


def decode_vaults(value: str) -> list[VaultState]:
    vaults = []
    for record in json.loads(value):
        fields = {k: v for k, v in record.items() if k in _VAULT_FIELDS}
        fields["oldest_point"] = _decode_time(fields.get("oldest_point"))
        vaults.append(VaultState(**fields))
    return vaults


def _decode_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# --- monthly figures ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One row of a breakdown: average stored bytes and estimated monthly cost."""

    key: tuple[str, ...]
    bytes: float
    cost: float
    upper_bound: bool


@dataclass(frozen=True, slots=True)
class MonthFigures:
    start: int
    end: int
    observed_days: int
    calendar_days: int
    total_bytes: float
    total_cost: float
    upper_bound_cost: float  # the part of total_cost priced on allocated (upper-bound) sizes
    transfer_bytes: float  # newly stored in another region: inter-region transfer
    transfer_cost: float
    by: Mapping[str, tuple[Line, ...]]  # breakdown name -> lines, largest cost first


# How each breakdown groups a storage item (with its tier).
BREAKDOWNS: Final[Mapping[str, Callable[[StorageItem, str], tuple[str, ...]]]] = MappingProxyType(
    {
        "service": lambda item, tier: (item.service,),
        "account": lambda item, tier: (item.account_id,),
        "region": lambda item, tier: (item.region,),
        "tier": lambda item, tier: (tier,),
        "storage_class": lambda item, tier: (item.storage_class,),
        "mechanism": lambda item, tier: (item.mechanism,),
        "resource": lambda item, tier: (
            item.source_account_id,
            item.source_region,
            item.service,
            item.resource_type,
            item.resource_id,
        ),
    }
)


def month_figures(
    history: StorageHistory, start: int, end: int, prices: PriceTable
) -> MonthFigures:
    """Average storage and estimated cost of [start, end) (a calendar month)."""
    days = history.days_in(start, end)
    sums: dict[str, dict[tuple[str, ...], list[float]]] = {
        name: defaultdict(lambda: [0.0, 0.0, 0.0]) for name in BREAKDOWNS
    }
    total_bytes = total_cost = upper_cost = 0.0
    for day in days:
        for item in day.items():
            cost = item.monthly_cost(prices)
            total_bytes += item.bytes
            total_cost += cost
            upper_cost += cost if item.upper_bound else 0.0
            tier = history.tier(item)
            for name, group in BREAKDOWNS.items():
                line = sums[name][group(item, tier)]
                line[0] += item.bytes
                line[1] += cost
                line[2] = max(line[2], float(item.upper_bound))
    observed = len(days)
    scale = 1 / observed if observed else 0.0
    transfer = transfer_bytes(history, start, end)
    return MonthFigures(
        start=start,
        end=end,
        observed_days=observed,
        calendar_days=(end - start) // DAY_SECONDS,
        total_bytes=total_bytes * scale,
        total_cost=total_cost * scale,
        upper_bound_cost=upper_cost * scale,
        transfer_bytes=transfer,
        transfer_cost=transfer / GIB * prices.inter_region_transfer_per_gib,
        by=MappingProxyType(
            {
                name: tuple(
                    sorted(
                        (
                            Line(key, b * scale, c * scale, bool(ub))
                            for key, (b, c, ub) in groups.items()
                        ),
                        key=lambda line: (-line.cost, line.key),
                    )
                )
                for name, groups in sums.items()
            }
        ),
    )


def transfer_bytes(history: StorageHistory, start: int, end: int) -> float:
    """Bytes newly stored in another region during [start, end): what copies sent.

    Per cross-region copy, the sum of its day-over-day increases (the day before `start`
    is the baseline when observed). Shrinking copies (expired points) send nothing.
    """
    previous: dict[tuple[str, ...], int] = {}
    sent = 0
    for day in history.days_in(start - DAY_SECONDS, end):
        current = {
            _copy_key(item): item.bytes
            for item in storage_items(day.states, ())
            if item.is_cross_region
        }
        if day.day >= start:
            sent += sum(max(0, size - previous.get(key, 0)) for key, size in current.items())
        previous = current
    return float(sent)


def _copy_key(item: StorageItem) -> tuple[str, ...]:
    return (
        item.account_id,
        item.region,
        item.source_account_id,
        item.source_region,
        item.service,
        item.resource_type,
        item.resource_id,
        item.mechanism,
    )


def daily_totals(
    history: StorageHistory, start: int, end: int, prices: PriceTable
) -> list[tuple[int, float, float, Mapping[str, float]]]:
    """(day, bytes, monthly-rate cost, bytes per storage class) for each observed day."""
    out: list[tuple[int, float, float, Mapping[str, float]]] = []
    for day in history.days_in(start, end):
        by_class: dict[str, float] = defaultdict(float)
        total_bytes = total_cost = 0.0
        for item in day.items():
            total_bytes += item.bytes
            total_cost += item.monthly_cost(prices)
            by_class[item.storage_class] += item.bytes
        out.append((day.day, total_bytes, total_cost, MappingProxyType(dict(by_class))))
    return out


# --- forecast ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForecastMonth:
    start: int
    end: int
    cost: float
    bytes: float


@dataclass(frozen=True, slots=True)
class Forecast:
    """A straight line through the daily figures of the window, extended: an estimate."""

    window_start: int
    window_end: int
    observed_days: int
    cost_per_day_slope: float  # change of the monthly cost rate per day
    months: tuple[ForecastMonth, ...]


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope); a flat line through the mean when x never varies."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def forecast(
    history: StorageHistory, period_end: int, prices: PriceTable, months: Sequence[tuple[int, int]]
) -> Forecast | None:
    """Cost and storage of each of `months` from the last 90 days before `period_end`.

    A month's value is the fitted line's mean over its days (its middle, for a line),
    never below zero. None with fewer than FORECAST_MIN_DAYS observed days.
    """
    window_start = period_end - FORECAST_WINDOW_DAYS * DAY_SECONDS
    totals = daily_totals(history, window_start, period_end, prices)
    if len(totals) < FORECAST_MIN_DAYS:
        return None
    # x: days since the window start, at each day's middle (storage is a daily average).
    cost_fit = linear_fit([((d - window_start) / DAY_SECONDS + 0.5, c) for d, _, c, _ in totals])
    bytes_fit = linear_fit([((d - window_start) / DAY_SECONDS + 0.5, b) for d, b, _, _ in totals])
    projected = []
    for start, end in months:
        middle = ((start + end) / 2 - window_start) / DAY_SECONDS
        projected.append(
            ForecastMonth(
                start,
                end,
                cost=max(0.0, cost_fit[0] + cost_fit[1] * middle),
                bytes=max(0.0, bytes_fit[0] + bytes_fit[1] * middle),
            )
        )
    return Forecast(window_start, period_end, len(totals), cost_fit[1], tuple(projected))


# --- retention outliers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outlier:
    """Points kept longer than anyone decided, and what removing them would save a month."""

    kind: str  # never_expires | old_manual_snapshot
    ref: ResourceRef
    mechanism: str
    location_account_id: str
    location_region: str
    points: int  # points concerned (estimated for old manual snapshots, see below)
    bytes: float
    monthly_saving: float
    oldest_point: datetime | None
    upper_bound: bool


def retention_outliers(
    day: StorageDay, prices: PriceTable, max_manual_age_days: int
) -> list[Outlier]:
    """Never-expiring points and manual snapshots older than the threshold on `day`.

    Sizes are per state, not per point: never-expiring bytes are the state's bytes times
    the share of its points that never expire; old manual snapshots' bytes assume points
    spread evenly between the oldest and the newest (all of them when the newest is old).
    """
    cutoff = day.day + DAY_SECONDS - max_manual_age_days * DAY_SECONDS
    outliers: list[Outlier] = []
    for state in day.states:
        if state.size_bytes <= 0 or state.point_count <= 0:
            continue
        if state.never_expire_count:
            share = min(1.0, state.never_expire_count / state.point_count)
            outliers.append(
                _outlier("never_expires", state, share, state.never_expire_count, prices)
            )
        if state.mechanism == Mechanism.MANUAL_SNAPSHOT and state.oldest_point is not None:
            share = _old_share(state, cutoff)
            if share > 0:
                points = max(1, round(share * state.point_count))
                outliers.append(_outlier("old_manual_snapshot", state, share, points, prices))
    return sorted(outliers, key=lambda o: (-o.monthly_saving, o.kind, o.ref))


def _old_share(state: RecoveryState, cutoff: int) -> float:
    oldest = state.oldest_point.timestamp() if state.oldest_point else cutoff
    newest = state.newest_point.timestamp() if state.newest_point else oldest
    if oldest >= cutoff:
        return 0.0
    if newest < cutoff or newest <= oldest:
        return 1.0
    return (cutoff - oldest) / (newest - oldest)


def _outlier(
    kind: str, state: RecoveryState, share: float, points: int, prices: PriceTable
) -> Outlier:
    # The state's own items (warm/cold split), scaled by the share of its points concerned.
    items = storage_items([state], ())
    return Outlier(
        kind=kind,
        ref=state.ref,
        mechanism=state.mechanism.value,
        location_account_id=state.location_account_id,
        location_region=state.location_region,
        points=points,
        bytes=state.size_bytes * share,
        monthly_saving=sum(item.monthly_cost(prices) for item in items) * share,
        oldest_point=state.oldest_point,
        upper_bound=any(item.upper_bound for item in items),
    )


def potential_saving(outliers: Iterable[Outlier]) -> float:
    """Monthly saving of removing every outlier once (a state in both lists counts once)."""
    best: dict[tuple[Any, ...], float] = {}
    for o in outliers:
        key = (o.ref, o.mechanism, o.location_account_id, o.location_region)
        best[key] = max(best.get(key, 0.0), o.monthly_saving)
    return sum(best.values())


def vault_storage(days: Iterable[StorageDay]) -> list[tuple[VaultState, float, float]]:
    """(vault, average warm bytes, average cold bytes) over the days; largest first."""
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    latest: dict[tuple[str, str, str], VaultState] = {}
    count = 0
    for day in days:
        count += 1
        for vault in day.vaults:
            key = (vault.account_id, vault.region, vault.vault)
            sums[key][0] += vault.warm_bytes
            sums[key][1] += vault.cold_bytes
            latest[key] = vault
    rows = [(latest[k], w / count, c / count) for k, (w, c) in sums.items()]
    return sorted(rows, key=lambda r: (-(r[1] + r[2]), r[0].vault))


def month_bounds(year: int, month: int) -> tuple[int, int]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(end.timestamp())


def months_after(year: int, month: int, count: int) -> Iterator[tuple[int, int]]:
    for offset in range(1, count + 1):
        index = year * 12 + month - 1 + offset
        yield month_bounds(index // 12, index % 12 + 1)
