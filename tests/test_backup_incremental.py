"""Incremental job reading: a poll after N new jobs pages through N jobs, not the window."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.collectors.backup import PAGE_SIZE
from drwatch.exporter.collectors.backup_jobs import LIST_LAG_OVERLAP
from drwatch.exporter.service import Exporter
from drwatch.sandbox.backup_fleet import (
    add_jobs,
    plan_backup_fleet,
    set_clock,
    spec_for,
    vault_arn,
)
from drwatch.sandbox.backup_records import SandboxJob
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW, sandbox_config, sandbox_exporter
from tests.helpers import FakeClock

IN_WINDOW = 10_000
NEW = 2_500
MOTO_NOW = NOW.astimezone(UTC).replace(tzinfo=None)
HOUR = timedelta(hours=1)


def jobs(
    account: str, region: str, prefix: str, count: int, first: datetime, last: datetime
) -> list[SandboxJob]:
    """`count` completed backup jobs whose completions spread evenly over [first, last]."""
    step = (last - first) / max(1, count - 1)
    return [
        SandboxJob(
            job_id=f"{prefix}-{n:06d}",
            kind="backup",
            resource_arn=f"arn:aws:dynamodb:{region}:{account}:table/bulk-{n % 1000:04d}",
            resource_type="DynamoDB",
            vault_arn=vault_arn(account, region, "prod"),
            created=first + n * step - timedelta(minutes=30),
            completed=first + n * step,
            final_state="COMPLETED",
            size_bytes=1024,
        )
        for n in range(count)
    ]


def list_calls(exporter: Exporter, account: str, region: str) -> dict[str, int]:
    for status in exporter.poller.snapshot():
        key = status.schedule.key
        if (key.collector, key.account_id, key.region) == ("backup", account, region):
            assert status.last_run is not None
            assert status.last_run.success
            return {
                op: n
                for op, n in status.last_run.api_calls.items()
                if op in ("backup:ListBackupJobs", "backup:ListCopyJobs", "backup:ListRestoreJobs")
            }
    raise AssertionError("no backup unit")


def test_a_poll_after_n_new_jobs_reads_n_over_page_size_pages(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    account, region = fleet.spec.accounts[0], fleet.spec.regions[0]
    bulk = jobs(account, region, "bulk", IN_WINDOW, MOTO_NOW - HOUR * 23, MOTO_NOW - HOUR)
    add_jobs(account, region, bulk)
    clock = FakeClock(NOW)
    collectors = {c.name: {"enabled": c.name == "backup", "interval": 60} for c in COLLECTORS}
    exporter = sandbox_exporter(sandbox_config(sandbox, fleet, collectors=collectors), clock=clock)

    exporter.poller.run_round()
    seeded = [
        job
        for job in plan_backup_fleet(spec_for(fleet)).unit(account, region).jobs
        if job.kind == "backup"
    ]
    read = [j.completed for j in bulk + seeded if MOTO_NOW - HOUR * 24 < j.completed <= MOTO_NOW]
    first = list_calls(exporter, account, region)
    assert first["backup:ListBackupJobs"] == math.ceil(len(read) / PAGE_SIZE) == 11

    later = MOTO_NOW + HOUR
    add_jobs(account, region, jobs(account, region, "new", NEW, MOTO_NOW, later))
    set_clock(spec_for(fleet), later.replace(tzinfo=UTC))
    clock.advance(3600)
    exporter.poller.run_round()
    second = list_calls(exporter, account, region)
    # Re-read: the 15-minute overlap before the newest completion seen; plus the fleet's
    # running job, which finished in between.
    overlap = sum(1 for t in read if t > max(read) - LIST_LAG_OVERLAP)
    assert 0 < overlap < 200
    assert second["backup:ListBackupJobs"] == math.ceil((NEW + 1 + overlap) / PAGE_SIZE) == 3
    assert second["backup:ListCopyJobs"] == second["backup:ListRestoreJobs"] == 1

    # History gets each job once: the second poll's job events are exactly the new jobs.
    status = next(
        s
        for s in exporter.poller.snapshot()
        if (s.schedule.key.collector, s.schedule.key.account_id, s.schedule.key.region)
        == ("backup", account, region)
    )
    assert status.observations is not None
    events = [e for e in status.observations.job_events if e.kind == "backup"]
    assert len(events) == NEW + 1
    assert len({e.job_id for e in events}) == NEW + 1
    exporter.close()
