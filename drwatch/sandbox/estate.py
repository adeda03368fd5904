"""The demo estate's configuration, and capturing it from a freshly seeded sandbox.

`sandbox_config` is the config `drwatch demo` polls the sandbox with; `capture_plan(plan)`
seeds a sandbox of its own with `plan` and returns what every collector fetches from it
(`replay.capture_estate`), for a backfill without a running demo.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from drwatch.config import Config, parse_config
from drwatch.sandbox.fleet import FleetPlan, FleetSpec
from drwatch.sandbox.replay import CapturedEstate, CapturedUnit, capture_estate
from drwatch.sandbox.s3_fleet import plan_s3_fleet
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox

SANDBOX_ROLE = "drwatch-read"


def freshness_targets(spec: FleetSpec) -> list[dict[str, str]]:
    """The backup-file prefixes the S3 part of the fleet seeds (fresh, stale and empty)."""
    plan = plan_s3_fleet(spec.now, spec.accounts, spec.regions)
    return [
        {
            "bucket": t.bucket,
            "prefix": t.prefix,
            "account": t.account_id,
            "region": t.region,
            "tier": t.tier,
            "expected_interval": "30m",
        }
        for t in plan.freshness_targets
    ]


def sandbox_config(endpoint_url: str, spec: FleetSpec, interval: int = 60, **extra: Any) -> Config:
    """A validated config that assumes a role in each of the fleet's accounts."""
    data: dict[str, Any] = {
        "accounts": [
            {"id": account, "role_arn": f"arn:aws:iam::{account}:role/{SANDBOX_ROLE}"}
            for account in spec.accounts
        ],
        "regions": list(spec.regions),
        "collectors": {
            "rds": {"enabled": True, "interval": interval},
            "backup": {"enabled": True, "interval": interval},
            "s3_replication": {"enabled": True, "interval": interval},
            "s3_freshness": {"enabled": True, "interval": interval},
            "kafka": {"enabled": True, "interval": interval},
        },
        "aws": {"endpoint_url": endpoint_url, "max_attempts": 2},
        "s3_freshness": {"targets": freshness_targets(spec)},
    }
    data.update(extra)
    return parse_config(data)


# Replaying calls no AWS: the captured estate's config only needs a well-formed endpoint.
CAPTURED_ENDPOINT = "http://127.0.0.1:1"


def capture_plan(plan: FleetPlan) -> CapturedEstate:
    """Seeds a fresh sandbox with `plan` and captures every collector's records of it.

    In a child process: moto's state is global to a process, so a sandbox of its own there
    can start from an empty estate without emptying one this process already serves (a test
    session's, a demo's).
    """
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
        units = child.submit(_capture_units, plan).result()
    return CapturedEstate(plan.spec.now, sandbox_config(CAPTURED_ENDPOINT, plan.spec), units)


def _capture_units(plan: FleetPlan) -> tuple[CapturedUnit, ...]:
    with Sandbox() as sandbox:
        sandbox.reset()
        seed_fleet(sandbox, plan)
        config = sandbox_config(sandbox.endpoint_url, plan.spec)
        return capture_estate(config, plan.spec.now).units
