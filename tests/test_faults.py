"""The exporter under injected AWS faults: it keeps serving, marks only the affected units
unhealthy with the error code, recovers on the next poll, never overlaps a unit's polls and
keeps retries bounded under throttling.

Faults come from the sandbox's fault middleware over real HTTP (exporter/sandbox/faults.py):
error replies, delays, timeouts, dropped connections and expired credentials.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import pytest
from botocore.config import Config as BotocoreConfig
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from drwatch.core.model import UnitResult
from drwatch.exporter.collectors import COLLECTORS
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.poller import Poller, UnitSchedule
from drwatch.exporter.runner import UnitRunner, unit_schedules
from drwatch.exporter.server import HttpServer
from drwatch.exporter.service import Exporter
from drwatch.sandbox import demo
from drwatch.sandbox.faults import FaultRule, rule_from_dict
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW, sandbox_config, sandbox_exporter
from tests.helpers import FakeClock, ImmediateExecutor
from tests.test_metrics import samples, value

# Retries under 30% throttling: expected attempts per call with botocore's standard mode are
# sum(p**k, k < max_attempts) = (1 - p**5) / (1 - p) = 1.43 for p = 0.3 and 5 attempts; the
# bound leaves room for the seeded draws, and a collector that re-read pages would exceed it.
THROTTLE_RATE = 0.3
MAX_ATTEMPTS = 5
THROTTLE_FACTOR_BOUND = 1.6
ROUNDS = 5


def only(name: str) -> dict[str, Any]:
    """Only collector `name`, and no freshness targets (they may name an account left out)."""
    return {
        "collectors": {c.name: {"enabled": c.name == name, "interval": 60} for c in COLLECTORS},
        "s3_freshness": None,
    }


def rds_exporter(sandbox: Sandbox, fleet: FleetPlan, **extra: Any) -> Exporter:
    return sandbox_exporter(sandbox_config(sandbox, fleet, **only("rds"), **extra))


def health(text: str) -> dict[tuple[str, str], float]:
    return {
        (dict(k)["account_id"], dict(k)["region"]): v
        for k, v in samples(text, "drwatch_collector_success").items()
        if dict(k)["collector"] == "rds"
    }


def last_errors(exporter: Exporter) -> dict[tuple[str, str], str]:
    return {
        (s.schedule.key.account_id, s.schedule.key.region): s.last_run.error_code
        for s in exporter.poller.snapshot()
        if s.last_run is not None
    }


FAULTS = (
    (FaultRule("Throttling", 400), "Throttling"),
    (FaultRule("InternalFailure", 500), "InternalFailure"),
    (FaultRule("ServiceUnavailable", 503), "ServiceUnavailable"),
    (FaultRule("ExpiredToken", 403), "ExpiredToken"),
    (FaultRule(kind="timeout", latency_seconds=1.5), "ReadTimeoutError"),
    (FaultRule(kind="drop"), "ConnectionClosedError"),
)


def test_each_fault_marks_only_its_unit_unhealthy_and_the_next_poll_recovers(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    account, region = fleet.spec.accounts[1], fleet.spec.regions[0]
    # One attempt, 1 s read timeout: retries are another test's subject; this keeps it fast.
    settings = {"endpoint_url": sandbox.endpoint_url, "max_attempts": 1, "read_timeout": 1}
    # One account, both regions: the other region's unit is the bystander.
    exporter = rds_exporter(sandbox, fleet, aws=settings, accounts=accounts_config([account]))
    exporter.poller.run_round()
    served = set(samples(exporter.metrics.render().decode(), "drwatch_resource_info"))
    assert served
    for rule, code in FAULTS:
        sandbox.faults.add(
            dataclasses.replace(
                rule,
                service="rds",
                operation="DescribeDBInstances",
                account_id=account,
                region=region,
            )
        )
        exporter.poller.run_round()
        text = exporter.metrics.render().decode()
        units = health(text)
        assert units.pop((account, region)) == 0, code
        assert set(units.values()) == {1}, code
        errors = {unit: c for unit, c in last_errors(exporter).items() if c}
        assert errors == {(account, region): code}
        labels = {"collector": "rds", "account_id": account, "region": region, "error_code": code}
        assert value(text, "drwatch_collector_errors_total", **labels) == 1, code
        # The failed unit keeps serving its last good data (until stale_after).
        assert set(samples(text, "drwatch_resource_info")) == served, code

        sandbox.faults.clear()
        exporter.poller.run_round()
        assert set(health(exporter.metrics.render().decode()).values()) == {1}, code


def test_expired_keys_are_dropped_and_the_role_assumed_again(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    """AWS rejecting the keys a client holds (ExpiredToken) is cured on the next poll."""
    signed_with: list[str] = []

    def record_key(request: Any, **_: Any) -> None:
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        found = re.search(r"Credential=([A-Z0-9]+)/", authorization)
        if found:
            signed_with.append(found.group(1))

    config = sandbox_config(
        sandbox, fleet, **only("rds"), regions=[fleet.spec.regions[0]]
    )  # both accounts, one region
    exporter = demo.sandbox_exporter(
        config,
        clock=FakeClock(NOW),
        executor=ImmediateExecutor(),
        extra_handlers=[("before-send.rds.*", record_key)],
    )
    exporter.poller.run_round()
    keys_before = set(signed_with)
    # Expire every key in use now; new keys (after assuming the role again) are unaffected.
    for key in keys_before:
        sandbox.faults.add(FaultRule("ExpiredToken", 403, access_key=key))
    exporter.poller.run_round()
    assert set(last_errors(exporter).values()) == {"ExpiredToken"}
    signed_with.clear()
    exporter.poller.run_round()
    assert set(last_errors(exporter).values()) == {""}
    assert signed_with
    assert not set(signed_with) & keys_before
    assert set(health(exporter.metrics.render().decode()).values()) == {1}


def accounts_config(accounts: list[str]) -> list[dict[str, str]]:
    return [{"id": a, "role_arn": f"arn:aws:iam::{a}:role/{demo.SANDBOX_ROLE}"} for a in accounts]


def test_connection_refused_fails_every_unit_and_the_exporter_keeps_serving(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connect() is refused
    settings = {"endpoint_url": closed, "max_attempts": 1, "connect_timeout": 1}
    exporter = rds_exporter(sandbox, fleet, aws=settings)
    server = HttpServer(exporter.app, "127.0.0.1", 0)
    server.start()
    try:
        exporter.poller.run_round()
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
        with urllib.request.urlopen(f"{base}/-/healthy", timeout=10) as response:
            assert response.status == 200
    finally:
        server.stop()
        exporter.close()
    assert set(health(text).values()) == {0}
    # Credentials come first: assuming the role is what meets the refused port.
    assert set(last_errors(exporter).values()) == {"EndpointConnectionError"}


def test_sandbox_timeout_and_drop_reach_botocore_as_such(sandbox: Sandbox) -> None:
    config = BotocoreConfig(read_timeout=0.5, retries={"max_attempts": 1, "mode": "standard"})
    rds = sandbox.client("rds", "eu-west-1", config=config)
    sandbox.faults.add(
        FaultRule(kind="timeout", latency_seconds=1.0, operation="DescribeDBInstances")
    )
    with pytest.raises(ReadTimeoutError):
        rds.describe_db_instances()
    sandbox.faults.replace([FaultRule(kind="drop", operation="DescribeDBInstances")])
    with pytest.raises(ConnectionClosedError):
        rds.describe_db_instances()
    sandbox.faults.clear()
    assert rds.describe_db_instances()["DBInstances"] == []


@pytest.fixture
def stuck_region(sandbox: Sandbox, fleet: FleetPlan) -> Iterator[str]:
    region = fleet.spec.regions[1]
    sandbox.faults.add(FaultRule("", latency_seconds=0.3, service="rds", region=region))
    yield region
    sandbox.faults.clear()


def test_polls_never_overlap_and_scrapes_stay_fast_while_a_unit_is_slow(
    sandbox: Sandbox, fleet: FleetPlan, stuck_region: str
) -> None:
    """Real threads, a schedule that is due again long before the slow units finish."""
    config = sandbox_config(sandbox, fleet, **only("rds"))
    collectors = [c for c in COLLECTORS if c.name == "rds"]
    clock = FakeClock(NOW)
    reference = sandbox_exporter(config, clock=clock)  # its AwsAccess, metrics and stats
    in_flight: Counter[object] = Counter()
    most: Counter[object] = Counter()
    lock = threading.Lock()
    runner = UnitRunner(config, reference.aws, collectors, clock)

    def counting_runner(schedule: UnitSchedule) -> UnitResult:
        with lock:
            in_flight[schedule.key] += 1
            most[schedule.key] = max(most[schedule.key], in_flight[schedule.key])
        try:
            return runner(schedule)
        finally:
            with lock:
                in_flight[schedule.key] -= 1

    pool = ThreadPoolExecutor(8)
    poller = Poller(unit_schedules(config, collectors), counting_runner, pool, clock)
    view = MetricsView(poller.snapshot, reference.aws.stats, config.tiers)
    futures = []
    scrape_seconds = []
    for _ in range(ROUNDS):
        futures += poller.submit_due()
        clock.advance(61)  # every unit is due again at once
        wait(futures, timeout=0.15)
        began = time.perf_counter()
        view.render()  # a scrape while units are in flight: reads the cache, never AWS
        scrape_seconds.append(time.perf_counter() - began)
    wait(futures)
    pool.shutdown()
    statuses = {s.schedule.key: s for s in poller.snapshot()}
    assert set(most.values()) == {1}
    slow = [s for k, s in statuses.items() if k.region == stuck_region]
    assert all(s.skipped > 0 for s in slow)
    assert all(s.runs + s.skipped == ROUNDS for s in statuses.values())
    assert all(s.runs >= 1 for s in statuses.values())
    assert max(scrape_seconds) < 0.3  # the slow AWS calls take 0.3 s each, 1.5 s a unit


THROTTLED_SERVICES = ("rds", "ec2", "backup")


def calls_to(exporter: Exporter, services: tuple[str, ...]) -> int:
    return sum(
        n for (service, _), n in exporter.aws.stats.requests().items() if service in services
    )


def round_in_parallel(config: Any) -> Exporter:
    """One round with units in parallel, as `serve` runs them: retry back-offs overlap."""
    exporter = demo.sandbox_exporter(config, clock=FakeClock(NOW), executor=ThreadPoolExecutor(8))
    exporter.poller.run_round()
    exporter.close()
    return exporter


def test_retries_under_30_percent_throttling_stay_within_the_stated_factor(
    sandbox: Sandbox, fleet: FleetPlan, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = {"endpoint_url": sandbox.endpoint_url, "max_attempts": MAX_ATTEMPTS}
    collectors = ("rds", "ebs", "backup")
    enabled = {c.name: {"enabled": c.name in collectors, "interval": 60} for c in COLLECTORS}
    config = sandbox_config(sandbox, fleet, collectors=enabled, aws=aws)

    baseline = calls_to(round_in_parallel(config), THROTTLED_SERVICES)
    for service in THROTTLED_SERVICES:
        sandbox.faults.add(FaultRule("Throttling", 400, service=service, probability=THROTTLE_RATE))
    throttled = round_in_parallel(config)
    calls = calls_to(throttled, THROTTLED_SERVICES)
    throttles = sum(
        n for (_, _, code), n in throttled.aws.stats.errors().items() if "Throttl" in code
    )
    factor = calls / baseline
    with capsys.disabled():
        print(
            f"\n  throttling {THROTTLE_RATE:.0%}: {calls} calls vs {baseline} fault-free "
            f"(factor {factor:.2f}, bound {THROTTLE_FACTOR_BOUND}), {throttles} throttled"
        )
    assert throttles >= 0.15 * calls  # the faults did fire, at roughly their rate
    assert calls == baseline + throttles  # every extra call is a retry of a throttled one
    assert factor <= THROTTLE_FACTOR_BOUND
    assert all(s.healthy for s in throttled.poller.snapshot())


def test_fault_kinds_validate_and_travel_over_http() -> None:
    assert rule_from_dict({"kind": "drop", "service": "ec2"}) == FaultRule(
        kind="drop", service="ec2"
    )
    timeout = rule_from_dict({"kind": "timeout", "latency_seconds": 2, "access_key": "AKIA1"})
    assert (timeout.kind, timeout.access_key) == ("timeout", "AKIA1")
    with pytest.raises(ValueError, match="kind: must be one of error, timeout, drop"):
        FaultRule(kind="refuse")
    with pytest.raises(ValueError, match="error_code: required"):
        rule_from_dict({"kind": "error"})
    with pytest.raises(ValueError, match="access_key: wrong type"):
        rule_from_dict({"kind": "drop", "access_key": 7})
