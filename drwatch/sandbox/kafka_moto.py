"""MSK Replicator and MSK Connect reads moto 5.2 lacks, added to moto in-process for the sandbox.

moto's kafka backend knows clusters only. Added here:

- kafka ListReplicators (maxResults 1..100, nextToken) and DescribeReplicator, from
  replicators the fleet plans (`add_replicator`), kept on moto's kafka backend so moto's
  reset forgets them;
- kafkaconnect ListConnectors (maxResults 1..100, nextToken) and DescribeConnector. moto has
  no kafkaconnect service at all: its signing name is routed to the kafka backend app, which
  gets the two routes and a response class that resolves operations from botocore's
  kafkaconnect model.

Every answer is shaped by botocore's output model (the sandbox clients validate it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import moto.kafka.urls
from moto.core.responses import BaseResponse
from moto.kafka.models import KafkaBackend, kafka_backends
from moto.kafka.responses import KafkaResponse
from moto.moto_server import werkzeug_app

INSTALLED_MARKER = "_drwatch_kafka_extensions_installed"
STATE_ATTRIBUTE = "_drwatch_kafka_state"
PAGE_SIZE_MAX = 100


@dataclass(frozen=True, slots=True)
class SandboxReplicator:
    name: str
    arn: str
    state: str  # RUNNING | CREATING | UPDATING | DELETING | FAILED
    source_alias: str
    target_alias: str
    source_cluster_arn: str
    target_cluster_arn: str
    topics_to_replicate: tuple[str, ...]
    created: datetime
    state_code: str = ""
    state_message: str = ""


@dataclass(frozen=True, slots=True)
class SandboxConnector:
    name: str
    arn: str
    state: str  # RUNNING | FAILED | ...
    bootstrap_servers: str
    workers: int
    tasks_max: int
    created: datetime
    state_code: str = ""
    state_message: str = ""


@dataclass(slots=True)
class KafkaSandboxState:
    replicators: dict[str, SandboxReplicator] = field(default_factory=dict)  # by ARN
    connectors: dict[str, SandboxConnector] = field(default_factory=dict)  # by ARN


def kafka_state(account_id: str, region: str) -> KafkaSandboxState:
    backend: KafkaBackend = kafka_backends[account_id][region]
    # Kept on the backend object so moto's reset forgets it with everything else.
    state: KafkaSandboxState = backend.__dict__.setdefault(STATE_ATTRIBUTE, KafkaSandboxState())
    return state


def add_replicator(account_id: str, region: str, replicator: SandboxReplicator) -> None:
    kafka_state(account_id, region).replicators[replicator.arn] = replicator


def add_connector(account_id: str, region: str, connector: SandboxConnector) -> None:
    kafka_state(account_id, region).connectors[connector.arn] = connector


class KafkaConnectResponse(BaseResponse):
    """kafkaconnect requests (routed through the kafka app: moto has no such service)."""

    def __init__(self) -> None:
        super().__init__(service_name="kafkaconnect")

    def list_connectors(self) -> str:
        state = kafka_state(self.current_account, self.region)
        connectors = sorted(state.connectors.values(), key=lambda c: c.name)
        items, token = _page(connectors, self._query("maxResults"), self._query("nextToken"))
        body: dict[str, Any] = {"connectors": [connector_summary(c) for c in items]}
        if token:
            body["nextToken"] = token
        return json.dumps(body)

    def describe_connector(self) -> str:
        arn = unquote(self.path.split("/v1/connectors/")[-1])
        connector = kafka_state(self.current_account, self.region).connectors.get(arn)
        if connector is None:
            raise NotFound(f"connector {arn} not found")
        body = connector_summary(connector)
        body["connectorConfiguration"] = {
            "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector",
            "tasks.max": str(connector.tasks_max),
        }
        if connector.state_code:
            body["stateDescription"] = {
                "code": connector.state_code,
                "message": connector.state_message,
            }
        return json.dumps(body)

    def _query(self, name: str) -> str | None:
        values = self.querystring.get(name)
        return str(values[0]) if values else None


class NotFound(Exception):  # noqa: N818 - rendered by moto as a 500 only if ever raised
    pass


def install_kafka_extensions() -> None:
    """Add the routes and handlers (idempotent; before the first kafka request)."""
    if getattr(KafkaResponse, INSTALLED_MARKER, False):
        return
    moto.kafka.urls.url_paths["{0}/replication/v1/replicators$"] = KafkaResponse.dispatch
    moto.kafka.urls.url_paths["{0}/replication/v1/replicators/(?P<replicatorArn>.+)$"] = (
        KafkaResponse.dispatch
    )
    moto.kafka.urls.url_paths["{0}/v1/connectors$"] = KafkaConnectResponse.dispatch
    moto.kafka.urls.url_paths["{0}/v1/connectors/(?P<connectorArn>.+)$"] = (
        KafkaConnectResponse.dispatch
    )
    werkzeug_app.SIGNING_ALIASES["kafkaconnect"] = "kafka"
    # moto dispatches on method names found on the class, so adding one adds the action.
    setattr(KafkaResponse, "list_replicators", _list_replicators)  # noqa: B010
    setattr(KafkaResponse, "describe_replicator", _describe_replicator)  # noqa: B010
    setattr(KafkaResponse, INSTALLED_MARKER, True)


def _list_replicators(self: KafkaResponse) -> str:
    state = kafka_state(self.current_account, self.region)
    replicators = sorted(state.replicators.values(), key=lambda r: r.name)
    max_results = self.querystring.get("maxResults")
    token = self.querystring.get("nextToken")
    items, next_token = _page(
        replicators,
        str(max_results[0]) if max_results else None,
        str(token[0]) if token else None,
    )
    body: dict[str, Any] = {"replicators": [replicator_summary(r) for r in items]}
    if next_token:
        body["nextToken"] = next_token
    return json.dumps(body)


def _describe_replicator(self: KafkaResponse) -> str:
    arn = unquote(self.parsed_url.path.split("/replication/v1/replicators/")[-1])
    replicator = kafka_state(self.current_account, self.region).replicators.get(arn)
    if replicator is None:
        raise NotFound(f"replicator {arn} not found")
    return json.dumps(replicator_description(replicator))


def _page(items: list[Any], max_results: str | None, token: str | None) -> tuple[list[Any], str]:
    size = min(int(max_results), PAGE_SIZE_MAX) if max_results else PAGE_SIZE_MAX
    start = int(token) if token else 0
    end = start + size
    return items[start:end], str(end) if end < len(items) else ""


def clusters_of(replicator: SandboxReplicator) -> list[dict[str, Any]]:
    return [
        {
            "amazonMskCluster": {"mskClusterArn": replicator.source_cluster_arn},
            "kafkaClusterAlias": replicator.source_alias,
        },
        {
            "amazonMskCluster": {"mskClusterArn": replicator.target_cluster_arn},
            "kafkaClusterAlias": replicator.target_alias,
        },
    ]


def replicator_summary(replicator: SandboxReplicator) -> dict[str, Any]:
    return {
        "creationTime": replicator.created.isoformat(),
        "currentVersion": "K1",
        "isReplicatorReference": False,
        "kafkaClustersSummary": clusters_of(replicator),
        "replicationInfoSummaryList": [
            {
                "sourceKafkaClusterAlias": replicator.source_alias,
                "targetKafkaClusterAlias": replicator.target_alias,
            }
        ],
        "replicatorArn": replicator.arn,
        "replicatorName": replicator.name,
        "replicatorState": replicator.state,
    }


def replicator_description(replicator: SandboxReplicator) -> dict[str, Any]:
    account = replicator.arn.split(":")[4]
    body = {
        **replicator_summary(replicator),
        "kafkaClusters": [
            {**cluster, "vpcConfig": {"subnetIds": ["subnet-0sandbox"]}}
            for cluster in clusters_of(replicator)
        ],
        "replicationInfoList": [
            {
                "consumerGroupReplication": {"consumerGroupsToReplicate": [".*"]},
                "sourceKafkaClusterAlias": replicator.source_alias,
                "targetKafkaClusterAlias": replicator.target_alias,
                "targetCompressionType": "NONE",
                "topicReplication": {
                    "topicsToReplicate": list(replicator.topics_to_replicate),
                    "copyTopicConfigurations": True,
                    "detectAndCopyNewTopics": True,
                },
            }
        ],
        "serviceExecutionRoleArn": f"arn:aws:iam::{account}:role/msk-replicator",
        "tags": {},
    }
    body.pop("kafkaClustersSummary")
    body.pop("replicationInfoSummaryList")
    if replicator.state_code:
        body["stateInfo"] = {"code": replicator.state_code, "message": replicator.state_message}
    return body


def connector_summary(connector: SandboxConnector) -> dict[str, Any]:
    return {
        "capacity": {"provisionedCapacity": {"mcuCount": 1, "workerCount": connector.workers}},
        "connectorArn": connector.arn,
        "connectorName": connector.name,
        "connectorState": connector.state,
        "creationTime": connector.created.isoformat(),
        "currentVersion": "1",
        "kafkaCluster": {
            "apacheKafkaCluster": {
                "bootstrapServers": connector.bootstrap_servers,
                "vpc": {"securityGroups": ["sg-0sandbox"], "subnets": ["subnet-0sandbox"]},
            }
        },
        "kafkaClusterClientAuthentication": {"authenticationType": "IAM"},
        "kafkaClusterEncryptionInTransit": {"encryptionType": "TLS"},
        "kafkaConnectVersion": "3.7.x",
    }
