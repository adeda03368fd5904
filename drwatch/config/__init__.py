"""Load and validate the drwatch YAML configuration.

The file is parsed into frozen dataclasses once, at start-up, so the rest of the
program never sees a half-valid setting. Every problem is reported as a
:class:`ConfigError` whose text names the offending field by its dotted path
(``collectors.rds.interval: must be >= 60``), which is what ``drwatch
check-config`` prints.

Conventions of the file format:

* ``null`` and an absent key mean the same thing: "use the default".
* Unknown keys are errors at every level, because a misspelt key silently
  falling back to its default is the classic way a DR setting goes missing.
* Durations are seconds (``300``) or text with units (``"5m"``, ``"1h30m"``).
* Secret-looking values (``external_id``) are never echoed in errors or reprs.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import yaml

from drwatch.core.controls import (
    DEFAULT_DRILL_CADENCE_DAYS,
    DEFAULT_RESTORE_CADENCE_DAYS,
    ControlParameters,
)
from drwatch.core.retention import DataClass, RetentionRule
from drwatch.core.sharding import Shard, ShardError, parse_shard
from drwatch.core.tiers import TierTarget
from drwatch.core.units import DAY_SECONDS

_T = TypeVar("_T")

__all__ = [
    "DEFAULT_DRILL_CADENCE_SECONDS",
    "DEFAULT_ENABLED_COLLECTORS",
    "DEFAULT_HISTORY_PATH",
    "DEFAULT_HISTORY_RAW_DAYS",
    "DEFAULT_HISTORY_RETENTION_DAYS",
    "DEFAULT_INTERVALS",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_PORT",
    "DEFAULT_RESTORE_TEST_CADENCE_SECONDS",
    "DEFAULT_TIER_TARGETS",
    "KNOWN_COLLECTORS",
    "AccountConfig",
    "AwsConfig",
    "CollectorConfig",
    "Config",
    "ConfigError",
    "FreshnessTarget",
    "HistoryConfig",
    "KafkaClusterConfig",
    "KafkaConfig",
    "MirrorMaker2Flow",
    "OrganizationsConfig",
    "PollerConfig",
    "PriceOverride",
    "PricingConfig",
    "RetentionConfig",
    "S3FreshnessConfig",
    "TierConfig",
    "load_config",
    "parse_config",
]


class ConfigError(Exception):
    """A config problem; ``str()`` is ``'<dotted.field.path>: <problem>'``.

    Example: ``collectors.rds.interval: must be >= 60``. List items appear as
    ``accounts[1].role_arn``; whole-file problems use the file path as field.
    """

    field: str
    problem: str

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        # The default reduce would call ConfigError(message) with one argument.
        return (ConfigError, (self.field, self.problem))


# --- Defaults: the one place every default value lives. ---------------------

DEFAULT_PORT: Final = 9638
DEFAULT_LISTEN_ADDRESS: Final = f"0.0.0.0:{DEFAULT_PORT}"
DEFAULT_HISTORY_PATH: Final = "drwatch-history.db"
# Raw polls are kept 35 days (a month's report plus margin), then rolled up per day;
# rollups are kept about 7 years (2557 days), a common audit-evidence horizon.
DEFAULT_HISTORY_RAW_DAYS: Final = 35
DEFAULT_HISTORY_RETENTION_DAYS: Final = 2557
MAX_HISTORY_DAYS: Final = 36600
DEFAULT_MANUAL_SNAPSHOT_MAX_AGE_DAYS: Final = 90
STORAGE_CLASSES: Final = ("warm", "cold", "archive")
DEFAULT_SESSION_NAME: Final = "drwatch"

KNOWN_COLLECTORS: Final[tuple[str, ...]] = (
    "rds",
    "backup",
    "elasticache",
    "s3_replication",
    "kafka",
    "dynamodb",
    "ebs",
    "s3_freshness",
)
DEFAULT_INTERVALS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "rds": 300.0,
        "backup": 300.0,
        "elasticache": 300.0,
        "s3_replication": 300.0,
        "kafka": 60.0,
        "dynamodb": 300.0,
        # EBS snapshots and "newest object" listings change slowly and cost
        # more API calls per resource, so they are polled less often.
        "ebs": 900.0,
        "s3_freshness": 900.0,
    }
)
# Only the collectors that exist so far are on by default.
DEFAULT_ENABLED_COLLECTORS: Final[frozenset[str]] = frozenset(
    {"rds", "backup", "elasticache", "dynamodb", "ebs", "s3_replication"}
)
# Three missed polls before data counts as stale: one failure is routine.
DEFAULT_STALE_AFTER_INTERVALS: Final = 3
# Polling faster than once a minute mostly buys AWS throttling and API cost.
MIN_INTERVAL_SECONDS: Final = 60.0
MAX_INTERVAL_SECONDS: Final = 86400.0

DEFAULT_TIER_TAG_KEY: Final = "dr-tier"
DEFAULT_TIER: Final = "standard"
DEFAULT_TIER_TARGETS: Final[Mapping[str, TierTarget]] = MappingProxyType(
    {
        "premium": TierTarget(rpo_seconds=5 * 60.0, rto_seconds=15 * 60.0),
        "standard": TierTarget(rpo_seconds=15 * 60.0, rto_seconds=60 * 60.0),
        "basic": TierTarget(rpo_seconds=60 * 60.0, rto_seconds=240 * 60.0),
    }
)

# Restore-test and drill cadence (DRW-11, DRW-13; docs/drills.md): the operations runbooks
# ask for weekly database and config restores, monthly cache restores, quarterly drills.
DEFAULT_RESTORE_TEST_CADENCE_SECONDS: Final[Mapping[str, float]] = MappingProxyType(
    {name: days * DAY_SECONDS for name, days in DEFAULT_RESTORE_CADENCE_DAYS.items()}
)
DEFAULT_DRILL_CADENCE_SECONDS: Final = DEFAULT_DRILL_CADENCE_DAYS * DAY_SECONDS

# Retention policy by data class (DRW-03/04). One permissive class by default: RDS keeps 7
# days of automated backups unless told otherwise; real policies name their classes.
DEFAULT_DATA_CLASS_TAG_KEY: Final = "data-class"
DEFAULT_DATA_CLASS: Final = "default"
MAX_RETENTION_DAYS: Final = 36600

RETRY_MODES: Final[tuple[str, ...]] = ("standard", "adaptive")
DEFAULT_RETRY_MODE: Final = "standard"
DEFAULT_MAX_ATTEMPTS: Final = 5
MAX_ATTEMPTS_LIMIT: Final = 20
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_READ_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_MAX_POOL_CONNECTIONS: Final = 10

# Units mostly wait on AWS; 4 accounts x 4 regions x 6 collectors are 96 units, and a pool
# much smaller than that makes a round the sum of unit times instead of the slowest unit's
# (bench/scale.py, which also checks every chain stays inside AWS's documented rates).
DEFAULT_MAX_WORKERS: Final = 32
MAX_WORKERS_LIMIT: Final = 64

# Accounts join and leave an organisation rarely; an hour keeps Organizations calls negligible.
DEFAULT_DISCOVERY_REFRESH_SECONDS: Final = 3600.0
ACCOUNT_ID_PLACEHOLDER: Final = "{account_id}"


# --- The configuration model. -----------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One AWS account to watch, optionally reached by assuming a role."""

    id: str
    name: str
    role_arn: str | None = None
    # Kept out of repr so a logged config never leaks it.
    external_id: str | None = field(default=None, repr=False)
    session_name: str = DEFAULT_SESSION_NAME


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Scheduling of one collector; all values in seconds."""

    enabled: bool
    interval_seconds: float
    stale_after_seconds: float
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class TierConfig:
    """RPO/RTO targets per tier and how resources are assigned to a tier."""

    tag_key: str = DEFAULT_TIER_TAG_KEY
    default_tier: str = DEFAULT_TIER
    # A default_factory because dataclasses refuse unhashable default values.
    targets: Mapping[str, TierTarget] = field(default_factory=lambda: DEFAULT_TIER_TARGETS)

    def tier_for(self, tags: Mapping[str, str]) -> str:
        """The tier named by the resource's tier tag, else ``default_tier``.

        Tag values are matched case-insensitively and stripped because they
        are typed by hand in consoles ("Premium ", "PREMIUM"); tier names are
        validated to be lower case so this lookup is unambiguous.
        """
        value = tags.get(self.tag_key)
        if value is None:
            return self.default_tier
        candidate = value.strip().lower()
        return candidate if candidate in self.targets else self.default_tier


@dataclass(frozen=True, slots=True)
class AwsConfig:
    """botocore client settings shared by every collector."""

    endpoint_url: str | None = None
    retry_mode: str = DEFAULT_RETRY_MODE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    max_pool_connections: int = DEFAULT_MAX_POOL_CONNECTIONS


@dataclass(frozen=True, slots=True)
class PollerConfig:
    """Size of the thread pool that runs (collector, account, region) units."""

    max_workers: int = DEFAULT_MAX_WORKERS


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """Where the evidence history lives and how long raw and rolled-up data are kept."""

    path: str = DEFAULT_HISTORY_PATH
    raw_days: int = DEFAULT_HISTORY_RAW_DAYS
    retention_days: int = DEFAULT_HISTORY_RETENTION_DAYS


DEFAULT_DATA_CLASSES: Final[Mapping[str, DataClass]] = MappingProxyType(
    {DEFAULT_DATA_CLASS: DataClass(min_days=7)}
)


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """Data classes with their retention limits, and how resources are assigned to one.

    A resource's class is the value of its `tag_key` tag when that names a class, else the
    first rule matching its service and resource type, else `default_class`.
    """

    tag_key: str = DEFAULT_DATA_CLASS_TAG_KEY
    default_class: str = DEFAULT_DATA_CLASS
    classes: Mapping[str, DataClass] = field(default_factory=lambda: DEFAULT_DATA_CLASSES)
    rules: tuple[RetentionRule, ...] = ()

    def class_for(self, service: str, resource_type: str, tags: Mapping[str, str]) -> str:
        tagged = tags.get(self.tag_key, "").strip().lower()
        if tagged in self.classes:
            return tagged
        for rule in self.rules:
            if rule.matches(service, resource_type):
                return rule.data_class
        return self.default_class


@dataclass(frozen=True, slots=True)
class FreshnessTarget:
    """A bucket/prefix where a backup job drops files (dumps, exports, cluster state).

    The newest object's time under the prefix is the target's recovery point; `tier` gives
    it an RPO. `expected_interval` is how often the job should write (exported as-is).
    """

    bucket: str
    prefix: str
    account_id: str
    region: str
    tier: str
    expected_interval_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class S3FreshnessConfig:
    """Targets of the `s3_freshness` collector; the collector is on by default iff any."""

    targets: tuple[FreshnessTarget, ...] = ()


KAFKA_SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# AWS_MSK_IAM signs an OAUTHBEARER token with the process's AWS credentials.
KAFKA_SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM")
MM2_POSITIONS: Final = ("consumer_group", "offset_syncs")


@dataclass(frozen=True, slots=True)
class KafkaClusterConfig:
    """How drwatch connects to one Kafka cluster. Passwords come from the environment."""

    alias: str
    bootstrap_servers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password_env: str = ""
    ca_file: str = ""
    msk_iam_region: str = ""  # AWS_MSK_IAM: region to sign for; "" = the flow's region


@dataclass(frozen=True, slots=True)
class MirrorMaker2Flow:
    """One MirrorMaker 2 replication flow source -> target, watched from one unit."""

    account_id: str
    region: str
    source: KafkaClusterConfig
    target: KafkaClusterConfig
    topics: tuple[str, ...] = ()  # () = every non-internal topic of the source
    position: str = "consumer_group"  # consumer_group | offset_syncs
    consumer_group: str = ""
    offset_syncs_topic: str = ""
    heartbeats_topic: str = ""


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """The `kafka` collector: MirrorMaker 2 flows and whether partitions get series."""

    partition_detail: bool = False
    mirrormaker2: tuple[MirrorMaker2Flow, ...] = ()


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One `pricing.overrides` row: replaces the shipped price of (service, class, region)."""

    service: str  # "*" = every service
    storage_class: str  # warm | cold | archive
    region: str  # "*" = every region
    per_gib_month: float


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """Overrides of the shipped price table (exporter/prices/) and the management review's
    age threshold for forgotten manual snapshots."""

    overrides: tuple[PriceOverride, ...] = ()
    inter_region_transfer_per_gib: float | None = None  # None: the shipped table's price
    manual_snapshot_max_age_days: int = DEFAULT_MANUAL_SNAPSHOT_MAX_AGE_DAYS


