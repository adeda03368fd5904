"""`retention:`: data classes with their retention limits, parsed into the one
`drwatch.core.retention.RetentionPolicy` the exporter and the reports apply.

Every class a rule or the default names is checked here first, so errors name the field
(`retention.rules[0].class: unknown data class ...`) before the policy's own check runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from drwatch.config.fields import (
    ConfigError,
    bounded_integer,
    child,
    known,
    known_or_default,
    list_of,
    named,
    optional,
    require,
    required,
    section,
    string,
)
from drwatch.config.identifiers import tag_key
from drwatch.core.retention import (
    DEFAULT_DATA_CLASS,
    DEFAULT_DATA_CLASS_TAG_KEY,
    DEFAULT_DATA_CLASSES,
    DataClass,
    RetentionPolicy,
    RetentionRule,
)

MAX_RETENTION_DAYS: Final = 36600

_RETENTION_FIELDS: Final = ("tag_key", "default", "classes", "rules")
_DATA_CLASS_FIELDS: Final = ("min_days", "max_days")
_RETENTION_RULE_FIELDS: Final = ("service", "resource_type", "class")


def parse_retention(value: object, path: str) -> RetentionPolicy:
    fields = section(value, path, _RETENTION_FIELDS)
    # Like tier targets: configured classes replace the default class wholesale.
    classes = optional(
        fields,
        path,
        "classes",
        DEFAULT_DATA_CLASSES,
        lambda v, p: named(v, p, "data class", _parse_data_class),
    )
    default_class = known_or_default(
        fields.get("default"),
        child(path, "default"),
        classes,
        "data class",
        DEFAULT_DATA_CLASS,
        "retention.classes",
    )
    rules: tuple[RetentionRule, ...] = optional(
        fields, path, "rules", (), lambda v, p: list_of(v, p, _rule_parser(classes))
    )
    return RetentionPolicy(
        tag_key=optional(fields, path, "tag_key", DEFAULT_DATA_CLASS_TAG_KEY, tag_key),
        default_class=default_class,
        classes=classes,
        rules=rules,
    )


def _parse_data_class(value: object, path: str) -> DataClass:
    fields = section(require(value, path), path, _DATA_CLASS_FIELDS)
    min_days = required(fields, path, "min_days", bounded_integer(0, MAX_RETENTION_DAYS))
    max_days = optional(fields, path, "max_days", None, bounded_integer(1, MAX_RETENTION_DAYS))
    if max_days is not None and max_days < min_days:
        raise ConfigError(child(path, "max_days"), f"must be >= min_days ({min_days})")
    return DataClass(min_days=min_days, max_days=max_days)


def _rule_parser(classes: Mapping[str, DataClass]) -> Callable[[object, str], RetentionRule]:
    def parse(value: object, path: str) -> RetentionRule:
        fields = section(require(value, path), path, _RETENTION_RULE_FIELDS)
        data_class = required(
            fields, path, "class", lambda v, p: known(v, p, classes, "data class")
        )
        service = optional(fields, path, "service", None, string)
        resource_type = optional(fields, path, "resource_type", None, string)
        if service is None and resource_type is None:
            raise ConfigError(path, "needs service or resource_type (or both)")
        return RetentionRule(data_class=data_class, service=service, resource_type=resource_type)

    return parse
