"""Benchmark: AWS calls per poll for an RDS fleet, and /metrics latency.

Seeds the sandbox with a fleet (default 200 instances + 20 Aurora clusters over
2 accounts x 2 regions), runs one full poll round, and prints:
  - calls per operation against the lower bound (ceil(items / 100) pages per list call,
    at least one call per account and region);
  - poll wall time;
  - /metrics latency over N scrapes over HTTP (median, p99) and the response size.

Example: .venv/bin/python bench/rds_poll.py --instances 200 --scrapes 100
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
import urllib.request
from datetime import UTC, datetime

from _common import lower_bounds, rds_items

from drwatch.sandbox.demo import sandbox_config, sandbox_exporter
from drwatch.sandbox.fleet import FleetSpec, plan_fleet
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=100)
    args = parser.parse_args()

    spec = FleetSpec(
        now=datetime.now(UTC), rds_instances=args.instances, aurora_clusters=args.clusters
    )
    plan = plan_fleet(spec)
    with Sandbox() as sandbox:
        started = time.perf_counter()
        seed_fleet(sandbox, plan)
        seeding = time.perf_counter() - started
        exporter = sandbox_exporter(sandbox_config(sandbox.endpoint_url, spec))
        started = time.perf_counter()
        exporter.poller.run_round()
        poll_seconds = time.perf_counter() - started
        calls = {
            op: n for (service, op), n in exporter.aws.stats.requests().items() if service == "rds"
        }
        items = rds_items(plan)
        units = len(spec.accounts) * len(spec.regions)
        bounds = lower_bounds(items, units)

        server = exporter.serve("127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.port}/metrics"
        latencies = []
        size = 0
        for _ in range(args.scrapes):
            began = time.perf_counter()
            with urllib.request.urlopen(url) as response:
                size = len(response.read())
            latencies.append((time.perf_counter() - began) * 1000)
        server.stop()
        exporter.close()

    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}"
    )
    print(
        f"fleet: {args.instances} instances + {args.clusters} clusters, "
        f"{len(spec.accounts)} accounts x {len(spec.regions)} regions; seeding {seeding:.1f} s"
    )
    print(f"poll round wall time: {poll_seconds:.2f} s")
    print("| operation | calls | lower bound | ratio |")
    print("|---|---:|---:|---:|")
    for operation in sorted(calls):
        bound = bounds.get(operation, units)
        print(f"| {operation} | {calls[operation]} | {bound} | {calls[operation] / bound:.2f} |")
    print(f"| total | {sum(calls.values())} | {sum(bounds.get(o, units) for o in calls)} | |")
    latencies.sort()
    p99 = latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)]
    print(
        f"/metrics over {args.scrapes} scrapes: median {statistics.median(latencies):.1f} ms, "
        f"p99 {p99:.1f} ms, {size} bytes"
    )


if __name__ == "__main__":
    main()
