"""`kafka:`: MirrorMaker 2 flows to watch and whether partitions get series of their own."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from drwatch.config.accounts import AccountConfig, account_of
from drwatch.config.fields import (
    ConfigError,
    boolean,
    child,
    list_of,
    one_of,
    optional,
    pattern,
    reject_duplicates,
    require,
    required,
    section,
    string,
)
from drwatch.config.identifiers import HOSTNAME_RE, configured_region, region

KAFKA_SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# AWS_MSK_IAM signs an OAUTHBEARER token with the process's AWS credentials.
KAFKA_SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM")
MM2_POSITIONS: Final = ("consumer_group", "offset_syncs")

_KAFKA_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,249}", re.ASCII)
_ENV_NAME_RE: Final = re.compile(r"[A-Z_][A-Z0-9_]*", re.ASCII)
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


def parse_kafka(
    value: object, accounts: Sequence[AccountConfig], regions: Sequence[str]
) -> KafkaConfig:
    fields = section(value, "kafka", _KAFKA_FIELDS)
    partition_detail = optional(fields, "kafka", "partition_detail", False, boolean)
    items = fields.get("mirrormaker2")
    if items is None:
        return KafkaConfig(partition_detail=partition_detail)
    path = "kafka.mirrormaker2"
    flows = list_of(items, path, lambda v, p: _parse_mm2_flow(v, p, accounts, regions))
    reject_duplicates([(flow.source.alias, flow.target.alias) for flow in flows], path)
    return KafkaConfig(partition_detail=partition_detail, mirrormaker2=flows)


def _parse_mm2_flow(
    value: object, path: str, accounts: Sequence[AccountConfig], regions: Sequence[str]
) -> MirrorMaker2Flow:
    fields = section(require(value, path), path, _MM2_FIELDS)
    flow_region = configured_region(fields.get("region"), child(path, "region"), regions)
    source = _parse_kafka_cluster(fields.get("source"), child(path, "source"))
    target = _parse_kafka_cluster(fields.get("target"), child(path, "target"))
    if source.alias == target.alias:
        raise ConfigError(child(child(path, "target"), "alias"), "must differ from source.alias")
    position = optional(
        fields, path, "position", "consumer_group", lambda v, p: one_of(v, p, MM2_POSITIONS)
    )
    group = optional(fields, path, "consumer_group", "", _kafka_name)
    if position == "consumer_group" and not group:
        raise ConfigError(child(path, "consumer_group"), "required when position is consumer_group")
    return MirrorMaker2Flow(
        account_id=account_of(fields.get("account"), child(path, "account"), accounts),
        region=flow_region,
        source=source,
        target=target,
        topics=optional(fields, path, "topics", (), lambda v, p: list_of(v, p, _kafka_name)),
        position=position,
        consumer_group=group,
        offset_syncs_topic=optional(
            fields,
            path,
            "offset_syncs_topic",
            f"mm2-offset-syncs.{target.alias}.internal",
            _kafka_name,
        ),
        heartbeats_topic=optional(
            fields, path, "heartbeats_topic", f"{source.alias}.heartbeats", _kafka_name
        ),
    )


def _parse_kafka_cluster(value: object, path: str) -> KafkaClusterConfig:
    fields = section(require(value, path), path, _KAFKA_CLUSTER_FIELDS)
    alias = required(fields, path, "alias", _kafka_name)
    servers_path = child(path, "bootstrap_servers")
    servers = list_of(fields.get("bootstrap_servers"), servers_path, _host_port)
    protocol = optional(
        fields,
        path,
        "security_protocol",
        "PLAINTEXT",
        lambda v, p: one_of(v, p, KAFKA_SECURITY_PROTOCOLS),
    )
    mechanism = optional(
        fields, path, "sasl_mechanism", "", lambda v, p: one_of(v, p, KAFKA_SASL_MECHANISMS)
    )
    if protocol.startswith("SASL_") and not mechanism:
        raise ConfigError(child(path, "sasl_mechanism"), f"required with {protocol}")
    if mechanism and not protocol.startswith("SASL_"):
        raise ConfigError(
            child(path, "security_protocol"), "must be SASL_SSL or SASL_PLAINTEXT with SASL"
        )
    username = optional(fields, path, "sasl_username", "", string)
    password_env = optional(fields, path, "sasl_password_env", "", _env_name)
    if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (username and password_env):
        raise ConfigError(
            child(path, "sasl_username"),
            f"sasl_username and sasl_password_env required with {mechanism}",
        )
    return KafkaClusterConfig(
        alias=alias,
        bootstrap_servers=servers,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=username,
        sasl_password_env=password_env,
        ca_file=optional(fields, path, "ca_file", "", string),
        msk_iam_region=optional(fields, path, "msk_iam_region", "", region),
    )


def _kafka_name(value: object, path: str) -> str:
    return pattern(value, path, _KAFKA_NAME_RE, "must be 1-249 of A-Z a-z 0-9 . _ -")


def _env_name(value: object, path: str) -> str:
    return pattern(value, path, _ENV_NAME_RE, "must be an environment variable name (A-Z, 0-9, _)")


def _host_port(value: object, path: str) -> str:
    text = string(value, path)
    host, sep, port = text.rpartition(":")
    if not sep or not HOSTNAME_RE.fullmatch(host) or not port.isdigit():
        raise ConfigError(path, 'must be "host:port", e.g. "b-1.msk.example:9098"')
    if not 1 <= int(port) <= 65535:
        raise ConfigError(path, "port must be between 1 and 65535")
    return text
