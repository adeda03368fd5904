"""The controls drwatch evaluates, as an explicit tuple (no import-time registration).

Each entry pairs a control id of the catalogue (`drwatch.reports.catalogue.CONTROLS`) with
its check and, by its type, the population the check judges: `PerResource` (each resource,
while its raw intervals are loaded), `PerTier` (each tier of the resources, from the drills)
`PerUnit` (each monitoring unit) or `PerFlow` (each replication flow, while the raw intervals
of its source's batch are loaded). A test keeps this tuple and the catalogue in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final

from drwatch.history.drills import DrillRecord
from drwatch.reports.controls.copies import cross_account_copy, cross_region_copy
from drwatch.reports.controls.coverage import monitoring_coverage
from drwatch.reports.controls.drills import drill_per_tier
from drwatch.reports.controls.jobs import job_success
from drwatch.reports.controls.points import encrypted, immutable
from drwatch.reports.controls.protection import resource_protected
from drwatch.reports.controls.replication import replication_lag
from drwatch.reports.controls.restores import restore_cadence, restore_time
from drwatch.reports.controls.retention import maximum_retention, minimum_retention
from drwatch.reports.controls.rpo import rpo_met
from drwatch.reports.evidence import (
    Finding,
    FlowEvidence,
    Period,
    Policies,
    ResourceEvidence,
    UnitEvidence,
)


@dataclass(frozen=True, slots=True)
class PerResource:
    """A control judged once per resource."""

    control_id: str
    check: Callable[[ResourceEvidence, Period, Policies], Finding]
    population: ClassVar[str] = "resources"


@dataclass(frozen=True, slots=True)
class PerTier:
    """A control judged once per tier of the resources, from the drills."""

    control_id: str
    check: Callable[
        [Sequence[ResourceEvidence], Sequence[DrillRecord], Period, Policies], Iterator[Finding]
    ]
    population: ClassVar[str] = "tiers"


@dataclass(frozen=True, slots=True)
class PerUnit:
    """A control judged once per monitoring unit (collector, account, region)."""

    control_id: str
    check: Callable[[UnitEvidence, Period, Policies], Finding]
    population: ClassVar[str] = "units"


@dataclass(frozen=True, slots=True)
class PerFlow:
    """A control judged once per replication flow (source to destination)."""

    control_id: str
    check: Callable[[FlowEvidence, Period, Policies], Finding]
    population: ClassVar[str] = "flows"


ControlCheck = PerResource | PerTier | PerUnit | PerFlow

CHECKS: Final[tuple[ControlCheck, ...]] = (
    PerResource("DRW-01", resource_protected),
    PerResource("DRW-02", rpo_met),
    PerResource("DRW-03", minimum_retention),
    PerResource("DRW-04", maximum_retention),
    PerResource("DRW-05", encrypted),
    PerResource("DRW-06", immutable),
    PerResource("DRW-07", cross_region_copy),
    PerResource("DRW-08", cross_account_copy),
    PerResource("DRW-09", job_success),
    PerFlow("DRW-10", replication_lag),
    PerResource("DRW-11", restore_cadence),
    PerResource("DRW-12", restore_time),
    PerTier("DRW-13", drill_per_tier),
    PerUnit("DRW-14", monitoring_coverage),
)
CHECKS_BY_ID: Final[Mapping[str, ControlCheck]] = MappingProxyType(
    {check.control_id: check for check in CHECKS}
)
RESOURCE_CHECKS: Final[tuple[PerResource, ...]] = tuple(
    check for check in CHECKS if isinstance(check, PerResource)
)
FLOW_CHECKS: Final[tuple[PerFlow, ...]] = tuple(
    check for check in CHECKS if isinstance(check, PerFlow)
)


class UnknownControlError(LookupError):
    """A control id with no registered check."""


def check_for(control_id: str) -> ControlCheck:
    """The registered check of a control; an id without one is an error, never a default."""
    try:
        return CHECKS_BY_ID[control_id]
    except KeyError:
        raise UnknownControlError(f"no check is registered for control {control_id}") from None
