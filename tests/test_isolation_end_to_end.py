"""Issue 20's end-to-end promise: with every optional AWS operation unavailable, the real
`drwatch poll --once --json` still serves every resource the core calls return, and the
history written from such a poll puts them all in the report's population."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from drwatch.exporter.collectors import COLLECTORS
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from tests.test_cli import SANDBOX_ENV
from tests.test_isolation import OPTIONAL_OPERATIONS, OPTIONAL_RESOURCE_TYPES
from tests.test_one_truth import poll_and_evaluate, subjects

Ref = tuple[str, ...]
# s3_freshness needs configured prefixes and calls no optional operation.
POLLED = [c.name for c in COLLECTORS if c.name != "s3_freshness"]


def make_unavailable(sandbox: Sandbox) -> None:
    for service, operation, _, _ in OPTIONAL_OPERATIONS:
        sandbox.faults.add(FaultRule("UnknownOperation", 400, service=service, operation=operation))


def poll_once(tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan) -> dict[str, Any]:
    config = tmp_path / "drwatch.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {"id": a, "role_arn": f"arn:aws:iam::{a}:role/drwatch-read"}
                    for a in fleet.spec.accounts
                ],
                "regions": list(fleet.spec.regions),
                "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 1},
                "collectors": {name: {"enabled": True} for name in POLLED},
            }
        )
    )
    polled = subprocess.run(
        [sys.executable, "-m", "drwatch", "poll", "--once", "--json", "--config", str(config)],
        env={**SANDBOX_ENV, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert polled.returncode == 0, polled.stderr
    document: dict[str, Any] = json.loads(polled.stdout)
    return document


def served(document: dict[str, Any]) -> set[Ref]:
    return {
        tuple(
            r["ref"][f] for f in ("account_id", "region", "service", "resource_type", "resource_id")
        )
        for unit in document["units"]
        for r in (unit["observations"] or {}).get("resources", ())
    }


@pytest.fixture
def clean_faults(sandbox: Sandbox) -> Any:
    sandbox.faults.clear()
    yield sandbox
    sandbox.faults.clear()


def test_poll_once_json_serves_every_core_resource_with_every_optional_call_unavailable(
    tmp_path: Path, clean_faults: Sandbox, fleet: FleetPlan
) -> None:
    baseline = served(poll_once(tmp_path, clean_faults, fleet))
    make_unavailable(clean_faults)
    document = poll_once(tmp_path, clean_faults, fleet)
    assert all(unit["run"]["success"] for unit in document["units"])
    assert {u["run"]["unit"]["collector"] for u in document["units"]} == set(POLLED)
    core = {r for r in baseline if r[3] not in OPTIONAL_RESOURCE_TYPES}
    assert len(core) > 100  # the whole fleet, not an empty round
    assert core <= served(document)


def test_the_report_of_such_a_poll_evaluates_every_core_resource(
    tmp_path: Path, clean_faults: Sandbox, fleet: FleetPlan
) -> None:
    full, _ = poll_and_evaluate(clean_faults, fleet, tmp_path / "full.db")
    make_unavailable(clean_faults)
    degraded, results = poll_and_evaluate(clean_faults, fleet, tmp_path / "degraded.db")
    assert all(r.run.success for r in results)
    assert any(state == "unavailable" for r in results for state in r.run.features.values())
    expected = {r for r in subjects(full, "DRW-01") if r[3] not in OPTIONAL_RESOURCE_TYPES}
    assert len(expected) > 100
    assert expected <= set(subjects(degraded, "DRW-01"))
