"""The simulated AWS itself: fleet plans, seeded state read back through boto3, accounts,
pagination, fault injection and response validation."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from drwatch.sandbox.awsprotocol import RequestScope
from drwatch.sandbox.faults import FaultInjector, FaultRule, rule_from_dict, rule_to_dict
from drwatch.sandbox.fleet import (
    HOSTILE_TEAM,
    UNICODE_TEAM,
    FleetPlan,
    FleetSpec,
    PlannedDatabase,
    plan_fleet,
)
from drwatch.sandbox.seed import seed_fleet
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.validation import InvalidSandboxResponse, validate_response

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SPEC = FleetSpec(now=NOW)
ACCOUNT_A, ACCOUNT_B = SPEC.accounts
REGION_1, REGION_2 = SPEC.regions
# Accounts the seeded fleet does not use, so tests that create resources cannot disturb it.
LONELY_ACCOUNT = "333333333333"
PAGING_ACCOUNT, PAGING_REGION = "555555555555", "eu-central-1"
NO_RETRIES = Config(retries={"total_max_attempts": 1})
RDS_MODEL = botocore.session.get_session().get_service_model("rds")


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        running.reset()
        yield running


@pytest.fixture(scope="module")
def fleet(sandbox: Sandbox) -> FleetPlan:
    plan = plan_fleet(SPEC)
    seed_fleet(sandbox, plan)
    return plan


@pytest.fixture
def faults(sandbox: Sandbox) -> Iterator[FaultInjector]:
    yield sandbox.faults
    sandbox.faults.clear()


def client(
    sandbox: Sandbox,
    service: str,
    region: str = REGION_1,
    account: str | None = None,
    config: Config | None = None,
) -> Any:
    """A sandbox client, after proving that it validates every response it receives."""
    made = sandbox.client(service, region, account_id=account, config=config)
    assert_validates_responses(made)
    return made


def assert_validates_responses(made: Any) -> None:
    model = made.meta.service_model.operation_model(made.meta.service_model.operation_names[0])
    if model.output_shape is None or not model.output_shape.members:
        return
    broken = {next(iter(model.output_shape.members)): object()}
    with pytest.raises(InvalidSandboxResponse):
        made.meta.events.emit(
            f"after-call.{made.meta.service_model.service_id.hyphenize()}.{model.name}",
            http_response=None, parsed=broken, model=model, context={},
        )


def pages(rds: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in rds.get_paginator(operation).paginate(**kwargs):
        items.extend(page[key])
    return items


def tags(db: PlannedDatabase) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in db.tags]


def units(plan: FleetPlan) -> list[tuple[str, str]]:
    return list(plan.spec.units)


# --- plan ---------------------------------------------------------------------------------


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    assert plan_fleet(SPEC) == plan_fleet(FleetSpec(now=NOW))
    assert plan_fleet(SPEC) != plan_fleet(FleetSpec(now=NOW, seed=7))


def test_spec_refuses_naive_or_non_utc_now() -> None:
    with pytest.raises(ValueError, match="now"):
        FleetSpec(now=datetime(2026, 11, 1, 12, 0))
    with pytest.raises(ValueError, match="now"):
        FleetSpec(now=NOW.astimezone(timezone(timedelta(hours=2))))


@pytest.mark.parametrize(("instances", "clusters"), [(4, 0), (1, 3), (3, 1), (7, 5), (24, 8)])
def test_every_scenario_appears_from_four_databases(instances: int, clusters: int) -> None:
    plan = plan_fleet(FleetSpec(now=NOW, rds_instances=instances, aurora_clusters=clusters))
    scenarios = Counter(db.scenario for db in plan.databases)
    assert set(scenarios) == {"healthy", "stale", "backups_disabled", "snapshot_failing"}
    assert all(db.kind == "db_instance" for db in plan.databases
               if db.scenario == "backups_disabled")
    if instances >= 2:
        assert any(db.backup_replication_region for db in plan.databases)
        assert any(db.snapshot_copy_region and db.kind == "db_instance" for db in plan.databases)


def test_large_fleet_has_the_intended_mix() -> None:
    plan = plan_fleet(FleetSpec(now=NOW, rds_instances=180, aurora_clusters=20))
    shares = {k: v / 200 for k, v in Counter(db.scenario for db in plan.databases).items()}
    assert shares == {"healthy": 0.6, "stale": 0.15, "backups_disabled": 0.1,
                      "snapshot_failing": 0.15}
    engines = Counter(db.engine for db in plan.databases)
    assert set(engines) == {"postgres", "mysql", "aurora-postgresql", "aurora-mysql"}
    assert len({db.identifier for db in plan.databases}) == 200


def test_planned_histories_fit_their_scenario() -> None:
    plan = plan_fleet(SPEC)
    for db in plan.databases:
        own = db.snapshots_in(db.region)
        automated = sorted((s for s in own if s.snapshot_type == "automated"),
                           key=lambda s: s.created)
        assert all(db.created < s.created <= NOW for s in db.snapshots)
        if db.scenario == "backups_disabled":
            assert db.backup_retention_days == 0
            assert db.latest_restorable_time is None
            assert db.earliest_restorable_time is None
            assert not automated
            assert len(own) <= 1
            continue
        assert db.latest_restorable_time is not None
        assert db.earliest_restorable_time is not None
        lag = NOW - db.latest_restorable_time
        assert db.backup_retention_days in (7, 14, 35)
        assert db.earliest_restorable_time == automated[0].created
        assert automated[-1].created < db.latest_restorable_time
        if db.scenario == "healthy":
            assert timedelta(minutes=1) <= lag <= timedelta(minutes=4)
        elif db.scenario == "stale":
            assert timedelta(hours=2) <= lag <= timedelta(hours=30)
        else:
            assert lag > timedelta(hours=1)
            assert automated[-1].status == "failed"
            assert {s.status for s in automated[:-1]} == {"available"}


def test_plan_carries_untrusted_and_missing_tags() -> None:
    plan = plan_fleet(SPEC)
    teams = {db.tag("team") for db in plan.databases}
    assert {HOSTILE_TEAM, UNICODE_TEAM} <= teams
    assert any(db.tag(SPEC.tier_tag_key) is None for db in plan.databases)
    assert {db.tag(SPEC.tier_tag_key) for db in plan.databases} >= {"premium", "standard",
                                                                     "basic"}


# --- seeded state, read back through boto3 ------------------------------------------------


def test_instances_read_back_as_planned(sandbox: Sandbox, fleet: FleetPlan) -> None:
    for account, region in units(fleet):
        rds = client(sandbox, "rds", region, account)
        listed = {i["DBInstanceIdentifier"]: i
                  for i in pages(rds, "describe_db_instances", "DBInstances")}
        planned = fleet.in_unit(account, region)
        members = {db.member_identifier: db for db in planned if db.member_identifier}
        instances = {db.identifier: db for db in planned if db.kind == "db_instance"}
        assert set(listed) == set(instances) | set(members)
        for name, db in instances.items():
            got = listed[name]
            assert got.get("LatestRestorableTime") == db.latest_restorable_time
            assert got["BackupRetentionPeriod"] == db.backup_retention_days
            assert got["StorageEncrypted"] == db.storage_encrypted
            assert got["DeletionProtection"] == db.deletion_protection
            assert got["AllocatedStorage"] == db.allocated_gib
            assert got["InstanceCreateTime"] == db.created
            assert (got["Engine"], got["EngineVersion"]) == (db.engine, db.engine_version)
            assert got["PreferredBackupWindow"] == db.preferred_backup_window
            assert got["TagList"] == tags(db)
            assert "DBClusterIdentifier" not in got
            assert ("DBInstanceAutomatedBackupsReplications" in got) == bool(
                db.backup_replication_region)
        for name, cluster in members.items():
            assert listed[name]["DBClusterIdentifier"] == cluster.identifier
    resource_ids = [i["DbiResourceId"] for a, r in units(fleet)
                    for i in pages(client(sandbox, "rds", r, a), "describe_db_instances",
                                   "DBInstances")]
    assert len(set(resource_ids)) == len(resource_ids)


def test_clusters_read_back_as_planned(sandbox: Sandbox, fleet: FleetPlan) -> None:
    for account, region in units(fleet):
        rds = client(sandbox, "rds", region, account)
        listed = {c["DBClusterIdentifier"]: c
                  for c in pages(rds, "describe_db_clusters", "DBClusters")}
        planned = {db.identifier: db for db in fleet.in_unit(account, region)
                   if db.kind == "db_cluster"}
        assert set(listed) == set(planned)
        for name, db in planned.items():
            got = listed[name]
            assert got["Status"] == "available"
            assert got["LatestRestorableTime"] == db.latest_restorable_time
            assert got["EarliestRestorableTime"] == db.earliest_restorable_time
            assert got["BackupRetentionPeriod"] == db.backup_retention_days
            assert got["StorageEncrypted"] == db.storage_encrypted
            assert got["ClusterCreateTime"] == db.created
            assert got["TagList"] == tags(db)
            assert [m["DBInstanceIdentifier"] for m in got["DBClusterMembers"]] == [
                db.member_identifier]


def planned_snapshots(plan: FleetPlan, account: str, region: str, kind: str
                      ) -> dict[str, tuple[PlannedDatabase, Any]]:
    return {s.identifier: (db, s) for db in plan.databases
            if db.account_id == account and db.kind == kind for s in db.snapshots_in(region)}


def test_snapshots_read_back_as_planned(sandbox: Sandbox, fleet: FleetPlan) -> None:
    copies = 0
    for account, region in units(fleet):
        rds = client(sandbox, "rds", region, account)
        listed = {s["DBSnapshotIdentifier"]: s
                  for s in pages(rds, "describe_db_snapshots", "DBSnapshots")}
        planned = planned_snapshots(fleet, account, region, "db_instance")
        assert set(listed) == set(planned)
        for name, (db, snap) in planned.items():
            got = listed[name]
            assert got["DBInstanceIdentifier"] == db.identifier
            assert got["SnapshotType"] == snap.snapshot_type
            assert got["SnapshotCreateTime"] == snap.created
            assert got["Status"] == snap.status
            assert got["AllocatedStorage"] == snap.allocated_gib
            assert got["Encrypted"] == snap.encrypted
            assert got["DBSnapshotArn"] == db.snapshot_arn(snap)
            if snap.copy_of_region:
                copies += 1
                source = next(s for s in db.snapshots if s.identifier == snap.copied_from)
                assert got["SourceRegion"] == db.region
                assert got["SourceDBSnapshotIdentifier"] == db.snapshot_arn(source)
                assert got["OriginalSnapshotCreateTime"] == source.created
            else:
                assert "SourceRegion" not in got
    assert copies >= 1


def test_cluster_snapshots_read_back_as_planned(sandbox: Sandbox, fleet: FleetPlan) -> None:
    for account, region in units(fleet):
        rds = client(sandbox, "rds", region, account)
        listed = {s["DBClusterSnapshotIdentifier"]: s
                  for s in pages(rds, "describe_db_cluster_snapshots", "DBClusterSnapshots")}
        planned = planned_snapshots(fleet, account, region, "db_cluster")
        assert set(listed) == set(planned)
        for name, (db, snap) in planned.items():
            got = listed[name]
            assert got["DBClusterIdentifier"] == db.identifier
            assert (got["SnapshotType"], got["Status"]) == (snap.snapshot_type, snap.status)
            assert got["SnapshotCreateTime"] == snap.created
            assert got["StorageEncrypted"] == snap.encrypted
            if snap.copy_of_region:
                source = next(s for s in db.snapshots if s.identifier == snap.copied_from)
                assert got["SourceDBClusterSnapshotArn"] == db.snapshot_arn(source)


def test_automated_backups_read_back_as_planned(sandbox: Sandbox, fleet: FleetPlan) -> None:
    replicas_seen = 0
    for account, region in units(fleet):
        rds = client(sandbox, "rds", region, account)
        backups = pages(rds, "describe_db_instance_automated_backups",
                        "DBInstanceAutomatedBackups")
        own = {b["DBInstanceIdentifier"]: b for b in backups if b["Status"] == "active"}
        replicas = {b["DBInstanceIdentifier"]: b for b in backups if b["Status"] == "replicating"}
        planned = {db.identifier: db for db in fleet.in_unit(account, region)
                   if db.kind == "db_instance" and db.backup_retention_days}
        assert set(own) == set(planned)
        for name, db in planned.items():
            window = own[name]["RestoreWindow"]
            assert (window["EarliestTime"], window["LatestTime"]) == (
                db.earliest_restorable_time, db.latest_restorable_time)
            assert own[name]["Region"] == region
        sources = {db.identifier: db for db in fleet.databases
                   if db.account_id == account and db.backup_replication_region == region}
        assert set(replicas) == set(sources)
        for name, db in sources.items():
            replica = replicas[name]
            replicas_seen += 1
            assert (replica["Region"], replica["DBInstanceArn"]) == (db.region, db.arn)
            assert (replica["RestoreWindow"]["EarliestTime"],
                    replica["RestoreWindow"]["LatestTime"]) == (
                db.replica_earliest_restorable_time, db.replica_latest_restorable_time)
            source = client(sandbox, "rds", db.region, account).describe_db_instances(
                DBInstanceIdentifier=db.identifier)["DBInstances"][0]
            assert source["DBInstanceAutomatedBackupsReplications"] == [
                {"DBInstanceAutomatedBackupsArn": replica["DBInstanceAutomatedBackupsArn"]}]
        assert rds.describe_db_cluster_automated_backups()["DBClusterAutomatedBackups"] == []
    assert replicas_seen >= 1


# --- accounts and pagination -------------------------------------------------------------


def test_assumed_role_keys_select_the_account(sandbox: Sandbox) -> None:
    a = client(sandbox, "rds", REGION_1, LONELY_ACCOUNT)
    b = client(sandbox, "rds", REGION_1, ACCOUNT_B)
    assert client(sandbox, "sts", REGION_1, LONELY_ACCOUNT).get_caller_identity()[
        "Account"] == LONELY_ACCOUNT
    a.create_db_instance(DBInstanceIdentifier="only-in-lonely-account", Engine="postgres",
                         DBInstanceClass="db.t4g.micro", MasterUsername="drwatch",
                         MasterUserPassword="sandbox-only-password", AllocatedStorage=20)
    in_a = {i["DBInstanceIdentifier"] for i in a.describe_db_instances()["DBInstances"]}
    in_b = {i["DBInstanceIdentifier"] for i in pages(b, "describe_db_instances", "DBInstances")}
    assert "only-in-lonely-account" in in_a
    assert "only-in-lonely-account" not in in_b
    in_default = client(sandbox, "rds", REGION_1).describe_db_instances()["DBInstances"]
    assert in_default == []


def test_describe_calls_page_at_max_records(sandbox: Sandbox) -> None:
    plan = plan_fleet(FleetSpec(now=NOW, accounts=(PAGING_ACCOUNT,), regions=(PAGING_REGION,),
                                rds_instances=10, aurora_clusters=8))
    seed_fleet(sandbox, plan)
    rds = client(sandbox, "rds", PAGING_REGION, PAGING_ACCOUNT)
    for operation, key, kind in (
        ("describe_db_snapshots", "DBSnapshots", "db_instance"),
        ("describe_db_cluster_snapshots", "DBClusterSnapshots", "db_cluster"),
    ):
        expected = sum(len(db.snapshots) for db in plan.databases if db.kind == kind)
        assert expected > 100
        full_pages = list(rds.get_paginator(operation).paginate())
        assert [len(p[key]) for p in full_pages[:-1]] == [100] * (len(full_pages) - 1)
        small_pages = list(rds.get_paginator(operation).paginate(
            PaginationConfig={"PageSize": 20}))
        assert len(small_pages) == -(-expected // 20)
        names = [s[key[:-1] + "Identifier"] for p in small_pages for s in p[key]]
        assert len(names) == len(set(names)) == expected
    backups = list(rds.get_paginator("describe_db_instance_automated_backups").paginate(
        PaginationConfig={"PageSize": 20}))
    assert sum(len(p["DBInstanceAutomatedBackups"]) for p in backups) == sum(
        1 for db in plan.databases if db.kind == "db_instance" and db.backup_retention_days)
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        rds.describe_db_snapshots(MaxRecords=500)


# --- fault injection ----------------------------------------------------------------------


def error_code(call: Any, **kwargs: Any) -> str | None:
    try:
        call(**kwargs)
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return None


def test_query_protocol_fault_hits_only_its_operation(
    sandbox: Sandbox, faults: FaultInjector
) -> None:
    faults.add(FaultRule("Throttling", service="rds", operation="DescribeDBInstances"))
    rds = client(sandbox, "rds", REGION_1, LONELY_ACCOUNT, NO_RETRIES)
    assert error_code(rds.describe_db_instances) == "Throttling"
    assert error_code(rds.describe_db_clusters) is None


def test_json_protocol_fault(sandbox: Sandbox, faults: FaultInjector) -> None:
    faults.add(FaultRule("InternalServerError", 500, service="dynamodb"))
    dynamodb = client(sandbox, "dynamodb", REGION_1, LONELY_ACCOUNT, NO_RETRIES)
    with pytest.raises(ClientError) as raised:
        dynamodb.list_tables()
    assert raised.value.response["Error"]["Code"] == "InternalServerError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert raised.value.response["Error"]["Message"] == "injected by drwatch sandbox"


def test_rest_protocol_faults_match_the_operation(sandbox: Sandbox, faults: FaultInjector) -> None:
    s3 = client(sandbox, "s3", "us-east-1", LONELY_ACCOUNT, NO_RETRIES)
    s3.create_bucket(Bucket="drwatch-fault-test")
    backup = client(sandbox, "backup", REGION_1, LONELY_ACCOUNT, NO_RETRIES)
    faults.add(FaultRule("NoSuchBucket", 404, service="s3", operation="ListObjectsV2"))
    faults.add(FaultRule("AccessDeniedException", 403, service="backup",
                         operation="ListBackupVaults"))
    assert error_code(s3.list_objects_v2, Bucket="drwatch-fault-test") == "NoSuchBucket"
    assert error_code(s3.list_buckets) is None
    assert error_code(backup.list_backup_vaults) == "AccessDeniedException"
    assert error_code(backup.list_backup_plans) is None


def test_region_and_account_scoped_faults_miss_the_others(
    sandbox: Sandbox, faults: FaultInjector
) -> None:
    faults.add(FaultRule("AccessDenied", 403, service="rds", region=REGION_2))
    faults.add(FaultRule("InternalFailure", 500, account_id=LONELY_ACCOUNT, region=REGION_1))
    assert error_code(client(sandbox, "rds", REGION_2, ACCOUNT_B, NO_RETRIES)
                      .describe_db_clusters) == "AccessDenied"
    assert error_code(client(sandbox, "rds", REGION_1, ACCOUNT_B, NO_RETRIES)
                      .describe_db_clusters) is None
    assert error_code(client(sandbox, "rds", REGION_1, LONELY_ACCOUNT, NO_RETRIES)
                      .describe_db_clusters) == "InternalFailure"


def test_latency_only_rule_delays_and_succeeds(sandbox: Sandbox, faults: FaultInjector) -> None:
    rds = client(sandbox, "rds", REGION_1, LONELY_ACCOUNT, NO_RETRIES)
    faults.add(FaultRule("", latency_seconds=0.3, service="rds", operation="DescribeDBClusters"))
    started = time.perf_counter()
    rds.describe_db_clusters()
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    rds.describe_db_cluster_snapshots()
    assert time.perf_counter() - started < 0.3


def test_probabilistic_faults_are_reproducible() -> None:
    scope = RequestScope(service="rds", region=REGION_1, access_key="AKIA", operation="X")

    def outcomes(injector: FaultInjector) -> list[bool]:
        return [injector.decide(scope, None).error is not None for _ in range(40)]

    injector = FaultInjector(seed=3)
    injector.add(FaultRule("Throttling", probability=0.5))
    first = outcomes(injector)
    rule = injector.rules[0]
    injector.clear()
    injector.add(rule)
    assert outcomes(injector) == first
    assert 5 < sum(first) < 35


def test_rules_validate_their_fields() -> None:
    with pytest.raises(ValueError, match="probability"):
        FaultRule("Throttling", probability=2)
    with pytest.raises(ValueError, match="error_code"):
        FaultRule("")


def control(sandbox: Sandbox, method: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{sandbox.endpoint_url}/_drwatch/faults", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_faults_can_be_steered_over_http(sandbox: Sandbox, faults: FaultInjector) -> None:
    rule = {"error_code": "Throttling", "service": "rds", "operation": "DescribeDBClusters"}
    status, listed = control(sandbox, "POST", [rule])
    assert status == 200
    assert listed == [rule_to_dict(rule_from_dict(rule))]
    assert control(sandbox, "GET") == (200, listed)
    assert faults.rules == (FaultRule("Throttling", service="rds",
                                      operation="DescribeDBClusters"),)
    rds = client(sandbox, "rds", REGION_1, LONELY_ACCOUNT, NO_RETRIES)
    assert error_code(rds.describe_db_clusters) == "Throttling"
    assert control(sandbox, "DELETE") == (200, [])
    assert error_code(rds.describe_db_clusters) is None
    status, error = control(sandbox, "POST", [{"error_code": "X", "colour": "red"}])
    assert status == 400
    assert "colour" in error["error"]
    assert not faults.rules


# --- response validation -----------------------------------------------------------------


def test_validation_accepts_moto_and_rejects_a_broken_response(
    sandbox: Sandbox, fleet: FleetPlan
) -> None:
    model = RDS_MODEL.operation_model("DescribeDBInstances")
    good = client(sandbox, "rds", REGION_1, ACCOUNT_A).describe_db_instances()
    assert good["DBInstances"]
    validate_response(good, model)
    broken = {"DBInstances": [{"DBInstanceIdentifier": "x", "AllocatedStorage": "lots"}]}
    with pytest.raises(InvalidSandboxResponse, match="AllocatedStorage") as raised:
        validate_response(broken, model)
    assert raised.value.operation == "DescribeDBInstances"
    validate_response({"Error": {"Code": "Throttling"}}, model)  # errors are not outputs
