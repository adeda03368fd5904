"""One truth, two views (issue 19, item 1): at a poll instant t, what a report concludes about
each resource equals what the exporter's metrics said at t.

One round of the real exporter polls every collector's sandbox fleet (rds, backup, dynamodb,
ebs, elasticache, s3_replication, s3_freshness, kafka with MSK and, when the local brokers
start, a MirrorMaker 2 flow); the exposition is scraped, the same UnitResults are ingested
into a real history, and a one-second period at t is evaluated (resources seen at one instant
are judged at it). Each comparison reads structured data on both sides: scraped samples, and
the findings' status and `values`; never the facts' prose.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from drwatch.cli.report import policies_from
from drwatch.config import Config
from drwatch.core.model import (
    Mechanism,
    Observations,
    RecoveryState,
    Resource,
    ResourceRef,
    UnitKey,
    UnitResult,
    UnitRun,
)
from drwatch.core.retention import EXPIRY_GRACE_SECONDS
from drwatch.exporter.collectors import COLLECTORS
from drwatch.history.store import HistoryStore, decode_resource_key, open_reader
from drwatch.reports.catalogue import Status
from drwatch.reports.controls.replication import KAFKA_REPLICATION_KINDS
from drwatch.reports.evaluate import evaluate
from drwatch.reports.evidence import Evaluation, Finding, Period, Policies
from drwatch.sandbox import demo
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from drwatch.sandbox.validation import validate_response
from tests.conftest import NOW
from tests.helpers import FakeClock, ImmediateExecutor

T = int(NOW.timestamp())
Ref = tuple[str, str, str, str, str]  # account, region, service, resource_type, resource
Labels = dict[str, str]


@dataclass(frozen=True)
class Views:
    """The two views of one poll round: the scraped samples and the report's findings."""

    samples: dict[str, list[tuple[Labels, float]]]
    evaluation: Evaluation
    policies: Policies
    collectors: frozenset[str]
    history: Path

    def family(self, name: str) -> list[tuple[Labels, float]]:
        return self.samples.get(name, [])

    def findings(self, control_id: str) -> dict[str, Finding]:
        return {f.subject_key: f for f in self.evaluation.result(control_id).findings}


def ref_of(labels: Labels) -> Ref:
    return (
        labels["account_id"],
        labels["region"],
        labels["service"],
        labels["resource_type"],
        labels["resource"],
    )


def subject_ref(key: str) -> Ref:
    ref = decode_resource_key(key)
    return (ref.account_id, ref.region, ref.service, ref.resource_type, ref.resource_id)


def parse(text: str) -> dict[str, list[tuple[Labels, float]]]:
    out: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), sample.value))
    return out


def every_collector(interval: int = 60) -> dict[str, dict[str, object]]:
    return {c.name: {"enabled": True, "interval": interval} for c in COLLECTORS}


def poll_and_evaluate(
    sandbox: Sandbox, plan: FleetPlan, history: Path, **extra: Any
) -> tuple[Views, list[UnitResult]]:
    results: list[UnitResult] = []
    config: Config = demo.sandbox_config(
        sandbox.endpoint_url, plan.spec, collectors=every_collector(), **extra
    )
    exporter = demo.sandbox_exporter(
        config,
        clock=FakeClock(NOW),
        executor=ImmediateExecutor(),
        extra_handlers=[("after-call.*.*", validate_response)],
        on_result=results.append,
    )
    exporter.poller.run_round()
    text = exporter.metrics.render().decode()
    with HistoryStore(history) as store:
        for result in results:
            store.ingest(result)
    policies = policies_from(config)
    period = Period.between(NOW, NOW + timedelta(seconds=1))
    evaluation = evaluate(open_reader(history), period, policies)
    collectors = frozenset(r.run.unit.collector for r in results if r.run.success)
    return Views(parse(text), evaluation, policies, collectors, history), results


