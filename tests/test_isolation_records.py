"""Every optional field of every collector's records, removed in turn (issue 20, Done-when).

For each collector, one unit of the seeded sandbox is polled once without faults; its AWS
answers give, through botocore's output shapes, every optional member of a record that the
sandbox actually sent (members it never sends are absent in every poll already). Then, per
member, the sandbox removes it from one record (`remove_field`, scoped to that record's
ARN or id where one is unique) and the unit is polled again. Each case must leave:

- the unit successful (a missing optional field never fails the unit);
- every subject of the baseline served (resources, recovery states, flows, jobs...), except
  those of the record the field was taken from;
- a resource that disappeared counted as a skipped record, in the run, in
  `drwatch_collector_records_skipped_total` and on the landing page, with the unit partial.

Failures are collected per member and reported together, one line each.
"""

from __future__ import annotations

import pytest

from drwatch.config import KNOWN_COLLECTORS
from drwatch.core.model import UnitKey
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from tests.conftest import sandbox_config
from tests.isolation_support import (
    RemovalCase,
    UnitProbe,
    batches,
    identities,
    removal_cases,
)

# The unit each collector is probed in: the one the sandbox seeds most variety into.
PROBED_UNITS = {name: ("111111111111", "eu-west-1") for name in KNOWN_COLLECTORS}
PROBED_UNITS["kafka"] = ("111111111111", "us-east-1")  # the replicators and connectors
# Cases polled together (each from a different record); a batch with a problem is polled
# again case by case, so each problem names its field.
BATCH = 8
# Fewest optional members a collector's answers must carry, so a shrinking sandbox (or a
# collector that stops reading an operation) is noticed rather than passing vacuously.
MIN_CASES = {"rds": 40, "elasticache": 20, "backup": 20, "dynamodb": 5, "ebs": 10,
             "s3_replication": 5, "s3_freshness": 3, "kafka": 10}  # fmt: skip


@pytest.mark.parametrize("collector", KNOWN_COLLECTORS)
def test_each_optional_field_removed_in_turn_keeps_the_rest_of_the_unit(
    sandbox: Sandbox, fleet: FleetPlan, collector: str
) -> None:
    account, region = PROBED_UNITS[collector]
    probe = UnitProbe(sandbox_config(sandbox, fleet), UnitKey(collector, account, region))
    probe.poll()  # the first poll reads the job windows' lookback; compare steady polls
    cases = removal_cases(probe.capture.answers)
    baseline = probe.poll()
    assert baseline.run.success, baseline.run.error_message
    assert not baseline.run.partial, (baseline.run.records_skipped, baseline.run.features)
    before = identities(baseline.observations)
    assert before, f"{collector}: the sandbox seeds nothing in {account} {region}"
    assert len(cases) >= MIN_CASES[collector], [c.label for c in cases]
    problems = []
    for batch in batches(cases, BATCH):
        found = poll_without(sandbox, probe, batch, before)
        if found and len(batch) > 1:  # name the field: each case of the batch on its own
            found = [p for case in batch for p in poll_without(sandbox, probe, [case], before)]
            found = found or [f"only together: {[c.label for c in batch]}: lost subjects"]
        problems += found
    sandbox.faults.clear()
    assert not problems, f"{collector}: {len(problems)} problems in {len(cases)} cases:\n" + (
        "\n".join(problems)
    )


def poll_without(
    sandbox: Sandbox,
    probe: UnitProbe,
    cases: list[RemovalCase],
    before: dict[tuple[object, ...], frozenset[str]],
) -> list[str]:
    """Polls the unit with each case's field removed; what went wrong, per case."""
    sandbox.faults.replace(
        [probe.fault(kind="remove_field", service=c.signing_name, operation=c.operation,
                     field=c.wire, record=c.record) for c in cases]
    )  # fmt: skip
    counted = probe.skipped_total()
    result = probe.poll()
    run = result.run
    label = " + ".join(c.label for c in cases)
    if not run.success:
        return [f"{label}: the unit failed: {run.error_code} {run.error_message}"]
    problems = []
    related = frozenset().union(*(c.related for c in cases))
    after = identities(result.observations)
    lost = {subject: names for subject, names in before.items() if subject not in after}
    # A case without a record scope removes the field from every answer of its operation.
    everyone = any(c.record is None for c in cases)
    unexplained = sorted(str(s) for s, names in lost.items() if not (everyone or names & related))
    if unexplained:
        problems.append(f"{label}: lost subjects of other records: {unexplained[:3]}")
    skipped = sum(run.records_skipped.values())
    lost_resources = sum(1 for s in lost if s[0] == "resources")
    if lost_resources > skipped:
        problems.append(f"{label}: {lost_resources} resources lost, {skipped} skips counted")
    if probe.skipped_total() - counted != skipped:
        problems.append(f"{label}: {skipped} skips not all counted in the metric")
    if skipped and not (run.partial and probe.landing_row().health == "partial"):
        problems.append(f"{label}: records skipped but the unit is not partial")
    return problems
