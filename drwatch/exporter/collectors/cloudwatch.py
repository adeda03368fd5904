"""CloudWatch reads shared by the collectors whose figures live in metrics (S3, Kafka).

GetMetricData is billed per metric read, so each collector reads a batch of up to 500
queries per call and keeps every value for a TTL: polls more frequent than the TTL reuse it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

METRIC_QUERIES_PER_CALL = 500  # GetMetricData's limit
# Both services publish every minute; the newest 5-minute figure over the last 15 minutes
# survives a late datapoint without reporting hour-old values as current.
METRIC_PERIOD_SECONDS = 300
METRIC_WINDOW = timedelta(minutes=15)
DEFAULT_METRICS_TTL = timedelta(seconds=60)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class CachedValue:
    fetched: datetime
    value: float | None


class MetricCache(Generic[K]):
    """Newest values per unit, re-read only when older than the TTL.

    Each unit's entry is replaced on every read, so series of deleted resources leave it.
    Units of several regions run in parallel threads and share one cache.
    """

    def __init__(self, ttl: timedelta = DEFAULT_METRICS_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._units: dict[tuple[str, str], dict[K, CachedValue]] = {}

    def values(
        self,
        unit: tuple[str, str],
        keys: Sequence[K],
        now: datetime,
        fetch: Callable[[list[K]], Mapping[K, float]],
    ) -> dict[K, float]:
        with self._lock:
            previous = self._units.get(unit, {})
        fresh = {
            key: previous[key]
            for key in keys
            if key in previous and now - previous[key].fetched < self.ttl
        }
        stale = [key for key in keys if key not in fresh]
        fetched = fetch(stale) if stale else {}
        fresh.update({key: CachedValue(now, fetched.get(key)) for key in stale})
        with self._lock:
            self._units[unit] = fresh
        return {key: cached.value for key, cached in fresh.items() if cached.value is not None}


def newest_metric_values(
    cloudwatch: Any, queries: Sequence[Mapping[str, Any]], start: datetime, end: datetime
) -> dict[str, float]:
    """Newest value of each query (by its Id) of one GetMetricData call, following pages.

    At most METRIC_QUERIES_PER_CALL queries.
    """
    params: dict[str, Any] = {
        "MetricDataQueries": list(queries),
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampDescending",
    }
    values: dict[str, float] = {}
    while True:
        answer = cloudwatch.get_metric_data(**params)
        for result in answer.get("MetricDataResults", ()):
            query_id = str(result["Id"])
            if result.get("Values") and query_id not in values:  # newest first
                values[query_id] = float(result["Values"][0])
        token = answer.get("NextToken")
        if not token:
            return values
        params["NextToken"] = token
