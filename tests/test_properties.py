"""Property tests (hypothesis): bad input never crashes the config loader or a collector.

- The config loader: any YAML-like data either parses or raises `ConfigError` naming a field;
  never another exception. Valid configs with one field replaced by junk name a field too.
- Every collector's `observe()`: responses generated from botocore's own output shapes (and
  checked with botocore's validator, so AWS could have sent them) with optional members
  missing, empty lists, epoch and far-future timestamps, unicode and very long strings. The
  mapping must return Observations that serialise to JSON (history, `poll --json`) and render
  as parseable Prometheus text.

Example counts are modest (PROFILE) so the whole module stays within about ten seconds.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.model import Shape
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from drwatch.config import ConfigError, FreshnessTarget, TierConfig, load_config, parse_config
from drwatch.core.model import Observations, UnitKey, UnitRun, to_jsonable
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.collectors import (
    backup,
    dynamodb,
    ebs,
    elasticache,
    kafka,
    rds,
    s3_replication,
)
from drwatch.exporter.collectors.base import ObserveContext
from drwatch.exporter.collectors.s3_freshness import PrefixSummary
from drwatch.exporter.collectors.s3_freshness import observe as observe_freshness
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.poller import UnitSchedule, UnitStatus

# CI: few examples, derandomized (reproducible). Explore locally with, e.g.,
# DRWATCH_PROPERTY_EXAMPLES=300 pytest tests/test_properties.py (random draws then).
EXAMPLES = int(os.environ.get("DRWATCH_PROPERTY_EXAMPLES", "12"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 12,
    database=None,
)
ACCOUNT = "111111111111"
REGION = "eu-west-1"
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_DEPTH = 3

# --- botocore-shaped responses -------------------------------------------------------------

timestamps = st.one_of(
    st.sampled_from([EPOCH, FAR_FUTURE, NOW, NOW - timedelta(days=400)]),
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
hostile_text = st.one_of(
    st.text(max_size=40),
    # Very long, cheaply: a drawn snippet repeated (a 3,000-character draw would use up
    # hypothesis' data budget and leave the rest of the example empty).
    st.builds(
        lambda snippet, times: snippet * times,
        st.text(min_size=1, max_size=4),
        st.integers(100, 1500),
    ),
    st.sampled_from(['<script>alert("x")</script>', '"}\n# HELP', "\\", "ünïcødé ✓ 日本", ""]),
)
identifiers = st.one_of(
    st.sampled_from(["db-1", "db-2", "vol-1", "cache-1", "vault-1", "bucket-1"]),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20),
)
regions = st.sampled_from([REGION, "us-east-1", "ap-southeast-2"])
accounts = st.sampled_from([ACCOUNT, "222222222222"])
SERVICES = ("rds", "ec2", "elasticache", "dynamodb", "backup", "s3", "kafka")


@st.composite
def arns(draw: st.DrawFn) -> str:
    """ARNs as AWS forms them: a string member named *Arn is never free text from AWS."""
    service = draw(st.sampled_from(SERVICES))
    resource = draw(st.sampled_from(["db", "cluster", "volume", "table", "replicationgroup"]))
    sep = draw(st.sampled_from([":", "/"]))
    region = "" if service == "s3" else draw(regions)
    account = "" if service == "s3" else draw(accounts)
    return f"arn:aws:{service}:{region}:{account}:{resource}{sep}{draw(identifiers)}"


def string_for(name: str, shape: Shape) -> st.SearchStrategy[Any]:
    if shape.enum:
        # AWS adds enum values over time: a value this botocore does not know must map too.
        return st.sampled_from(shape.enum) | st.sampled_from(["FUTURE_VALUE", "unknown"])
    lowered = name.lower()
    if lowered.endswith("arn") or lowered.endswith("arns"):
        return arns()
    if lowered.endswith("region"):
        return regions
    if lowered.endswith(("accountid", "ownerid")):
        return accounts
    if lowered.endswith(("identifier", "id", "name")):
        return identifiers
    if lowered.endswith(("time", "date")):
        # Some APIs (ElastiCache NodeSnapshot) carry times as ISO strings.
        return timestamps.map(lambda moment: moment.isoformat())
    return hostile_text


def bounded_text(strategy: st.SearchStrategy[Any], shape: Shape) -> st.SearchStrategy[Any]:
    low = shape.metadata.get("min", 0)
    high = shape.metadata.get("max")
    return strategy.filter(
        lambda value: (
            not isinstance(value, str)
            or (len(value) >= low and (high is None or len(value) <= high))
        )
    )


def numbers(shape: Shape, integral: bool) -> st.SearchStrategy[Any]:
    low = shape.metadata.get("min", 0)
    high = shape.metadata.get("max", 2**53)
    if integral:
        return st.one_of(st.sampled_from([low, high]), st.integers(low, high))
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def shaped(shape: Shape, name: str = "", depth: int = 0) -> st.SearchStrategy[Any]:
    """Any value of `shape`: required members always, optional ones sometimes.

    Optional means what the botocore model says, identities (ARNs, ids, names) included:
    a record without one must be skipped and counted, never crash or fail the unit.
    """
    kind = shape.type_name
    if kind == "structure":
        required = set(shape.required_members)
        members = shape.members
        deep = depth >= MAX_DEPTH
        return st.fixed_dictionaries(
            {m: shaped(members[m], m, depth + 1) for m in members if m in required},
            optional={
                m: shaped(members[m], m, depth + 1)
                for m in members
                if m not in required and not deep
            },
        )
    if kind == "list":
        size = 0 if depth >= MAX_DEPTH else 3
        return st.lists(shaped(shape.member, name, depth + 1), max_size=size)
    if kind == "map":
        return st.dictionaries(
            shaped(shape.key, "Key", depth + 1), shaped(shape.value, "Value", depth + 1), max_size=2
        )
    if kind == "string":
        return bounded_text(string_for(name, shape), shape)
    if kind in ("integer", "long"):
        return numbers(shape, integral=True)
    if kind in ("double", "float"):
        return numbers(shape, integral=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return timestamps
    if kind == "blob":
        return st.binary(max_size=8)
    raise AssertionError(f"unhandled shape type {kind}")


@cache
def output_shape(service: str, operation: str) -> Shape:
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).output_shape
    assert shape is not None
    return shape


def response(service: str, operation: str) -> st.SearchStrategy[dict[str, Any]]:
    """A whole response AWS could send, per botocore's validator."""
    shape = output_shape(service, operation)

    def valid(body: dict[str, Any]) -> bool:
        return not ParamValidator().validate(body, shape).has_errors()

    return shaped(shape).filter(valid)


