"""Degrade by the record and by the optional call, not by the unit (issue 20).

Against the moto sandbox over HTTP: optional operations answering "not offered here"
(UnknownOperation, an HTML 404) or failing (500), and records with a field removed, per
account and region. The unit keeps everything else, counts the skip, and says so in metrics
and on the landing page.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from drwatch.core.model import UnitKey
from drwatch.exporter.collectors.isolation import (
    AVAILABLE,
    FAILED,
    UNAVAILABLE,
    Collection,
    FeatureMemory,
    is_unavailable,
)
from drwatch.exporter.runner import classify_error
from drwatch.exporter.server import unit_row
from drwatch.exporter.service import Exporter
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from tests.conftest import sandbox_config, sandbox_exporter
from tests.test_metrics import samples

# Every optional operation, as (signing name, operation, collector, feature).
OPTIONAL_OPERATIONS = (
    ("rds", "DescribeDBInstanceAutomatedBackups", "rds", "automated_backups"),
    ("elasticache", "DescribeServerlessCaches", "elasticache", "serverless"),
    ("elasticache", "DescribeServerlessCacheSnapshots", "elasticache", "serverless"),
    ("elasticache", "DescribeGlobalReplicationGroups", "elasticache", "global_datastores"),
    ("backup", "ListBackupJobSummaries", "backup", "job_summaries"),
    ("backup", "ListRestoreTestingPlans", "backup", "restore_testing"),
    ("kafka", "ListReplicators", "kafka", "replicators"),
    ("kafkaconnect", "ListConnectors", "kafka", "connect"),
    ("monitoring", "ListMetrics", "kafka", "metrics"),
    ("monitoring", "GetMetricData", "s3_replication", "replication_metrics"),
)
# Resources that only optional operations list.
OPTIONAL_RESOURCE_TYPES = {"serverless_cache"}


def exporter_for(sandbox: Sandbox, fleet: FleetPlan, **extra: Any) -> Exporter:
    return sandbox_exporter(sandbox_config(sandbox, fleet, **extra))


def resources(exporter: Exporter) -> set[tuple[str, ...]]:
    found = set()
    for status in exporter.poller.snapshot():
        for resource in status.observations.resources if status.observations else ():
            ref = resource.ref
            found.add((ref.account_id, ref.region, ref.service, ref.resource_type, ref.resource_id))
    return found


def runs(exporter: Exporter) -> dict[UnitKey, Any]:
    return {s.schedule.key: s.last_run for s in exporter.poller.snapshot()}


def requests(text: str, operation: str) -> float:
    return sum(
        v
        for k, v in samples(text, "drwatch_aws_api_requests_total").items()
        if dict(k)["operation"] == operation
    )


@pytest.fixture(scope="module")
def baseline(sandbox: Sandbox, fleet: FleetPlan) -> set[tuple[str, ...]]:
    exporter = exporter_for(sandbox, fleet)
    exporter.poller.run_round()
    assert all(run.success and not run.partial for run in runs(exporter).values())
    return resources(exporter)


@pytest.mark.parametrize(
    "reply",
    [FaultRule("UnknownOperation", 400), FaultRule(kind="html", http_status=404)],
    ids=["UnknownOperation", "html404"],
)
def test_every_optional_operation_unavailable_serves_every_core_resource(
    sandbox: Sandbox, fleet: FleetPlan, baseline: set[tuple[str, ...]], reply: FaultRule
) -> None:
    for service, operation, _, _ in OPTIONAL_OPERATIONS:
        sandbox.faults.add(
            FaultRule(**{**_fields(reply), "service": service, "operation": operation})
        )
    exporter = exporter_for(sandbox, fleet)
    exporter.poller.run_round()
    assert {key: run.error_code for key, run in runs(exporter).items() if not run.success} == {}
    core = {r for r in baseline if r[3] not in OPTIONAL_RESOURCE_TYPES}
    assert core <= resources(exporter)
    text = exporter.metrics.render().decode()
    unavailable = {
        (dict(k)["collector"], dict(k)["feature"])
        for k, v in samples(text, "drwatch_collector_feature_available").items()
        if v == 0
    }
    # Kafka's metrics are only asked for replicators, which are unavailable too.
    if reply.kind == "html":
        # An HTML page on a query-protocol API is unreadable (botocore: ResponseParserError):
        # the feature failed this poll; the unit still serves every core resource.
        assert any(run.partial for run in runs(exporter).values())
        return
    assert unavailable == {(c, f) for _, _, c, f in OPTIONAL_OPERATIONS} - {("kafka", "metrics")}
    # Not a partial poll: there is nothing to read there.
    assert set(samples(text, "drwatch_collector_partial").values()) == {0}
    # Remembered for a day: the next poll does not ask again.
    asked = {op: requests(text, op) for _, op, _, _ in OPTIONAL_OPERATIONS}
    exporter.poller.run_round()
    again = exporter.metrics.render().decode()
    assert {op: requests(again, op) for op in asked} == asked


def _fields(rule: FaultRule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in rule.__dataclass_fields__}


def test_an_optional_operation_failing_marks_the_unit_partial_for_that_poll(
    sandbox: Sandbox, fleet: FleetPlan, baseline: set[tuple[str, ...]]
) -> None:
    account, region = fleet.spec.accounts[0], fleet.spec.regions[0]
    exporter = exporter_for(sandbox, fleet)
    sandbox.faults.add(
        FaultRule(
            "InternalFailure",
            500,
            service="elasticache",
            operation="DescribeServerlessCaches",
            account_id=account,
            region=region,
        )
    )
    exporter.poller.run_round()
    key = UnitKey("elasticache", account, region)
    run = runs(exporter)[key]
    assert run.success
    assert run.partial
    assert run.features["serverless"] == FAILED
    served = resources(exporter)
    groups = {r for r in baseline if r[:2] == (account, region) and r[3] == "replication_group"}
    assert groups
    assert groups <= served
    text = exporter.metrics.render().decode()
    labels = {"collector": "elasticache", "account_id": account, "region": region}
    partial = samples(text, "drwatch_collector_partial")
    assert partial[tuple(sorted(labels.items()))] == 1
    assert unit_row(
        next(s for s in exporter.poller.snapshot() if s.schedule.key == key)
    ).health == ("partial")
    sandbox.faults.clear()
    exporter.poller.run_round()  # a failure is not remembered: asked again, and it answers
    assert runs(exporter)[key].features["serverless"] == AVAILABLE
    assert not runs(exporter)[key].partial


@pytest.mark.parametrize(
    ("collector", "service", "operation", "field", "resource_type"),
    [
        ("rds", "rds", "DescribeDBInstances", "DBInstanceIdentifier", "db_instance"),
        ("rds", "rds", "DescribeDBClusters", "DBClusterIdentifier", "db_cluster"),
        ("elasticache", "elasticache", "DescribeReplicationGroups", "ReplicationGroupId",
         "replication_group"),
        ("ebs", "ec2", "DescribeVolumes", "volumeId", "volume"),  # EC2 XML: wire name
    ],
)  # fmt: skip
def test_a_record_without_its_identity_is_skipped_and_the_rest_served(
    sandbox: Sandbox,
    fleet: FleetPlan,
    baseline: set[tuple[str, ...]],
    collector: str,
    service: str,
    operation: str,
    field: str,
    resource_type: str,
) -> None:
    mine = sorted(r for r in baseline if r[3] == resource_type)
    assert len(mine) >= 2, mine
    victim = mine[0]
    account, region, *_, resource_id = victim
    sandbox.faults.add(
        FaultRule(
            kind="remove_field",
            field=field,
            record=resource_id,
            service=service,
            operation=operation,
            account_id=account,
            region=region,
        )
    )
    exporter = exporter_for(sandbox, fleet)
    exporter.poller.run_round()
    run = runs(exporter)[UnitKey(collector, account, region)]
    assert run.success
    assert run.partial
    assert run.records_skipped == {"missing_field": 1}
    assert resources(exporter) == baseline - {victim}
    text = exporter.metrics.render().decode()
    skipped = {
        (dict(k)["collector"], dict(k)["account_id"], dict(k)["region"], dict(k)["reason"]): v
        for k, v in samples(text, "drwatch_collector_records_skipped_total").items()
    }
    assert skipped == {(collector, account, region, "missing_field"): 1}
    status = next(s for s in exporter.poller.snapshot() if s.schedule.key == run.unit)
    assert unit_row(status).skipped == 1


def test_an_automated_backup_without_region_is_not_taken_for_a_replica(
    sandbox: Sandbox, fleet: FleetPlan, baseline: set[tuple[str, ...]]
) -> None:
    exporter = exporter_for(sandbox, fleet)
    exporter.poller.run_round()
    before = {s.schedule.key: s.observations for s in exporter.poller.snapshot()}
    local = {key: count_local_backups(sandbox, key) for key in before if key.collector == "rds"}
    sandbox.faults.add(
        FaultRule(
            kind="remove_field", field="Region", operation="DescribeDBInstanceAutomatedBackups"
        )
    )
    sandbox.faults.add(
        FaultRule(
            kind="remove_field",
            field="DBInstanceArn",
            operation="DescribeDBInstanceAutomatedBackups",
        )
    )
    exporter.poller.run_round()
    for status in exporter.poller.snapshot():
        if status.schedule.key.collector != "rds":
            continue
        run, old, new = status.last_run, before[status.schedule.key], status.observations
        assert run is not None
        assert run.success
        assert old is not None
        assert new is not None
        assert new.resources == old.resources
        # Unplaceable backups are skipped and counted, never made cross-region replicas.
        assert not new.replication_states
        assert (
            run.records_skipped.get("missing_field", 0)
            == sum(1 for r in old.replication_states) + local[status.schedule.key]
        )


def count_local_backups(sandbox: Sandbox, key: UnitKey) -> int:
    rds = sandbox.client("rds", key.region, account_id=key.account_id)
    answer = rds.describe_db_instance_automated_backups()
    return sum(1 for b in answer["DBInstanceAutomatedBackups"] if b.get("Region") == key.region)


def test_an_html_404_becomes_a_short_error_code(sandbox: Sandbox, fleet: FleetPlan) -> None:
    account, region = fleet.spec.accounts[0], fleet.spec.regions[0]
    sandbox.faults.add(
        FaultRule(
            kind="html",
            http_status=404,
            service="rds",
            operation="DescribeDBInstances",
            account_id=account,
            region=region,
        )
    )
    exporter = exporter_for(sandbox, fleet, aws={"endpoint_url": sandbox.endpoint_url,
                                                 "max_attempts": 1})  # fmt: skip
    exporter.poller.run_round()
    run = runs(exporter)[UnitKey("rds", account, region)]
    assert not run.success
    assert run.error_code == "UnparseableResponse"
    assert "<" not in run.error_message
    assert len(run.error_message) <= 200


def test_classify_error_never_returns_a_body_whole() -> None:
    page = "<!DOCTYPE html><html>" + "x" * 5000 + "</html>"
    error = ClientError(
        {"Error": {"Code": "404", "Message": page}, "ResponseMetadata": {"HTTPStatusCode": 404}},
        "DescribeThings",
    )
    code, message = classify_error(error)
    assert code == "HttpNotFound"
    assert "html" not in message.lower()
    long = ClientError({"Error": {"Code": "Oops", "Message": "m" * 5000}}, "Op")
    assert len(classify_error(long)[1]) <= 200
    assert is_unavailable(error)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("UnknownOperation", 400, True),
        ("InvalidAction", 400, True),
        ("UnrecognizedClientException", 400, True),
        ("404", 404, True),
        ("NoSuchBucket", 404, False),
        ("ResourceNotFoundException", 404, False),
        ("InternalFailure", 500, False),
        ("Throttling", 400, False),
    ],
)
def test_what_counts_as_not_available_here(code: str, status: int, expected: bool) -> None:
    error = ClientError(
        {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )
    assert is_unavailable(error) is expected


def test_an_unavailable_feature_is_asked_again_after_a_day() -> None:
    now = [0.0]
    memory = FeatureMemory(lambda: now[0])
    calls: list[int] = []

    def unavailable() -> tuple[int, ...]:
        calls.append(1)
        raise ClientError({"Error": {"Code": "UnknownOperation", "Message": ""}}, "Op")

    def run() -> Collection:
        collection = Collection(("elasticache", "111111111111", "eu-west-1"), memory)
        assert collection.optional("serverless", unavailable, ()) == ()
        return collection

    assert run().features == {"serverless": UNAVAILABLE}
    now[0] = 86_399.0
    assert run().features == {"serverless": UNAVAILABLE}
    assert len(calls) == 1
    now[0] = 86_400.0
    run()
    assert len(calls) == 2