@dataclass(frozen=True, slots=True)
class OrganizationsConfig:
    """Account discovery through AWS Organizations (exporter/discovery.py).

    Every ACTIVE account under `ous` (default: the whole organisation), minus `exclude_ous`
    subtrees and `exclude_accounts`, is watched through the role `role_arn_template` names.
    """

    role_arn_template: str
    # Role in the management (or delegated administrator) account for the Organizations
    # calls; None: drwatch's own credentials.
    management_role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str = DEFAULT_SESSION_NAME
    ous: tuple[str, ...] = ()
    exclude_ous: tuple[str, ...] = ()
    exclude_accounts: tuple[str, ...] = ()
    refresh_interval_seconds: float = DEFAULT_DISCOVERY_REFRESH_SECONDS

    def role_arn_for(self, account_id: str) -> str:
        return self.role_arn_template.replace(ACCOUNT_ID_PLACEHOLDER, account_id)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated drwatch configuration."""

    accounts: tuple[AccountConfig, ...]
    regions: tuple[str, ...]
    collectors: Mapping[str, CollectorConfig]
    tiers: TierConfig = TierConfig()
    aws: AwsConfig = AwsConfig()
    poller: PollerConfig = PollerConfig()
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    # Prometheus-style web config (TLS, basic auth); `serve --web.config.file` overrides it.
    web_config_file: str | None = None
    history: HistoryConfig = HistoryConfig()
    s3_freshness: S3FreshnessConfig = S3FreshnessConfig()
    kafka: KafkaConfig = KafkaConfig()
    retention: RetentionConfig = RetentionConfig()
    controls: ControlParameters = field(default_factory=ControlParameters)
    pricing: PricingConfig = PricingConfig()
    # Discovery adds accounts; the shard keeps this replica's share of all accounts.
    organizations: OrganizationsConfig | None = None
    shard: Shard = field(default_factory=Shard)

    @property
    def history_path(self) -> str:
        """``history.path``; the old top-level ``history_path`` key still sets it."""
        return self.history.path

    @property
    def listen_host(self) -> str:
        """Host part of ``listen_address``, without IPv6 brackets (ready for bind)."""
        return _split_listen_address(self.listen_address)[0]

    @property
    def listen_port(self) -> int:
        """Port part of ``listen_address``."""
        return _split_listen_address(self.listen_address)[1]

    def enabled_collectors(self) -> tuple[str, ...]:
        """Names of the enabled collectors, in ``KNOWN_COLLECTORS`` order."""
        return tuple(
            name
            for name in KNOWN_COLLECTORS
            if name in self.collectors and self.collectors[name].enabled
        )


# --- Field names accepted in each section (also the order errors list them). --

_TOP_FIELDS: Final = (
    "listen_address",
    "history_path",
    "history",
    "accounts",
    "regions",
    "collectors",
    "tiers",
    "aws",
    "poller",
    "s3_freshness",
    "kafka",
    "retention",
    "controls",
    "pricing",
    "organizations",
    "shard",
    "web_config_file",
)
_ACCOUNT_FIELDS: Final = ("id", "name", "role_arn", "external_id", "session_name")
_COLLECTOR_FIELDS: Final = ("enabled", "interval", "stale_after", "timeout")
_TIER_FIELDS: Final = ("tag_key", "default", "targets")
_TIER_TARGET_FIELDS: Final = ("rpo", "rto")
_AWS_FIELDS: Final = (
    "endpoint_url",
    "retry_mode",
    "max_attempts",
    "connect_timeout",
    "read_timeout",
    "max_pool_connections",
)
_POLLER_FIELDS: Final = ("max_workers",)
_S3_FRESHNESS_FIELDS: Final = ("targets",)
_FRESHNESS_TARGET_FIELDS: Final = (
    "bucket",
    "prefix",
    "account",
    "region",
    "tier",
    "expected_interval",
)
_HISTORY_FIELDS: Final = ("path", "raw_days", "retention_days")
_ORGANIZATIONS_FIELDS: Final = (
    "role_arn_template",
    "management_role_arn",
    "external_id",
    "session_name",
    "ous",
    "exclude_ous",
    "exclude_accounts",
    "refresh_interval",
)
_KAFKA_FIELDS: Final = ("partition_detail", "mirrormaker2")
_MM2_FIELDS: Final = (
    "account",
    "region",
    "source",
    "target",
    "topics",
    "position",
    "consumer_group",
    "offset_syncs_topic",
    "heartbeats_topic",
)
_KAFKA_CLUSTER_FIELDS: Final = (
    "alias",
    "bootstrap_servers",
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password_env",
    "ca_file",
    "msk_iam_region",
)
_KAFKA_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,249}", re.ASCII)
_ENV_NAME_RE: Final = re.compile(r"[A-Z_][A-Z0-9_]*", re.ASCII)
_PRICING_FIELDS: Final = ("overrides", "inter_region_transfer_per_gib", "manual_snapshot_max_age")
_PRICE_OVERRIDE_FIELDS: Final = ("service", "storage_class", "region", "per_gib_month")
_RETENTION_FIELDS: Final = ("tag_key", "default", "classes", "rules")
_DATA_CLASS_FIELDS: Final = ("min_days", "max_days")
_RETENTION_RULE_FIELDS: Final = ("service", "resource_type", "class")
_CONTROLS_FIELDS: Final = (
    "rpo_compliance",
    "job_success_rate",
    "copy_max_age",
    "replication_lag",
    "kafka_message_lag",
    "restore_cadence",
    "drill_cadence",
    "monitoring_coverage",
)

# Field used for problems with the document as a whole (e.g. a YAML list).
_ROOT_FIELD: Final = "<root>"

# re.ASCII throughout: \w and \d would otherwise accept any Unicode letter or
# digit, which AWS rejects.
_ACCOUNT_ID_RE: Final = re.compile(r"[0-9]{12}")
_ROLE_ARN_RE: Final = re.compile(
    r"arn:aws(?:-cn|-us-gov)?:iam::(?P<account>[0-9]{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}",
    re.ASCII,
)
_EXTERNAL_ID_RE: Final = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
_SESSION_NAME_RE: Final = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_REGION_RE: Final = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]+", re.ASCII)
_BUCKET_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
# Organizational unit and root ids, as AWS documents their patterns.
_OU_ID_RE: Final = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32}", re.ASCII)
_TIER_NAME_RE: Final = re.compile(r"[a-z0-9_-]+", re.ASCII)
_HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", re.ASCII)
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_RE: Final = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?",
    re.ASCII,
)
_PLAIN_NUMBER_RE: Final = re.compile(_NUMBER, re.ASCII)
_PLAIN_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_UNIT_SECONDS: Final[Mapping[str, float]] = MappingProxyType(
    {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
)

_DURATION_PROBLEM: Final = 'must be a duration such as 300, "5m" or "1h"'
_LISTEN_ADDRESS_PROBLEM: Final = 'must be "host:port", e.g. "0.0.0.0:9638" or "[::]:9638"'
_TAG_KEY_MAX_LENGTH: Final = 128  # the AWS limit for tag keys


# --- Public entry points. ---------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the YAML config file at ``path``.

    File and YAML syntax problems are reported with the file path as field and
    the line/column in the problem text.
    """
    filename = os.fspath(path)
    return parse_config(_load_yaml(_read_text(filename), filename))


