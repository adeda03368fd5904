"""Each optional operation unavailable on its own (issue 20, Done-when).

Per optional operation of every collector that has one: the sandbox answers it
`UnknownOperation`, alone; the unit must stay successful, show exactly that feature
unavailable (run, `drwatch_collector_feature_available` 0, landing page) and the others
available, and serve every subject of a fault-free poll except those only that feature
lists.
"""

from __future__ import annotations

from typing import Any

import pytest

from drwatch.core.model import UnitKey
from drwatch.exporter.collectors.isolation import AVAILABLE, UNAVAILABLE
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.server import Sandbox
from tests.conftest import sandbox_config
from tests.isolation_support import UnitProbe, identities
from tests.test_isolation import OPTIONAL_OPERATIONS
from tests.test_isolation_records import PROBED_UNITS

# What only a feature lists: (observation kind, resource type or None for any).
FEATURE_SUBJECTS: dict[str, set[tuple[str, str | None]]] = {
    # Backups replicated from other regions are recovery states located here.
    "automated_backups": {("replication_states", None), ("recovery_states", None)},
    "serverless": {("resources", "serverless_cache"), ("recovery_states", "serverless_cache")},
    "global_datastores": {("replication_states", None)},
    "replicators": {
        ("kafka_replicators", None),
        ("kafka_topics", None),
        ("kafka_partitions", None),
        ("replication_states", None),
    },
    "connect": {("kafka_connectors", None)},
    "metrics": {("kafka_topics", None)},  # topics are found in the replicators' metrics
}
# Features asked only with another's answer: unavailable with it, never asked alone.
DEPENDS = {("kafka", "replicators"): {"metrics"}}


def only_from(feature: str, subject: tuple[Any, ...]) -> bool:
    kind, fields = subject[0], dict(subject[1:])
    ref = fields.get("ref") or fields.get("source")
    resource_type = ref[3] if isinstance(ref, tuple) and len(ref) > 3 else None
    return any(
        kind == k and (t is None or t == resource_type)
        for k, t in FEATURE_SUBJECTS.get(feature, ())
    )


@pytest.mark.parametrize(
    ("service", "operation", "collector", "feature"),
    OPTIONAL_OPERATIONS,
    ids=[f"{c}-{o}" for _, o, c, _ in OPTIONAL_OPERATIONS],
)
def test_one_optional_operation_unavailable_keeps_the_rest(
    sandbox: Sandbox, fleet: FleetPlan, service: str, operation: str, collector: str, feature: str
) -> None:
    account, region = PROBED_UNITS[collector]
    config = sandbox_config(sandbox, fleet)
    clean = UnitProbe(config, UnitKey(collector, account, region))
    clean.poll()
    before = identities(clean.poll().observations)
    # No warm-up poll: the replication metrics it read would be served from cache.
    probe = UnitProbe(config, UnitKey(collector, account, region))
    sandbox.faults.add(
        probe.fault(error_code="UnknownOperation", service=service, operation=operation)
    )
    result = probe.poll()
    run = result.run
    assert run.success, run.error_message
    assert run.features[feature] == UNAVAILABLE
    others = {f: s for f, s in run.features.items() if f != feature}
    assert all(
        state == AVAILABLE or f in DEPENDS.get((collector, feature), set())
        for f, state in others.items()
    ), others
    after = identities(result.observations)
    lost = sorted(str(s) for s in set(before) - set(after) if not only_from(feature, s))
    assert lost == []
    gauge = {
        dict(k)["feature"]: v
        for k, v in probe.metric("drwatch_collector_feature_available").items()
    }
    assert gauge[feature] == 0
    assert all(gauge[f] == 1 for f, s in others.items() if s == AVAILABLE)
    assert feature in probe.landing_row().unavailable
