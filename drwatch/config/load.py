"""Reading the YAML file (strictly) and turning its data into a :class:`Config`."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any, Final

import yaml

from drwatch.config.accounts import parse_accounts
from drwatch.config.aws import parse_aws, parse_poller
from drwatch.config.catalogue import DEFAULT_ENABLED_COLLECTORS
from drwatch.config.collectors import parse_collectors
from drwatch.config.controls import parse_controls
from drwatch.config.fields import ROOT_FIELD, ConfigError, optional, section, string
from drwatch.config.freshness import parse_s3_freshness
from drwatch.config.history import parse_history
from drwatch.config.identifiers import regions as parse_regions
from drwatch.config.kafka import parse_kafka
from drwatch.config.listen import parse_listen_address
from drwatch.config.model import Config
from drwatch.config.organizations import parse_organizations, parse_shard
from drwatch.config.pricing import parse_pricing
from drwatch.config.retention import parse_retention
from drwatch.config.tiers import parse_tiers
from drwatch.core.sharding import Shard

# Field names accepted at the top level (also the order errors list them).
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
        raise ConfigError(ROOT_FIELD, "must be a mapping of fields such as accounts and regions")
    root = section(data, "", _TOP_FIELDS)
    listen_address = parse_listen_address(root.get("listen_address"), "listen_address")
    organizations = parse_organizations(root.get("organizations"), "organizations")
    # With discovery the static list is optional: it adds accounts or overrides their role.
    accounts = (
        ()
        if organizations is not None and root.get("accounts") is None
        else parse_accounts(root.get("accounts"), "accounts")
    )
    regions = parse_regions(root.get("regions"), "regions")
    tiers = parse_tiers(root.get("tiers"), "tiers")
    freshness = parse_s3_freshness(root.get("s3_freshness"), accounts, regions, tiers)
    # s3_freshness has nothing to do without targets, so targets are what switch it on.
    enabled_by_default = DEFAULT_ENABLED_COLLECTORS | (
        {"s3_freshness"} if freshness.targets else set()
    )
    kafka = parse_kafka(root.get("kafka"), accounts, regions)
    # Configured MirrorMaker 2 flows switch the kafka collector on (MSK needs no config).
    enabled_by_default |= {"kafka"} if kafka.mirrormaker2 else set()
    return Config(
        accounts=accounts,
        regions=regions,
        collectors=parse_collectors(root.get("collectors"), "collectors", enabled_by_default),
        tiers=tiers,
        s3_freshness=freshness,
        kafka=kafka,
        aws=parse_aws(root.get("aws"), "aws"),
        poller=parse_poller(root.get("poller"), "poller"),
        listen_address=listen_address,
        web_config_file=optional(root, "", "web_config_file", None, string),
        history=parse_history(root.get("history"), root.get("history_path")),
        organizations=organizations,
        shard=optional(root, "", "shard", Shard(), parse_shard),
        retention=parse_retention(root.get("retention"), "retention"),
        controls=parse_controls(root.get("controls"), "controls"),
        pricing=parse_pricing(root.get("pricing"), "pricing"),
    )


# --- Reading the file. --------------------------------------------------------------------


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
