"""`drwatch demo`: the exporter against a seeded sandbox, plus helpers tests and benches share."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import botocore.session

from drwatch.config import Config, parse_config
from drwatch.exporter.aws import EventHandler
from drwatch.exporter.poller import Clock, ResultSink
from drwatch.exporter.service import Exporter, build_exporter
from drwatch.sandbox.backfill import BackfillSpec, backfill_results, demo_drill_rows
from drwatch.sandbox.fleet import FleetSpec, plan_fleet
from drwatch.sandbox.s3_fleet import plan_s3_fleet
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox

SANDBOX_ROLE = "drwatch-read"


def sandbox_session() -> botocore.session.Session:
    """A botocore session with dummy keys: the sandbox accepts any, real AWS none."""
    session = botocore.session.Session()
    session.set_credentials("sandbox-access-key", "sandbox-secret-key")
    return session


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


def sandbox_exporter(
    config: Config,
    *,
    clock: Clock | None = None,
    extra_handlers: Sequence[tuple[str, EventHandler]] = (),
    **kwargs: Any,
) -> Exporter:
    return build_exporter(
        config,
        clock=clock,
        session_factory=sandbox_session,
        extra_handlers=extra_handlers,
        **kwargs,
    )


def run_demo(
    *,
    instances: int,
    clusters: int,
    seed: int,
    interval: int,
    now: datetime,
    run: Callable[[Exporter], None],
    on_result: ResultSink | None = None,
    backfill_days: int = 0,
    on_drills: Callable[[Sequence[Mapping[str, str]]], Any] | None = None,
) -> None:
    """Seeds a mixed fleet into a fresh sandbox and hands the exporter to `run`.

    The seeded times are fixed at `now`: the longer a demo runs, the older every recovery
    point gets, exactly as if backups had stopped at start-up. With `on_result` (the history
    sink), `backfill_days` of simulated past polls of the same fleet go to it first, and then
    every live poll. `on_drills` gets the backfill's DR drills and restore tests (rows in
    `drwatch drill import` form).
    """
    spec = FleetSpec(seed=seed, rds_instances=instances, aurora_clusters=clusters, now=now)
    plan = plan_fleet(spec)
    # Drills first: they are written on their own connection, and the history writer
    # (fed by on_result) must not be mid-transaction meanwhile.
    if on_drills is not None and backfill_days > 0:
        on_drills(demo_drill_rows(plan, BackfillSpec(end=now, days=backfill_days)))
    if on_result is not None and backfill_days > 0:
        for past in backfill_results(plan, BackfillSpec(end=now, days=backfill_days)):
            on_result(past)
    with Sandbox() as sandbox:
        sandbox.reset()  # moto's state is per process: start from an empty estate
        seed_fleet(sandbox, plan)
        config = sandbox_config(sandbox.endpoint_url, spec, interval)
        run(sandbox_exporter(config, on_result=on_result))
