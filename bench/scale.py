"""Benchmark: the exporter at 100, 1,000 and 10,000 resources over 4 accounts x 4 regions.

One mixed fleet per size, spread over every service the sandbox fleet generator seeds (RDS
instances and Aurora clusters, AWS Backup protected DynamoDB tables, DynamoDB tables, EBS
volumes, ElastiCache groups, S3 buckets replicating to another region), polled with every
collector on and an injected per-call latency of 0 and 50 ms. Per size it prints:

- API economy: calls per poll by operation against the lower bound (bench/_common.py and the
  per-service benches' bounds); target at most 1.1 x the bound;
- poll wall time against the critical-path bound: the slowest single account-region-service
  chain (one unit) with its calls at 50 ms each, or at the documented rate where that is
  slower; target at most 1.5 x with default concurrency;
- the highest request rate seen per (account, region, service), and whether the requests
  fit AWS's token buckets (RDS: 300 burst, 12/s sustained per account and region; DynamoDB
  DescribeContinuousBackups and ListTagsOfResource: 10/s);
- the naive approach as ratios: per-resource RDS Describe calls against the list calls made,
  and max_workers=1 against the default pool at 50 ms (at --sequential-size resources);
- at the largest size, `drwatch serve` in its own process against the sandbox: its first
  poll (start to ready), /metrics p50 and p99 over 200 gzip scrapes, response bytes, series
  per resource by service, and the exporter's peak RSS (VmHWM), without moto's memory.

The sandbox runs in a child process (this script with --sandbox-child), so moto's CPU is
measured apart from the exporter's, which runs in this process with a botocore hook that
records every HTTP attempt (for the rates). About 5 minutes on 2 cores, mostly 10,000.

Example: .venv/bin/python bench/scale.py --sizes 100,1000,10000 --json
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from _common import emit_json, lower_bounds, pages, percentile, rds_items
from backup_poll import JOB_LISTS, lower_bound, window_items
from prometheus_client.parser import text_string_to_metric_families
from stores_poll import expected_calls

from drwatch.exporter.collectors import COLLECTORS
from drwatch.sandbox.backup_fleet import (
    BackupFleetPlan,
    plan_backup_fleet,
    seed_backup_fleet,
    spec_for,
)
from drwatch.sandbox.demo import sandbox_config, sandbox_exporter
from drwatch.sandbox.faults import CONTROL_PATH
from drwatch.sandbox.fleet import FleetPlan, FleetSpec, plan_fleet
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.rds_seed import seed_databases
from drwatch.sandbox.s3_fleet import PlannedBucket, PlannedRule, S3FleetPlan, seed_s3_fleet
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.stores_fleet import StoresPlan, plan_stores, seed_stores, stores_spec_for

ACCOUNTS = ("111111111111", "222222222222", "333333333333", "444444444444")
REGIONS = ("eu-west-1", "us-east-1", "eu-central-1", "us-west-2")
# Shares of the fleet by kind of resource (they add up to 1).
SHARES = {
    "rds_instances": 0.27,
    "aurora_clusters": 0.03,
    "backup_tables": 0.10,
    "tables": 0.15,
    "volumes": 0.25,
    "cache_groups": 0.10,
    "buckets": 0.10,
}
ENABLED = ("rds", "backup", "dynamodb", "ebs", "elasticache", "s3_replication")
LATENCY = 0.05
S3_CALLS_PER_BUCKET = 4  # replication, versioning, object lock, tagging: no batch call
S3_QUERIES_PER_CALL = 500
# Documented request rates: (burst, sustained per second) per account and region; RDS
# shares one bucket across its API, DynamoDB's limits are per operation.
RATE_LIMITS: Mapping[str, tuple[float, float]] = {
    "rds": (300.0, 12.0),
    "dynamodb:DescribeContinuousBackups": (10.0, 10.0),
    "dynamodb:ListTagsOfResource": (10.0, 10.0),
}
TARGET_CALLS, TARGET_WALL, TARGET_P99_MS, TARGET_RSS_MB = 1.1, 1.5, 50.0, 250.0


@dataclass(frozen=True, slots=True)
class ScalePlan:
    size: int
    rds: FleetPlan
    backup: BackupFleetPlan
    stores: StoresPlan
    s3: S3FleetPlan

    @property
    def units(self) -> tuple[tuple[str, str], ...]:
        return self.rds.spec.units

    def resources_by_service(self) -> dict[str, int]:
        backup_only = sum(len(u.resources) for u in self.backup.units) - len(
            spec_for(self.rds).external_resources
        )
        return {
            "rds": len(self.rds.databases),
            "dynamodb": len(self.stores.tables),  # includes the AWS Backup protected ones
            "ec2": len(self.stores.volumes),
            "elasticache": len(self.stores.caches),
            "s3": len(self.s3.buckets),
            "backup (of which dynamodb)": backup_only,
        }

    def total(self) -> int:
        counts = self.resources_by_service()
        return sum(n for service, n in counts.items() if not service.startswith("backup"))


def plan_scale(size: int, now: datetime) -> ScalePlan:
    share = {kind: round(size * fraction) for kind, fraction in SHARES.items()}
    units = len(ACCOUNTS) * len(REGIONS)
    spec = FleetSpec(
        now=now,
        accounts=ACCOUNTS,
        regions=REGIONS,
        rds_instances=share["rds_instances"],
        aurora_clusters=share["aurora_clusters"],
    )
    rds = plan_fleet(spec)
    backup = plan_backup_fleet(
        spec_for(rds, extra_resources=share["backup_tables"], history_days=2)
    )
    stores = plan_stores(
        stores_spec_for(
            rds,
            tables_per_unit=math.ceil(share["tables"] / units),
            volumes_per_unit=math.ceil(share["volumes"] / units),
            # Each unit also gets one serverless cache and one Memcached cluster.
            cache_groups_per_unit=max(1, math.ceil(share["cache_groups"] / units) - 2),
        )
    )
    return ScalePlan(size, rds, backup, stores, plan_buckets(now, share["buckets"]))


def plan_buckets(now: datetime, count: int) -> S3FleetPlan:
    """Per unit one replica bucket; the others replicate half their buckets into it with
    replication metrics (the unit of the next region holds the replica)."""
    buckets: list[PlannedBucket] = []
    replicas = {
        (a, r): PlannedBucket(a, r, f"scale-{a[-4:]}-{r}-replica", None, True)
        for a in ACCOUNTS
        for r in REGIONS
    }
    buckets.extend(replicas.values())
    units = list(replicas)
    for index in range(max(0, count - len(units))):
        account, region = units[index % len(units)]
        other = REGIONS[(REGIONS.index(region) + 1) % len(REGIONS)]
        rules: tuple[PlannedRule, ...] = ()
        if index % 2 == 0:
            replica = replicas[(account, other)]
            rules = (
                PlannedRule(
                    f"rule-{index}",
                    account,
                    other,
                    replica.name,
                    None,
                    rtc=False,
                    metrics=True,
                    delete_markers=False,
                    latency_seconds=30.0,
                    pending_bytes=0.0,
                    pending_operations=0.0,
                    failed_operations=0.0,
                ),
            )
        name = f"scale-{account[-4:]}-{region}-{index:05d}"
        buckets.append(PlannedBucket(account, region, name, "standard", True, rules=rules))
    return S3FleetPlan(now=now, buckets=tuple(buckets), freshness_targets=())


def seed(sandbox: Sandbox, plan: ScalePlan) -> None:
    seed_databases(sandbox, plan.rds)
    seed_backup_fleet(sandbox, plan.backup)
    seed_stores(sandbox, plan.stores)
    seed_s3_fleet(sandbox, plan.s3)


# --- lower bounds ---------------------------------------------------------------------


def call_bounds(plan: ScalePlan) -> dict[str, int]:
    """Per "service:Operation": the fewest calls one poll of this fleet can make."""
    units = len(plan.units)
    bounds: Counter[str] = Counter()
    for operation, bound in lower_bounds(rds_items(plan.rds), units).items():
        bounds[f"rds:{operation}"] = bound
    bounds.update(expected_calls(plan.stores))
    bounds.update(backup_bounds(plan))
    bounds.update(s3_bounds(plan.s3))
    return dict(bounds)


def backup_bounds(plan: ScalePlan) -> Counter[str]:
    now = plan.rds.spec.now
    items = window_items(plan.backup, now - timedelta(hours=24), now)
    bounds: Counter[str] = Counter()
    for operation in (*JOB_LISTS, "ListRecoveryPointsByBackupVault"):
        bounds[f"backup:{operation}"] = lower_bound(operation, items)
    for unit in plan.backup.units:
        bounds["backup:ListProtectedResources"] += pages(len(unit.resources), 1000)
    return bounds


def s3_bounds(plan: S3FleetPlan) -> Counter[str]:
    """ListBuckets lists the account's buckets in every region's unit; per bucket 4 Gets;
    per region ceil(queries / 500) GetMetricData (3 destination-side and 1 source-side
    query per rule with replication metrics, as bench/s3_poll.py counts them)."""
    bounds: Counter[str] = Counter()
    for account in ACCOUNTS:
        owned = [b for b in plan.buckets if b.account_id == account]
        bounds["s3:ListBuckets"] += len(REGIONS) * pages(len(owned), 1000)
        for region in REGIONS:
            rules = [r for b in owned if b.region == region for r in b.rules if r.metrics]
            incoming = [
                r for b in owned for r in b.rules if r.metrics and r.destination_region == region
            ]
            bounds["cloudwatch:GetMetricData"] += math.ceil(len(rules) / S3_QUERIES_PER_CALL)
            bounds["cloudwatch:GetMetricData"] += math.ceil(3 * len(incoming) / S3_QUERIES_PER_CALL)
    for operation in (
        "GetBucketReplication",
        "GetBucketVersioning",
        "GetObjectLockConfiguration",
        "GetBucketTagging",
    ):
        bounds[f"s3:{operation}"] = len(plan.buckets)
    return bounds


# --- one poll -------------------------------------------------------------------------


class RequestLog:
    """Every HTTP attempt the exporter sends: when, and to which account, region, service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: list[tuple[float, str, str, str, str]] = []

    def on_send(self, request: Any, event_name: str, **_: Any) -> None:
        # Credential=AKID/date/region/service/aws4_request in the SigV4 Authorization header.
        header = request.headers.get("Authorization", b"")
        text = header.decode() if isinstance(header, bytes) else str(header)
        scope = text.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        key, region, service = scope[0], scope[2], scope[3]
        operation = event_name.rsplit(".", 1)[-1]
        # One assumed-role key per account: the key stands for the account (moto, which
        # could map it back, lives in the sandbox process).
        with self._lock:
            self.sent.append((time.monotonic(), key, region, service, operation))


