"""History store benchmark: bytes per resource per day, ingest time, a 90-day database.

Synthetic observations are generated directly (no AWS, no moto): what is measured is the
store. Run: .venv/bin/python bench/history.py [--quick] [--json] [--profile FILE]

1. Bytes per resource per day at 5-minute polls (288 a day), in steady state (the second
   day's growth), for resources whose recovery state never changes and for resources whose
   PITR point moves every poll.
2. Ingest time of one 10,000-resource poll: first sight, every PITR moved, steady state (the
   same fleet again with 1% of its PITR points moved; median of 5 polls) and unchanged.
3. A 90-day history of 1,000 resources at hourly polls (30% with PITR moving every poll, all
   with a daily snapshot), its size, then compaction with the default 35 raw days, the size
   after VACUUM, and verify time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyinstrument import Profiler

from drwatch.core.model import (
    Mechanism,
    Observations,
    RecoveryState,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
)
from drwatch.history.chain import verify_chain
from drwatch.history.compact import compact
from drwatch.history.figures import RpoPolicy
from drwatch.history.store import HistoryStore

UNIT = UnitKey("rds", "111111111111", "eu-west-1")
T0 = datetime(2026, 8, 1, tzinfo=UTC)
POLICY = RpoPolicy({"premium": 300.0, "standard": 900.0, "basic": 3600.0}, 900.0)

Observe = Callable[[datetime], Observations]


def refs(count: int) -> list[ResourceRef]:
    return [
        ResourceRef(UNIT.account_id, UNIT.region, "rds", "db_instance", f"db-{i:05d}")
        for i in range(count)
    ]


def fleet(count: int, pitr_share: float) -> Observe:
    """Resources with a daily snapshot; the first `pitr_share` also have PITR moving per poll."""
    all_refs = refs(count)
    resources = tuple(
        Resource(r, r.resource_id, "standard", tags=(("team", "x"),)) for r in all_refs
    )
    with_pitr = all_refs[: int(count * pitr_share)]

    def observe(moment: datetime) -> Observations:
        daily = moment.replace(hour=1, minute=0, second=0, microsecond=0)
        if daily > moment:
            daily -= timedelta(days=1)
        states = [snapshot(r, daily) for r in all_refs]
        states += [pitr(r, moment - timedelta(seconds=150)) for r in with_pitr]
        return Observations(resources, tuple(states))

    return observe


def snapshot(ref: ResourceRef, newest: datetime) -> RecoveryState:
    return RecoveryState(
        ref,
        Mechanism.SNAPSHOT,
        ref.account_id,
        ref.region,
        True,
        newest_point=newest,
        oldest_point=newest - timedelta(days=34),
        point_count=35,
        size_bytes=35 * 50 * 2**30,
        retention_min_days=35,
        retention_max_days=35,
        encrypted=True,
    )


def pitr(ref: ResourceRef, newest: datetime) -> RecoveryState:
    return RecoveryState(
        ref,
        Mechanism.PITR,
        ref.account_id,
        ref.region,
        True,
        newest_point=newest,
        oldest_point=T0 - timedelta(days=35),
        retention_min_days=35,
        retention_max_days=35,
        encrypted=True,
    )


def unchanging(count: int) -> Observe:
    all_refs = refs(count)
    resources = tuple(Resource(r, r.resource_id, "standard") for r in all_refs)
    states = tuple(snapshot(r, T0) for r in all_refs)
    return lambda moment: Observations(resources, states)


def ingest(
    store: HistoryStore, observe: Observe, start: datetime, polls: int, step: timedelta
) -> None:
    for n in range(polls):
        moment = start + n * step
        store.ingest(UnitResult(UnitRun(UNIT, moment, 1.0, True), observe(moment)))


def size(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size


def bytes_per_resource_day(workdir: Path, name: str, observe: Observe, count: int) -> float:
    path = workdir / f"{name}.db"
    step = timedelta(minutes=5)
    with HistoryStore(path) as store:
        ingest(store, observe, T0, 288, step)
        first_day = size(path)
        ingest(store, observe, T0 + timedelta(days=1), 288, step)
        second_day = size(path)
    return (second_day - first_day) / count


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def poll_10k(workdir: Path, count: int) -> dict[str, float]:
    observe_fixed = fleet(count, 1.0)
    with HistoryStore(workdir / "big-poll.db") as store:

        def ingest_at(moment: datetime, observations: Observations) -> float:
            run = UnitRun(UNIT, moment, 1.0, True)
            return timed(lambda: store.ingest(UnitResult(run, observations)))

        moment = T0 + timedelta(hours=2)
        first = ingest_at(moment, observe_fixed(moment))
        moment += timedelta(minutes=5)
        observations = observe_fixed(moment)
        moved = ingest_at(moment, observations)
        # Steady state: the same fleet again, 1% of its PITR points moved (a sparse change).
        steady = []
        for _ in range(5):
            moment += timedelta(minutes=5)
            observations = moved_share(observations, moment, 0.01)
            steady.append(ingest_at(moment, observations))
        unchanged = ingest_at(moment + timedelta(minutes=5), observations)
    return {
        "first sight": first,
        "all PITR moved": moved,
        "1% changed (steady state, median of 5)": statistics.median(steady),
        "unchanged": unchanged,
    }


def moved_share(observations: Observations, moment: datetime, share: float) -> Observations:
    """The observations with the PITR point of `share` of the resources moved to `moment`,
    a different slice each poll."""
    pitr_states = [
        i for i, s in enumerate(observations.recovery_states) if s.mechanism is Mechanism.PITR
    ]
    step = max(int(1 / share), 1)
    offset = (moment.minute // 5) % step
    chosen = set(pitr_states[offset::step])
    states = tuple(
        dataclasses.replace(state, newest_point=moment - timedelta(seconds=150))
        if index in chosen
        else state
        for index, state in enumerate(observations.recovery_states)
    )
    return dataclasses.replace(observations, recovery_states=states)


def ninety_days(workdir: Path, count: int, days: int) -> dict[str, float]:
    path = workdir / "ninety.db"
    figures: dict[str, float] = {}
    with HistoryStore(path) as store:
        figures["ingest s"] = timed(
            lambda: ingest(store, fleet(count, 0.3), T0, days * 24, timedelta(hours=1))
        )
        figures["size MB"] = size(path) / 1e6
        figures["verify s"] = timed(lambda: verify_chain(store.db))
        now = T0 + timedelta(days=days)
        figures["compact s"] = timed(
            lambda: compact(store.db, now=now, raw_days=35, retention_days=2557, policy=POLICY)
        )
        store.db.execute("VACUUM")
        figures["size after compact+VACUUM MB"] = size(path) / 1e6
        ok = verify_chain(store.db).ok
    figures["verify ok after compact"] = float(ok)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller fleets, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    parser.add_argument(
        "--profile", type=Path, help="write a pyinstrument profile here (.html, else text)"
    )
    args = parser.parse_args()
    per_day_count, big, fleet_count, days = (
        (50, 1000, 100, 10) if args.quick else (200, 10000, 1000, 90)
    )
    if args.profile:
        profiler = Profiler()
        profiler.start()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        still = bytes_per_resource_day(workdir, "still", unchanging(per_day_count), per_day_count)
        moving = bytes_per_resource_day(workdir, "moving", fleet(per_day_count, 1.0), per_day_count)
        polls = poll_10k(workdir, big)
        ninety = ninety_days(workdir, fleet_count, days)
    if args.profile:
        profiler.stop()
        html = args.profile.suffix == ".html"
        args.profile.write_text(profiler.output_html() if html else profiler.output_text())
    if args.json:
        print(
            json.dumps(as_json(per_day_count, big, fleet_count, days, still, moving, polls, ninety))
        )
        return
    print(f"bytes per resource per day, 5-minute polls, {per_day_count} resources:")
    print(f"  unchanged:              {still:10.0f} B/day  ({still * 365 / 1024:.0f} KiB/year)")
    print(f"  PITR moving every poll: {moving:10.0f} B/day  ({moving * 365 / 2**20:.1f} MiB/year)")
    print(f"ingest of one {big}-resource poll (with PITR: {2 * big} recovery states):")
    for label, seconds in polls.items():
        print(f"  {label:<40} {seconds * 1000:8.0f} ms")
    print(f"{days} days x {fleet_count} resources, hourly polls, 30% with moving PITR:")
    for label, value in ninety.items():
        print(f"  {label:<30} {value:10.2f}")


def as_json(
    per_day_count: int,
    big: int,
    fleet_count: int,
    days: int,
    still: float,
    moving: float,
    polls: dict[str, float],
    ninety: dict[str, float],
) -> dict[str, object]:
    """The figures as one flat object (bench/table.py collects it for `make bench`)."""
    return {
        "benchmark": "history",
        "bytes_per_resource_day_resources": per_day_count,
        "bytes_per_resource_day_unchanged": round(still),
        "bytes_per_resource_day_pitr_moving": round(moving),
        "poll_resources": big,
        "poll_first_sight_ms": round(polls["first sight"] * 1000),
        "poll_all_pitr_moved_ms": round(polls["all PITR moved"] * 1000),
        "poll_steady_1pct_changed_ms": round(
            polls["1% changed (steady state, median of 5)"] * 1000
        ),
        "poll_unchanged_ms": round(polls["unchanged"] * 1000),
        "long_resources": fleet_count,
        "long_days": days,
        "long_ingest_seconds": round(ninety["ingest s"], 1),
        "long_size_mb": round(ninety["size MB"], 1),
        "long_verify_seconds": round(ninety["verify s"], 1),
        "long_compact_seconds": round(ninety["compact s"], 1),
        "long_size_after_compact_vacuum_mb": round(ninety["size after compact+VACUUM MB"], 1),
        "long_verify_ok_after_compact": bool(ninety["verify ok after compact"]),
    }


if __name__ == "__main__":
    main()
