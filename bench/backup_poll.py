"""Benchmark: AWS calls and wall time of AWS Backup polls, first (lookback) and incremental.

Seeds the sandbox with an AWS Backup estate only (default 1,000 protected DynamoDB tables
over 2 accounts x 2 regions, 10 backup jobs per resource in the last 24 hours, so 10,000
jobs in the window, plus copy jobs and their copies), then:
  1. polls once: the first poll reads the 24-hour lookback window;
  2. moves the clock 5 minutes on, lets --new more jobs complete, and polls again.
For each poll it prints the calls per operation against the lower bound
(per account and region, max(1, ceil(items / 1000)) pages per list call) and the wall time.

Example: .venv/bin/python bench/backup_poll.py --resources 1000 --jobs-per-day 10 --new 500
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.service import Exporter
from drwatch.sandbox.backup_fleet import (
    DEFAULT_VAULT,
    DR_VAULT,
    PROD_VAULT,
    BackupFleetPlan,
    BackupFleetSpec,
    add_jobs,
    plan_backup_fleet,
    seed_backup_fleet,
    set_clock,
    vault_arn,
)
from drwatch.sandbox.backup_records import SandboxJob
from drwatch.sandbox.demo import sandbox_config, sandbox_exporter
from drwatch.sandbox.fleet import FleetSpec
from drwatch.sandbox.server import Sandbox

PAGE = 1000
JOB_LISTS = ("ListBackupJobs", "ListCopyJobs", "ListRestoreJobs")
VAULTS = (DEFAULT_VAULT, PROD_VAULT, DR_VAULT)


class Clock:
    """The exporter's clock, moved by hand so that both polls see the sandbox's time."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return time.monotonic()

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def window_items(
    plan: BackupFleetPlan, start: datetime, end: datetime
) -> Counter[tuple[str, str, str]]:
    """Items each list call must return, per operation and list (unit, or unit and vault)."""
    naive_start, naive_end = (t.astimezone(UTC).replace(tzinfo=None) for t in (start, end))
    operations = {"backup": "ListBackupJobs", "copy": "ListCopyJobs", "restore": "ListRestoreJobs"}
    items: Counter[tuple[str, str, str]] = Counter()
    for unit in plan.units:
        where = f"{unit.account_id}/{unit.region}"
        for operation in operations.values():
            items[(operation, where, "")] += 0
        for job in unit.jobs:
            if naive_start < job.completed <= naive_end:
                items[(operations[job.kind], where, "")] += 1
        for vault in VAULTS:
            items[("ListRecoveryPointsByBackupVault", where, vault)] += 0
        for point in unit.points:
            if point.completed <= naive_end:
                items[("ListRecoveryPointsByBackupVault", where, point.vault_name)] += 1
    return items


def lower_bound(operation: str, items: Counter[tuple[str, str, str]]) -> int:
    """Every list needs one call, and one more per further page of 1000."""
    return sum(max(1, math.ceil(n / PAGE)) for (op, _, _), n in items.items() if op == operation)


def backup_calls(exporter: Exporter) -> Counter[str]:
    calls: Counter[str] = Counter()
    for status in exporter.poller.snapshot():
        assert status.last_run is not None
        assert status.last_run.success, status.last_run.error_message
        for operation, count in status.last_run.api_calls.items():
            service, name = operation.split(":", 1)
            if service == "backup":
                calls[name] += count
    return calls


def report(title: str, calls: Counter[str], bounds: dict[str, int], seconds: float) -> None:
    print(f"\n{title}: wall time {seconds:.2f} s")
    print("| operation | calls | lower bound |")
    print("|---|---:|---:|")
    for operation in sorted(calls):
        bound = bounds.get(operation, "")
        print(f"| {operation} | {calls[operation]} | {bound} |")
    print(f"| total | {sum(calls.values())} | |")


def new_jobs(plan: BackupFleetPlan, count: int, finished: datetime) -> None:
    """`count` backup jobs completing in the minute before `finished`, spread over units."""
    naive = finished.astimezone(UTC).replace(tzinfo=None)
    for index in range(count):
        unit = plan.units[index % len(plan.units)]
        resource = unit.resources[index % len(unit.resources)]
        add_jobs(
            unit.account_id,
            unit.region,
            [
                SandboxJob(
                    job_id=f"bench-new-{index:07d}",
                    kind="backup",
                    resource_arn=resource.arn,
                    resource_type=resource.resource_type,
                    vault_arn=vault_arn(unit.account_id, unit.region, "prod"),
                    created=naive - timedelta(minutes=25),
                    completed=naive - timedelta(seconds=index % 60),
                    final_state="COMPLETED",
                    size_bytes=1024,
                )
            ],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--jobs-per-day", type=int, default=10)
    parser.add_argument("--history-days", type=int, default=2)
    parser.add_argument("--new", type=int, default=500)
    args = parser.parse_args()

    now = datetime.now(UTC).replace(microsecond=0)
    spec = BackupFleetSpec(
        now=now,
        extra_resources=args.resources,
        jobs_per_day=args.jobs_per_day,
        history_days=args.history_days,
    )
    plan = plan_backup_fleet(spec)
    collectors = {c.name: {"enabled": c.name == "backup", "interval": 300} for c in COLLECTORS}
    with Sandbox() as sandbox:
        sandbox.reset()
        started = time.perf_counter()
        seed_backup_fleet(sandbox, plan)
        seeding = time.perf_counter() - started
        config = sandbox_config(
            sandbox.endpoint_url,
            FleetSpec(now=now, accounts=spec.accounts, regions=spec.regions),
            collectors=collectors,
        )
        clock = Clock(now)
        exporter = sandbox_exporter(config, clock=clock)

        started = time.perf_counter()
        exporter.poller.run_round()
        first_seconds = time.perf_counter() - started
        first = backup_calls(exporter)
        first_items = window_items(plan, now - timedelta(hours=24), now)
        in_window = sum(n for (op, _, _), n in first_items.items() if op == "ListBackupJobs")

        later = now + timedelta(minutes=5)
        new_jobs(plan, args.new, later)
        set_clock(spec, later)
        clock.advance(timedelta(minutes=5))
        started = time.perf_counter()
        exporter.poller.run_round()
        second_seconds = time.perf_counter() - started
        second = backup_calls(exporter)
        exporter.close()

    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}"
    )
    points = sum(len(u.points) for u in plan.units)
    print(
        f"estate: {args.resources} protected resources, {len(spec.units)} account x region units, "
        f"{in_window} backup jobs in the 24 h window, {points} recovery points; "
        f"seeding {seeding:.1f} s"
    )
    operations = (*JOB_LISTS, "ListRecoveryPointsByBackupVault")
    first_bounds = {op: lower_bound(op, first_items) for op in operations}
    report("first poll (24 h lookback)", first, first_bounds, first_seconds)
    new_items: Counter[tuple[str, str, str]] = Counter()
    for unit in plan.units:
        for operation in JOB_LISTS:
            new_items[(operation, f"{unit.account_id}/{unit.region}", "")] += 0
    for index in range(args.new):
        unit = plan.units[index % len(plan.units)]
        new_items[("ListBackupJobs", f"{unit.account_id}/{unit.region}", "")] += 1
    second_bounds = {op: lower_bound(op, new_items) for op in JOB_LISTS}
    second_bounds["ListRecoveryPointsByBackupVault"] = first_bounds[
        "ListRecoveryPointsByBackupVault"
    ]
    report(f"second poll ({args.new} new jobs, incremental)", second, second_bounds, second_seconds)


if __name__ == "__main__":
    main()
