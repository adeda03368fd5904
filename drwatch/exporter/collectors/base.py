"""What every collector gets and must provide.

A collector knows one AWS service and nothing else. It splits `fetch` (AWS calls through
paginators, into raw records) from `observe` (pure mapping of records into Observations), so
the mapping is testable without AWS and the AWS side is testable against the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from drwatch.config import Config, TierConfig
from drwatch.core.model import Observations
from drwatch.exporter.collectors.isolation import Collection

T = TypeVar("T")

# The largest page every List/Describe API in use accepts; fewer pages = fewer calls.
MAX_PAGE_SIZE = 100


class UnitDeadlineError(RuntimeError):
    """A unit ran past its configured timeout; checked between pages."""


@dataclass(frozen=True, slots=True)
class ObserveContext:
    """What the pure mapping needs besides the records."""

    account_id: str
    region: str
    now: datetime
    tiers: TierConfig
    # Skipped records and optional features of this run (see isolation.py); a throwaway
    # one when the mapping runs alone (tests).
    collection: Collection = field(default_factory=Collection)


@dataclass(frozen=True, slots=True)
class CollectContext:
    """Everything one unit run needs: where it runs, its clients, the clock and its deadline."""

    observe: ObserveContext
    client_for: Callable[[str], Any]
    deadline: float  # time.monotonic() value after which paging stops
    monotonic: Callable[[], float] = time.monotonic
    # (service, region) -> client of the unit's account in another region: some evidence
    # lives where the data goes (S3 replication metrics sit in the destination's region).
    regional_client_for: Callable[[str, str], Any] | None = None
    # Collectors driven by configured targets (s3_freshness) read them here.
    config: Config | None = None

    def client(self, service: str) -> Any:
        return self.client_for(service)

    def optional(self, feature: str, call: Callable[[], T], default: T) -> T:
        """An optional call: unavailable or failing, it yields `default`, not a failed unit."""
        return self.observe.collection.optional(feature, call, default)

    def client_in(self, service: str, region: str) -> Any:
        """A client of the unit's account in `region` (the unit's own client if it is)."""
        if region == self.observe.region:
            return self.client_for(service)
        if self.regional_client_for is None:
            raise RuntimeError(f"no client for {service} in {region}: unit is region-bound")
        return self.regional_client_for(service, region)

    def paginate(
        self,
        client: Any,
        operation: str,
        result_key: str,
        page_size: int = MAX_PAGE_SIZE,
        **params: Any,
    ) -> Iterator[Any]:
        """Every item of a paginated list call, at the maximum page size, within the deadline.

        `page_size` is for services whose largest page is not 100 (AWS Backup: 1000).
        """
        paginator = client.get_paginator(operation)
        config = {"PageSize": page_size}
        for page in paginator.paginate(PaginationConfig=config, **params):
            yield from page.get(result_key, ())
            if self.monotonic() > self.deadline:
                raise UnitDeadlineError(f"{operation} still paging at the unit deadline")


class Collector(Protocol):
    """One AWS service. `iam_actions` lists exactly the API actions `collect` may call."""

    name: ClassVar[str]
    iam_actions: ClassVar[tuple[str, ...]]

    def collect(self, ctx: CollectContext) -> Observations: ...


def tags_of(tag_list: Any) -> dict[str, str]:
    """AWS [{'Key': k, 'Value': v}] tag lists as a dict (missing values become '').

    A tag without its (optional in the model) Key names nothing and is left out: the
    resource is served with its other tags, never dropped for it.
    """
    return {str(t["Key"]): str(t.get("Value", "")) for t in tag_list or () if t.get("Key")}


def sorted_tags(tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(tags.items()))
