"""Loading the evidence of the resources from the history database.

Raw intervals (`load_intervals`) are loaded a batch of resources at a time; everything else
(backup jobs, daily rollups, lifetimes, restore tests, poll intervals) once per evaluation,
as `ResourceFacts`. `resource_evidence` puts the two together into one `ResourceEvidence`
per resource seen in the period. Stored keys are decoded once, into named types
(`drwatch.history.store.RecoveryKey`, `ReplicationKey`, `decode_resource_key`).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeGuard

from sqlite_utils import Database

from drwatch.core.model import ResourceRef
from drwatch.core.units import DAY_SECONDS
from drwatch.history.coverage import bridge_age, unit_key
from drwatch.history.drills import RestoreTestRecord
from drwatch.history.figures import (
    MAX_HOLD_SECONDS,
    ResourceFigures,
    UnitFigures,
    day_from_label,
    day_label,
    job_days,
    unit_runs_by_day,
)
from drwatch.history.store import RecoveryKey, ReplicationKey, decode_resource_key, resource_key
from drwatch.reports.evidence import (
    FlowEvidence,
    Interval,
    JobRecord,
    Period,
    Policies,
    ResourceEvidence,
    StoredKey,
    TierChange,
)
from drwatch.reports.units import DEFAULT_POLL_INTERVAL_SECONDS

# Stored values parsed per json.loads call when loading intervals (see _parsed_rows).
_PARSE_BATCH = 5000
# The decoder of each kind of stored key loaded as an interval.
_KEY_DECODERS: Final[Mapping[str, Callable[[str], StoredKey]]] = MappingProxyType(
    {
        "resource": decode_resource_key,
        "recovery": RecoveryKey.from_key,
        "replication": ReplicationKey.from_key,
    }
)


class Lifetime(NamedTuple):
    """A resource's life in the whole history."""

    first_seen: int
    last_seen: int
    gone: bool


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    """Evidence loaded for every resource at once (small next to the intervals)."""

    jobs: Mapping[str, list[JobRecord]]
    restores: Sequence[RestoreTestRecord]
    lifetimes: Mapping[str, Lifetime]
    split: int  # raw history from here; only daily rollups before
    poll_intervals: Mapping[tuple[str, str], int]  # per (account, region)
    fallback: Mapping[str, Mapping[str, Any]]  # values for resources with no raw intervals
    # S3 flows (source key, destination account, region, bucket) whose rules have
    # Replication Time Control.
    time_controlled: frozenset[tuple[str, str, str, str]] = frozenset()


# --- reading ----------------------------------------------------------------------------------


def load_intervals(
    db: Database, start: int, end: int, resource_keys: Sequence[str]
) -> list[Interval[StoredKey]]:
    """Resource, recovery and replication intervals of these resources (a replication's by
    its source) whose effective span overlaps [start, end), or that a poll in [start, end)
    saw (a lone observation is an interval of no length: the resource is still there)."""
    marks = ", ".join("?" for _ in resource_keys)
    # Only "?" placeholders are formatted into the query; the keys are bound parameters.
    cursor = db.execute(
        "SELECT k.kind, s.key_seq, k.key, k.resource_key, s.value, s.first_seen, s.last_seen, "  # noqa: S608
        "s.continues, k.collector, k.account_id, k.region "
        "FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE k.kind IN ('resource', 'recovery', 'replication') "
        f"AND k.resource_key IN ({marks}) AND s.first_seen < ? "
        "AND s.last_seen >= ? ORDER BY s.key_seq, s.first_seen, s.seq",
        [*resource_keys, end + MAX_HOLD_SECONDS, start - MAX_HOLD_SECONDS],
    )
    out: list[Interval[StoredKey]] = []
    # Per thing, decoded and held once, not once per interval (a month holds a million).
    keys: dict[int, tuple[StoredKey, str, str, str]] = {}
    # Each row with the next one (streamed: the rows of a month do not fit twice in memory).
    following: Iterable[tuple[Any, ...] | None] = itertools.chain(_parsed_rows(cursor), [None])
    for previous, row in itertools.pairwise(following):
        if previous is None:
            continue
        kind, key_seq, key, resource, value, first_seen, last_seen, _ = previous[:8]
        stop, successor = last_seen, None
        follows = row is not None and row[1] == key_seq and row[7]
        if follows and row is not None and row[5] - stop <= MAX_HOLD_SECONDS:
            stop, successor = row[5], row[4]
        # Overlaps by more than a point, or a poll in the period saw it.
        if max(first_seen, start) < min(stop, end) or start <= last_seen < end:
            if key_seq not in keys:
                unit = unit_key(*(part or "" for part in previous[8:11]))
                keys[key_seq] = (_KEY_DECODERS[kind](key), key, resource or "", unit)
            decoded, key_text, resource_key, unit = keys[key_seq]
            begins = max(first_seen, start)
            out.append(
                Interval(
                    kind=kind,
                    key=decoded,
                    start=begins,
                    end=max(min(stop, end), begins),
                    value=value,
                    key_text=key_text,
                    resource_key=resource_key,
                    last_seen=last_seen,
                    unit=unit,
                    bridge_age=None
                    if successor is None
                    else bridge_age(decoded, value, (first_seen, last_seen), successor, stop),
                )
            )
    return out