def parse_config(data: object) -> Config:
    """Validate already-loaded YAML data (dicts, lists, scalars) into a Config.

    An empty document (``None``) is treated as an empty mapping, so the first
    error is the helpful ``accounts: required``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(_ROOT_FIELD, "must be a mapping of fields such as accounts and regions")
    root = _fields(data, "", _TOP_FIELDS)
    listen_address = _parse_listen_address(root.get("listen_address"), "listen_address")
    organizations = _parse_organizations(root.get("organizations"), "organizations")
    # With discovery the static list is optional: it adds accounts or overrides their role.
    accounts = (
        ()
        if organizations is not None and root.get("accounts") is None
        else _parse_accounts(root.get("accounts"), "accounts")
    )
    regions = _parse_regions(root.get("regions"), "regions")
    tiers = _parse_tiers(root.get("tiers"), "tiers")
    freshness = _parse_s3_freshness(root.get("s3_freshness"), accounts, regions, tiers)
    # s3_freshness has nothing to do without targets, so targets are what switch it on.
    enabled_by_default = DEFAULT_ENABLED_COLLECTORS | (
        {"s3_freshness"} if freshness.targets else set()
    )
    kafka = _parse_kafka(root.get("kafka"), accounts, regions)
    # Configured MirrorMaker 2 flows switch the kafka collector on (MSK needs no config).
    enabled_by_default |= {"kafka"} if kafka.mirrormaker2 else set()
    return Config(
        accounts=accounts,
        regions=regions,
        collectors=_parse_collectors(root.get("collectors"), "collectors", enabled_by_default),
        tiers=tiers,
        s3_freshness=freshness,
        kafka=kafka,
        aws=_parse_aws(root.get("aws"), "aws"),
        poller=_parse_poller(root.get("poller"), "poller"),
        listen_address=listen_address,
        web_config_file=_optional(root, "", "web_config_file", None, _string),
        history=_parse_history(root.get("history"), root.get("history_path")),
        organizations=organizations,
        shard=_optional(root, "", "shard", Shard(), _parse_shard),
        retention=_parse_retention(root.get("retention"), "retention"),
        controls=_parse_controls(root.get("controls"), "controls"),
        pricing=_parse_pricing(root.get("pricing"), "pricing"),
    )


# --- Reading the file. --------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reports bad scalars as YAML errors.

    Plain PyYAML keeps the last of two identical keys without a word, so a
    pasted second ``interval:`` would silently override the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        _reject_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML lets ValueError escape for scalars it recognises but cannot
        # build (2024-13-45, "!!int abc"); give them a position like any other
        # YAML error. The value itself is left out: it might be a secret.
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid {_short_tag(node.tag)} value", node.start_mark
            ) from exc


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def _reject_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    seen: set[object] = set()
    for key_node, _value_node in node.value:
        # Keys pulled in by a "<<" merge may legitimately be overridden.
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # SafeLoader itself reports unhashable keys.
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)


def _read_text(filename: str) -> str:
    try:
        with open(filename, encoding="utf-8") as stream:
            return stream.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(filename, "cannot read: not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigError(filename, f"cannot read: {exc.strerror or exc}") from exc


def _load_yaml(text: str, filename: str) -> object:
    try:
        # S506 is a false positive: _StrictLoader subclasses SafeLoader.
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(filename, _describe_yaml_error(exc)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(filename, f"invalid YAML: {exc}") from exc
    except RecursionError as exc:  # PyYAML composes nested nodes recursively
        raise ConfigError(filename, "invalid YAML: nested too deeply") from exc


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    # Built by hand rather than str(exc): PyYAML's text quotes the source line,
    # which may hold a secret such as an external_id.
    problem = exc.problem or exc.context or "syntax error"
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


# --- Generic field helpers. ---------------------------------------------------


def _child(path: str, key: str) -> str:
    # Odd keys ("", "a.b", "x y") are quoted so the path stays unambiguous.
    if not _PLAIN_KEY_RE.fullmatch(key):
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


def _item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, "must be a mapping")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(path, f"keys must be strings, found {key!r}")
    return value


def _optional(
    fields: Mapping[str, object],
    path: str,
    key: str,
    default: _T,
    parse: Callable[[object, str], _T],
) -> _T:
    """The parsed field, or its default when missing or null (null means default)."""
    value = fields.get(key)
    return default if value is None else parse(value, _child(path, key))


def _fields(value: object, path: str, allowed: Sequence[str]) -> Mapping[str, object]:
    """A mapping whose keys are all in ``allowed``; ``None`` reads as empty."""
    fields = _mapping({} if value is None else value, path)
    for key in fields:
        if key not in allowed:
            raise ConfigError(
                _child(path, key), f"unknown field; expected one of {', '.join(allowed)}"
            )
    return fields


def _list(value: object, path: str) -> Sequence[object]:
    if value is None:
        raise ConfigError(path, "required")
    # str is a Sequence too, but a bare string here is a mistake, not a list.
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, "must be a list")
    if not value:
        raise ConfigError(path, "must not be empty")
    return value


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, "must be a string")
    if not value.strip():
        raise ConfigError(path, "must not be empty")
    return value


def _boolean(value: object, path: str) -> bool:
    # Only real YAML booleans: "true" in quotes or 1 is almost always a typo.
    if not isinstance(value, bool):
        raise ConfigError(path, "must be true or false")
    return value


def _integer(value: object, path: str, minimum: int, maximum: int | None = None) -> int:
    # bool is an int subclass, but `true` is never meant as a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, "must be an integer")
    if maximum is not None and not minimum <= value <= maximum:
        raise ConfigError(path, f"must be between {minimum} and {maximum}")
    if value < minimum:
        raise ConfigError(path, f"must be >= {minimum}")
    return value


def _duration(value: object, path: str) -> float:
    """Seconds from a number or from text such as "90s", "5m", "1h30m", "2d"."""
    if isinstance(value, bool):
        raise ConfigError(path, _DURATION_PROBLEM)
    if isinstance(value, (int, float)):
        seconds = _number_to_float(value, path)
    elif isinstance(value, str):
        seconds = _duration_text_to_seconds(value.strip(), path)
    else:
        raise ConfigError(path, _DURATION_PROBLEM)
    if not math.isfinite(seconds):
        raise ConfigError(path, _DURATION_PROBLEM)
    if seconds < 0:
        raise ConfigError(path, "must not be negative")
    return seconds


def _number_to_float(value: float, path: str) -> float:
    try:
        return float(value)
    except OverflowError as exc:  # an int with hundreds of digits
        raise ConfigError(path, _DURATION_PROBLEM) from exc


def _duration_text_to_seconds(text: str, path: str) -> float:
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return float(text)
    match = _DURATION_RE.fullmatch(text)
    # An empty string matches with every unit absent.
    if match is None or not any(match.groupdict().values()):
        raise ConfigError(path, _DURATION_PROBLEM)
    return sum(
        float(amount) * _UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )


def _positive_duration(value: object, path: str) -> float:
    seconds = _duration(value, path)
    if seconds == 0:
        raise ConfigError(path, "must be > 0")
    return seconds


def _format_seconds(seconds: float) -> str:
    """Seconds as a valid duration literal, e.g. 900.0 -> "900s"."""
    return f"{seconds:g}s" if seconds != int(seconds) else f"{int(seconds)}s"


# --- Sections. ----------------------------------------------------------------


def _parse_accounts(value: object, path: str) -> tuple[AccountConfig, ...]:
    items = _list(value, path)
    accounts = tuple(_parse_account(item, _item(path, index)) for index, item in enumerate(items))
    _reject_duplicate_account_ids(accounts, path)
    return accounts


def _reject_duplicate_account_ids(accounts: Sequence[AccountConfig], path: str) -> None:
    first_index: dict[str, int] = {}
    for index, account in enumerate(accounts):
        if account.id in first_index:
            raise ConfigError(
                _child(_item(path, index), "id"),
                f"duplicate of {_item(path, first_index[account.id])}.id",
            )
        first_index[account.id] = index


def _parse_account(value: object, path: str) -> AccountConfig:
    fields = _fields(_require(value, path), path, _ACCOUNT_FIELDS)
    account_id = _parse_account_id(fields.get("id"), _child(path, "id"))
    name = fields.get("name")
    role_arn = _parse_role_arn(fields.get("role_arn"), _child(path, "role_arn"), account_id)
    return AccountConfig(
        id=account_id,
        name=account_id if name is None else _string(name, _child(path, "name")),
        role_arn=role_arn,
        external_id=_parse_external_id(
            fields.get("external_id"), _child(path, "external_id"), role_arn
        ),
        session_name=_optional(
            fields, path, "session_name", DEFAULT_SESSION_NAME, _parse_session_name
        ),
    )


def _require(value: object, path: str) -> object:
    if value is None:
        raise ConfigError(path, "required")
    return value


def _parse_account_id(value: object, path: str) -> str:
    _require(value, path)
    # An unquoted id is a YAML int: leading zeros vanish (or it turns octal).
    if isinstance(value, int) and not isinstance(value, bool):
        raise ConfigError(
            path, 'must be a quoted string such as "012345678901" (YAML numbers lose leading zeros)'
        )
    account_id = _string(value, path)
    if not _ACCOUNT_ID_RE.fullmatch(account_id):
        raise ConfigError(path, "must be exactly 12 digits")
    return account_id


def _parse_role_arn(value: object, path: str, account_id: str) -> str | None:
    if value is None:
        return None
    role_arn = _string(value, path)
    match = _ROLE_ARN_RE.fullmatch(role_arn)
    if match is None:
        raise ConfigError(
            path, "must be an IAM role ARN such as arn:aws:iam::111111111111:role/drwatch-read"
        )
    if match["account"] != account_id:
        raise ConfigError(path, f"is in account {match['account']}, but id is {account_id}")
    return role_arn


def _parse_external_id(value: object, path: str, role_arn: str | None) -> str | None:
    # Messages here never include the value: external ids are shared secrets.
    if value is None:
        return None
    if role_arn is None:
        raise ConfigError(path, "only allowed together with role_arn")
    if not isinstance(value, str):
        raise ConfigError(path, "must be a string")
    if not _EXTERNAL_ID_RE.fullmatch(value):
        raise ConfigError(path, "must be 2-1224 characters from letters, digits and _+=,.@:/-")
    return value


def _parse_session_name(value: object, path: str) -> str:
    session_name = _string(value, path)
    if not _SESSION_NAME_RE.fullmatch(session_name):
        raise ConfigError(path, "must be 2-64 characters from letters, digits and _+=,.@-")
    return session_name


def _parse_regions(value: object, path: str) -> tuple[str, ...]:
    regions: list[str] = []
    for index, item in enumerate(_list(value, path)):
        item_path = _item(path, index)
        region = _string(item, item_path)
        if not _REGION_RE.fullmatch(region):
            raise ConfigError(item_path, "must be an AWS region name such as eu-west-1")
        if region in regions:
            raise ConfigError(item_path, f"duplicate of {_item(path, regions.index(region))}")
        regions.append(region)
    return tuple(regions)


def _parse_collectors(
    value: object, path: str, enabled_by_default: frozenset[str] = DEFAULT_ENABLED_COLLECTORS
) -> Mapping[str, CollectorConfig]:
    given = _mapping({} if value is None else value, path)
    for name in given:
        if name not in KNOWN_COLLECTORS:
            raise ConfigError(
                _child(path, name),
                f"unknown collector; expected one of {', '.join(KNOWN_COLLECTORS)}",
            )
    # Every known collector is present so callers never need a fallback.
    return MappingProxyType(
        {
            name: _parse_collector(
                name, given.get(name), _child(path, name), name in enabled_by_default
            )
            for name in KNOWN_COLLECTORS
        }
    )


def _parse_collector(
    name: str, value: object, path: str, enabled_by_default: bool
) -> CollectorConfig:
    fields = _fields(value, path, _COLLECTOR_FIELDS)
    interval = _parse_interval(fields.get("interval"), _child(path, "interval"), name)
    stale_after = _parse_stale_after(
        fields.get("stale_after"), _child(path, "stale_after"), interval
    )
    timeout = _parse_timeout(fields.get("timeout"), _child(path, "timeout"), interval, stale_after)
    return CollectorConfig(
        enabled=_optional(fields, path, "enabled", enabled_by_default, _boolean),
        interval_seconds=interval,
        stale_after_seconds=stale_after,
        timeout_seconds=timeout,
    )


def _parse_interval(value: object, path: str, collector: str) -> float:
    if value is None:
        return DEFAULT_INTERVALS[collector]
    interval = _duration(value, path)
    if interval < MIN_INTERVAL_SECONDS:
        raise ConfigError(path, f"must be >= {MIN_INTERVAL_SECONDS:g}")
    if interval > MAX_INTERVAL_SECONDS:
        raise ConfigError(path, f"must be <= {MAX_INTERVAL_SECONDS:g}")
    return interval


def _parse_stale_after(value: object, path: str, interval: float) -> float:
    if value is None:
        return DEFAULT_STALE_AFTER_INTERVALS * interval
    stale_after = _duration(value, path)
    # Data cannot go stale before the next poll was even due.
    if stale_after < interval:
        raise ConfigError(path, f"must be >= interval ({_format_seconds(interval)})")
    return stale_after


def _parse_timeout(value: object, path: str, interval: float, stale_after: float) -> float:
    if value is None:
        return interval
    timeout = _positive_duration(value, path)
    # A run allowed to outlast stale_after would mark healthy data stale.
    if timeout > stale_after:
        raise ConfigError(path, f"must be <= stale_after ({_format_seconds(stale_after)})")
    return timeout


def _parse_tiers(value: object, path: str) -> TierConfig:
    fields = _fields(value, path, _TIER_FIELDS)
    targets_value = fields.get("targets")
    # User targets replace the defaults wholesale: merging would leave tiers
    # behind that the user believes are gone.
    targets = (
        DEFAULT_TIER_TARGETS
        if targets_value is None
        else _parse_tier_targets(targets_value, _child(path, "targets"))
    )
    return TierConfig(
        tag_key=_optional(fields, path, "tag_key", DEFAULT_TIER_TAG_KEY, _parse_tag_key),
        default_tier=_parse_default_tier(fields.get("default"), _child(path, "default"), targets),
        targets=targets,
    )


def _parse_tag_key(value: object, path: str) -> str:
    tag_key = _string(value, path)
    if len(tag_key) > _TAG_KEY_MAX_LENGTH:
        raise ConfigError(path, f"must be at most {_TAG_KEY_MAX_LENGTH} characters")
    return tag_key


def _parse_default_tier(value: object, path: str, targets: Mapping[str, TierTarget]) -> str:
    known = ", ".join(targets)
    if value is None:
        if DEFAULT_TIER not in targets:
            raise ConfigError(
                path, f'required because tiers.targets has no "{DEFAULT_TIER}"; use one of {known}'
            )
        return DEFAULT_TIER
    default_tier = _string(value, path)
    if default_tier not in targets:
        raise ConfigError(path, f'unknown tier "{default_tier}"; expected one of {known}')
    return default_tier


def _parse_tier_targets(value: object, path: str) -> Mapping[str, TierTarget]:
    return _parse_named(value, path, "tier", _parse_tier_target)


def _parse_named(
    value: object, path: str, what: str, parse: Callable[[object, str], _T]
) -> Mapping[str, _T]:
    """A non-empty mapping of lower-case names (tiers, data classes) to parsed items.

    Lower case only, because resources are assigned by a tag value that is lower-cased.
    """
    given = _mapping(value, path)
    if not given:
        raise ConfigError(path, f"must define at least one {what}")
    items: dict[str, _T] = {}
    for name, item in given.items():
        item_path = _child(path, name)
        if not _TIER_NAME_RE.fullmatch(name):
            raise ConfigError(item_path, f"{what} names must match [a-z0-9_-]+")
        items[name] = parse(item, item_path)
    return MappingProxyType(items)


def _parse_tier_target(value: object, path: str) -> TierTarget:
    fields = _fields(_require(value, path), path, _TIER_TARGET_FIELDS)
    return TierTarget(
        rpo_seconds=_required_positive_duration(fields, "rpo", path),
        rto_seconds=_required_positive_duration(fields, "rto", path),
    )


def _required_positive_duration(fields: Mapping[str, object], key: str, path: str) -> float:
    key_path = _child(path, key)
    return _positive_duration(_require(fields.get(key), key_path), key_path)


def _parse_aws(value: object, path: str) -> AwsConfig:
    fields = _fields(value, path, _AWS_FIELDS)
    return AwsConfig(
        endpoint_url=_optional(fields, path, "endpoint_url", None, _parse_endpoint_url),
        retry_mode=_optional(fields, path, "retry_mode", DEFAULT_RETRY_MODE, _parse_retry_mode),
        max_attempts=_optional(
            fields,
            path,
            "max_attempts",
            DEFAULT_MAX_ATTEMPTS,
            lambda v, p: _integer(v, p, 1, MAX_ATTEMPTS_LIMIT),
        ),
        connect_timeout_seconds=_optional(
            fields, path, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_SECONDS, _positive_duration
        ),
        read_timeout_seconds=_optional(
            fields, path, "read_timeout", DEFAULT_READ_TIMEOUT_SECONDS, _positive_duration
        ),
        max_pool_connections=_optional(
            fields,
            path,
            "max_pool_connections",
            DEFAULT_MAX_POOL_CONNECTIONS,
            lambda v, p: _integer(v, p, 1),
        ),
    )


def _parse_endpoint_url(value: object, path: str) -> str:
    url = _string(value, path)
    problem = "must be an http(s) URL such as http://127.0.0.1:5000"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigError(path, problem) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(path, problem)
    return url


def _parse_retry_mode(value: object, path: str) -> str:
    retry_mode = _string(value, path)
    if retry_mode not in RETRY_MODES:
        raise ConfigError(path, f"must be one of {', '.join(RETRY_MODES)}")
    return retry_mode


def _parse_poller(value: object, path: str) -> PollerConfig:
    fields = _fields(value, path, _POLLER_FIELDS)
    return PollerConfig(
        max_workers=_optional(
            fields,
            path,
            "max_workers",
            DEFAULT_MAX_WORKERS,
            lambda v, p: _integer(v, p, 1, MAX_WORKERS_LIMIT),
        )
    )


def _parse_listen_address(value: object, path: str) -> str:
    if value is None:
        return DEFAULT_LISTEN_ADDRESS
    address = _string(value, path)
    _split_listen_address(address, path)
    return address


def _split_listen_address(address: str, path: str = "listen_address") -> tuple[str, int]:
    """``"host:port"`` or ``"[v6addr]:port"`` -> (host without brackets, port)."""
    host, separator, port_text = address.rpartition(":")
    if not separator or not host:
        raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM)
    return _listen_host(host, path), _listen_port(port_text, path)


def _listen_host(host: str, path: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM) from exc
        return host[1:-1]
    if ":" in host:
        raise ConfigError(path, 'IPv6 addresses need brackets, e.g. "[::]:9638"')
    if not _HOSTNAME_RE.fullmatch(host):
        raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM)
    return host


def _listen_port(port_text: str, path: str) -> int:
    # The length cap keeps int() away from absurdly long digit strings.
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM)
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(path, "port must be between 1 and 65535")
    return port


def _parse_s3_freshness(
    value: object,
    accounts: Sequence[AccountConfig],
    regions: Sequence[str],
    tiers: TierConfig,
) -> S3FreshnessConfig:
    fields = _fields(value, "s3_freshness", _S3_FRESHNESS_FIELDS)
    items = fields.get("targets")
    if items is None:
        return S3FreshnessConfig()
    path = "s3_freshness.targets"
    targets = tuple(
        _parse_freshness_target(item, _item(path, index), accounts, regions, tiers)
        for index, item in enumerate(_list(items, path))
    )
    seen: dict[tuple[str, str, str], int] = {}
    for index, target in enumerate(targets):
        key = (target.account_id, target.bucket, target.prefix)
        if key in seen:
            raise ConfigError(_item(path, index), f"duplicate of {_item(path, seen[key])}")
        seen[key] = index
    return S3FreshnessConfig(targets=targets)


def _parse_freshness_target(
    value: object,
    path: str,
    accounts: Sequence[AccountConfig],
    regions: Sequence[str],
    tiers: TierConfig,
) -> FreshnessTarget:
    fields = _fields(_require(value, path), path, _FRESHNESS_TARGET_FIELDS)
    bucket = _string(_require(fields.get("bucket"), _child(path, "bucket")), _child(path, "bucket"))
    if not _BUCKET_RE.fullmatch(bucket):
        raise ConfigError(_child(path, "bucket"), "must be an S3 bucket name (3-63 of a-z0-9.-)")
    prefix_value = fields.get("prefix")
    # "" (the whole bucket) is allowed, but must be said: a forgotten prefix lists everything.
    if not isinstance(prefix_value, str):
        raise ConfigError(_child(path, "prefix"), 'required: a key prefix such as "dumps/", or ""')
    region_path = _child(path, "region")
    region = _string(_require(fields.get("region"), region_path), region_path)
    if region not in regions:
        raise ConfigError(region_path, f"must be one of regions ({', '.join(regions)})")
    return FreshnessTarget(
        bucket=bucket,
        prefix=prefix_value,
        account_id=_freshness_account(fields.get("account"), _child(path, "account"), accounts),
        region=region,
        tier=_optional(
            fields, path, "tier", tiers.default_tier, lambda v, p: _known_tier(v, p, tiers)
        ),
        expected_interval_seconds=_optional(
            fields, path, "expected_interval", None, _positive_duration
        ),
    )


def _freshness_account(value: object, path: str, accounts: Sequence[AccountConfig]) -> str:
    ids = [account.id for account in accounts]
    if value is None:
        if len(ids) == 1:
            return ids[0]
        raise ConfigError(path, "required when more than one account is configured")
    account_id = _parse_account_id(value, path)
    if account_id not in ids:
        raise ConfigError(path, f"must be one of the accounts ({', '.join(ids)})")
    return account_id


def _known_tier(value: object, path: str, tiers: TierConfig) -> str:
    tier = _string(value, path)
    if tier not in tiers.targets:
        raise ConfigError(
            path, f'unknown tier "{tier}"; expected one of {", ".join(tiers.targets)}'
        )
    return tier


def _parse_history(value: object, legacy_path: object) -> HistoryConfig:
    fields = _fields(value, "history", _HISTORY_FIELDS)
    if legacy_path is not None and fields.get("path") is not None:
        raise ConfigError(
            "history_path", "replaced by history.path; set only history.path, not both"
        )
    path_value = fields.get("path", legacy_path)
    path_field = "history.path" if fields.get("path") is not None else "history_path"
    raw_days = _optional_days(fields.get("raw_days"), "history.raw_days", DEFAULT_HISTORY_RAW_DAYS)
    retention_days = _optional_days(
        fields.get("retention_days"), "history.retention_days", DEFAULT_HISTORY_RETENTION_DAYS
    )
    # Rollups are made from raw data; keeping them for less time than raw data is a mistake.
    if retention_days < raw_days:
        raise ConfigError("history.retention_days", f"must be >= history.raw_days ({raw_days})")
    return HistoryConfig(
        path=_parse_history_path(path_value, path_field),
        raw_days=raw_days,
        retention_days=retention_days,
    )


def _optional_days(value: object, path: str, default: int) -> int:
    return default if value is None else _integer(value, path, 1, MAX_HISTORY_DAYS)


def _parse_history_path(value: object, path: str) -> str:
    if value is None:
        return DEFAULT_HISTORY_PATH
    history_path = _string(value, path)
    # SQLite (and the OS) cannot open a path with a NUL byte in it.
    if "\0" in history_path:
        raise ConfigError(path, "must not contain NUL characters")
    return history_path


def _parse_pricing(value: object, path: str) -> PricingConfig:
    fields = _fields(value, path, _PRICING_FIELDS)
    overrides_path = _child(path, "overrides")
    overrides = fields.get("overrides")
    return PricingConfig(
        overrides=()
        if overrides is None
        else tuple(
            _parse_price_override(item, _item(overrides_path, index))
            for index, item in enumerate(_list(overrides, overrides_path))
        ),
        inter_region_transfer_per_gib=_optional(
            fields, path, "inter_region_transfer_per_gib", None, _price
        ),
        manual_snapshot_max_age_days=_optional(
            fields,
            path,
            "manual_snapshot_max_age",
            DEFAULT_MANUAL_SNAPSHOT_MAX_AGE_DAYS,
            _whole_days,
        ),
    )


def _parse_price_override(value: object, path: str) -> PriceOverride:
    fields = _fields(value, path, _PRICE_OVERRIDE_FIELDS)
    class_path = _child(path, "storage_class")
    storage_class = _string(_require(fields.get("storage_class"), class_path), class_path)
    if storage_class not in STORAGE_CLASSES:
        raise ConfigError(class_path, f"must be one of {', '.join(STORAGE_CLASSES)}")
    price_path = _child(path, "per_gib_month")
    return PriceOverride(
        service=_optional(fields, path, "service", "*", _string),
        storage_class=storage_class,
        region=_optional(fields, path, "region", "*", _price_region),
        per_gib_month=_price(_require(fields.get("per_gib_month"), price_path), price_path),
    )


def _price_region(value: object, path: str) -> str:
    region = _string(value, path)
    if region != "*" and not _REGION_RE.fullmatch(region):
        raise ConfigError(path, 'must be an AWS region such as eu-west-1, or "*" for every region')
    return region


def _price(value: object, path: str) -> float:
    """US dollars: a finite number >= 0 (0 is a valid price, e.g. a free allowance)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, "must be a number of US dollars, e.g. 0.05")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(path, "must be a finite number >= 0")
    return float(value)


