"""Benchmark: AWS calls per poll of the dynamodb, ebs and elasticache collectors.

Seeds the sandbox with DynamoDB tables, EBS volumes and ElastiCache replication groups only
(default 500 tables, 1,000 volumes and 200 cache groups over 2 accounts x 2 regions, with
the stores fleet's mix of PITR, on-demand backups and snapshots; each unit also has one
serverless cache and one Memcached cluster), polls once with the three collectors and
prints, per operation, the calls made against the expected count, and the wall time.
DynamoDB's per-table calls go through the collector's real 10 calls/s limiter, so its wall
time shows the pacing.

Example: .venv/bin/python bench/stores_poll.py --tables 500 --volumes 1000 --cache-groups 200
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections import Counter
from datetime import UTC, datetime

from drwatch.exporter.collectors import COLLECTORS
from drwatch.sandbox.demo import sandbox_config, sandbox_exporter
from drwatch.sandbox.fleet import FleetSpec
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stores_fleet import StoresPlan, StoresSpec, plan_stores, seed_stores


def expected_calls(plan: StoresPlan) -> Counter[str]:
    """Per account and region: max(1, ceil(items / page)) per list, one per table for the rest."""
    calls: Counter[str] = Counter()
    for account, region in plan.spec.units:
        tables = [t for t in plan.tables if (t.account_id, t.region) == (account, region)]
        volumes = [v for v in plan.volumes if (v.account_id, v.region) == (account, region)]
        backups = sum(len(t.backups) for t in tables)
        snapshots = sum(len(v.snapshots) for v in volumes)
        calls["dynamodb:ListTables"] += max(1, math.ceil(len(tables) / 100))
        calls["dynamodb:ListTagsOfResource"] += len(tables)
        calls["dynamodb:DescribeContinuousBackups"] += len(tables)
        calls["dynamodb:ListBackups"] += max(1, math.ceil(backups / 100))
        calls["ec2:DescribeVolumes"] += max(1, math.ceil(len(volumes) / 500))
        calls["ec2:DescribeSnapshots"] += max(1, math.ceil(snapshots / 1000))
        caches = [c for c in plan.caches if (c.account_id, c.region) == (account, region)]
        groups = [c for c in caches if c.kind == "replication_group"]
        node_snapshots = sum(len(c.snapshots) for c in groups)
        serverless = [c for c in caches if c.kind == "serverless_cache"]
        serverless_snapshots = sum(len(c.snapshots) for c in serverless)
        calls["elasticache:DescribeReplicationGroups"] += max(1, math.ceil(len(groups) / 100))
        calls["elasticache:DescribeCacheClusters"] += 1  # moto lists no group members
        calls["elasticache:DescribeSnapshots"] += max(1, math.ceil(node_snapshots / 100))
        calls["elasticache:DescribeServerlessCaches"] += max(1, math.ceil(len(serverless) / 50))
        calls["elasticache:DescribeServerlessCacheSnapshots"] += max(
            1, math.ceil(serverless_snapshots / 50)
        )
        calls["elasticache:DescribeGlobalReplicationGroups"] += 1
        calls["elasticache:ListTagsForResource"] += len(caches)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--cache-groups", type=int, default=200)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    fleet_spec = FleetSpec(now=now, rds_instances=0, aurora_clusters=0)
    units = len(fleet_spec.units)
    spec = StoresSpec(
        now=now,
        accounts=fleet_spec.accounts,
        regions=fleet_spec.regions,
        tables_per_unit=math.ceil(args.tables / units),
        volumes_per_unit=math.ceil(args.volumes / units),
        cache_groups_per_unit=math.ceil(args.cache_groups / units),
    )
    plan = plan_stores(spec)
    with Sandbox() as sandbox:
        sandbox.reset()
        started = time.perf_counter()
        seed_stores(sandbox, plan)
        seeded = time.perf_counter() - started
        enabled = {"dynamodb", "ebs", "elasticache"}
        collectors = {
            c.name: {"enabled": c.name in enabled, "interval": 900, "timeout": 900}
            for c in COLLECTORS
        }
        exporter = sandbox_exporter(
            sandbox_config(sandbox.endpoint_url, fleet_spec, collectors=collectors)
        )
        try:
            started = time.perf_counter()
            exporter.poller.run_round()
            polled = time.perf_counter() - started
            statuses = exporter.poller.snapshot()
        finally:
            exporter.close()
    made: Counter[str] = Counter()
    durations: dict[str, float] = {}
    for status in statuses:
        run = status.last_run
        if run is None or not run.success:
            raise SystemExit(f"{status.schedule.key} failed: {run}")
        collector = status.schedule.key.collector
        durations[collector] = max(durations.get(collector, 0.0), run.duration_seconds)
        made.update({k: v for k, v in run.api_calls.items() if not k.startswith("sts:")})
    expected = expected_calls(plan)
    print(f"python {platform.python_version()}, {platform.machine()}")
    print(
        f"{len(plan.tables)} tables ({sum(len(t.backups) for t in plan.tables)} on-demand "
        f"backups), {len(plan.volumes)} volumes "
        f"({sum(len(v.snapshots) for v in plan.volumes)} snapshots), "
        f"{sum(c.kind == 'replication_group' for c in plan.caches)} cache groups "
        f"({sum(len(c.snapshots) for c in plan.caches)} snapshots), {units} units; "
        f"seeded in {seeded:.1f} s"
    )
    print(f"{'operation':<48} {'calls':>7} {'expected':>9}")
    for operation in sorted(expected):
        print(f"{operation:<48} {made[operation]:>7} {expected[operation]:>9}")
    print(f"{'total':<48} {sum(made.values()):>7} {sum(expected.values()):>9}")
    for collector, seconds in sorted(durations.items()):
        print(f"slowest {collector} unit: {seconds:.1f} s")
    print(f"poll round wall time: {polled:.1f} s")


if __name__ == "__main__":
    main()
