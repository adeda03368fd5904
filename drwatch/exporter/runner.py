"""Turns the config into unit schedules and runs one unit: collector x account x region.

An AWS failure is the unit's result, not an exception: it is recorded with its error code
(and counted in metrics) so that one broken account or region never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from drwatch.config import Config
from drwatch.core.model import Observations, UnitKey, UnitResult, UnitRun
from drwatch.exporter.aws import EXPIRED_CREDENTIAL_CODES, AwsAccess
from drwatch.exporter.collectors.base import (
    CollectContext,
    Collector,
    ObserveContext,
    UnitDeadlineError,
)
from drwatch.exporter.poller import Clock, UnitSchedule

log = logging.getLogger(__name__)


def unit_schedules(config: Config, collectors: Sequence[type[Collector]]) -> list[UnitSchedule]:
    """One schedule per enabled collector, account and region."""
    schedules = []
    for collector in collectors:
        settings = config.collectors[collector.name]
        if not settings.enabled:
            continue
        for account in config.accounts:
            for region in config.regions:
                schedules.append(
                    UnitSchedule(
                        key=UnitKey(collector.name, account.id, region),
                        interval_seconds=settings.interval_seconds,
                        stale_after_seconds=settings.stale_after_seconds,
                        timeout_seconds=settings.timeout_seconds,
                    )
                )
    return schedules


def classify_error(error: Exception) -> tuple[str, str]:
    """(error code, message) for an exception raised by a unit run."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return str(details.get("Code", "ClientError")), str(details.get("Message", ""))
    if isinstance(error, (BotoCoreError, UnitDeadlineError)):
        return type(error).__name__, str(error)
    return "InternalError", f"{type(error).__name__}: {error}"


class UnitRunner:
    def __init__(
        self,
        config: Config,
        aws: AwsAccess,
        collectors: Sequence[type[Collector]],
        clock: Clock,
    ) -> None:
        self._config = config
        self._aws = aws
        self._collectors: Mapping[str, Collector] = {c.name: c() for c in collectors}
        self._clock = clock

    def __call__(self, schedule: UnitSchedule) -> UnitResult:
        key = schedule.key
        started = self._clock.now()
        began = self._clock.monotonic()
        context = self._context(key, started, began + schedule.timeout_seconds)
        observations = Observations()
        code = message = ""
        with self._aws.stats.attribute_to_unit() as calls:
            try:
                observations = self._collectors[key.collector].collect(context)
            except Exception as error:  # recorded as the unit's failure, see module doc
                code, message = classify_error(error)
                log.warning(
                    "unit %s failed: %s %s", key, code, message, exc_info=code == "InternalError"
                )
                if code in EXPIRED_CREDENTIAL_CODES:
                    self._aws.forget_credentials(key.account_id)
        run = UnitRun(
            unit=key,
            started=started,
            duration_seconds=self._clock.monotonic() - began,
            success=not code,
            error_code=code,
            error_message=message,
            api_calls=dict(calls),
        )
        return UnitResult(run=run, observations=observations)

    def _context(self, key: UnitKey, now: datetime, deadline: float) -> CollectContext:
        return CollectContext(
            observe=ObserveContext(
                account_id=key.account_id,
                region=key.region,
                now=now,
                tiers=self._config.tiers,
            ),
            client_for=lambda service: self._aws.client(key.account_id, key.region, service),
            regional_client_for=lambda service, region: self._aws.client(
                key.account_id, region, service
            ),
            deadline=deadline,
            monotonic=self._clock.monotonic,
            config=self._config,
        )