@pytest.fixture(scope="module")
def mm2(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A MirrorMaker 2 flow between two local brokers, when they can be started."""
    try:
        from drwatch.sandbox.kafka_brokers import brokers
        from tests.test_kafka_mm2 import seed_flow
    except ImportError:  # pragma: no cover - the broker package is an extra
        yield {}
        return
    running = brokers(2)
    try:
        source, target = next(running)
    except Exception:  # pragma: no cover - no broker binary here
        yield {}
        return
    seed_flow(source, target, int((NOW - timedelta(seconds=7)).timestamp() * 1000))
    yield {
        "mirrormaker2": [
            {
                "account": "111111111111",
                "region": "eu-west-1",
                "source": {"alias": "primary", "bootstrap_servers": [source.bootstrap]},
                "target": {"alias": "dr", "bootstrap_servers": [target.bootstrap]},
                "consumer_group": "mm2-primary-dr",
            }
        ]
    }
    running.close()


@pytest.fixture(scope="module")
def views(
    sandbox: Sandbox,
    fleet: FleetPlan,
    mm2: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Views:
    history = tmp_path_factory.mktemp("one_truth") / "history.db"
    # A maximum retention, so that DRW-04 has something to judge (manual snapshots never
    # expire, RDS keeps 35 days).
    extra: dict[str, Any] = {
        "retention": {"default": "default", "classes": {"default": {"min_days": 7, "max_days": 14}}}
    }
    if mm2:
        extra["kafka"] = mm2
    return poll_and_evaluate(sandbox, fleet, history, **extra)[0]


# --- the metrics' side, per resource -------------------------------------------------------


def per_mechanism(views: Views, name: str) -> dict[Ref, dict[str, float]]:
    out: dict[Ref, dict[str, float]] = defaultdict(dict)
    for labels, sample in views.family(name):
        out[ref_of(labels)][labels["mechanism"]] = sample
    return out


def copies(views: Views) -> dict[Ref, list[tuple[Labels, float | None]]]:
    """Copy series per source resource: labels and newest copied point (None: no point)."""
    newest = {
        tuple(sorted(labels.items())): sample
        for labels, sample in views.family("drwatch_copy_recovery_point_timestamp_seconds")
    }
    out: dict[Ref, list[tuple[Labels, float | None]]] = defaultdict(list)
    for labels, _ in views.family("drwatch_copy_recovery_points"):
        out[ref_of(labels)].append((labels, newest.get(tuple(sorted(labels.items())))))
    return out


def copy_replications(views: Views) -> dict[Ref, list[tuple[Labels, float | None]]]:
    latest = {
        tuple(sorted(labels.items())): sample
        for labels, sample in views.family("drwatch_replication_latest_timestamp_seconds")
    }
    out: dict[Ref, list[tuple[Labels, float | None]]] = defaultdict(list)
    for labels, _ in views.family("drwatch_replication_info"):
        if labels["kind"] == "rds_cross_region_backup":
            key = {k: v for k, v in labels.items() if k != "state"}
            out[ref_of(labels)].append((labels, latest.get(tuple(sorted(key.items())))))
    return out


def with_points(views: Views) -> dict[Ref, set[str]]:
    """Local mechanisms holding a restorable point, per resource."""
    newest = per_mechanism(views, "drwatch_recovery_point_timestamp_seconds")
    counts = per_mechanism(views, "drwatch_recovery_points")
    out: dict[Ref, set[str]] = defaultdict(set)
    for ref in set(newest) | set(counts):
        out[ref] = set(newest.get(ref, {})) | {m for m, n in counts.get(ref, {}).items() if n > 0}
    return out


def resources(views: Views) -> dict[Ref, Labels]:
    return {ref_of(labels): labels for labels, _ in views.family("drwatch_resource_info")}


def subjects(views: Views, control_id: str) -> dict[Ref, Finding]:
    return {subject_ref(key): f for key, f in views.findings(control_id).items()}


# --- the comparisons -----------------------------------------------------------------------


def test_every_collector_polled(views: Views) -> None:
    expected = {"rds", "backup", "dynamodb", "ebs", "elasticache", "s3_replication"}
    assert expected | {"s3_freshness", "kafka"} <= views.collectors


def test_the_fleet_exercises_both_outcomes_of_each_comparison(views: Views) -> None:
    """No comparison below is vacuous: each control has subjects that pass and that fail
    (DRW-08: the fleet copies to no other account, so every subject fails)."""
    for control_id in (*CONCLUSIONS[:7], "DRW-10"):
        counts = views.evaluation.result(control_id).counts
        assert counts[Status.PASS], (control_id, dict(counts))
        assert counts[Status.FAIL], (control_id, dict(counts))


def test_population_equals_the_resource_info_series(views: Views) -> None:
    watched = set(resources(views))
    for control_id in ("DRW-01", "DRW-02", "DRW-05", "DRW-06", "DRW-07", "DRW-08"):
        assert set(subjects(views, control_id)) == watched, control_id
    services = {ref[2] for ref in watched}
    assert {"rds", "dynamodb", "ec2", "elasticache", "s3"} <= services


def test_protected_equals_a_restorable_point_in_the_metrics(views: Views) -> None:
    # DRW-01's criterion is "a restorable point at all observed times": the exporter's
    # drwatch_resource_recovery_point_timestamp_seconds is present exactly then (a manual
    # snapshot, or points of a removed AWS Backup selection, restore as well as any).
    newest = {
        ref_of(labels)
        for labels, _ in views.family("drwatch_resource_recovery_point_timestamp_seconds")
    }
    held = with_points(views)
    for ref, finding in subjects(views, "DRW-01").items():
        assert finding.status == (Status.PASS if ref in newest else Status.FAIL), (ref, finding)
        assert bool(held.get(ref)) == (ref in newest), ref


def test_rpo_age_equals_poll_time_minus_the_newest_point(views: Views) -> None:
    newest = {
        ref_of(labels): (labels["tier"], sample)
        for labels, sample in views.family("drwatch_resource_recovery_point_timestamp_seconds")
    }
    targets = {labels["tier"]: v for labels, v in views.family("drwatch_rpo_target_seconds")}
    for ref, finding in subjects(views, "DRW-02").items():
        if ref not in newest:
            assert finding.status is Status.FAIL, (ref, finding)
            assert "age_seconds" not in finding.values
            continue
        tier, point = newest[ref]
        age = max(T - point, 0)
        assert finding.values.get("age_seconds") == pytest.approx(age, abs=1), (ref, finding)
        breached = age > targets[tier]
        assert finding.status == (Status.FAIL if breached else Status.PASS), (ref, finding)


def test_encrypted_equals_the_encrypted_gauge(views: Views) -> None:
    encrypted = per_mechanism(views, "drwatch_recovery_encrypted")
    held = with_points(views)
    for ref, finding in subjects(views, "DRW-05").items():
        mechanisms = held.get(ref, set())
        flags = [encrypted.get(ref, {}).get(m) for m in mechanisms]
        if not mechanisms:
            expected = Status.NOT_APPLICABLE
        elif 0 in flags:
            expected = Status.FAIL
        elif None in flags:
            expected = Status.INSUFFICIENT
        else:
            expected = Status.PASS
        assert finding.status == expected, (ref, finding, flags)


def test_immutable_equals_the_immutable_gauge(views: Views) -> None:
    immutable = per_mechanism(views, "drwatch_recovery_immutable")
    held = with_points(views)
    for ref, finding in subjects(views, "DRW-06").items():
        mechanisms = held.get(ref, set())
        if not mechanisms:
            expected = Status.NOT_APPLICABLE
        elif any(immutable.get(ref, {}).get(m) == 1 for m in mechanisms):
            expected = Status.PASS
        else:
            expected = Status.FAIL
        assert finding.status == expected, (ref, finding)


def test_cross_region_copy_and_its_age_equal_the_copy_series(views: Views) -> None:
    limit = views.policies.parameters.copy_max_age_seconds
    copied, replicated = copies(views), copy_replications(views)
    for ref, finding in subjects(views, "DRW-07").items():
        ages = [
            None if point is None else T - point
            for labels, point in copied.get(ref, [])
            if labels["destination_region"] != ref[1]
        ] + [
            None if point is None else T - point
            for labels, point in replicated.get(ref, [])
            if labels["destination_region"] != ref[1]
        ]
        known = [a for a in ages if a is not None]
        if not known:
            assert finding.status is Status.FAIL, (ref, finding)
            continue
        assert finding.values.get("copy_age_seconds") == pytest.approx(max(known), abs=1)
        expected = Status.PASS if max(known) <= limit else Status.FAIL
        assert finding.status == expected, (ref, finding)


def test_cross_account_copy_equals_the_copy_series(views: Views) -> None:
    copied, replicated = copies(views), copy_replications(views)
    for ref, finding in subjects(views, "DRW-08").items():
        elsewhere = [
            labels
            for labels, _ in copied.get(ref, []) + replicated.get(ref, [])
            if labels["destination_account_id"] != ref[0]
        ]
        assert finding.status == (Status.PASS if elsewhere else Status.FAIL), (ref, finding)


def test_retention_equals_the_retention_gauges(views: Views) -> None:
    enabled = per_mechanism(views, "drwatch_recovery_mechanism_enabled")
    minimum = per_mechanism(views, "drwatch_recovery_retention_min_seconds")
    maximum = per_mechanism(views, "drwatch_recovery_retention_max_seconds")
    oldest = per_mechanism(views, "drwatch_recovery_point_oldest_timestamp_seconds")
    never = per_mechanism(views, "drwatch_recovery_points_never_expire")
    held = with_points(views)
    classes = {
        ref_of(labels): labels["data_class"]
        for labels, _ in views.family("drwatch_resource_data_class_info")
    }
    findings_03, findings_04 = subjects(views, "DRW-03"), subjects(views, "DRW-04")
    for ref, finding in findings_03.items():
        on = [m for m, v in enabled.get(ref, {}).items() if v == 1]
        kept = [
            minimum[ref][m] if m in minimum.get(ref, {}) else T - oldest[ref][m]
            for m in on
            if m in minimum.get(ref, {}) or m in oldest.get(ref, {})
        ]
        if not on:
            assert finding.status is Status.NOT_APPLICABLE, (ref, finding)
        elif not kept:
            assert finding.status is Status.INSUFFICIENT, (ref, finding)
        else:
            seconds = finding.values.get("retention_days", -1) * 86400
            assert seconds == pytest.approx(max(kept), abs=1), (ref, finding)
    retention = views.policies.retention
    for ref, finding in findings_04.items():
        policy = retention.policy_for(classes[ref])
        if policy.max_days is None or not held.get(ref):
            assert finding.status is Status.NOT_APPLICABLE, (ref, finding)
            continue
        too_long = any(
            maximum.get(ref, {}).get(m, 0) > policy.max_days * 86400
            or never.get(ref, {}).get(m, 0) > 0
            or T - oldest.get(ref, {}).get(m, T) > policy.max_seconds + EXPIRY_GRACE_SECONDS
            for m in held[ref]
        )
        assert finding.status == (Status.FAIL if too_long else Status.PASS), (ref, finding)


def test_replication_lag_equals_the_replication_series(views: Views) -> None:
    latency = {
        tuple(sorted(labels.items())): v
        for labels, v in views.family("drwatch_replication_latency_seconds")
    }
    kafka_lag = {
        (flow["account_id"], flow["region"], flow["kind"], flow["replicator"]): v
        for flow, v in views.family("drwatch_kafka_replicator_lag_messages")
    }
    findings = views.findings("DRW-10")
    flows = [
        {k: v for k, v in labels.items() if k != "state"}
        for labels, _ in views.family("drwatch_replication_info")
    ]
    assert len(flows) == len(findings)
    kinds = {labels["kind"] for labels in flows}
    assert {"s3", "msk_replicator"} <= kinds
    parameters = views.policies.parameters
    for labels in flows:
        matching = [
            f
            for f in findings.values()
            if f.subject.startswith(f"{labels['account_id']} {labels['region']} {labels['kind']} ")
            and f.subject.endswith(
                f" to {labels['destination_account_id']} {labels['destination_region']} "
                f"{labels['destination']}"
            )
            and f" {labels['resource']} to " in f.subject
        ]
        assert len(matching) == 1, (labels, matching)
        finding = matching[0]
        if labels["kind"] in KAFKA_REPLICATION_KINDS:
            lag = kafka_lag.get(
                (labels["account_id"], labels["region"], labels["kind"], labels["resource"])
            )
            limit = parameters.kafka_message_lag
        else:
            lag = latency.get(tuple(sorted(labels.items())))
            limit = finding.values.get("limit", parameters.replication_lag_seconds)
        if lag is None:
            assert finding.status is Status.INSUFFICIENT, (labels, finding)
            continue
        assert finding.values.get("lag") == pytest.approx(lag), (labels, finding)
        assert finding.status == (Status.FAIL if lag > limit else Status.PASS), (labels, finding)


CONCLUSIONS = ("DRW-01", "DRW-02", "DRW-03", "DRW-04", "DRW-05", "DRW-06", "DRW-07", "DRW-08")


def conclusions(evaluation: Evaluation) -> dict[tuple[str, str], tuple[Status, dict[str, float]]]:
    return {
        (f.control_id, f.subject_key): (f.status, dict(f.values))
        for control_id in (*CONCLUSIONS, "DRW-10")
        for f in evaluation.result(control_id).findings
    }


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    before=st.integers(min_value=0, max_value=59),
    after=st.integers(min_value=1, max_value=59),
)
def test_any_short_period_around_the_poll_concludes_the_same(
    views: Views, before: int, after: int
) -> None:
    """A period of up to two poll intervals around t, holding only the poll at t, judges
    every resource at t: the same conclusions as the one-second period (and so as the
    metrics), whatever its bounds."""
    period = Period.between(NOW - timedelta(seconds=before), NOW + timedelta(seconds=after))
    other = evaluate(open_reader(views.history), period, views.policies)
    assert conclusions(other) == conclusions(views.evaluation)


# --- root-cause fixes, each on a history built by hand ----------------------------------------


def test_a_point_of_a_disabled_mechanism_is_restorable_in_the_report(tmp_path: Path) -> None:
    """Found here: a table with PITR off whose only points are AWS Backup's from a removed
    selection (mechanism disabled) had an RPO age in the metrics but "no restorable point"
    in the report (the history's figures and DRW-01/02 counted enabled mechanisms only)."""
    unit = UnitKey("dynamodb", "111111111111", "eu-west-1")
    table = ResourceRef(unit.account_id, unit.region, "dynamodb", "table", "orphaned")
    point = NOW - timedelta(hours=2)
    observations = Observations(
        (Resource(table, "orphaned", "standard"),),
        (
            RecoveryState(table, Mechanism.PITR, unit.account_id, unit.region, False),
            RecoveryState(
                table,
                Mechanism.AWS_BACKUP,
                unit.account_id,
                unit.region,
                False,
                newest_point=point,
                point_count=1,
            ),
        ),
    )
    path = tmp_path / "h.db"
    with HistoryStore(path) as store:
        for moment in (NOW, NOW + timedelta(minutes=5)):
            store.ingest(UnitResult(UnitRun(unit, moment, 1.0, True, ""), observations))
    policies = policies_from(None)
    last = NOW + timedelta(minutes=5)  # judged at the instant of the last poll
    at = evaluate(open_reader(path), Period.between(last, last + timedelta(seconds=1)), policies)
    assert at.result("DRW-01").findings[0].status is Status.PASS
    assert at.result("DRW-02").findings[0].values["age_seconds"] == 2 * 3600 + 300
    over = evaluate(open_reader(path), Period.between(NOW, NOW + timedelta(minutes=5)), policies)
    assert over.resources[0].figures.unprotected_seconds == 0
    assert over.resources[0].figures.worst_age_seconds == 2 * 3600 + 300
    assert over.result("DRW-02").findings[0].values["worst_age_seconds"] == 2 * 3600 + 300
