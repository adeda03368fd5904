"""Retention policy by data class: one type for the config (`retention:` in drwatch.yml),
the exporter's retention metrics and the reports (DRW-03 minimum, DRW-04 maximum)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from drwatch.core.units import DAY_SECONDS

# Lifecycle deletion is not instantaneous (AWS Backup and RDS delete expired points within
# about a day), so a point is "older than the maximum" only past this grace.
EXPIRY_GRACE_SECONDS = DAY_SECONDS


@dataclass(frozen=True, slots=True)
class DataClass:
    """Retention policy of one data class: keep points `min_days`, at most `max_days`."""

    min_days: int
    max_days: int | None = None  # None: no maximum (never-expiring points are fine)

    @property
    def max_seconds(self) -> float:
        return math.inf if self.max_days is None else float(self.max_days * DAY_SECONDS)


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Resources of `service` (and `resource_type`, when given) belong to `data_class`."""

    data_class: str
    service: str | None = None
    resource_type: str | None = None

    def matches(self, service: str, resource_type: str) -> bool:
        return self.service in (None, service) and self.resource_type in (None, resource_type)


# One permissive class by default: RDS keeps 7 days of automated backups unless told
# otherwise; real policies name their classes.
DEFAULT_DATA_CLASS_TAG_KEY: Final = "data-class"
DEFAULT_DATA_CLASS: Final = "default"
DEFAULT_DATA_CLASSES: Final[Mapping[str, DataClass]] = MappingProxyType(
    {DEFAULT_DATA_CLASS: DataClass(min_days=7)}
)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which data class a resource is in and what that class requires.

    Precedence: the resource's `tag_key` tag when it names a class (case-insensitive), then
    the first matching rule, then `default_class`.
    """

    tag_key: str = DEFAULT_DATA_CLASS_TAG_KEY
    default_class: str = DEFAULT_DATA_CLASS
    # A default_factory because dataclasses refuse unhashable default values.
    classes: Mapping[str, DataClass] = field(default_factory=lambda: DEFAULT_DATA_CLASSES)
    rules: tuple[RetentionRule, ...] = ()

    def __post_init__(self) -> None:
        unknown = {self.default_class, *(r.data_class for r in self.rules)} - set(self.classes)
        if unknown:
            raise ValueError(f"retention policy names unknown data classes: {sorted(unknown)}")

    def class_for(self, service: str, resource_type: str, tags: Mapping[str, str]) -> str:
        tagged = tags.get(self.tag_key, "").strip().lower()
        if tagged in self.classes:
            return tagged
        for rule in self.rules:
            if rule.matches(service, resource_type):
                return rule.data_class
        return self.default_class

    def policy_for(self, data_class: str) -> DataClass:
        return self.classes[data_class]
