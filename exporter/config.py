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

_T = TypeVar("_T")

__all__ = [
    "DEFAULT_ENABLED_COLLECTORS",
    "DEFAULT_HISTORY_PATH",
    "DEFAULT_HISTORY_RAW_DAYS",
    "DEFAULT_HISTORY_RETENTION_DAYS",
    "DEFAULT_INTERVALS",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_PORT",
    "DEFAULT_TIER_TARGETS",
    "KNOWN_COLLECTORS",
    "AccountConfig",
    "AwsConfig",
    "CollectorConfig",
    "Config",
    "ConfigError",
    "FreshnessTarget",
    "HistoryConfig",
    "PollerConfig",
    "S3FreshnessConfig",
    "TierConfig",
    "TierTarget",
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


@dataclass(frozen=True, slots=True)
class TierTarget:
    """Recovery targets of one tier, in seconds."""

    rpo_seconds: float
    rto_seconds: float


# --- Defaults: the one place every default value lives. ---------------------

DEFAULT_PORT: Final = 9638
DEFAULT_LISTEN_ADDRESS: Final = f"0.0.0.0:{DEFAULT_PORT}"
DEFAULT_HISTORY_PATH: Final = "drwatch-history.db"
# Raw polls are kept 35 days (a month's report plus margin), then rolled up per day;
# rollups are kept about 7 years (2557 days), a common audit-evidence horizon.
DEFAULT_HISTORY_RAW_DAYS: Final = 35
DEFAULT_HISTORY_RETENTION_DAYS: Final = 2557
MAX_HISTORY_DAYS: Final = 36600
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

RETRY_MODES: Final[tuple[str, ...]] = ("standard", "adaptive")
DEFAULT_RETRY_MODE: Final = "standard"
DEFAULT_MAX_ATTEMPTS: Final = 5
MAX_ATTEMPTS_LIMIT: Final = 20
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_READ_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_MAX_POOL_CONNECTIONS: Final = 10

DEFAULT_MAX_WORKERS: Final = 8
MAX_WORKERS_LIMIT: Final = 64


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
    history: HistoryConfig = HistoryConfig()
    s3_freshness: S3FreshnessConfig = S3FreshnessConfig()

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
    accounts = _parse_accounts(root.get("accounts"), "accounts")
    regions = _parse_regions(root.get("regions"), "regions")
    tiers = _parse_tiers(root.get("tiers"), "tiers")
    freshness = _parse_s3_freshness(root.get("s3_freshness"), accounts, regions, tiers)
    # s3_freshness has nothing to do without targets, so targets are what switch it on.
    enabled_by_default = DEFAULT_ENABLED_COLLECTORS | (
        {"s3_freshness"} if freshness.targets else set()
    )
    return Config(
        accounts=accounts,
        regions=regions,
        collectors=_parse_collectors(root.get("collectors"), "collectors", enabled_by_default),
        tiers=tiers,
        s3_freshness=freshness,
        aws=_parse_aws(root.get("aws"), "aws"),
        poller=_parse_poller(root.get("poller"), "poller"),
        listen_address=listen_address,
        history=_parse_history(root.get("history"), root.get("history_path")),
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
    given = _mapping(value, path)
    if not given:
        raise ConfigError(path, "must define at least one tier")
    targets: dict[str, TierTarget] = {}
    for name, target in given.items():
        target_path = _child(path, name)
        # Lower case only, because tier_for lower-cases the tag value.
        if not _TIER_NAME_RE.fullmatch(name):
            raise ConfigError(target_path, "tier names must match [a-z0-9_-]+")
        targets[name] = _parse_tier_target(target, target_path)
    return MappingProxyType(targets)


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
