"""Evaluation semantics of issue 19: what a poll proves between polls, lone observations,
coverage of short periods, replication flows as DRW-10 subjects, and bad input.

The rules under test are stated once in docs/reports.md ("Time between polls") and in
`drwatch.history.coverage`. Histories are built by ingesting UnitResults with explicit
times into a real HistoryStore, as tests/test_controls.py does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from drwatch.cli.common import UTC_DATE
from drwatch.cli.main import cli
from drwatch.core.model import (
    KafkaFlowRef,
    KafkaReplicatorState,
    Mechanism,
    Observations,
    RecoveryState,
    ReplicationState,
    Resource,
    ResourceRef,
    S3ReplicationRule,
    UnitKey,
    UnitResult,
    UnitRun,
)
from drwatch.exporter.collectors.kafka import replication_of
from drwatch.history.store import HistoryStore, open_reader
from drwatch.reports.catalogue import Status
from drwatch.reports.evaluate import evaluate
from drwatch.reports.evidence import Evaluation, EvaluationError, Finding, Period
from tests.test_controls import POLICIES

DAY = datetime(2026, 10, 1, tzinfo=UTC)
RDS = UnitKey("rds", "111111111111", "eu-west-1")
DYNAMO = UnitKey("dynamodb", "111111111111", "eu-west-1")
S3 = UnitKey("s3_replication", "111111111111", "eu-west-1")
KAFKA = UnitKey("kafka", "111111111111", "eu-west-1")
Poll = Callable[[datetime], Observations]


def ref(
    name: str, unit: UnitKey = RDS, service: str = "rds", kind: str = "db_instance"
) -> ResourceRef:
    return ResourceRef(unit.account_id, unit.region, service, kind, name)


def point(
    name: str, mechanism: Mechanism, newest: datetime, unit: UnitKey = RDS, **extra: object
) -> RecoveryState:
    return RecoveryState(
        extra.pop("ref", None) or ref(name, unit),  # type: ignore[arg-type]
        mechanism,
        unit.account_id,
        unit.region,
        True,
        newest_point=newest,
        point_count=1,
        encrypted=True,
    )


def build(path: Path, polls: Iterable[tuple[UnitKey, datetime, bool, Observations]]) -> Path:
    with HistoryStore(path) as store:
        for unit, moment, ok, observations in polls:
            run = UnitRun(unit, moment, 1.0, ok, "" if ok else "ThrottlingException")
            store.ingest(UnitResult(run, observations if ok else Observations()))
    return path


def every(step: timedelta, start: datetime, end: datetime) -> list[datetime]:
    moments, moment = [], start
    while moment < end:
        moments.append(moment)
        moment += step
    return moments


def finding(evaluation: Evaluation, control_id: str, name: str) -> Finding:
    matches = [f for f in evaluation.result(control_id).findings if name in f.subject_key]
    assert len(matches) == 1, (control_id, name, matches)
    return matches[0]


def run_eval(path: Path, start: datetime, end: datetime) -> Evaluation:
    return evaluate(open_reader(path), Period.between(start, end), POLICIES)


# --- (d) what a poll proves between polls ----------------------------------------------------


def test_hourly_polls_of_a_healthy_basic_pitr_database_pass(tmp_path: Path) -> None:
    # Basic tier (1 h RPO), PITR 2 min behind at every hourly poll. Ageing the point
    # linearly between polls failed it with "1 h 2 min against 1 h"; PITR advances
    # continuously, so between two polls that saw it move its age stayed near 2 min.
    def observe(moment: datetime) -> Observations:
        return Observations(
            (Resource(ref("db"), "db", "basic"),),
            (point("db", Mechanism.PITR, moment - timedelta(minutes=2)),),
        )

    moments = every(timedelta(hours=1), DAY - timedelta(hours=1), DAY + timedelta(days=1, hours=1))
    path = build(tmp_path / "h.db", [(RDS, m, True, observe(m)) for m in moments])
    result = finding(run_eval(path, DAY, DAY + timedelta(days=1)), "DRW-02", "db")
    assert result.status is Status.PASS
    assert result.facts.startswith("worst recovery point age 2 min on 2026-10-01 against 1 h")


def test_a_monitoring_outage_counts_against_coverage_never_as_an_rpo_breach(
    tmp_path: Path,
) -> None:
    # Five-minute polls fail for three hours; PITR moved meanwhile (2 min behind on both
    # sides). The outage was "4 h 2 min"-style breaches; now it is DRW-14's time only.
    outage = (DAY + timedelta(hours=10), DAY + timedelta(hours=13))

    def observe(moment: datetime) -> Observations:
        return Observations(
            (Resource(ref("db"), "db", "premium"),),
            (point("db", Mechanism.PITR, moment - timedelta(minutes=2)),),
        )

    moments = every(timedelta(minutes=5), DAY - timedelta(hours=1), DAY + timedelta(days=2))
    polls = [(RDS, m, not outage[0] <= m < outage[1], observe(m)) for m in moments]
    evaluation = run_eval(build(tmp_path / "h.db", polls), DAY, DAY + timedelta(days=2))
    rpo = finding(evaluation, "DRW-02", "db")
    assert rpo.status is Status.PASS
    assert "3 h" not in rpo.facts
    resource = evaluation.resources[0]
    assert resource.figures.unwatched_seconds == 3 * 3600
    assert resource.figures.worst_age_seconds == 120
    coverage = evaluation.result("DRW-14").findings[0]
    assert coverage.status is Status.FAIL  # 45 h of 48 h: 93.8% < 95%
    assert "longest 3 h from 2026-10-01 10:00 UTC (ThrottlingException)" in coverage.facts


def test_an_outage_with_the_same_point_on_both_sides_is_a_breach(tmp_path: Path) -> None:
    # A daily snapshot frozen at 00:00 seen before and after a three-hour outage: the polls on
    # both sides prove the point did not move, so its age during the outage counts.
    outage = (DAY + timedelta(hours=10), DAY + timedelta(hours=13))

    def observe(moment: datetime) -> Observations:
        return Observations(
            (Resource(ref("db"), "db", "basic"),),
            (point("db", Mechanism.SNAPSHOT, DAY),),
        )

    moments = every(timedelta(minutes=5), DAY, DAY + timedelta(hours=14))
    polls = [(RDS, m, not outage[0] <= m < outage[1], observe(m)) for m in moments]
    evaluation = run_eval(build(tmp_path / "h.db", polls), DAY, DAY + timedelta(hours=14))
    figures = evaluation.resources[0].figures
    assert figures.unwatched_seconds == 0
    assert figures.observed_seconds == 14 * 3600 - 5 * 60  # to the last poll at 13:55
    assert finding(evaluation, "DRW-02", "db").status is Status.FAIL


def test_sparse_polls_of_discrete_points_are_insufficient_evidence_with_the_reason(
    tmp_path: Path,
) -> None:
    # Premium (5 min RPO), hourly polls, an hourly snapshot made at the half hour: the point
    # seen at each poll is 30 min old, so the figures show ages beyond the RPO, but a point
    # may have been made between the polls: nothing proves compliance, nor the breach.
    def observe(moment: datetime) -> Observations:
        newest = moment - timedelta(minutes=3)
        return Observations(
            (Resource(ref("db"), "db", "premium"),),
            (point("db", Mechanism.SNAPSHOT, newest),),
        )

    moments = every(timedelta(hours=1), DAY, DAY + timedelta(days=1, hours=1))
    path = build(tmp_path / "h.db", [(RDS, m, True, observe(m)) for m in moments])
    result = finding(run_eval(path, DAY, DAY + timedelta(days=1)), "DRW-02", "db")
    assert result.status is Status.INSUFFICIENT
    assert result.facts.startswith(
        "polled every 1 h, longer than the 5 min RPO, and nothing proves compliance in between"
    )


def test_the_age_at_a_poll_is_the_metrics_age_then(tmp_path: Path) -> None:
    # One truth: at a poll instant t the exporter serves the newest point p, and
    # time() - p is the age; a report over a short period starting at t says the same.
    def observe(moment: datetime) -> Observations:
        return Observations(
            (Resource(ref("db"), "db", "standard"),),
            (point("db", Mechanism.PITR, moment - timedelta(minutes=4)),),
        )

    moments = every(timedelta(minutes=5), DAY, DAY + timedelta(hours=2))
    path = build(tmp_path / "h.db", [(RDS, m, True, observe(m)) for m in moments])
    at = DAY + timedelta(hours=1)
    evaluation = run_eval(path, at, at + timedelta(seconds=1))
    metric_age = (at - (at - timedelta(minutes=4))).total_seconds()  # time() - p at t
    # 240 s: the gauge's age at t. (Between polls the gauge keeps ageing from the last poll,
    # all it knows; the report, knowing the next poll saw PITR move, holds the lag.)
    assert evaluation.resources[0].figures.worst_age_seconds == metric_age
    assert finding(evaluation, "DRW-02", "db").status is Status.PASS


# --- (a) resources seen by one poll ----------------------------------------------------------


def test_resources_seen_by_one_poll_are_in_the_population(tmp_path: Path) -> None:
    # Plain moto polled once: three DynamoDB tables and a replicated bucket, stored once.
    moment = DAY + timedelta(hours=12)
    tables = [ref(f"t{i}", DYNAMO, "dynamodb", "table") for i in range(3)]
    dynamo = Observations(
        tuple(Resource(t, t.resource_id, "standard") for t in tables),
        tuple(
            point(t.resource_id, Mechanism.PITR, moment - timedelta(minutes=1), DYNAMO, ref=t)
            for t in tables[:2]
        ),
    )
    bucket = ref("bucket", S3, "s3", "bucket")
    s3 = Observations((Resource(bucket, "bucket", "standard"),))
    path = build(tmp_path / "h.db", [(DYNAMO, moment, True, dynamo), (S3, moment, True, s3)])
    for start, end in [
        (moment, moment + timedelta(minutes=5)),  # the live window
        (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),  # the month
    ]:
        evaluation = run_eval(path, start, end)
        assert sorted(r.resource_id for r in evaluation.resources) == [
            "bucket",
            "t0",
            "t1",
            "t2",
        ]
        assert all(r.instant == int(moment.timestamp()) for r in evaluation.resources)
        # Judged at the instant a poll saw them, as /metrics said then.
        assert finding(evaluation, "DRW-02", "t0").status is Status.PASS
        assert finding(evaluation, "DRW-02", "t0").facts.startswith(
            "observed at one instant only in the period (2026-10-01 12:00 UTC): recovery "
            "point age 1 min then against 15 min target"
        )
        assert finding(evaluation, "DRW-01", "t2").status is Status.FAIL
        assert finding(evaluation, "DRW-01", "t1").status is Status.PASS
        assert finding(evaluation, "DRW-02", "bucket").status is Status.FAIL


def test_a_resource_first_seen_at_the_periods_last_poll_is_in_the_population(
    tmp_path: Path,
) -> None:
    end = DAY + timedelta(hours=1)

    def observe(moment: datetime) -> Observations:
        names = ["db"] + (["new"] if moment == end - timedelta(minutes=5) else [])
        return Observations(
            tuple(Resource(ref(n), n, "standard") for n in names),
            tuple(point(n, Mechanism.PITR, moment - timedelta(minutes=2)) for n in names),
        )

    moments = every(timedelta(minutes=5), DAY, end)
    path = build(tmp_path / "h.db", [(RDS, m, True, observe(m)) for m in moments])
    evaluation = run_eval(path, DAY, end)
    assert sorted(r.resource_id for r in evaluation.resources) == ["db", "new"]
    assert finding(evaluation, "DRW-02", "new").status is Status.PASS


# --- (b), (c) five-minute periods and UTC times ------------------------------------------------


def test_coverage_of_a_five_minute_period_is_at_most_the_period(tmp_path: Path) -> None:
    def observe(moment: datetime) -> Observations:
        return Observations((Resource(ref("db"), "db", "standard"),))

    moments = every(timedelta(minutes=5), DAY, DAY + timedelta(days=1))
    path = build(tmp_path / "h.db", [(RDS, m, True, observe(m)) for m in moments])
    # 00:56:21 to 01:01:21: was "covered 28897.0% of the period" (a whole day's rollup
    # share credited to the raw day the period starts in).
    start = datetime(2026, 10, 1, 0, 56, 21, tzinfo=UTC)
    evaluation = run_eval(path, start, start + timedelta(minutes=5))
    unit = evaluation.units[0]
    assert unit.covered_seconds == 300
    assert (unit.runs, unit.successful_runs) == (1, 1)
    coverage = evaluation.result("DRW-14").findings[0]
    assert coverage.facts.startswith("successful polls covered 100.0% of the period (1 of 1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-08T00:56:21Z", datetime(2026, 12, 8, 0, 56, 21, tzinfo=UTC)),
        ("2026-12-08T02:56:21+02:00", datetime(2026, 12, 8, 0, 56, 21, tzinfo=UTC)),
        ("2026-12-08T00:56:21", datetime(2026, 12, 8, 0, 56, 21, tzinfo=UTC)),
        ("2026-12-08T00:56", datetime(2026, 12, 8, 0, 56, tzinfo=UTC)),
        ("2026-12-08", datetime(2026, 12, 8, tzinfo=UTC)),
    ],
)
def test_from_and_until_accept_utc_and_offsets(text: str, expected: datetime) -> None:
    converted = UTC_DATE.convert(text, None, None)
    assert converted == expected
    assert converted.utcoffset() == timedelta(0)


def test_a_five_minute_report_with_z_times_writes_coverage_within_the_period(
    tmp_path: Path,
) -> None:
    def observe(moment: datetime) -> Observations:
        return Observations((Resource(ref("db"), "db", "standard"),))

    moments = every(timedelta(minutes=5), DAY, DAY + timedelta(days=1))
    path = build(tmp_path / "h.db", [(RDS, m, True, observe(m)) for m in moments])
    companion = tmp_path / "r.json"
    result = CliRunner().invoke(
        cli,
        [
            "report", "--framework", "soc2", "--db", str(path),
            "--from", "2026-10-01T00:56:21Z", "--until", "2026-10-01T03:01:21+02:00",
            "--out", str(tmp_path / "r.pdf"), "--json", str(companion),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(companion.read_text())
    assert data["period"]["start"] == "2026-10-01T00:56:21+00:00"
    assert data["period"]["end"] == "2026-10-01T01:01:21+00:00"
    drw14 = [f for f in data["findings"] if f["control_id"] == "DRW-14"]
    assert drw14
    assert all("covered 100.0% of the period" in f["facts"] for f in drw14)


# --- (e) replication flows in DRW-10 ----------------------------------------------------------


def kafka_flow(lag: float) -> Observations:
    flow = KafkaFlowRef(
        KAFKA.account_id, KAFKA.region, "mirrormaker2", "east->west", "east", "west"
    )
    state = KafkaReplicatorState(flow, "RUNNING", topics=3, message_lag=lag, latency_seconds=4.0)
    return Observations(replication_states=(replication_of(state),), kafka_replicators=(state,))


def s3_flow(latency: float, *, rtc: bool) -> Observations:
    bucket = ref("logs", S3, "s3", "bucket")
    rule = S3ReplicationRule(
        bucket, "r1", "Enabled", "222222222222", "us-east-1", "logs-dr", "", rtc, True, True
    )
    flow = ReplicationState(
        "s3", bucket, "222222222222", "us-east-1", "logs-dr", "Enabled", latency_seconds=latency
    )
    return Observations(
        (Resource(bucket, "logs", "standard"),),
        replication_states=(flow,),
        s3_replication_rules=(rule,),
    )


def flows_history(path: Path, kafka_lag: float, s3_latency: float, *, rtc: bool) -> Path:
    moments = every(timedelta(minutes=5), DAY, DAY + timedelta(hours=2))
    polls = [(KAFKA, m, True, kafka_flow(kafka_lag)) for m in moments]
    polls += [(S3, m, True, s3_flow(s3_latency, rtc=rtc)) for m in moments]
    return build(path, polls)


def test_a_kafka_flow_1850_messages_behind_fails_drw_10(tmp_path: Path) -> None:
    path = flows_history(tmp_path / "h.db", 1850, 60, rtc=True)
    evaluation = run_eval(path, DAY, DAY + timedelta(hours=2))
    # The replicator is a flow's source, not a resource of the other controls.
    assert [r.resource_id for r in evaluation.resources] == ["logs"]
    kafka = finding(evaluation, "DRW-10", "east->west")
    assert kafka.status is Status.FAIL
    assert kafka.subject == (
        "111111111111 eu-west-1 mirrormaker2 east->west to 111111111111 eu-west-1 west"
    )
    assert kafka.facts.startswith("lag 1,850 messages on 2026-10-01 against 1,000 messages")
    assert kafka.open
    s3 = finding(evaluation, "DRW-10", "logs-dr")
    assert s3.status is Status.PASS
    assert "within 15 min (Replication Time Control)" in s3.facts
    assert evaluation.result("DRW-10").control.population == "flows"


def test_s3_flows_are_judged_against_15_minutes_with_rtc_and_an_hour_without(
    tmp_path: Path,
) -> None:
    twenty_minutes = 20 * 60.0
    with_rtc = run_eval(
        flows_history(tmp_path / "a.db", 10, twenty_minutes, rtc=True),
        DAY,
        DAY + timedelta(hours=2),
    )
    without = run_eval(
        flows_history(tmp_path / "b.db", 10, twenty_minutes, rtc=False),
        DAY,
        DAY + timedelta(hours=2),
    )
    assert finding(with_rtc, "DRW-10", "logs-dr").status is Status.FAIL
    assert finding(without, "DRW-10", "logs-dr").status is Status.PASS
    assert "within 1 h (no Replication Time Control)" in finding(without, "DRW-10", "logs-dr").facts
    assert finding(with_rtc, "DRW-10", "east->west").status is Status.PASS


# --- (f) bad input ----------------------------------------------------------------------------


@pytest.fixture
def small_history(tmp_path: Path) -> Path:
    def observe(moment: datetime) -> Observations:
        return Observations((Resource(ref("db"), "db", "standard"),))

    moments = every(timedelta(minutes=5), DAY, DAY + timedelta(hours=1))
    return build(tmp_path / "h.db", [(RDS, m, True, observe(m)) for m in moments])


def report(db: Path, out: Path, *period: str) -> tuple[int, str]:
    arguments = ["report", "--framework", "soc2", "--db", str(db), "--out", str(out / "r.pdf")]
    result = CliRunner().invoke(cli, [*arguments, "--json", str(out / "r.json"), *period])
    return result.exit_code, result.output


def test_a_period_after_the_history_exits_2_and_writes_nothing(
    small_history: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, output = report(small_history, out, "--period", "2026-12")
    assert code == 2
    assert "no history in 2026-12: the history ends 2026-10-01 00:55 UTC" in output
    assert "Traceback" not in output
    assert list(out.iterdir()) == []
    code, output = report(small_history, out, "--period", "2026-09")
    assert code == 2
    assert "no history before the end of 2026-09" in output
    assert list(out.iterdir()) == []


def test_an_empty_history_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    HistoryStore(empty).close()
    out = tmp_path / "out"
    out.mkdir()
    code, output = report(empty, out, "--period", "2026-10")
    assert code == 2
    assert "the history is empty (no poll recorded yet)" in output
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('drwatch.history', 'm099_from_the_future', '2027-01-01')",
            "written by a newer drwatch version (schema steps m099_from_the_future",
        ),
        (
            "DELETE FROM _sqlite_migrations WHERE name = 'm004_resources_view'",
            "written by an older drwatch version (schema steps m004_resources_view missing)",
        ),
        ("DROP TABLE _sqlite_migrations", "not a drwatch history database"),
    ],
)
def test_a_history_of_another_version_exits_2_and_writes_nothing(
    small_history: Path, tmp_path: Path, change: str, message: str
) -> None:
    with sqlite3.connect(small_history) as connection:
        connection.execute(change)
    with pytest.raises(EvaluationError, match="drwatch"):
        run_eval(small_history, DAY, DAY + timedelta(hours=1))
    out = tmp_path / "out"
    out.mkdir()
    code, output = report(small_history, out, "--period", "2026-10")
    assert code == 2
    assert message in output
    assert list(out.iterdir()) == []