def items(service: str, operation: str, key: str) -> st.SearchStrategy[tuple[Any, ...]]:
    """The items of one page's result key (empty lists included)."""
    return response(service, operation).map(lambda body: tuple(body.get(key, ())))


# --- what every mapping must give ----------------------------------------------------------


def context() -> ObserveContext:
    return ObserveContext(ACCOUNT, REGION, NOW, TierConfig())


def assert_usable(observations: Observations, collector: str) -> None:
    assert isinstance(observations, Observations)
    json.dumps(to_jsonable(observations))  # the history and `poll --json` serialise it
    key = UnitKey(collector, ACCOUNT, REGION)
    status = UnitStatus(
        schedule=UnitSchedule(key, 300, 900, 240),
        last_run=UnitRun(key, NOW, 1.0, True),
        last_success=NOW,
        observations=observations,
        runs=1,
        skipped=0,
        errors_by_code={},
    )
    text = MetricsView(lambda: (status,), ApiStats(), TierConfig()).render().decode()
    families = {family.name for family in text_string_to_metric_families(text)}
    assert "drwatch_collector_success" in families


# --- collectors ----------------------------------------------------------------------------

rds_records = st.builds(
    rds.RdsRecords,
    instances=items("rds", "DescribeDBInstances", "DBInstances"),
    clusters=items("rds", "DescribeDBClusters", "DBClusters"),
    snapshots=items("rds", "DescribeDBSnapshots", "DBSnapshots"),
    cluster_snapshots=items("rds", "DescribeDBClusterSnapshots", "DBClusterSnapshots"),
    automated_backups=items(
        "rds", "DescribeDBInstanceAutomatedBackups", "DBInstanceAutomatedBackups"
    ),
)
ebs_records = st.builds(
    ebs.EbsRecords,
    volumes=items("ec2", "DescribeVolumes", "Volumes"),
    snapshots=items("ec2", "DescribeSnapshots", "Snapshots"),
)
tags = st.dictionaries(hostile_text, hostile_text, max_size=3)
table_records = st.builds(
    dynamodb.TableRecord,
    name=identifiers,
    arn=arns(),
    tags=tags,
    continuous_backups=response("dynamodb", "DescribeContinuousBackups").map(
        lambda body: body.get("ContinuousBackupsDescription", {})
    ),
)
dynamodb_records = st.builds(
    dynamodb.DynamoDbRecords,
    tables=st.lists(table_records, max_size=3).map(tuple),
    backups=items("dynamodb", "ListBackups", "BackupSummaries"),
)
elasticache_records = st.builds(
    elasticache.ElastiCacheRecords,
    replication_groups=items("elasticache", "DescribeReplicationGroups", "ReplicationGroups"),
    cache_clusters=items("elasticache", "DescribeCacheClusters", "CacheClusters"),
    serverless_caches=items("elasticache", "DescribeServerlessCaches", "ServerlessCaches"),
    snapshots=items("elasticache", "DescribeSnapshots", "Snapshots"),
    serverless_snapshots=items(
        "elasticache", "DescribeServerlessCacheSnapshots", "ServerlessCacheSnapshots"
    ),
    global_groups=items(
        "elasticache", "DescribeGlobalReplicationGroups", "GlobalReplicationGroups"
    ),
    tags=st.dictionaries(arns(), tags, max_size=2),
)


