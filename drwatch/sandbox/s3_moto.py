"""Where moto's S3 and CloudWatch differ from AWS in ways drwatch can see, and the fixes.

`install_s3_extensions()` patches moto's classes (our fake AWS); it runs from
`Sandbox.start` and is idempotent. The gaps:

- ListBuckets: moto omits `BucketRegion` (AWS returns it for every bucket since 2024) and
  ignores `ContinuationToken`: with `MaxBuckets` it truncates the list without a token, so
  a paginator would silently stop after the first page. The sandbox pages like AWS.
- GetBucketReplication: moto answers `DeleteMarkerReplication` Disabled and an empty
  prefix filter for every rule, whatever was put; the sandbox returns the rule's own.
- GetMetricData: moto compares every stored datapoint with every query and period (and
  sorts dimensions each time), which takes minutes for a few thousand replication series;
  the sandbox indexes datapoints by (namespace, name, dimensions) once per call. Same
  answers, including the newest-first order for `ScanBy=TimestampDescending`.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.models import CloudWatchBackend, Statistics
from moto.core.responses import ActionResult
from moto.s3.responses import S3Response

INSTALLED_MARKER = "_drwatch_s3_extensions_installed"
DEFAULT_MAX_BUCKETS = 10_000  # AWS's largest ListBuckets page

DimensionKey = tuple[tuple[Any, Any], ...]


def install_s3_extensions() -> None:
    """Patch moto's S3 and CloudWatch (idempotent)."""
    if getattr(S3Response, INSTALLED_MARKER, False):
        return
    S3Response.all_buckets = list_buckets_paged  # type: ignore[method-assign]
    original_replication = S3Response.get_bucket_replication
    patched = with_own_rule_fields(original_replication)
    S3Response.get_bucket_replication = patched  # type: ignore[method-assign,assignment]
    CloudWatchBackend.get_metric_data = indexed_get_metric_data  # type: ignore[method-assign]
    setattr(S3Response, INSTALLED_MARKER, True)


def list_buckets_paged(self: S3Response) -> Any:
    self.data["Action"] = "ListAllMyBuckets"
    self._authenticate_and_authorize_s3_action()
    prefix = self._get_param("prefix")
    region = self._get_param("bucket-region")
    max_buckets = int(self._get_param("max-buckets") or DEFAULT_MAX_BUCKETS)
    token = self._get_param("continuation-token")
    buckets = sorted(
        self.backend.list_buckets(prefix=prefix, bucket_region=region, max_buckets=None),
        key=lambda bucket: bucket.name,
    )
    if token:
        after = base64.urlsafe_b64decode(token.encode()).decode()
        buckets = [b for b in buckets if b.name > after]
    page, more = buckets[:max_buckets], len(buckets) > max_buckets
    result: dict[str, Any] = {
        "Owner": {"ID": "bcaf1ffd86f41161ca5fb16fd081034f", "DisplayName": "webfile"},
        "Buckets": [
            {
                "Name": bucket.name,
                "CreationDate": bucket.creation_date_ISO8601,
                "BucketRegion": bucket.region_name,
            }
            for bucket in page
        ],
    }
    if more:
        result["ContinuationToken"] = base64.urlsafe_b64encode(page[-1].name.encode()).decode()
    self.data["Action"] = "ListBuckets"
    return self.serialized(ActionResult(result))


def with_own_rule_fields(original: Callable[[S3Response], Any]) -> Callable[[S3Response], Any]:
    def get_bucket_replication(self: S3Response) -> Any:
        replication = self.backend.get_bucket_replication(self.bucket_name)
        if not replication:
            return original(self)
        for rule in replication["Rule"]:
            rule.setdefault("DeleteMarkerReplication", {"Status": "Disabled"})
        self.data["Action"] = "GetBucketReplication"
        rules = [
            {
                "ID": rule["ID"],
                "Priority": rule["Priority"],
                "Status": rule["Status"],
                "DeleteMarkerReplication": rule["DeleteMarkerReplication"],
                "Filter": rule.get("Filter") or {"Prefix": ""},
                "Destination": rule["Destination"],
            }
            for rule in replication["Rule"]
        ]
        return self.serialized(
            ActionResult(
                {"ReplicationConfiguration": {"Role": replication["Role"], "Rules": rules}}
            )
        )

    return get_bucket_replication


def indexed_get_metric_data(
    self: CloudWatchBackend,
    queries: list[dict[str, Any]],
    start_time: datetime,
    end_time: datetime,
    scan_by: str = "TimestampAscending",
) -> list[dict[str, Any]]:
    """MetricStat queries only (all drwatch sends), answered from an index of datapoints."""
    start_time = start_time.replace(microsecond=0)
    end_time = end_time.replace(microsecond=0)
    if start_time >= end_time:
        raise ValidationError("The parameter EndTime must be greater than StartTime.")
    index: dict[tuple[str, str, DimensionKey], list[Any]] = defaultdict(list)
    for datum in self.get_all_metrics():
        if start_time <= datum.timestamp < end_time:
            dims = tuple(sorted((d.name, d.value) for d in datum.dimensions))
            index[(datum.namespace, datum.name, dims)].append(datum)
    results = []
    for query in queries:
        stat = query["MetricStat"]
        metric = stat["Metric"]
        dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
        data = index.get((metric["Namespace"], metric["MetricName"], dims), [])
        values, stamps = period_values(data, stat, start_time, end_time)
        if scan_by == "TimestampDescending":
            values.reverse()
            stamps.reverse()
        if query.get("ReturnData", True):
            results.append(
                {
                    "id": query["Id"],
                    "label": query.get("Label") or f"{metric['MetricName']} {stat['Stat']}",
                    "values": values,
                    "timestamps": stamps,
                    "status_code": "Complete",
                }
            )
    return results


def period_values(
    data: list[Any], stat: dict[str, Any], start: datetime, end: datetime
) -> tuple[list[float], list[datetime]]:
    period = timedelta(seconds=int(stat["Period"]))
    buckets: dict[datetime, list[Any]] = defaultdict(list)
    for datum in data:
        buckets[start + period * ((datum.timestamp - start) // period)].append(datum)
    values: list[float] = []
    stamps: list[datetime] = []
    for begin in sorted(buckets):
        if begin > end:
            continue
        statistics = Statistics([stat["Stat"]], begin)
        statistics.metric_data = buckets[begin]
        values.append(float(statistics.get_statistics_for_type(stat["Stat"])))  # type: ignore[arg-type]
        stamps.append(statistics.timestamp)
    return values, stamps
