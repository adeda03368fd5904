"""Compliance report benchmark: 1,000 resources x 30 days, evaluated and rendered.

A history is generated directly (no AWS, no moto): 1,000 RDS instances in 2 accounts x 2
regions, hourly polls for 30 days (2026-10-01 to 2026-10-31), every PITR point moving every
poll (30% two minutes behind, the others five minutes before the hour), all with a daily
snapshot and its backup job, mixed tiers, 10% with a cross-region
copy, 5% with a five-day failed-backup streak, 2% stale for three days, and a three-hour
polling outage in one unit. Then the SOC 2 report for the 30 days is built and rendered.

Run: .venv/bin/python bench/report.py [--quick | --resources N --days D] [--keep DIR]
[--json] [--profile FILE]. Prints: ingest time (one transaction per unit poll), history
size, evaluation (context) time, render time, pages, PDF and JSON companion sizes, and the
peak resident memory of the report (VmHWM, reset after generating the history); --json
prints them as one object for bench/table.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyinstrument import Profiler

from drwatch.core.model import (
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
from drwatch.core.units import GIB
from drwatch.history.figures import RpoPolicy
from drwatch.history.store import HistoryStore, open_reader
from drwatch.reports.catalogue import load_framework
from drwatch.reports.compliance import TEMPLATE, build_context, companion
from drwatch.reports.evidence import Period, Policies
from drwatch.reports.render import Attachment, render_pdf

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


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_bytes() -> int:
    """VmHWM since the last reset (ru_maxrss cannot be reset, so it is only the fallback)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def generate(history: Path, fleet: list[tuple[UnitKey, ResourceRef, int]], days: int) -> float:
    """Writes the simulated history, one transaction per unit poll; returns the seconds."""
    started = time.perf_counter()
    with HistoryStore(history) as store:
        for result in polls(fleet, days):
            store.ingest(result)
    return time.perf_counter() - started


def run(count: int, days: int, workdir: Path) -> dict[str, Any]:
    """Generates (unless kept from an earlier run), evaluates and renders; the figures."""
    history = workdir / "history.db"
    fleet = resources(count)
    figures: dict[str, Any] = {"resources": count, "days": days}
    if not history.exists():
        figures["ingest_seconds"] = round(generate(history, fleet, days), 2)
    figures["history_mb"] = round(history.stat().st_size / 1e6, 1)
    reset_peak_rss()  # the report's peak, not the generation's
    period = Period(START, START + timedelta(days=days), f"{days} days from 2026-10-01")
    started, cpu = time.perf_counter(), time.process_time()
    context = build_context(
        open_reader(history),
        period,
        load_framework("soc2"),
        POLICIES,
        generated_at=datetime.now(UTC),
        version="bench",
    )
    figures["evaluation_seconds"] = round(time.perf_counter() - started, 2)
    # CPU seconds too: on a shared machine wall time includes waiting for a core.
    figures["evaluation_cpu_seconds"] = round(time.process_time() - cpu, 2)
    cpu = time.process_time()
    data = json.dumps(companion(context), indent=1).encode()
    result = render_pdf(
        TEMPLATE, context, workdir / "soc2.pdf", [Attachment("soc2.json", data, "companion")]
    )
    figures["render_seconds"] = round(result.seconds, 2)
    figures["render_cpu_seconds"] = round(time.process_time() - cpu, 2)
    figures["report_seconds"] = round(figures["evaluation_seconds"] + result.seconds, 2)
    figures["pages"] = result.pages
    figures["pdf_mb"] = round(result.size_bytes / 1e6, 2)
    figures["companion_mb"] = round(len(data) / 1e6, 2)
    figures["findings"] = len(context["findings"])
    figures["exceptions"] = len(context["exceptions"])
    figures["peak_rss_mb"] = round(peak_rss_bytes() / 2**20, 1)
    return figures


def show(figures: dict[str, Any], workdir: Path) -> None:
    count, days = figures["resources"], figures["days"]
    if "ingest_seconds" in figures:
        print(
            f"ingest: {figures['ingest_seconds']:.1f} s ({count} resources x {days} days, hourly)"
        )
    print(f"history: {figures['history_mb']:.1f} MB")
    print(
        f"evaluation and context: {figures['evaluation_seconds']:.1f} s "
        f"(CPU {figures['evaluation_cpu_seconds']:.1f} s; "
        f"{figures['findings']} findings, {figures['exceptions']} exceptions)"
    )
    print(
        f"render: {figures['render_seconds']:.1f} s (CPU {figures['render_cpu_seconds']:.1f} s, "
        f"with the companion's JSON), {figures['pages']} pages, "
        f"PDF {figures['pdf_mb']:.2f} MB (JSON companion {figures['companion_mb']:.2f} MB inside)"
    )
    print(
        f"total report time: {figures['report_seconds']:.1f} s; peak RSS "
        f"{figures['peak_rss_mb']:.0f} MB; files in {workdir}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 resources x 3 days")
    parser.add_argument("--resources", type=int, default=1000, help="fleet size (1000)")
    parser.add_argument("--days", type=int, default=30, help="days of hourly polls (30)")
    parser.add_argument("--keep", type=Path, help="write the history, PDF and JSON here")
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures")
    parser.add_argument(
        "--profile", type=Path, help="write a pyinstrument profile here (.html, else text)"
    )
    args = parser.parse_args()
    count, days = (100, 3) if args.quick else (args.resources, args.days)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="drwatch-bench-report-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        profiler = Profiler()
        profiler.start()
    figures = run(count, days, workdir)
    if args.profile:
        profiler.stop()
        html = args.profile.suffix == ".html"
        args.profile.write_text(profiler.output_html() if html else profiler.output_text())
    if args.json:
        print(json.dumps({"benchmark": "report", **figures}))
    else:
        show(figures, workdir)
    if not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
