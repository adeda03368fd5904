"""The controls catalogue (DRW-01 to DRW-14), their parameters, and framework mappings.

A control is evaluated over a period for each subject of its population (a resource, a
monitoring unit, a tier, a replication flow) to one of four statuses, with the facts that
decided it: each control's check lives in `drwatch.reports.controls`, registered there by
id, and `drwatch.reports.evaluate` runs them. Frameworks (`drwatch/reports/frameworks/*.yml`) map
their clauses to controls and may set minimums on the control parameters: a parameter
configured looser than a framework minimum fails that clause, whatever the evidence says,
because the evidence was measured against too weak a bar.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml

from drwatch.core.controls import ControlError, ControlParameters

FRAMEWORKS_DIR: Final = Path(__file__).resolve().parent / "frameworks"
# Command-line name -> data file; "pci-dss" is version 4.0 of PCI DSS.
FRAMEWORK_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {"soc2": "soc2.yml", "pci-dss": "pci-dss-4.yml", "gdpr": "gdpr.yml"}
)


class Status(enum.StrEnum):
    PASS = "pass"  # noqa: S105  (a status, not a password)
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"
    INSUFFICIENT = "insufficient_evidence"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


# Worst first: a control (or clause) takes the worst status of what it is made of, except
# that not applicable only wins when everything is not applicable.
_SEVERITY: Final = (Status.FAIL, Status.INSUFFICIENT, Status.PASS, Status.NOT_APPLICABLE)


def worst(statuses: Iterable[Status]) -> Status:
    present = set(statuses)
    for status in _SEVERITY:
        if status in present:
            return status
    return Status.NOT_APPLICABLE


@dataclass(frozen=True, slots=True)
class Control:
    control_id: str
    title: str
    population: str  # resources | units | tiers | flows
    parameters: str  # the thresholds it applies, in words (filled from ControlParameters)


CONTROLS: Final[tuple[Control, ...]] = (
    Control(
        "DRW-01",
        "Resource protected (backup plan or native automated backups)",
        "resources",
        "a restorable point at all observed times",
    ),
    Control(
        "DRW-02",
        "Recovery point age within tier RPO",
        "resources",
        "tier RPO; share of observed time within it >= rpo_compliance",
    ),
    Control("DRW-03", "Minimum retention met", "resources", "data class min_days"),
    Control(
        "DRW-04",
        "Maximum retention respected (no point older, no never-expiring point)",
        "resources",
        "data class max_days",
    ),
    Control("DRW-05", "Recovery points encrypted", "resources", "every mechanism encrypted"),
    Control(
        "DRW-06",
        "Immutable recovery points (vault lock)",
        "resources",
        "a mechanism with points locked against deletion",
    ),
    Control(
        "DRW-07",
        "Cross-region copy exists and is fresh",
        "resources",
        "copy in another region, newest copied point age <= copy_max_age",
    ),
    Control("DRW-08", "Cross-account copy exists", "resources", "copy in another account"),
    Control(
        "DRW-09",
        "Backup job success rate; failures recovered",
        "resources",
        "success rate >= job_success_rate; newest job succeeded",
    ),
    Control(
        "DRW-10",
        "Replication lag within target",
        "flows",
        "per flow: S3 lag <= 15 min with Replication Time Control, else and other flows "
        "<= replication_lag; Kafka message lag <= kafka_message_lag",
    ),
    Control(
        "DRW-11",
        "Restore tested on cadence and validated",
        "resources",
        "validated restore at least every restore_cadence_days per class",
    ),
    Control("DRW-12", "Restore time within RTO", "resources", "restore duration <= tier RTO"),
    Control(
        "DRW-13",
        "DR drill in period with measured RTO/RPO within target",
        "tiers",
        "a passed drill within drill_cadence_days before the period end",
    ),
    Control(
        "DRW-14",
        "Monitoring coverage (evidence completeness)",
        "units",
        "share of the period covered by successful polls >= monitoring_coverage",
    ),
)
CONTROLS_BY_ID: Final[Mapping[str, Control]] = MappingProxyType(
    {control.control_id: control for control in CONTROLS}
)


# --- frameworks ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Minimum:
    """A framework's bar on one control parameter: `at_least` or `at_most` a value."""

    parameter: str
    at_least: float | None
    at_most: float | None
    reason: str

    def violation(self, parameters: ControlParameters) -> str | None:
        """Why the configured value is looser than the framework allows, or None."""
        configured = parameters.value(self.parameter)
        if configured is None:
            return f"{self.parameter} is not configured; {self.reason}"
        if self.at_least is not None and configured < self.at_least:
            return (
                f"{self.parameter} is configured as {_number(configured)}, below the "
                f"framework minimum {_number(self.at_least)}: {self.reason}"
            )
        if self.at_most is not None and configured > self.at_most:
            return (
                f"{self.parameter} is configured as {_number(configured)}, above the "
                f"framework maximum {_number(self.at_most)}: {self.reason}"
            )
        return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True, slots=True)
