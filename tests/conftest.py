"""Shared fixtures: one moto sandbox per test session, seeded fleets, exporter builders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from drwatch.config import Config
from drwatch.exporter.service import Exporter
from drwatch.sandbox import demo
from drwatch.sandbox.fleet import FleetPlan, FleetSpec, plan_fleet
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.validation import validate_response
from tests.helpers import FakeClock, ImmediateExecutor

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/* from the current output instead of comparing",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture(scope="module")
def fleet(sandbox: Sandbox) -> FleetPlan:
    """The default mixed fleet, seeded fresh for each test module."""
    sandbox.reset()
    plan = plan_fleet(FleetSpec(now=NOW))
    seed_fleet(sandbox, plan)
    return plan


@pytest.fixture(autouse=True)
def no_leftover_faults(sandbox: Sandbox) -> Iterator[None]:
    yield
    sandbox.faults.clear()


def sandbox_config(sandbox: Sandbox, plan: FleetPlan, **extra: Any) -> Config:
    return demo.sandbox_config(sandbox.endpoint_url, plan.spec, **extra)


class OperationRecorder:
    """Records every AWS operation the exporter calls (botocore before-call event)."""

    def __init__(self) -> None:
        self.operations: set[tuple[str, str]] = set()

    def __call__(self, model: Any, **_: Any) -> None:
        self.operations.add((model.service_model.service_id.hyphenize(), model.name))


def sandbox_exporter(
    config: Config, recorder: OperationRecorder | None = None, clock: FakeClock | None = None
) -> Exporter:
    """An exporter on a fake clock and a synchronous pool; every response is shape-checked."""
    handlers: list[tuple[str, Any]] = [("after-call.*.*", validate_response)]
    if recorder is not None:
        handlers.append(("before-call.*.*", recorder))
    return demo.sandbox_exporter(
        config, clock=clock or FakeClock(NOW), executor=ImmediateExecutor(), extra_handlers=handlers
    )