def _whole_days(value: object, path: str) -> int:
    """A duration of at least one day, in whole days ("90d", "2160h")."""
    seconds = _duration(value, path)
    if seconds < 86400 or seconds % 86400:
        raise ConfigError(path, 'must be a whole number of days, at least one, e.g. "90d"')
    return int(seconds // 86400)


def _parse_retention(value: object, path: str) -> RetentionConfig:
    fields = _fields(value, path, _RETENTION_FIELDS)
    classes_value = fields.get("classes")
    # Like tier targets: configured classes replace the default class wholesale.
    classes = (
        DEFAULT_DATA_CLASSES
        if classes_value is None
        else _parse_data_classes(classes_value, _child(path, "classes"))
    )
    known = ", ".join(classes)
    default_path = _child(path, "default")
    default_class = _optional(fields, path, "default", DEFAULT_DATA_CLASS, _string)
    if fields.get("default") is None and default_class not in classes:
        raise ConfigError(
            default_path,
            f'required because retention.classes has no "{DEFAULT_DATA_CLASS}"; use one of {known}',
        )
    if default_class not in classes:
        raise ConfigError(
            default_path, f'unknown data class "{default_class}"; expected one of {known}'
        )
    rules_value = fields.get("rules")
    rules_path = _child(path, "rules")
    rules = (
        ()
        if rules_value is None
        else tuple(
            _parse_retention_rule(item, _item(rules_path, index), classes)
            for index, item in enumerate(_list(rules_value, rules_path))
        )
    )
    return RetentionConfig(
        tag_key=_optional(fields, path, "tag_key", DEFAULT_DATA_CLASS_TAG_KEY, _parse_tag_key),
        default_class=default_class,
        classes=classes,
        rules=rules,
    )


def _parse_data_classes(value: object, path: str) -> Mapping[str, DataClass]:
    return _parse_named(value, path, "data class", _parse_data_class)


def _parse_data_class(value: object, path: str) -> DataClass:
    fields = _fields(_require(value, path), path, _DATA_CLASS_FIELDS)
    min_path = _child(path, "min_days")
    min_days = _integer(_require(fields.get("min_days"), min_path), min_path, 0, MAX_RETENTION_DAYS)
    max_days = _optional(
        fields, path, "max_days", None, lambda v, p: _integer(v, p, 1, MAX_RETENTION_DAYS)
    )
    if max_days is not None and max_days < min_days:
        raise ConfigError(_child(path, "max_days"), f"must be >= min_days ({min_days})")
    return DataClass(min_days=min_days, max_days=max_days)


def _parse_retention_rule(
    value: object, path: str, classes: Mapping[str, DataClass]
) -> RetentionRule:
    fields = _fields(_require(value, path), path, _RETENTION_RULE_FIELDS)
    class_path = _child(path, "class")
    data_class = _string(_require(fields.get("class"), class_path), class_path)
    if data_class not in classes:
        raise ConfigError(
            class_path, f'unknown data class "{data_class}"; expected one of {", ".join(classes)}'
        )
    service = _optional(fields, path, "service", None, _string)
    resource_type = _optional(fields, path, "resource_type", None, _string)
    if service is None and resource_type is None:
        raise ConfigError(path, "needs service or resource_type (or both)")
    return RetentionRule(data_class=data_class, service=service, resource_type=resource_type)


# --- kafka: MirrorMaker 2 flows -------------------------------------------------


def _parse_kafka(
    value: object, accounts: Sequence[AccountConfig], regions: Sequence[str]
) -> KafkaConfig:
    fields = _fields(value, "kafka", _KAFKA_FIELDS)
    partition_detail = _optional(fields, "kafka", "partition_detail", False, _boolean)
    items = fields.get("mirrormaker2")
    if items is None:
        return KafkaConfig(partition_detail=partition_detail)
    path = "kafka.mirrormaker2"
    flows = tuple(
        _parse_mm2_flow(item, _item(path, index), accounts, regions)
        for index, item in enumerate(_list(items, path))
    )
    seen: dict[tuple[str, str], int] = {}
    for index, flow in enumerate(flows):
        key = (flow.source.alias, flow.target.alias)
        if key in seen:
            raise ConfigError(_item(path, index), f"duplicate of {_item(path, seen[key])}")
        seen[key] = index
    return KafkaConfig(partition_detail=partition_detail, mirrormaker2=flows)


def _parse_mm2_flow(
    value: object, path: str, accounts: Sequence[AccountConfig], regions: Sequence[str]
) -> MirrorMaker2Flow:
    fields = _fields(_require(value, path), path, _MM2_FIELDS)
    region_path = _child(path, "region")
    region = _string(_require(fields.get("region"), region_path), region_path)
    if region not in regions:
        raise ConfigError(region_path, f"must be one of regions ({', '.join(regions)})")
    source = _parse_kafka_cluster(fields.get("source"), _child(path, "source"))
    target = _parse_kafka_cluster(fields.get("target"), _child(path, "target"))
    if source.alias == target.alias:
        raise ConfigError(_child(_child(path, "target"), "alias"), "must differ from source.alias")
    position = _optional(fields, path, "position", "consumer_group", _mm2_position)
    group = _optional(fields, path, "consumer_group", "", _kafka_name)
    if position == "consumer_group" and not group:
        raise ConfigError(
            _child(path, "consumer_group"), "required when position is consumer_group"
        )
    topics = fields.get("topics")
    return MirrorMaker2Flow(
        account_id=_freshness_account(fields.get("account"), _child(path, "account"), accounts),
        region=region,
        source=source,
        target=target,
        topics=()
        if topics is None
        else tuple(
            _kafka_name(t, _item(_child(path, "topics"), i))
            for i, t in enumerate(_list(topics, _child(path, "topics")))
        ),
        position=position,
        consumer_group=group,
        offset_syncs_topic=_optional(
            fields,
            path,
            "offset_syncs_topic",
            f"mm2-offset-syncs.{target.alias}.internal",
            _kafka_name,
        ),
        heartbeats_topic=_optional(
            fields, path, "heartbeats_topic", f"{source.alias}.heartbeats", _kafka_name
        ),
    )


def _parse_kafka_cluster(value: object, path: str) -> KafkaClusterConfig:
    fields = _fields(_require(value, path), path, _KAFKA_CLUSTER_FIELDS)
    alias_path = _child(path, "alias")
    alias = _kafka_name(_require(fields.get("alias"), alias_path), alias_path)
    servers_path = _child(path, "bootstrap_servers")
    servers = tuple(
        _host_port(item, _item(servers_path, index))
        for index, item in enumerate(_list(fields.get("bootstrap_servers"), servers_path))
    )
    protocol = _optional(fields, path, "security_protocol", "PLAINTEXT", _security_protocol)
    mechanism = _optional(fields, path, "sasl_mechanism", "", _sasl_mechanism)
    if protocol.startswith("SASL_") and not mechanism:
        raise ConfigError(_child(path, "sasl_mechanism"), f"required with {protocol}")
    if mechanism and not protocol.startswith("SASL_"):
        raise ConfigError(
            _child(path, "security_protocol"), "must be SASL_SSL or SASL_PLAINTEXT with SASL"
        )
    username = _optional(fields, path, "sasl_username", "", _string)
    password_env = _optional(fields, path, "sasl_password_env", "", _env_name)
    if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (username and password_env):
        raise ConfigError(
            _child(path, "sasl_username"),
            f"sasl_username and sasl_password_env required with {mechanism}",
        )
    return KafkaClusterConfig(
        alias=alias,
        bootstrap_servers=servers,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=username,
        sasl_password_env=password_env,
        ca_file=_optional(fields, path, "ca_file", "", _string),
        msk_iam_region=_optional(fields, path, "msk_iam_region", "", _region_name),
    )


def _kafka_name(value: object, path: str) -> str:
    name = _string(value, path)
    if not _KAFKA_NAME_RE.fullmatch(name):
        raise ConfigError(path, "must be 1-249 of A-Z a-z 0-9 . _ -")
    return name


def _host_port(value: object, path: str) -> str:
    text = _string(value, path)
    host, sep, port = text.rpartition(":")
    if not sep or not _HOSTNAME_RE.fullmatch(host) or not port.isdigit():
        raise ConfigError(path, 'must be "host:port", e.g. "b-1.msk.example:9098"')
    if not 1 <= int(port) <= 65535:
        raise ConfigError(path, "port must be between 1 and 65535")
    return text


def _security_protocol(value: object, path: str) -> str:
    return _choice(value, path, KAFKA_SECURITY_PROTOCOLS)


def _sasl_mechanism(value: object, path: str) -> str:
    return _choice(value, path, KAFKA_SASL_MECHANISMS)


def _mm2_position(value: object, path: str) -> str:
    return _choice(value, path, MM2_POSITIONS)


def _choice(value: object, path: str, allowed: Sequence[str]) -> str:
    text = _string(value, path)
    if text not in allowed:
        raise ConfigError(path, f"must be one of {', '.join(allowed)}")
    return text


def _env_name(value: object, path: str) -> str:
    name = _string(value, path)
    if not _ENV_NAME_RE.fullmatch(name):
        raise ConfigError(path, "must be an environment variable name (A-Z, 0-9, _)")
    return name


def _region_name(value: object, path: str) -> str:
    region = _string(value, path)
    if not _REGION_RE.fullmatch(region):
        raise ConfigError(path, "must be an AWS region such as eu-west-1")
    return region


# --- Organizations discovery and sharding (exporter/discovery.py, exporter/sharding.py). --


def _parse_shard(value: object, path: str) -> Shard:
    try:
        return parse_shard(_string(value, path))
    except ShardError as exc:
        raise ConfigError(path, str(exc)) from exc


def _parse_organizations(value: object, path: str) -> OrganizationsConfig | None:
    if value is None:
        return None
    fields = _fields(value, path, _ORGANIZATIONS_FIELDS)
    template_path = _child(path, "role_arn_template")
    template = _parse_role_arn_template(
        _require(fields.get("role_arn_template"), template_path), template_path
    )
    return OrganizationsConfig(
        role_arn_template=template,
        management_role_arn=_optional(fields, path, "management_role_arn", None, _any_role_arn),
        external_id=_parse_external_id(
            fields.get("external_id"), _child(path, "external_id"), template
        ),
        session_name=_optional(
            fields, path, "session_name", DEFAULT_SESSION_NAME, _parse_session_name
        ),
        ous=_optional(fields, path, "ous", (), _parse_ou_ids),
        exclude_ous=_optional(fields, path, "exclude_ous", (), _parse_ou_ids),
        exclude_accounts=_optional(fields, path, "exclude_accounts", (), _parse_account_ids),
        refresh_interval_seconds=_optional(
            fields,
            path,
            "refresh_interval",
            DEFAULT_DISCOVERY_REFRESH_SECONDS,
            _parse_refresh_interval,
        ),
    )


def _parse_role_arn_template(value: object, path: str) -> str:
    template = _string(value, path)
    if template.count(ACCOUNT_ID_PLACEHOLDER) != 1:
        raise ConfigError(path, f"must contain {ACCOUNT_ID_PLACEHOLDER} exactly once")
    # Checked with a sample id, so the template yields a valid role ARN for every account.
    sample = "123456789012"
    match = _ROLE_ARN_RE.fullmatch(template.replace(ACCOUNT_ID_PLACEHOLDER, sample))
    if match is None or match["account"] != sample:
        raise ConfigError(
            path,
            "must be a role ARN with {account_id} as its account, "
            "e.g. arn:aws:iam::{account_id}:role/drwatch-read",
        )
    return template


def _any_role_arn(value: object, path: str) -> str:
    role_arn = _string(value, path)
    if _ROLE_ARN_RE.fullmatch(role_arn) is None:
        raise ConfigError(
            path, "must be an IAM role ARN such as arn:aws:iam::111111111111:role/drwatch-org"
        )
    return role_arn


def _parse_ou_ids(value: object, path: str) -> tuple[str, ...]:
    ids: list[str] = []
    for index, item in enumerate(_list(value, path)):
        item_path = _item(path, index)
        ou_id = _string(item, item_path)
        if not _OU_ID_RE.fullmatch(ou_id):
            raise ConfigError(
                item_path, "must be an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)"
            )
        if ou_id in ids:
            raise ConfigError(item_path, f"duplicate of {_item(path, ids.index(ou_id))}")
        ids.append(ou_id)
    return tuple(ids)


def _parse_account_ids(value: object, path: str) -> tuple[str, ...]:
    return tuple(
        _parse_account_id(item, _item(path, index))
        for index, item in enumerate(_list(value, path))
    )


def _parse_refresh_interval(value: object, path: str) -> float:
    interval = _duration(value, path)
    if not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        raise ConfigError(
            path, f"must be between {MIN_INTERVAL_SECONDS:g} and {MAX_INTERVAL_SECONDS:g} seconds"
        )
    return interval


def _parse_controls(value: object, path: str) -> ControlParameters:
    fields = _fields(value, path, _CONTROLS_FIELDS)
    defaults = ControlParameters()
    cadence_value = fields.get("restore_cadence")
    cadence = (
        defaults.restore_cadence_days
        if cadence_value is None
        else _parse_restore_cadence(cadence_value, _child(path, "restore_cadence"))
    )
    return ControlParameters(
        rpo_compliance=_optional(fields, path, "rpo_compliance", defaults.rpo_compliance, _share),
        job_success_rate=_optional(
            fields, path, "job_success_rate", defaults.job_success_rate, _share
        ),
        copy_max_age_seconds=_optional(
            fields, path, "copy_max_age", defaults.copy_max_age_seconds, _positive_duration
        ),
        replication_lag_seconds=_optional(
            fields, path, "replication_lag", defaults.replication_lag_seconds, _positive_duration
        ),
        kafka_message_lag=float(
            _optional(
                fields,
                path,
                "kafka_message_lag",
                int(defaults.kafka_message_lag),
                lambda v, p: _integer(v, p, 0),
            )
        ),
        restore_cadence_days=cadence,
        drill_cadence_days=_optional(
            fields,
            path,
            "drill_cadence",
            defaults.drill_cadence_days * DAY_SECONDS,
            _positive_duration,
        )
        / DAY_SECONDS,
        monitoring_coverage=_optional(
            fields, path, "monitoring_coverage", defaults.monitoring_coverage, _share
        ),
    )


def _share(value: object, path: str) -> float:
    """A share such as 0.99 (99%)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, "must be a number between 0 and 1, e.g. 0.99")
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ConfigError(path, "must be between 0 and 1, e.g. 0.99")
    return share


def _parse_restore_cadence(value: object, path: str) -> Mapping[str, float]:
    given = _mapping(value, path)
    cadence: dict[str, float] = {}
    for name, item in given.items():
        item_path = _child(path, name)
        if not _TIER_NAME_RE.fullmatch(name):
            raise ConfigError(item_path, "resource class names must match [a-z0-9_-]+")
        cadence[name] = _positive_duration(_require(item, item_path), item_path) / DAY_SECONDS
    return MappingProxyType(cadence)
