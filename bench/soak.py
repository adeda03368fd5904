"""Soak: the exporter serving for minutes under injected AWS faults, watched for leaks.

Run: `make soak` or `.venv/bin/python bench/soak.py [--minutes 10] [--speed 10]`.

The sandbox fleet is seeded; faults stay on the whole time (throttling, server errors,
latency, dropped connections, a region denied now and then); the exporter runs as `serve`
does (scheduler thread, pool, HTTP server with basic auth, history writer) on a clock that
runs `--speed` times faster than the wall clock, so 60-second poll intervals come round
every few seconds. A scraper reads /metrics and / twice a second. Every 15 s the script
samples resident memory, threads and open file descriptors of this process (the moto sandbox
included: it runs in the same process).

After a warm-up (caches fill, pools reach their size) the criteria are: RSS grows less than
10% (and less than 25 MB) from the end of warm-up to the end, the thread count stays within
the pool bound and its floor does not rise, the floor of the fd count rises by at most a few
(requests in flight come and go; a leak raises the floor), every scrape succeeds,
and afterwards the history passes PRAGMA integrity_check and the chain verify. Figures are
printed; the exit status is 1 if a criterion fails.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt

from drwatch.exporter.webconfig import WebConfig
from drwatch.history.chain import verify_chain
from drwatch.history.store import HistoryStore
from drwatch.history.writer import HistoryWriter
from drwatch.sandbox import demo
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.fleet import FleetSpec, plan_fleet
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox

SAMPLE_SECONDS = 15.0
SCRAPE_SECONDS = 0.5
PASSWORD = "soak"
RSS_GROWTH_LIMIT = 0.10
RSS_GROWTH_LIMIT_BYTES = 25 * 1024**2
FD_SLACK = 8
THREAD_SLACK = 2  # the pool may still be growing to its size at the end of warm-up


class FastClock:
    """Wall time, `speed` times faster: the poller's intervals pass `speed` times sooner."""

    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._start_wall = datetime.now(UTC)
        self._start = time.monotonic()

    def monotonic(self) -> float:
        return self._start + (time.monotonic() - self._start) * self._speed

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._start) * self._speed
        return self._start_wall + timedelta(seconds=elapsed)


@dataclass(frozen=True)
class Sample:
    at: float
    rss_bytes: int
    threads: int
    fds: int
    polls_stored: int


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def faults(regions: tuple[str, ...]) -> list[FaultRule]:
    return [
        FaultRule("Throttling", 400, service="rds", probability=0.2),
        FaultRule("ThrottlingException", 400, service="backup", probability=0.2),
        FaultRule("RequestLimitExceeded", 503, service="ec2", probability=0.1),
        FaultRule("InternalFailure", 500, probability=0.03),
        FaultRule("", latency_seconds=0.05, probability=0.3),
        FaultRule(kind="drop", service="elasticache", probability=0.02),
        FaultRule("AccessDenied", 403, region=regions[-1], service="dynamodb", probability=0.5),
    ]


class Scraper:
    def __init__(self, base: str) -> None:
        self._base = base
        self._auth = base64.b64encode(f"soak:{PASSWORD}".encode()).decode()
        self._stop = threading.Event()
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name="soak-scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SCRAPE_SECONDS):
            for path in ("/metrics", "/"):
                request = urllib.request.Request(self._base + path)
                request.add_header("Authorization", f"Basic {self._auth}")
                began = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        response.read()
                except OSError as error:
                    self.failures.append(f"{path}: {error}")
                    continue
                self.seconds.append(time.perf_counter() - began)


