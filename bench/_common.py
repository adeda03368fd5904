"""What the benchmarks share: lower bounds of AWS calls, percentiles, JSON figure lines.

A lower bound is what any client must pay for one poll: per list operation and per list
(an account x region unit, or a vault), max(1, ceil(items / largest page the API accepts)),
plus the calls AWS offers only per resource. Each bench/*_poll.py script computes the
bounds of its service with these helpers; bench/scale.py adds them up for a mixed fleet.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from drwatch.sandbox.fleet import FleetPlan

RDS_PAGE = 100  # the largest MaxRecords every RDS Describe call accepts


def pages(items: int, page: int) -> int:
    """Calls one list needs: one even when empty, one more per further page."""
    return max(1, math.ceil(items / page))


def rds_items(plan: FleetPlan) -> Counter[tuple[str, str, str]]:
    """Items each RDS Describe call returns, per (operation, account, region)."""
    items: Counter[tuple[str, str, str]] = Counter()
    for db in plan.databases:
        instances = 2 if db.kind == "db_cluster" else 1  # a cluster lists its member too
        items[("DescribeDBInstances", db.account_id, db.region)] += instances
        for region in {db.region, *(s.copy_of_region for s in db.snapshots if s.copy_of_region)}:
            held = len(db.snapshots_in(region))
            operation = (
                "DescribeDBClusterSnapshots" if db.kind == "db_cluster" else ("DescribeDBSnapshots")
            )
            items[(operation, db.account_id, region)] += held
        if db.kind == "db_cluster":
            items[("DescribeDBClusters", db.account_id, db.region)] += 1
        else:
            items[("DescribeDBInstanceAutomatedBackups", db.account_id, db.region)] += 1
    return items


def lower_bounds(
    plan_items: Counter[tuple[str, str, str]], units: int, page: int = RDS_PAGE
) -> dict[str, int]:
    """Per operation: sum over units of max(1, ceil(items / page)); empty units pay one call."""
    per_unit: dict[str, Counter[tuple[str, str]]] = {}
    for (operation, account, region), count in plan_items.items():
        per_unit.setdefault(operation, Counter())[(account, region)] += count
    bounds: dict[str, int] = {}
    for operation, counts in per_unit.items():
        bounds[operation] = sum(pages(counts[u], page) for u in counts)
        bounds[operation] += units - len(counts)
    return bounds


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def emit_json(benchmark: str, rows: Iterable[Mapping[str, Any]], enabled: bool) -> None:
    """One JSON object per line on stdout, each with a "benchmark" key (bench/table.py)."""
    if not enabled:
        return
    for row in rows:
        print(json.dumps({"benchmark": benchmark, **row}), file=sys.stdout, flush=True)
