"""Benchmark: AWS calls per poll of the S3 collectors, by operation, for a bucket estate.

Seeds the sandbox with one account's buckets spread over two regions (default 500 source
buckets, 300 of them replicated to a shared replica bucket in the other region, 250 of
those with replication metrics and CloudWatch datapoints) and freshness targets holding
a few thousand backup files, then polls s3_replication and s3_freshness once and prints
calls per operation against the expected count, and the wall time.

Example: .venv/bin/python bench/s3_poll.py --buckets 500 --replicated 300 --with-metrics 250
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections import Counter
from datetime import UTC, datetime

from moto.s3.models import s3_backends

from drwatch.exporter.collectors import COLLECTORS
from drwatch.sandbox.demo import sandbox_config, sandbox_exporter
from drwatch.sandbox.fleet import FleetSpec
from drwatch.sandbox.s3_fleet import PlannedBucket, PlannedRule, S3FleetPlan, seed_s3_fleet
from drwatch.sandbox.server import Sandbox

ACCOUNT = "111111111111"
REGIONS = ("eu-west-1", "us-east-1")
QUERIES_PER_CALL = 500


def plan(now: datetime, buckets: int, replicated: int, with_metrics: int) -> S3FleetPlan:
    replicas = {r: PlannedBucket(ACCOUNT, r, f"bench-replica-{r}", None, True) for r in REGIONS}
    sources = []
    for index in range(buckets):
        region = REGIONS[index % 2]
        other = REGIONS[(index + 1) % 2]
        rules: tuple[PlannedRule, ...] = ()
        if index < replicated:
            metrics = index < with_metrics
            rules = (
                PlannedRule(
                    f"rule-{index}",
                    ACCOUNT,
                    other,
                    replicas[other].name,
                    None,
                    rtc=False,
                    metrics=metrics,
                    delete_markers=False,
                    latency_seconds=30.0 if metrics else None,
                    pending_bytes=0.0 if metrics else None,
                    pending_operations=0.0 if metrics else None,
                    failed_operations=0.0 if metrics else None,
                ),
            )
        sources.append(
            PlannedBucket(ACCOUNT, region, f"bench-{index:05d}", "standard", True, rules=rules)
        )
    return S3FleetPlan(now=now, buckets=(*replicas.values(), *sources), freshness_targets=())


def add_backup_files(bucket: str, prefix: str, count: int) -> None:
    """Straight into moto's backend: thousands of PutObject calls would only time the seed."""
    backend = s3_backends[ACCOUNT]["aws"]
    for index in range(count):
        backend.put_object(bucket, f"{prefix}{index:06d}.dump", b"x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", type=int, default=500)
    parser.add_argument("--replicated", type=int, default=300)
    parser.add_argument("--with-metrics", type=int, default=250)
    parser.add_argument("--files", type=int, default=2500, help="files per freshness target")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    estate = plan(now, args.buckets, args.replicated, args.with_metrics)
    spec = FleetSpec(now=now, accounts=(ACCOUNT,), regions=REGIONS)
    targets = [
        {"bucket": f"bench-{i:05d}", "prefix": "dumps/", "region": REGIONS[i % 2]} for i in (0, 1)
    ]
    with Sandbox() as sandbox:
        sandbox.reset()
        started = time.monotonic()
        seed_s3_fleet(sandbox, estate)
        for target in targets:
            add_backup_files(target["bucket"], target["prefix"], args.files)
        print(f"seeded in {time.monotonic() - started:.1f} s")
        collectors = {
            c.name: {"enabled": c.name in ("s3_replication", "s3_freshness"), "interval": 300}
            for c in COLLECTORS
        }
        config = sandbox_config(
            sandbox.endpoint_url, spec, collectors=collectors, s3_freshness={"targets": targets}
        )
        exporter = sandbox_exporter(config)
        started = time.monotonic()
        exporter.poller.run_round()
        elapsed = time.monotonic() - started
    calls: Counter[str] = Counter()
    for status in exporter.poller.snapshot():
        run = status.last_run
        assert run is not None
        assert run.success, run
        # AssumeRole is the exporter's own credential call, once per account, not a poll cost.
        calls.update({op: n for op, n in run.api_calls.items() if not op.startswith("sts:")})
    per_region_buckets = math.ceil(args.buckets / 2) + 1
    destination_queries = 3 * math.ceil(args.with_metrics / 2)
    source_queries = math.ceil(args.with_metrics / 2)
    expected = {
        "s3:ListBuckets": len(REGIONS) * max(1, math.ceil((args.buckets + 2) / 1000)),
        "s3:GetBucketReplication": args.buckets + 2,
        "s3:GetBucketVersioning": args.buckets + 2,
        "s3:GetObjectLockConfiguration": args.buckets + 2,
        "s3:GetBucketTagging": args.buckets + 2,
        "cloudwatch:GetMetricData": len(REGIONS)
        * (
            math.ceil(destination_queries / QUERIES_PER_CALL)
            + math.ceil(source_queries / QUERIES_PER_CALL)
        ),
        "s3:ListObjectsV2": len(targets) * max(1, math.ceil(args.files / 1000)),
    }
    print(
        f"{args.buckets} buckets (+2 replicas), 1 account x {len(REGIONS)} regions, "
        f"{args.replicated} replicated, {args.with_metrics} with metrics; "
        f"{len(targets)} freshness targets x {args.files} files "
        f"({per_region_buckets} buckets per region)"
    )
    print(f"{'operation':32} {'calls':>6} {'expected':>8}")
    for operation in sorted(set(calls) | set(expected)):
        print(f"{operation:32} {calls[operation]:>6} {expected.get(operation, 0):>8}")
    print(f"{'total':32} {sum(calls.values()):>6} {sum(expected.values()):>8}")
    print(f"poll round wall time {elapsed:.1f} s (moto in the same process)")
    print(f"{platform.machine()} CPython {platform.python_version()}")


if __name__ == "__main__":
    main()
