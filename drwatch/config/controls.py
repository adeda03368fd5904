"""`controls:`: the thresholds the compliance controls apply (`drwatch.core.controls`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from drwatch.config.fields import (
    bounded_integer,
    named,
    optional,
    positive_duration,
    require,
    section,
    share,
)
from drwatch.core.controls import (
    DEFAULT_DRILL_CADENCE_DAYS,
    DEFAULT_RESTORE_CADENCE_DAYS,
    ControlParameters,
)
from drwatch.core.units import DAY_SECONDS

# Restore-test and drill cadence (DRW-11, DRW-13; docs/drills.md) in seconds, for the
# exporter's drill metrics; the days themselves are defined in drwatch.core.controls.
DEFAULT_RESTORE_TEST_CADENCE_SECONDS: Final[Mapping[str, float]] = MappingProxyType(
    {name: days * DAY_SECONDS for name, days in DEFAULT_RESTORE_CADENCE_DAYS.items()}
)
DEFAULT_DRILL_CADENCE_SECONDS: Final = DEFAULT_DRILL_CADENCE_DAYS * DAY_SECONDS

_CONTROLS_FIELDS: Final = (
    "rpo_compliance",
    "job_success_rate",
    "copy_max_age",
    "replication_lag",
    "kafka_message_lag",
    "restore_cadence",
    "drill_cadence",
    "monitoring_coverage",
)


def parse_controls(value: object, path: str) -> ControlParameters:
    fields = section(value, path, _CONTROLS_FIELDS)
    defaults = ControlParameters()
    cadence = optional(
        fields, path, "restore_cadence", defaults.restore_cadence_days, _restore_cadence
    )
    return ControlParameters(
        rpo_compliance=optional(fields, path, "rpo_compliance", defaults.rpo_compliance, share),
        job_success_rate=optional(
            fields, path, "job_success_rate", defaults.job_success_rate, share
        ),
        copy_max_age_seconds=optional(
            fields, path, "copy_max_age", defaults.copy_max_age_seconds, positive_duration
        ),
        replication_lag_seconds=optional(
            fields, path, "replication_lag", defaults.replication_lag_seconds, positive_duration
        ),
        kafka_message_lag=float(
            optional(
                fields,
                path,
                "kafka_message_lag",
                int(defaults.kafka_message_lag),
                bounded_integer(0),
            )
        ),
        restore_cadence_days=cadence,
        drill_cadence_days=optional(
            fields,
            path,
            "drill_cadence",
            defaults.drill_cadence_days * DAY_SECONDS,
            positive_duration,
        )
        / DAY_SECONDS,
        monitoring_coverage=optional(
            fields, path, "monitoring_coverage", defaults.monitoring_coverage, share
        ),
    )


def _restore_cadence(value: object, path: str) -> Mapping[str, float]:
    """Days between restore tests per resource class, from durations ("7d")."""
    return named(value, path, "resource class", _cadence_days, at_least_one=False)


def _cadence_days(value: object, path: str) -> float:
    return positive_duration(require(value, path), path) / DAY_SECONDS
