"""The thresholds the compliance controls apply: one type for the config and the reports.

`config` parses the `controls:` section into `ControlParameters`; `reports` evaluates with
it; framework files may set minimums on its fields by name (`ControlParameters.value`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final

# Restore-test and drill cadence (DRW-11, DRW-13; docs/drills.md): the operations runbooks
# ask for weekly database and config restores, monthly cache restores, quarterly drills.
DEFAULT_RESTORE_CADENCE_DAYS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "database": 7.0,
        "config": 7.0,
        "cache": 30.0,
        "storage": 30.0,
        "compute": 30.0,
        "other": 30.0,
    }
)
DEFAULT_DRILL_CADENCE_DAYS: Final = 92.0  # a quarter


class ControlError(Exception):
    """A framework file or control parameter is invalid."""


@dataclass(frozen=True, slots=True)
class ControlParameters:
    """Thresholds the controls apply (docs/reports.md); shares are in [0, 1], times in seconds."""

    rpo_compliance: float = 0.99  # DRW-02: share of observed time within the tier RPO
    job_success_rate: float = 0.99  # DRW-09
    copy_max_age_seconds: float = 36 * 3600.0  # DRW-07: daily copies plus their run time
    replication_lag_seconds: float = 3600.0  # DRW-10: S3 without RTC, cross-region backups
    kafka_message_lag: float = 1000.0  # DRW-10: MSK Replicator / MirrorMaker 2
    # DRW-11: restore-test cadence per resource class (history.drills.resource_class); a
    # class without one is not applicable.
    restore_cadence_days: Mapping[str, float] = field(
        default_factory=lambda: DEFAULT_RESTORE_CADENCE_DAYS
    )
    drill_cadence_days: float = DEFAULT_DRILL_CADENCE_DAYS  # DRW-13
    monitoring_coverage: float = 0.95  # DRW-14

    def value(self, name: str) -> float | None:
        """A parameter by its framework-file name, e.g. `restore_cadence_days.database`."""
        base, _, key = name.partition(".")
        if base not in {f.name for f in fields(self)}:
            raise ControlError(f"unknown control parameter {name!r}")
        value: Any = getattr(self, base)
        if isinstance(value, Mapping):
            found = value.get(key)
            return None if found is None else float(found)
        return float(value)
