"""`drwatch demo`: the exporter against a seeded sandbox, plus helpers tests and benches share."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import botocore.session

from drwatch.config import Config
from drwatch.exporter.aws import EventHandler
from drwatch.exporter.poller import Clock, ResultSink
from drwatch.exporter.service import Exporter, build_exporter
from drwatch.sandbox.backfill import BackfillSpec, demo_drill_rows, replay_results
from drwatch.sandbox.estate import SANDBOX_ROLE, freshness_targets, sandbox_config
from drwatch.sandbox.fleet import FleetSpec, plan_fleet
from drwatch.sandbox.replay import capture_estate
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox

BACKFILL_INTERVAL = timedelta(hours=6)
__all__ = ["SANDBOX_ROLE", "freshness_targets", "sandbox_config", "sandbox_session"]


def sandbox_session() -> botocore.session.Session:
    """A botocore session with dummy keys: the sandbox accepts any, real AWS none."""
    session = botocore.session.Session()
    session.set_credentials("sandbox-access-key", "sandbox-secret-key")
    return session


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
    sink), `backfill_days` of simulated past polls of the same estate go to it first (the
    collectors' records of the seeded sandbox, replayed through time: backfill.py), and
    then every live poll. `on_drills` gets the backfill's DR drills and restore tests (rows in
    `drwatch drill import` form).
    """
    spec = FleetSpec(seed=seed, rds_instances=instances, aurora_clusters=clusters, now=now)
    plan = plan_fleet(spec)
    # Drills first: they are written on their own connection, and the history writer
    # (fed by on_result) must not be mid-transaction meanwhile.
    if on_drills is not None and backfill_days > 0:
        on_drills(demo_drill_rows(plan, BackfillSpec(end=now, days=backfill_days)))
    with Sandbox() as sandbox:
        sandbox.reset()  # moto's state is per process: start from an empty estate
        seed_fleet(sandbox, plan)
        config = sandbox_config(sandbox.endpoint_url, spec, interval)
        if on_result is not None and backfill_days > 0:
            estate = capture_estate(config, now)
            backfill = BackfillSpec(end=now, days=backfill_days, interval=BACKFILL_INTERVAL)
            for past in replay_results(estate, plan, backfill):
                on_result(past)
        run(sandbox_exporter(config, on_result=on_result))