def jobs_by_kind() -> st.SearchStrategy[dict[str, tuple[Any, ...]]]:
    return st.fixed_dictionaries(
        {
            "backup": items("backup", "ListBackupJobs", "BackupJobs"),
            "copy": items("backup", "ListCopyJobs", "CopyJobs"),
            "restore": items("backup", "ListRestoreJobs", "RestoreJobs"),
        }
    )


backup_records = st.builds(
    backup.BackupRecords,
    vaults=items("backup", "ListBackupVaults", "BackupVaultList"),
    recovery_points=items("backup", "ListRecoveryPointsByBackupVault", "RecoveryPoints"),
    protected_resources=items("backup", "ListProtectedResources", "Results"),
    job_summaries=items("backup", "ListBackupJobSummaries", "BackupJobSummaries"),
    plans=st.lists(response("backup", "GetBackupPlan"), max_size=2).map(tuple),
    selections=st.lists(response("backup", "GetBackupSelection"), max_size=2).map(tuple),
    restore_testing_plans=items("backup", "ListRestoreTestingPlans", "RestoreTestingPlans"),
    window_jobs=jobs_by_kind(),
    new_jobs=jobs_by_kind(),
    latest_jobs=jobs_by_kind(),
)
bucket_records = st.builds(
    s3_replication.BucketRecord,
    name=identifiers,
    replication=st.one_of(
        st.none(),
        response("s3", "GetBucketReplication").map(
            lambda body: body.get("ReplicationConfiguration", {"Role": "", "Rules": []})
        ),
    ),
    versioning=response("s3", "GetBucketVersioning"),
    object_lock=st.one_of(
        st.none(),
        response("s3", "GetObjectLockConfiguration").map(
            lambda body: body.get("ObjectLockConfiguration", {})
        ),
    ),
    tags=items("s3", "GetBucketTagging", "TagSet"),
)
s3_records = st.builds(
    s3_replication.S3Records,
    buckets=st.lists(bucket_records, max_size=3).map(tuple),
    bucket_regions=st.dictionaries(identifiers, regions, max_size=3),
)
msk_records = st.builds(
    kafka.MskRecords,
    replicators=st.lists(response("kafka", "DescribeReplicator"), max_size=2).map(tuple),
    topics=st.dictionaries(identifiers, st.lists(hostile_text, max_size=2).map(tuple), max_size=2),
)
freshness_summaries = st.lists(
    st.builds(
        PrefixSummary,
        target=st.builds(
            FreshnessTarget,
            bucket=identifiers,
            prefix=hostile_text,
            account_id=st.just(ACCOUNT),
            region=st.just(REGION),
            tier=st.just("standard"),
            expected_interval_seconds=st.floats(60, 10**7),
        ),
        objects=st.integers(0, 10**9),
        newest=st.none() | timestamps,
        newest_bytes=st.integers(0, 5 * 10**12),
        oldest=st.none() | timestamps,
        total_bytes=st.integers(0, 10**15),
    ),
    max_size=3,
)