def polls_stored(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM unit_runs").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    finally:
        conn.close()


def sample(started: float, database: Path) -> Sample:
    return Sample(
        time.monotonic() - started,
        rss_bytes(),
        threading.active_count(),
        open_fds(),
        polls_stored(database),
    )


def run(minutes: float, warmup_minutes: float, speed: float, workdir: Path) -> bool:
    spec = FleetSpec(now=datetime.now(UTC))
    plan = plan_fleet(spec)
    database = workdir / "soak-history.db"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4))
    web = WebConfig(basic_auth_users={"soak": hashed})
    with Sandbox() as sandbox:
        sandbox.reset()
        seed_fleet(sandbox, plan)
        sandbox.faults.replace(faults(spec.regions))
        config = demo.sandbox_config(sandbox.endpoint_url, spec, interval=60)
        writer = HistoryWriter(database)
        pool = ThreadPoolExecutor(config.poller.max_workers, thread_name_prefix="drwatch-unit")
        exporter = demo.sandbox_exporter(
            config, clock=FastClock(speed), executor=pool, on_result=writer.submit
        )
        server = exporter.serve("127.0.0.1", 0, web)
        scraper = Scraper(f"http://127.0.0.1:{server.port}")
        scraper.start()
        started = time.monotonic()
        samples = []
        end = started + minutes * 60
        print(f"soak: {minutes} min ({speed:g}x clock), fleet {len(plan.databases)} databases")
        print(f"{'t (s)':>7} {'RSS (MB)':>9} {'threads':>8} {'fds':>5} {'polls':>7}")
        while time.monotonic() < end:
            time.sleep(min(SAMPLE_SECONDS, max(0.0, end - time.monotonic())))
            current = sample(started, database)
            samples.append(current)
            print(
                f"{current.at:7.0f} {current.rss_bytes / 1024**2:9.1f} {current.threads:8d} "
                f"{current.fds:5d} {current.polls_stored:7d}",
                flush=True,
            )
        scraper.stop()
        server.stop()
        exporter.close()
        writer.close()
        skipped = sum(s.skipped for s in exporter.poller.snapshot())
        failing = sum(1 for s in exporter.poller.snapshot() if not s.healthy)
        errors = exporter.aws.stats.errors()
    return report(
        samples,
        warmup_minutes * 60,
        scraper,
        database,
        config.poller.max_workers,
        skipped,
        failing,
        sum(errors.values()),
    )


def report(
    samples: list[Sample],
    warmup_seconds: float,
    scraper: Scraper,
    database: Path,
    max_workers: int,
    skipped: int,
    failing_units: int,
    aws_errors: int,
) -> bool:
    steady = [s for s in samples if s.at >= warmup_seconds]
    if len(steady) < 2:
        print("too short for a verdict: run longer than the warm-up")
        return False
    first, last = steady[0], steady[-1]
    growth = last.rss_bytes - first.rss_bytes
    peak = max(s.rss_bytes for s in steady)
    threads = [s.threads for s in steady]
    fds = [s.fds for s in steady]
    # Requests in flight add threads and sockets for a moment; a leak raises the floor.
    quarter = max(1, len(steady) // 4)
    thread_floor_rise = min(threads[-quarter:]) - min(threads[:quarter])
    fd_floor_rise = min(fds[-quarter:]) - min(fds[:quarter])
    conn = sqlite3.connect(database)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    with HistoryStore(database) as store:
        chain = verify_chain(store.db)
    scrapes = sorted(scraper.seconds)
    checks = {
        "RSS growth after warm-up": growth < RSS_GROWTH_LIMIT * first.rss_bytes
        and growth < RSS_GROWTH_LIMIT_BYTES,
        # The scheduler, HTTP server, writer, scraper and sandbox threads, plus the pool and
        # the HTTP/sandbox request threads alive at the moment of sampling.
        "threads bounded": max(threads) - min(threads) <= max_workers + 8
        and thread_floor_rise <= THREAD_SLACK,
        "fds stable": fd_floor_rise <= FD_SLACK,
        "every scrape answered": not scraper.failures,
        "integrity_check": integrity == "ok",
        "chain verifies": chain.ok,
    }
    print()
    print(
        f"RSS after warm-up {first.rss_bytes / 1024**2:.1f} MB, at the end "
        f"{last.rss_bytes / 1024**2:.1f} MB ({growth / 1024**2:+.1f} MB, "
        f"{growth / first.rss_bytes:+.1%}); peak {peak / 1024**2:.1f} MB"
    )
    print(
        f"threads {min(threads)}..{max(threads)} (floor rise {thread_floor_rise}); "
        f"fds {min(fds)}..{max(fds)} (floor rise {fd_floor_rise})"
    )
    print(
        f"polls stored {last.polls_stored} ({last.polls_stored - first.polls_stored} after "
        f"warm-up); skipped cycles {skipped}; units failing at the end {failing_units}; "
        f"AWS error responses {aws_errors}"
    )
    print(
        f"scrapes {len(scrapes)}: median {statistics.median(scrapes) * 1000:.1f} ms, "
        f"p99 {scrapes[int(len(scrapes) * 0.99) - 1] * 1000:.1f} ms, "
        f"failed {len(scraper.failures)}"
    )
    print(
        f"history: integrity {integrity}, chain {'ok' if chain.ok else chain.problem}, "
        f"{chain.rows} rows"
    )
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return all(checks.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--speed", type=float, default=10.0, help="clock acceleration")
    args = parser.parse_args()
    # Units fail all the time here, on purpose: their warnings would drown the figures.
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="drwatch-soak-") as workdir:
        ok = run(args.minutes, args.warmup_minutes, args.speed, Path(workdir))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