class Clause:
    clause_id: str
    title: str
    summary: str
    controls: tuple[str, ...]
    minimums: tuple[Minimum, ...] = ()
    note: str = ""  # e.g. a requirement drwatch does not collect evidence for yet


@dataclass(frozen=True, slots=True)
class Framework:
    key: str  # command-line name
    name: str
    version: str
    clauses: tuple[Clause, ...]


def load_framework(key: str, directory: Path = FRAMEWORKS_DIR) -> Framework:
    if key not in FRAMEWORK_FILES:
        raise ControlError(
            f"unknown framework {key!r}; expected one of {', '.join(FRAMEWORK_FILES)}"
        )
    path = directory / FRAMEWORK_FILES[key]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parse_framework(key, data, path.name)


def parse_framework(key: str, data: Any, where: str) -> Framework:
    if not isinstance(data, Mapping):
        raise ControlError(f"{where}: must be a mapping")
    clauses = tuple(
        _parse_clause(item, f"{where}: clauses[{index}]")
        for index, item in enumerate(_required(data, "clauses", where))
    )
    if not clauses:
        raise ControlError(f"{where}: clauses: must not be empty")
    return Framework(
        key=key,
        name=str(_required(data, "name", where)),
        version=str(_required(data, "version", where)),
        clauses=clauses,
    )


def _required(data: Mapping[str, Any], name: str, where: str) -> Any:
    if data.get(name) in (None, ""):
        raise ControlError(f"{where}: {name}: required")
    return data[name]


def _parse_clause(data: Any, where: str) -> Clause:
    if not isinstance(data, Mapping):
        raise ControlError(f"{where}: must be a mapping")
    controls = tuple(str(c) for c in data.get("controls") or ())
    unknown = [c for c in controls if c not in CONTROLS_BY_ID]
    if unknown:
        raise ControlError(f"{where}: controls: unknown {', '.join(unknown)}")
    note = str(data.get("note") or "")
    if not controls and not note:
        raise ControlError(f"{where}: a clause without controls needs a note saying why")
    return Clause(
        clause_id=str(_required(data, "id", where)),
        title=str(_required(data, "title", where)),
        summary=str(_required(data, "summary", where)),
        controls=controls,
        minimums=tuple(
            _parse_minimum(item, f"{where}: minimums[{index}]")
            for index, item in enumerate(data.get("minimums") or ())
        ),
        note=note,
    )


def _parse_minimum(data: Any, where: str) -> Minimum:
    if not isinstance(data, Mapping):
        raise ControlError(f"{where}: must be a mapping")
    parameter = str(_required(data, "parameter", where))
    ControlParameters().value(parameter)  # raises on a name the controls do not have
    at_least, at_most = data.get("at_least"), data.get("at_most")
    if (at_least is None) == (at_most is None):
        raise ControlError(f"{where}: give exactly one of at_least, at_most")
    bound = at_least if at_least is not None else at_most
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
        raise ControlError(f"{where}: bound must be a number")
    return Minimum(
        parameter=parameter,
        at_least=None if at_least is None else float(at_least),
        at_most=None if at_most is None else float(at_most),
        reason=str(_required(data, "reason", where)),
    )