@dataclass(frozen=True, slots=True)
class PollFigures:
    wall_seconds: float
    calls: Counter[str]
    unit_calls: dict[tuple[str, str, str], Counter[str]]  # (collector, account, region)
    unit_seconds: dict[tuple[str, str, str], float]
    max_rate: dict[str, tuple[int, str]]  # rate group -> (most requests in 1 s, where)
    bucket_ok: dict[str, bool]  # rate group -> requests fit AWS's token bucket
    moto_cpu: float  # CPU seconds the sandbox spent serving this poll
    exporter_cpu: float  # CPU seconds of this process (the exporter) during the poll


class SandboxProcess:
    """The seeded sandbox in a child process (this script with --sandbox-child), so moto's
    CPU runs beside the exporter's instead of sharing its GIL; faults are set over HTTP."""

    def __init__(self, size: int, now: datetime) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--sandbox-child", str(size), now.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise SystemExit("the sandbox process exited before serving")
        started = json.loads(line)
        self.endpoint_url: str = started["endpoint_url"]
        self.seed_seconds: float = started["seed_seconds"]

    def set_latency(self, seconds: float) -> None:
        rules = [{"error_code": "", "latency_seconds": seconds}] if seconds > 0 else []
        request = urllib.request.Request(
            f"{self.endpoint_url}{CONTROL_PATH}",
            data=json.dumps(rules).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            response.read()

    def cpu_seconds(self) -> float:
        """CPU time moto has used so far (user + system, from /proc)."""
        return process_cpu_seconds(self._process.pid)

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # the child serves until its stdin closes
        self._process.wait(timeout=60)


def process_cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/PID/stat, after the parenthesised command name.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sandbox_child(size: int, now: datetime) -> None:
    with Sandbox() as sandbox:
        started = time.perf_counter()
        seed(sandbox, plan_scale(size, now))
        seconds = time.perf_counter() - started
        print(json.dumps({"endpoint_url": sandbox.endpoint_url, "seed_seconds": seconds}))
        sys.stdout.flush()
        sys.stdin.read()


class Poller:
    """One exporter against the sandbox process, polled round by round, warm after the first
    (clients built, roles assumed: per-process costs, not a poll's)."""

    def __init__(self, sandbox: SandboxProcess, plan: ScalePlan, workers: int | None) -> None:
        self._sandbox = sandbox
        collectors = {
            c.name: {"enabled": c.name in ENABLED, "interval": 900, "timeout": 900}
            for c in COLLECTORS
        }
        extra: dict[str, Any] = {"collectors": collectors}
        if workers is not None:
            extra["poller"] = {"max_workers": workers}
        self.log = RequestLog()
        self.exporter = sandbox_exporter(
            sandbox_config(sandbox.endpoint_url, plan.rds.spec, **extra),
            extra_handlers=[("before-send", self.log.on_send)],
        )

    def round(self) -> PollFigures:
        self.log.sent.clear()
        moto_before, own_before = self._sandbox.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        self.exporter.poller.run_round()
        wall = time.perf_counter() - started
        moto_cpu = self._sandbox.cpu_seconds() - moto_before
        exporter_cpu = time.process_time() - own_before
        calls: Counter[str] = Counter()
        unit_calls: dict[tuple[str, str, str], Counter[str]] = {}
        unit_seconds: dict[tuple[str, str, str], float] = {}
        for status in self.exporter.poller.snapshot():
            run = status.last_run
            if run is None or not run.success:
                raise SystemExit(f"{status.schedule.key} failed: {run}")
            key = (run.unit.collector, run.unit.account_id, run.unit.region)
            own = Counter({op: n for op, n in run.api_calls.items() if not op.startswith("sts:")})
            unit_calls[key], unit_seconds[key] = own, run.duration_seconds
            calls.update(own)
        max_rate, bucket_ok = rates(self.log.sent)
        return PollFigures(
            wall, calls, unit_calls, unit_seconds, max_rate, bucket_ok, moto_cpu, exporter_cpu
        )

    def close(self) -> None:
        self.exporter.close()


def rate_group(service: str, operation: str) -> str | None:
    if service in RATE_LIMITS:
        return service
    key = f"{service}:{operation}"
    return key if key in RATE_LIMITS else None


def rates(
    sent: Sequence[tuple[float, str, str, str, str]],
) -> tuple[dict[str, tuple[int, str]], dict[str, bool]]:
    """Most requests in any 1-second window per (account, region, service), and whether
    each rate-limited group stayed inside its token bucket (never below zero tokens)."""
    by_chain: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    by_group: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for at, account, region, service, operation in sent:
        if service == "sts":
            continue
        by_chain[(account, region, service)].append(at)
        group = rate_group(service, operation)
        if group is not None:
            by_group[(account, region, group)].append(at)
    max_rate: dict[str, tuple[int, str]] = {}
    for (account, region, service), times in by_chain.items():
        times.sort()
        most, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            most = max(most, end - start + 1)
        if most > max_rate.get(service, (0, ""))[0]:
            max_rate[service] = (most, f"{account}/{region}")
    bucket_ok: dict[str, bool] = {}
    for (_, _, group), times in by_group.items():
        burst, refill = RATE_LIMITS[group]
        bucket_ok[group] = bucket_ok.get(group, True) and fits_bucket(sorted(times), burst, refill)
    return max_rate, bucket_ok


def fits_bucket(times: Sequence[float], burst: float, refill: float) -> bool:
    tokens, last = burst, times[0] if times else 0.0
    for at in times:
        tokens = min(burst, tokens + (at - last) * refill) - 1
        last = at
        if tokens < -1e-9:
            return False
    return True


def critical_path(figures: PollFigures, latency: float) -> tuple[float, tuple[str, str, str]]:
    """The slowest unit's chain: its calls in a row at `latency` each, or at the documented
    sustained rate where that is slower (beyond the burst)."""
    worst, where = 0.0, ("", "", "")
    for key, calls in figures.unit_calls.items():
        at_latency = sum(calls.values()) * latency
        paced = 0.0
        for operation, count in calls.items():
            service, name = operation.split(":", 1)
            group = rate_group(service, name)
            if group is not None:
                burst, refill = RATE_LIMITS[group]
                paced = max(paced, (count - burst) / refill)
        chain = max(at_latency, paced)
        if chain > worst:
            worst, where = chain, key
    return worst, where


def naive_rds_calls(plan: ScalePlan) -> int:
    """A per-resource poller: one DescribeDBInstances and one DescribeDBSnapshots (or the
    cluster twins) per database, one DescribeDBInstanceAutomatedBackups per instance."""
    return sum(3 if db.kind == "db_instance" else 2 for db in plan.rds.databases)


# --- /metrics and memory of `drwatch serve` in its own process ---------------------------


@dataclass(frozen=True, slots=True)
class ServeFigures:
    p50_ms: float
    p99_ms: float
    body_bytes: int
    gzip_bytes: int
    peak_rss_mb: float
    ready_rss_mb: float
    series_per_resource: dict[str, float]
    ready_seconds: float


def serve_figures(sandbox: SandboxProcess, plan: ScalePlan, scrapes: int) -> ServeFigures:
    collectors = {c.name: {"enabled": c.name in ENABLED, "interval": 900} for c in COLLECTORS}
    config = {
        "accounts": [
            {"id": a, "role_arn": f"arn:aws:iam::{a}:role/drwatch-read"} for a in ACCOUNTS
        ],
        "regions": list(REGIONS),
        "collectors": collectors,
        "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 2},
        "listen_address": "127.0.0.1:0",
    }
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp, "drwatch.yml")
        port = free_port()
        config["listen_address"] = f"127.0.0.1:{port}"
        config["history"] = {"path": str(Path(tmp, "history.db"))}
        config_path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}
        drwatch = Path(sys.executable).with_name("drwatch")
        process = subprocess.Popen(
            [str(drwatch), "serve", "--config", str(config_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            ready = wait_ready(base, process)
            ready_rss = proc_status_mb(process.pid, "VmRSS")
            body = b""
            latencies = []
            # Prometheus asks for gzip; the exporter caches the compressed body too.
            scrape = urllib.request.Request(f"{base}/metrics", headers={"Accept-Encoding": "gzip"})
            for _ in range(scrapes):
                began = time.perf_counter()
                with urllib.request.urlopen(scrape) as response:
                    body = response.read()
                latencies.append((time.perf_counter() - began) * 1000)
            text = gzip.decompress(body)
            peak = proc_status_mb(process.pid, "VmHWM")
        finally:
            process.terminate()
            process.wait(timeout=30)
    return ServeFigures(
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        body_bytes=len(text),
        gzip_bytes=len(body),
        peak_rss_mb=peak,
        ready_rss_mb=ready_rss,
        series_per_resource=series_per_resource(text.decode(), plan),
        ready_seconds=ready,
    )


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            assert process.stderr is not None
            raise SystemExit(f"drwatch serve exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/-/ready") as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)


def proc_status_mb(pid: int, field: str) -> float:
    """VmHWM (peak resident memory) or VmRSS of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} in /proc/{pid}/status")


def series_per_resource(text: str, plan: ScalePlan) -> dict[str, float]:
    """Samples carrying a `resource` label, per service label, divided by its resources."""
    series: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "resource" in sample.labels and "service" in sample.labels:
                series[sample.labels["service"]] += 1
    counts = plan.resources_by_service()
    return {
        service: series[service] / counts[service]
        for service in ("rds", "dynamodb", "ec2", "elasticache", "s3")
        if counts[service]
    }


# --- reporting ------------------------------------------------------------------------


def economy_rows(
    size: int, figures: PollFigures, bounds: Mapping[str, int]
) -> list[dict[str, Any]]:
    made, bound = sum(figures.calls.values()), 0
    rows = []
    for operation in sorted(set(figures.calls) | set(bounds)):
        expected = bounds.get(operation)
        if expected is None:
            # Operations with no items to page (plans, vaults, selections): one per unit.
            expected = sum(1 for calls in figures.unit_calls.values() if calls[operation])
        bound += expected
        rows.append(
            {
                "size": size,
                "operation": operation,
                "calls": figures.calls[operation],
                "bound": expected,
            }
        )
    print(f"{'operation':50} {'calls':>7} {'bound':>7} {'ratio':>6}")
    for row in rows:
        ratio = row["calls"] / row["bound"] if row["bound"] else float("nan")
        print(f"{row['operation']:50} {row['calls']:>7} {row['bound']:>7} {ratio:>6.2f}")
    print(f"{'total':50} {made:>7} {bound:>7} {made / bound:>6.2f}")
    return [
        {
            "figure": "calls/bound",
            "size": size,
            "value": made / bound,
            "calls": made,
            "bound": bound,
            "target": TARGET_CALLS,
            "ok": made / bound <= TARGET_CALLS,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--sequential-size", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="also print BENCH JSON lines")
    parser.add_argument("--sandbox-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sandbox_child:
        sandbox_child(int(args.sandbox_child[0]), datetime.fromisoformat(args.sandbox_child[1]))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"{platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}")
    rows: list[dict[str, Any]] = []
    for size in sizes:
        sandbox = SandboxProcess(size, now)
        try:
            rows.extend(run_size(sandbox, plan_scale(size, now), args, largest=size == max(sizes)))
        finally:
            sandbox.close()
    emit_json("scale", rows, args.json)


def run_size(
    sandbox: SandboxProcess, plan: ScalePlan, args: argparse.Namespace, largest: bool
) -> list[dict[str, Any]]:
    size = plan.size
    counts = plan.resources_by_service()
    print(
        f"\n## {plan.total()} resources ({size} planned): {counts}; "
        f"seeded in {sandbox.seed_seconds:.1f} s"
    )
    rows: list[dict[str, Any]] = [
        {"figure": "seed seconds", "size": size, "value": sandbox.seed_seconds}
    ]
    if largest:
        # `drwatch serve` polls once at 0 ms (its time to ready) before the scrapes; the
        # in-process exporter below then polls once, cold, at 50 ms: one 10k poll less.
        rows.extend(serve_rows(sandbox, plan, args.scrapes))
    poller = Poller(sandbox, plan, None)
    try:
        if largest:
            sandbox.set_latency(LATENCY)
        first = poller.round()  # the first poll: AWS Backup's 24 h lookback (the bounds')
        if not largest:
            sandbox.set_latency(LATENCY)
        slow = first if largest else poller.round()
        sandbox.set_latency(0)
    finally:
        poller.close()
    rows.extend(economy_rows(size, first, call_bounds(plan)))
    if not largest:
        print(f"latency 0: poll {first.wall_seconds:.2f} s (first, cold)")
        rows.append({"figure": "poll wall 0 ms", "size": size, "value": first.wall_seconds})
    rows.extend(wall_rows(size, slow))
    rds_made = sum(n for op, n in first.calls.items() if op.startswith("rds:"))
    naive = naive_rds_calls(plan)
    print(f"naive per-resource RDS calls {naive} vs {rds_made} made: x{naive / rds_made:.1f}")
    rows.append(
        {
            "figure": "naive per-resource RDS calls / list calls",
            "size": size,
            "value": naive / rds_made,
        }
    )
    if size == args.sequential_size:
        sequential = Poller(sandbox, plan, 1)
        try:
            sequential.round()
            sandbox.set_latency(LATENCY)
            one = sequential.round()
            sandbox.set_latency(0)
        finally:
            sequential.close()
        factor = one.wall_seconds / slow.wall_seconds
        print(f"sequential (max_workers=1) {one.wall_seconds:.1f} s: x{factor:.1f}")
        rows.append(
            {"figure": "sequential / concurrent poll wall 50 ms", "size": size, "value": factor}
        )
    return rows


def wall_rows(size: int, slow: PollFigures) -> list[dict[str, Any]]:
    path, where = critical_path(slow, LATENCY)
    ratio = slow.wall_seconds / path
    slowest = max(slow.unit_seconds.items(), key=lambda item: item[1])
    print(
        f"latency 50 ms: wall {slow.wall_seconds:.2f} s, critical path {path:.2f} s "
        f"({'/'.join(where)}, {sum(slow.unit_calls[where].values())} calls), ratio {ratio:.2f}; "
        f"slowest unit {'/'.join(slowest[0])} {slowest[1]:.2f} s; CPU: sandbox "
        f"{slow.moto_cpu:.1f} s, exporter {slow.exporter_cpu:.1f} s"
    )
    rows: list[dict[str, Any]] = [
        {
            "figure": "poll wall 50 ms / critical path",
            "size": size,
            "value": ratio,
            "wall": slow.wall_seconds,
            "bound": path,
            "target": TARGET_WALL,
            "ok": ratio <= TARGET_WALL,
        },
        {"figure": "sandbox CPU during 50 ms poll", "size": size, "value": slow.moto_cpu},
        {
            "figure": "poll wall 50 ms / max(critical path, sandbox CPU)",
            "size": size,
            "value": slow.wall_seconds / max(path, slow.moto_cpu),
        },
        {"figure": "exporter CPU during 50 ms poll", "size": size, "value": slow.exporter_cpu},
    ]
    for service, (most, at) in sorted(slow.max_rate.items()):
        print(f"  max {most:>4} req/s {service} (key {at})")
    for group, ok in sorted(slow.bucket_ok.items()):
        burst, refill = RATE_LIMITS[group]
        most = slow.max_rate.get(group.split(":")[0], (0, ""))[0]
        print(f"  {group}: within AWS token bucket ({burst:g} burst, {refill:g}/s): {ok}")
        rows.append(
            {
                "figure": f"rate {group} within AWS bucket",
                "size": size,
                "value": ok,
                "max_per_s": most,
                "ok": ok,
            }
        )
    return rows


def serve_rows(sandbox: SandboxProcess, plan: ScalePlan, scrapes: int) -> list[dict[str, Any]]:
    size = plan.size
    serve = serve_figures(sandbox, plan, scrapes)
    print(
        f"serve: ready RSS {serve.ready_rss_mb:.0f} MB after {serve.ready_seconds:.1f} s; "
        f"/metrics p50 {serve.p50_ms:.1f} ms "
        f"p99 {serve.p99_ms:.1f} ms, {serve.body_bytes} bytes ({serve.gzip_bytes} gzipped); "
        f"peak RSS {serve.peak_rss_mb:.0f} MB; series per resource {serve.series_per_resource}"
    )
    rows: list[dict[str, Any]] = [
        {
            "figure": "poll wall 0 ms (drwatch serve, start to ready)",
            "size": size,
            "value": serve.ready_seconds,
        },
        {"figure": "RSS at ready MB", "size": size, "value": serve.ready_rss_mb},
        {"figure": "/metrics p50 ms", "size": size, "value": serve.p50_ms},
        {
            "figure": "/metrics p99 ms",
            "size": size,
            "value": serve.p99_ms,
            "target": TARGET_P99_MS,
            "ok": serve.p99_ms <= TARGET_P99_MS,
        },
        {"figure": "/metrics bytes", "size": size, "value": serve.body_bytes},
        {"figure": "/metrics bytes gzipped", "size": size, "value": serve.gzip_bytes},
        {
            "figure": "peak RSS MB",
            "size": size,
            "value": serve.peak_rss_mb,
            "target": TARGET_RSS_MB,
            "ok": serve.peak_rss_mb <= TARGET_RSS_MB,
        },
    ]
    for service, per in sorted(serve.series_per_resource.items()):
        rows.append({"figure": f"series per {service} resource", "size": size, "value": per})
    return rows


if __name__ == "__main__":
    main()