def _parsed_rows(cursor: Iterable[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
    """The rows with their value column parsed, a batch of values per json.loads call: the
    decoder shares equal key strings within one call, so the million value dicts of a month
    share their keys instead of each holding copies (a gigabyte at 1,000 resources)."""
    rows = iter(cursor)
    while batch := list(itertools.islice(rows, _PARSE_BATCH)):
        values = json.loads("[" + ",".join(row[4] for row in batch) + "]")
        for row, value in zip(batch, values, strict=True):
            yield (*row[:4], value, *row[5:])


def load_backup_jobs(db: Database, start: int, end: int) -> dict[str, list[JobRecord]]:
    """Each resource's backup jobs created in [start, end), in their final state."""
    rows = db.query(
        "SELECT job_id, state, resource_key, created_epoch, value FROM job_events j "
        "WHERE kind = 'backup' AND created_epoch >= ? AND created_epoch < ? "
        "AND seq = (SELECT max(seq) FROM job_events i WHERE i.job_id = j.job_id) "
        "ORDER BY created_epoch, job_id",
        [start, end],
    )
    jobs: dict[str, list[JobRecord]] = defaultdict(list)
    for row in rows:
        category = str(json.loads(row["value"]).get("message_category", ""))
        jobs[row["resource_key"]].append(
            JobRecord(row["job_id"], row["state"], row["created_epoch"], category)
        )
    return jobs


def daily_figures(
    db: Database, start: int, split: int, end: int
) -> tuple[dict[tuple[int, str], ResourceFigures], dict[tuple[int, str], UnitFigures]]:
    """Per (day, resource) and (day, unit): rollups before `split`, raw jobs and runs after
    (the raw intervals' figures are added resource by resource, see `evaluate`)."""
    resources: dict[tuple[int, str], ResourceFigures] = {}
    units: dict[tuple[int, str], UnitFigures] = {}
    if split > start:
        rows = db.query(
            "SELECT day, scope, key, figures FROM daily_rollups WHERE day >= ? AND day < ?",
            [day_label(start), day_label(split)],
        )
        for row in rows:
            data, day = json.loads(row["figures"]), day_from_label(row["day"])
            if row["scope"] == "resource":
                resources[(day, row["key"])] = ResourceFigures.from_json(data)
            else:
                units[(day, row["key"])] = UnitFigures(data["runs"], data["successful_runs"])
    if end > split:
        for (day, key), counts in job_days(db, split, end).items():
            jobs = ResourceFigures(jobs_by_state=MappingProxyType(dict(counts)))
            resources[(day, key)] = resources.get((day, key), ResourceFigures()).combine(jobs)
        units.update(unit_runs_by_day(db, split, end))
    return resources, units


def latest_values(db: Database, end: int) -> dict[str, Mapping[str, Any]]:
    """Each resource's newest stored value before `end` (else its oldest after): name, tier
    and tags for resources whose intervals in the period were compacted away."""
    rows = db.execute(
        "SELECT k.resource_key, s.value, s.first_seen < ? FROM states s "
        "JOIN state_keys k ON k.seq = s.key_seq WHERE k.kind = 'resource' "
        "ORDER BY s.first_seen",
        [end],
    )
    latest: dict[str, Mapping[str, Any]] = {}
    for key, value, before in rows:
        if before or key not in latest:
            latest[key] = json.loads(value)
    return latest


def lifetimes(db: Database) -> dict[str, Lifetime]:
    rows = db.query(
        "SELECT resource_key, min(first_seen) AS first, max(last_seen) AS last, "
        "min(gone) AS gone FROM resources GROUP BY resource_key"
    )
    return {r["resource_key"]: Lifetime(r["first"], r["last"], bool(r["gone"])) for r in rows}


def resource_keys(db: Database) -> set[str]:
    """The resources, and the sources of replication flows (a Kafka replicator is a flow's
    source without being a resource: its key loads its flows, no resource evidence)."""
    rows = db.execute(
        "SELECT DISTINCT resource_key FROM state_keys WHERE kind IN ('resource', 'replication')"
    )
    return {row[0] for row in rows if row[0]}


def time_controlled_flows(
    db: Database, start: int, end: int
) -> frozenset[tuple[str, str, str, str]]:
    """S3 flows whose replication rules, as last observed before `end`, all have
    Replication Time Control (`s3_replication_rules`, stored as one set per unit)."""
    rows = db.execute(
        "SELECT s.value FROM states s JOIN state_keys k ON k.seq = s.key_seq "
        "WHERE k.kind = 's3_replication_rules' AND s.first_seen < ? AND s.last_seen >= ? "
        "ORDER BY s.first_seen",
        [end, start - MAX_HOLD_SECONDS],
    )
    latest: dict[tuple[str, str, str, str], bool] = {}
    for (value,) in rows:
        flows: dict[tuple[str, str, str, str], bool] = {}
        for rule in json.loads(value):
            if rule.get("status") != "Enabled":
                continue
            flow = _s3_flow(rule)
            flows[flow] = flows.get(flow, True) and bool(rule.get("replication_time_control"))
        latest.update(flows)
    return frozenset(flow for flow, controlled in latest.items() if controlled)


def _s3_flow(rule: Mapping[str, Any]) -> tuple[str, str, str, str]:
    source = rule["source"]
    ref = ResourceRef(
        source["account_id"],
        source["region"],
        source["service"],
        source["resource_type"],
        source["resource_id"],
    )
    return (
        resource_key(ref),
        str(rule.get("destination_account_id", "")),
        str(rule.get("destination_region", "")),
        str(rule.get("destination", "")),
    )


def flow_evidence(
    intervals: Sequence[Interval[StoredKey]], time_controlled: frozenset[tuple[str, str, str, str]]
) -> list[FlowEvidence]:
    """One `FlowEvidence` per replication flow with intervals in the period, by key."""
    by_flow: dict[str, list[Interval[ReplicationKey]]] = defaultdict(list)
    for item in intervals:
        if _is_replication(item):
            by_flow[item.key_text].append(item)
    flows = []
    for key_text, items in sorted(by_flow.items()):
        key = items[0].key
        place = (key.source_key, key.destination_account_id, key.destination_region)
        flows.append(
            FlowEvidence(
                key=key_text,
                kind=key.kind,
                source=decode_resource_key(key.source_key),
                destination_account_id=key.destination_account_id,
                destination_region=key.destination_region,
                destination=key.destination,
                intervals=tuple(sorted(items, key=lambda i: i.start)),
                time_control=(*place, key.destination) in time_controlled,
            )
        )
    return flows


# --- assembling -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Intervals:
    """One resource's raw intervals by kind, each in load order."""

    states: list[Interval[ResourceRef]]
    recovery: list[Interval[RecoveryKey]]
    replication: list[Interval[ReplicationKey]]


def resource_evidence(
    period: Period,
    policies: Policies,
    intervals: Sequence[Interval[StoredKey]],
    per_day: Mapping[str, Mapping[int, ResourceFigures]],
    known: ResourceFacts,
    batch: Sequence[str],
) -> list[ResourceEvidence]:
    """The evidence of the resources of `batch` seen in the period (raw or in rollups)."""
    by_key: dict[str, _Intervals] = defaultdict(lambda: _Intervals([], [], []))
    for item in intervals:
        held = by_key[item.resource_key]
        if _is_replication(item):
            held.replication.append(item)
        elif _is_recovery(item):
            held.recovery.append(item)
        elif _is_state(item):
            held.states.append(item)
    restores_by: dict[tuple[str, str, str], list[RestoreTestRecord]] = defaultdict(list)
    for test in known.restores:
        restores_by[(test.account_id, test.region, test.resource_id)].append(test)
    keys = sorted(
        {key for key, held in by_key.items() if held.states}
        | {key for key in batch if per_day.get(key)}
    )
    empty = _Intervals([], [], [])
    return [
        _resource(
            key, period, policies, by_key.get(key, empty), per_day.get(key, {}), known, restores_by
        )
        for key in keys
    ]


def _is_state(item: Interval[StoredKey]) -> TypeGuard[Interval[ResourceRef]]:
    return isinstance(item.key, ResourceRef)


def _is_recovery(item: Interval[StoredKey]) -> TypeGuard[Interval[RecoveryKey]]:
    return isinstance(item.key, RecoveryKey)


def _is_replication(item: Interval[StoredKey]) -> TypeGuard[Interval[ReplicationKey]]:
    return isinstance(item.key, ReplicationKey)


def _resource(
    key: str,
    period: Period,
    policies: Policies,
    held: _Intervals,
    daily: Mapping[int, ResourceFigures],
    known: ResourceFacts,
    restores_by: Mapping[tuple[str, str, str], list[RestoreTestRecord]],
) -> ResourceEvidence:
    ref = decode_resource_key(key)
    states = sorted(held.states, key=lambda i: i.start)
    latest = states[-1].value if states else known.fallback.get(key, {})
    tags = {str(k): str(v) for k, v in latest.get("tags", [])}
    tiers = _tier_changes(states)
    lifetime = known.lifetimes.get(key)
    first, last, gone = lifetime or _observed_lifetime(daily, period)
    lifetime_start = max(first, period.start_epoch)
    return ResourceEvidence(
        key=key,
        account_id=ref.account_id,
        region=ref.region,
        service=ref.service,
        resource_type=ref.resource_type,
        resource_id=ref.resource_id,
        name=str(latest.get("name", ref.resource_id)),
        tier=tiers[-1].tier if tiers else str(latest.get("tier", "")),
        tiers=tuple(tiers),
        tags=MappingProxyType(tags),
        data_class=policies.retention.class_for(ref.service, ref.resource_type, tags),
        first_seen=first,
        last_seen=last,
        gone=gone,
        lifetime_start=lifetime_start,
        lifetime_end=min(last, period.end_epoch) if gone else period.end_epoch,
        lifetime_known=lifetime is not None and known.split <= lifetime_start,
        figures=_total(daily),
        daily=MappingProxyType(dict(daily)),
        recovery=tuple(sorted(held.recovery, key=lambda i: i.start)),
        replication=tuple(sorted(held.replication, key=lambda i: i.start)),
        jobs=tuple(known.jobs.get(key, [])),
        compacted_jobs=MappingProxyType(_compacted_jobs(daily, known.split)),
        restores=tuple(restores_by.get((ref.account_id, ref.region, ref.resource_id), [])),
        raw=bool(states),
        poll_interval_seconds=known.poll_intervals.get(
            (ref.account_id, ref.region), DEFAULT_POLL_INTERVAL_SECONDS
        ),
        instant=_instant(states, daily),
    )


def _instant(
    states: Sequence[Interval[ResourceRef]], daily: Mapping[int, ResourceFigures]
) -> int | None:
    """The last instant a poll saw the resource in the period, when that covers no time."""
    if not states or any(f.observed_seconds for f in daily.values()):
        return None
    return max(min(state.last_seen, state.end) for state in states)


def _tier_changes(states: Sequence[Interval[ResourceRef]]) -> list[TierChange]:
    tiers: list[TierChange] = []
    for state in states:
        tier = str(state.value.get("tier", ""))
        if not tiers or tiers[-1].tier != tier:
            tiers.append(TierChange(state.start, tier))
    return tiers


def _observed_lifetime(daily: Mapping[int, ResourceFigures], period: Period) -> Lifetime:
    """A lifetime from the days the resource was observed, when the history has none."""
    observed_days = sorted(d for d, f in daily.items() if f.observed_seconds)
    return Lifetime(
        observed_days[0] if observed_days else period.start_epoch,
        observed_days[-1] + DAY_SECONDS if observed_days else period.end_epoch,
        False,
    )


def _total(daily: Mapping[int, ResourceFigures]) -> ResourceFigures:
    figures = ResourceFigures()
    for day_figures in daily.values():
        figures = figures.combine(day_figures)
    return figures


def _compacted_jobs(daily: Mapping[int, ResourceFigures], split: int) -> dict[str, int]:
    """Backup jobs by final state on the days only rollups keep."""
    compacted: dict[str, int] = defaultdict(int)
    for day, day_figures in daily.items():
        if day < split:
            for job_state, count in day_figures.jobs_by_state.items():
                compacted[job_state] += count
    return dict(compacted)
