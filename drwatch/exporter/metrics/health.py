"""drwatch's own health, rendered on every scrape: build, polls, AWS API calls and scope.

Scope is what this exporter watches after config reloads, account discovery and sharding.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PrometheusCollector

from drwatch import __version__
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.collection import collection_families
from drwatch.exporter.metrics.common import UNIT_LABELS
from drwatch.exporter.poller import UnitStatus

# Set at image build: docker build --build-arg DRWATCH_REVISION=$(git rev-parse --short HEAD).
REVISION_ENV = "DRWATCH_REVISION"
REVISION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository root when run from a clone


@functools.cache
def build_revision() -> str:
    """The source revision drwatch was built from: DRWATCH_REVISION, else the git commit of
    the checkout it runs from, else "unknown". Read once per process.

    git is asked only when the package sits in a checkout's own tree (`<root>/.git` next to
    `<root>/drwatch`): an installed wheel inside some other repository is not that commit.
    """
    value = os.environ.get(REVISION_ENV, "").strip()
    if value:
        return value if REVISION.fullmatch(value) else "unknown"
    git = shutil.which("git")
    if git is None or not (CHECKOUT / ".git").exists() or not (CHECKOUT / "drwatch").is_dir():
        return "unknown"
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "-C", str(CHECKOUT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    revision = result.stdout.strip()
    return revision if result.returncode == 0 and REVISION.fullmatch(revision) else "unknown"


class HealthMetrics(PrometheusCollector):
    """drwatch's own health: build info, every unit's polls and the AWS API counters."""

    def __init__(self, snapshot: Callable[[], Sequence[UnitStatus]], stats: ApiStats) -> None:
        self._snapshot = snapshot
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        yield from self._build_info()
        statuses = self._snapshot()
        yield from self._units(statuses)
        yield from collection_families(statuses)
        yield from self._api()

    def _build_info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "drwatch_build_info",
            "drwatch version and Python runtime; always 1.",
            labels=("version", "revision", "python_version"),
        )
        info.add_metric([__version__, build_revision(), platform.python_version()], 1)
        yield info

    def _units(self, statuses: Sequence[UnitStatus]) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "drwatch_collector_success",
            "1 if the last poll of the unit succeeded.",
            labels=UNIT_LABELS,
        )
        duration = GaugeMetricFamily(
            "drwatch_collector_duration_seconds",
            "Wall time of the last poll of the unit.",
            labels=UNIT_LABELS,
        )
        last_success = GaugeMetricFamily(
            "drwatch_collector_last_success_timestamp_seconds",
            "Start time of the last successful poll of the unit.",
            labels=UNIT_LABELS,
        )
        interval = GaugeMetricFamily(
            "drwatch_collector_interval_seconds",
            "Configured poll interval of the unit.",
            labels=UNIT_LABELS,
        )
        serving = GaugeMetricFamily(
            "drwatch_collector_data_present",
            "1 if the unit's last good data is still served (it is dropped after stale_after).",
            labels=UNIT_LABELS,
        )
        runs = CounterMetricFamily(
            "drwatch_collector_runs", "Completed polls of the unit.", labels=UNIT_LABELS
        )
        skipped = CounterMetricFamily(
            "drwatch_collector_skipped_runs",
            "Polls skipped because the previous poll of the unit was still running.",
            labels=UNIT_LABELS,
        )
        errors = CounterMetricFamily(
            "drwatch_collector_errors",
            "Failed polls of the unit by error code.",
            labels=(*UNIT_LABELS, "error_code"),
        )
        for status in statuses:
            key = status.schedule.key
            labels = [key.collector, key.account_id, key.region]
            interval.add_metric(labels, status.schedule.interval_seconds)
            serving.add_metric(labels, float(status.observations is not None))
            runs.add_metric(labels, status.runs)
            skipped.add_metric(labels, status.skipped)
            for code, count in sorted(status.errors_by_code.items()):
                errors.add_metric([*labels, code], count)
            if status.last_run is not None:
                success.add_metric(labels, float(status.last_run.success))
                duration.add_metric(labels, status.last_run.duration_seconds)
            if status.last_success is not None:
                last_success.add_metric(labels, status.last_success.timestamp())
        yield from (success, duration, last_success, interval, serving, runs, skipped, errors)

    def _api(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "drwatch_aws_api_requests",
            "AWS API HTTP attempts (retries included) by service and operation.",
            labels=("service", "operation"),
        )
        errors = CounterMetricFamily(
            "drwatch_aws_api_errors",
            "AWS API attempts that failed, by service, operation and error code.",
            labels=("service", "operation", "error_code"),
        )
        for (service, operation), count in sorted(self._stats.requests().items()):
            requests.add_metric([service, operation], count)
        for (service, operation, code), count in sorted(self._stats.errors().items()):
            errors.add_metric([service, operation, code], count)
        yield requests
        yield errors


@dataclass(frozen=True, slots=True)
class ScopeStatus:
    """Config reloads, account discovery and sharding, as drwatch's self-metrics show them."""

    shard: str = "0/1"
    watched_accounts: int = 0
    reload_successful: bool = True
    last_reload_success: datetime | None = None
    discovery_enabled: bool = False
    discovery_successful: bool = False
    last_discovery_success: datetime | None = None
    discovered_accounts: int = 0


class ScopeMetrics(PrometheusCollector):
    """Reload state (named as Prometheus names its own), discovery and shard size."""

    def __init__(self, status: Callable[[], ScopeStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        reloaded = GaugeMetricFamily(
            "drwatch_config_last_reload_successful",
            "1 if the last config reload (SIGHUP or POST /-/reload) succeeded; "
            "after a failed one the previous config stays in force.",
        )
        reloaded.add_metric([], float(status.reload_successful))
        yield reloaded
        if status.last_reload_success is not None:
            yield GaugeMetricFamily(
                "drwatch_config_last_reload_success_timestamp_seconds",
                "Time the config was last loaded successfully (start-up or reload).",
                value=status.last_reload_success.timestamp(),
            )
        watched = GaugeMetricFamily(
            "drwatch_watched_accounts",
            "Accounts this exporter polls: its shard's share of the configured and "
            "discovered accounts.",
            labels=("shard",),
        )
        watched.add_metric([status.shard], status.watched_accounts)
        yield watched
        if status.discovery_enabled:
            yield from discovery_families(status)


def discovery_families(status: ScopeStatus) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "drwatch_discovery_last_refresh_successful",
        "1 if the last AWS Organizations account discovery succeeded; after a failure the "
        "accounts found before stay watched.",
        value=float(status.discovery_successful),
    )
    yield GaugeMetricFamily(
        "drwatch_discovery_accounts",
        "ACTIVE accounts the last successful discovery found (OU filters applied, all shards).",
        value=status.discovered_accounts,
    )
    if status.last_discovery_success is not None:
        yield GaugeMetricFamily(
            "drwatch_discovery_last_success_timestamp_seconds",
            "Time of the last successful AWS Organizations account discovery.",
            value=status.last_discovery_success.timestamp(),
        )


def runtime_collectors() -> tuple[PrometheusCollector, ...]:
    """The process, platform and garbage-collector families every Python exporter serves
    (`process_resident_memory_bytes`, `python_info`, ...), for `serve` and `demo`; not in the
    golden files, whose values they would make vary."""
    return (
        ProcessCollector(registry=None),
        PlatformCollector(registry=None),
        # GCCollector always registers itself somewhere: a throwaway registry, not the global.
        GCCollector(registry=CollectorRegistry(auto_describe=False)),
    )
