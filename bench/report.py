"""Compliance report benchmark: 1,000 resources x 30 days, evaluated and rendered.

A history is generated directly (no AWS, no moto): 1,000 RDS instances in 2 accounts x 2
regions, hourly polls for 30 days (2026-10-01 to 2026-10-31), every PITR point moving every
poll (30% two minutes behind, the others five minutes before the hour), all with a daily
snapshot and its backup job, mixed tiers, 10% with a cross-region
copy, 5% with a five-day failed-backup streak, 2% stale for three days, and a three-hour
polling outage in one unit. Then the SOC 2 report for the 30 days is built and rendered.

Run: .venv/bin/python bench/report.py [--quick] [--keep DIR]
Prints: ingest time, history size, evaluation (context) time, render time, pages, PDF and
JSON companion sizes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from exporter.model import (
    JobEvent,
    Mechanism,
    Observations,
    RecoveryState,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
)
from reports.compliance import TEMPLATE, build_context, companion
from reports.controls import load_framework
from reports.evaluate import Period, Policies
from reports.history import HistoryStore, open_reader
from reports.history_figures import RpoPolicy
from reports.render import Attachment, render_pdf

START = datetime(2026, 10, 1, tzinfo=UTC)
UNITS = tuple(
    UnitKey("rds", account, region)
    for account in ("111111111111", "222222222222")
    for region in ("eu-west-1", "us-east-1")
)
TIERS = ("premium", "standard", "standard", "basic")
POLICIES = Policies(
    rpo=RpoPolicy({"premium": 300, "standard": 900, "basic": 3600}, 900),
    rto_seconds=MappingProxyType({"premium": 900.0, "standard": 3600.0, "basic": 14400.0}),
)
GIB = 1024**3


def resources(count: int) -> list[tuple[UnitKey, ResourceRef, int]]:
    out = []
    for index in range(count):
        unit = UNITS[index % len(UNITS)]
        ref = ResourceRef(unit.account_id, unit.region, "rds", "db_instance", f"db-{index:04d}")
        out.append((unit, ref, index))
    return out


def observe(
    unit: UnitKey, fleet: list[tuple[UnitKey, ResourceRef, int]], moment: datetime, days: int
) -> Observations:
    found: list[Resource] = []
    states: list[RecoveryState] = []
    jobs: list[JobEvent] = []
    day = (moment - START).days
    slot = moment.replace(hour=3, minute=0, second=0, microsecond=0)
    if slot > moment:
        slot -= timedelta(days=1)
    for owner, ref, index in fleet:
        if owner != unit:
            continue
        found.append(Resource(ref, ref.resource_id, TIERS[index % len(TIERS)]))
        streak = index % 20 == 0 and days // 3 <= day < days // 3 + 5
        stale = index % 50 == 1 and days // 2 <= day < days // 2 + 3
        frozen = START + timedelta(days=days // 2) if stale else None
        newest_pitr = frozen or (
            moment - timedelta(minutes=2)
            if index % 10 < 3
            else moment.replace(minute=0) - timedelta(minutes=5)
        )
        snapshot = frozen or slot
        if streak:
            snapshot = START + timedelta(days=days // 3 - 1, hours=3)
        for mechanism, newest in ((Mechanism.PITR, newest_pitr), (Mechanism.SNAPSHOT, snapshot)):
            states.append(
                RecoveryState(
                    ref,
                    mechanism,
                    ref.account_id,
                    ref.region,
                    True,
                    newest_point=newest,
                    oldest_point=newest - timedelta(days=7),
                    point_count=7 if mechanism is Mechanism.SNAPSHOT else 0,
                    size_bytes=20 * GIB * 7 if mechanism is Mechanism.SNAPSHOT else 0,
                    retention_min_days=7,
                    retention_max_days=7,
                    encrypted=index % 7 != 0,
                )
            )
        if index % 10 == 5:
            other = "us-east-1" if ref.region == "eu-west-1" else "eu-west-1"
            states.append(
                RecoveryState(
                    ref,
                    Mechanism.SNAPSHOT,
                    ref.account_id,
                    other,
                    True,
                    newest_point=snapshot,
                    point_count=7,
                    size_bytes=20 * GIB * 7,
                    encrypted=True,
                )
            )
        if not stale:
            jobs.append(
                JobEvent(
                    f"{ref.resource_id}-{slot:%Y%m%d}",
                    "backup",
                    "FAILED" if streak else "COMPLETED",
                    ref,
                    slot,
                    slot + timedelta(minutes=12),
                    message_category="ACCESS_DENIED" if streak else "SUCCESS",
                )
            )
    return Observations(tuple(found), tuple(states), tuple(jobs))


def polls(fleet: list[tuple[UnitKey, ResourceRef, int]], days: int) -> Iterator[UnitResult]:
    outage = START + timedelta(days=days * 2 // 3, hours=9)
    moment = START
    while moment < START + timedelta(days=days):
        for unit in UNITS:
            if unit == UNITS[-1] and outage <= moment < outage + timedelta(hours=3):
                yield UnitResult(
                    UnitRun(unit, moment, 30.0, False, "ThrottlingException", "Rate exceeded"),
                    Observations(),
                )
                continue
            yield UnitResult(UnitRun(unit, moment, 2.0, True), observe(unit, fleet, moment, days))
        moment += timedelta(hours=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 resources x 3 days")
    parser.add_argument("--keep", type=Path, help="write the history, PDF and JSON here")
    args = parser.parse_args()
    count, days = (100, 3) if args.quick else (1000, 30)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="drwatch-bench-report-"))
    workdir.mkdir(parents=True, exist_ok=True)
    history = workdir / "history.db"
    fleet = resources(count)
    if not history.exists():
        started = time.perf_counter()
        with HistoryStore(history) as store:
            for result in polls(fleet, days):
                store.ingest(result)
        print(
            f"ingest: {time.perf_counter() - started:.1f} s "
            f"({count} resources x {days} days, hourly)"
        )
    print(f"history: {history.stat().st_size / 1e6:.1f} MB")
    period = Period(START, START + timedelta(days=days), f"{days} days from 2026-10-01")
    started = time.perf_counter()
    context = build_context(
        open_reader(history),
        period,
        load_framework("soc2"),
        POLICIES,
        generated_at=datetime.now(UTC),
        version="bench",
    )
    evaluated = time.perf_counter() - started
    data = json.dumps(companion(context), indent=1).encode()
    out = workdir / "soc2.pdf"
    result = render_pdf(TEMPLATE, context, out, [Attachment("soc2.json", data, "companion")])
    print(
        f"evaluation and context: {evaluated:.1f} s "
        f"({len(context['findings'])} findings, {len(context['exceptions'])} exceptions)"
    )
    print(
        f"render: {result.seconds:.1f} s, {result.pages} pages, "
        f"PDF {result.size_bytes / 1e6:.2f} MB (JSON companion {len(data) / 1e6:.2f} MB "
        "inside)"
    )
    print(f"total report time: {evaluated + result.seconds:.1f} s; files in {workdir}")


if __name__ == "__main__":
    main()
