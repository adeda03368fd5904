"""Turns the config into unit schedules and runs one unit: collector x account x region.

An AWS failure is the unit's result, not an exception: it is recorded with its error code
(and counted in metrics) so that one broken account or region never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from drwatch.config import Config
from drwatch.core.model import Observations, UnitKey, UnitResult, UnitRun
from drwatch.exporter.aws import EXPIRED_CREDENTIAL_CODES, AwsAccess
from drwatch.exporter.collectors.base import (
    CollectContext,
    Collector,
    ObserveContext,
    UnitDeadlineError,
)
from drwatch.exporter.collectors.isolation import Collection, FeatureMemory
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


MAX_MESSAGE_CHARS = 200
HTTP_CODES = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 500: "InternalServerError"}


def classify_error(error: Exception) -> tuple[str, str]:
    """(error code, message) for an exception raised by a unit run.

    An error body botocore could not parse (an HTML 404 page from a proxy or an endpoint
    without the operation) leaves only the HTTP status as the code and the body as the
    message: it becomes `HttpNotFound`-style code and a short message, never the page.
    """
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "ClientError")
        message = str(details.get("Message") or "")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        unread = code == "ClientError" and status >= 400  # no AWS error in the body at all
        if code.isdigit() or unread or _looks_like_markup(message):
            number = int(code) if code.isdigit() else status
            code = f"Http{HTTP_CODES.get(number, number)}"
            message = f"HTTP {number} with a body that is not an AWS error"
        return code, short(message)
    if isinstance(error, ResponseParserError):  # its text carries the whole body: drop it
        return "UnparseableResponse", "the endpoint answered a body that is not an AWS response"
    if isinstance(error, (BotoCoreError, UnitDeadlineError)):
        return type(error).__name__, str(error)
    return "InternalError", short(f"{type(error).__name__}: {error}")


def _looks_like_markup(message: str) -> bool:
    head = message.lstrip()[:20].lower()
    return head.startswith(("<!doctype", "<html", "<?xml", "<"))


def short(message: str) -> str:
    """One line of at most MAX_MESSAGE_CHARS characters."""
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


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
        self._features = FeatureMemory(clock.monotonic)

    def __call__(self, schedule: UnitSchedule) -> UnitResult:
        key = schedule.key
        started = self._clock.now()
        began = self._clock.monotonic()
        collection = Collection((key.collector, key.account_id, key.region), self._features)
        context = self._context(key, started, began + schedule.timeout_seconds, collection)
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
            records_skipped=dict(collection.skipped) if not code else {},
            features=dict(collection.features) if not code else {},
        )
        return UnitResult(run=run, observations=observations)

    def _context(
        self, key: UnitKey, now: datetime, deadline: float, collection: Collection
    ) -> CollectContext:
        return CollectContext(
            observe=ObserveContext(
                account_id=key.account_id,
                region=key.region,
                now=now,
                tiers=self._config.tiers,
                collection=collection,
            ),
            client_for=lambda service: self._aws.client(key.account_id, key.region, service),
            regional_client_for=lambda service, region: self._aws.client(
                key.account_id, region, service
            ),
            deadline=deadline,
            monotonic=self._clock.monotonic,
            config=self._config,
        )