MAPPINGS: Mapping[str, tuple[st.SearchStrategy[Any], Callable[[Any], Observations]]] = {
    "rds": (rds_records, lambda r: rds.observe(r, context())),
    "ebs": (ebs_records, lambda r: ebs.observe(r, context())),
    "dynamodb": (dynamodb_records, lambda r: dynamodb.observe(r, context())),
    "elasticache": (elasticache_records, lambda r: elasticache.observe(r, context())),
    "backup": (backup_records, lambda r: backup.observe(r, context())),
    "s3_replication": (s3_records, lambda r: s3_replication.observe(r, context())),
    "s3_freshness": (freshness_summaries, lambda r: observe_freshness(r, context())),
    "kafka": (msk_records, lambda r: kafka.observe_msk(r, ACCOUNT, REGION)),
}


@pytest.mark.parametrize("collector", sorted(MAPPINGS))
def test_observe_maps_any_valid_response_without_crashing(collector: str) -> None:
    strategy, observe = MAPPINGS[collector]

    @PROFILE
    @given(strategy)
    def check(records: Any) -> None:
        assert_usable(observe(records), collector)

    check()


def test_every_collector_has_a_property_test() -> None:
    from drwatch.exporter.collectors import COLLECTORS

    assert {c.name for c in COLLECTORS} <= set(MAPPINGS)


# --- the config loader ---------------------------------------------------------------------

KNOWN_KEYS = (
    "accounts", "regions", "collectors", "tiers", "aws", "poller", "history", "listen_address",
    "s3_freshness", "id", "role_arn", "interval", "enabled", "targets", "rpo", "rto", "default",
    "path", "max_attempts", "endpoint_url", "bucket", "prefix", "rds", "backup", "premium",
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    hostile_text,
    st.sampled_from(["5m", "1h", "0", "-1s", "111111111111", "eu-west-1", "x:99999"]),
)
yamlish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(KNOWN_KEYS) | hostile_text, children, max_size=4),
    ),
    max_leaves=12,
)
VALID: dict[str, Any] = {
    "accounts": [{"id": ACCOUNT, "role_arn": f"arn:aws:iam::{ACCOUNT}:role/drwatch-read"}],
    "regions": [REGION],
    "collectors": {"rds": {"enabled": True, "interval": "5m"}},
    "tiers": {"default": "premium", "targets": {"premium": {"rpo": "5m", "rto": "15m"}}},
    "aws": {"max_attempts": 3},
    "history": {"path": "history.db"},
}


def config_error(load: Callable[[], object]) -> ConfigError | None:
    """The ConfigError `load` raises, None if it succeeds; any other exception propagates."""
    try:
        load()
    except ConfigError as error:
        return error
    return None


def assert_names_a_field(data: object) -> None:
    error = config_error(lambda: parse_config(data))
    if error is not None:
        assert error.field
        assert str(error).startswith(f"{error.field}: ")
        assert error.problem


@PROFILE
@given(yamlish)
def test_any_data_parses_or_names_a_field(data: object) -> None:
    assert config_error(lambda: parse_config(VALID)) is None  # the base case is valid
    assert_names_a_field(data)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


@PROFILE
@given(st.sampled_from(paths(VALID)), yamlish)
def test_a_valid_config_with_one_field_spoiled_names_a_field(
    path: tuple[Any, ...], junk: object
) -> None:
    assert_names_a_field(replaced(VALID, path, junk))


@PROFILE
@given(st.text(max_size=200) | yamlish.map(yaml.safe_dump))
def test_any_file_loads_or_names_a_field(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("config") / "drwatch.yml"
    path.write_text(text, encoding="utf-8")
    error = config_error(lambda: load_config(path))
    assert error is None or error.field
