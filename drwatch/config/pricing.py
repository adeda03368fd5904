"""`pricing:`: overrides of the shipped price table (drwatch/config/prices/) and the
management review's age threshold for forgotten manual snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from drwatch.config.fields import (
    list_of,
    one_of,
    optional,
    pattern,
    price,
    required,
    section,
    string,
    whole_days,
)
from drwatch.config.identifiers import REGION_OR_ANY_RE
from drwatch.core.pricing import ANY, STORAGE_CLASSES, PriceOverride

DEFAULT_MANUAL_SNAPSHOT_MAX_AGE_DAYS: Final = 90

_PRICING_FIELDS: Final = ("overrides", "inter_region_transfer_per_gib", "manual_snapshot_max_age")
_PRICE_OVERRIDE_FIELDS: Final = ("service", "storage_class", "region", "per_gib_month")


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """Overrides of the shipped price table (drwatch/config/prices/) and the management
    review's age threshold for forgotten manual snapshots."""

    overrides: tuple[PriceOverride, ...] = ()
    inter_region_transfer_per_gib: float | None = None  # None: the shipped table's price
    manual_snapshot_max_age_days: int = DEFAULT_MANUAL_SNAPSHOT_MAX_AGE_DAYS


def parse_pricing(value: object, path: str) -> PricingConfig:
    fields = section(value, path, _PRICING_FIELDS)
    return PricingConfig(
        overrides=optional(
            fields, path, "overrides", (), lambda v, p: list_of(v, p, _parse_price_override)
        ),
        inter_region_transfer_per_gib=optional(
            fields, path, "inter_region_transfer_per_gib", None, price
        ),
        manual_snapshot_max_age_days=optional(
            fields,
            path,
            "manual_snapshot_max_age",
            DEFAULT_MANUAL_SNAPSHOT_MAX_AGE_DAYS,
            whole_days,
        ),
    )


def _parse_price_override(value: object, path: str) -> PriceOverride:
    fields = section(value, path, _PRICE_OVERRIDE_FIELDS)
    storage_class = required(
        fields, path, "storage_class", lambda v, p: one_of(v, p, STORAGE_CLASSES)
    )
    return PriceOverride(
        service=optional(fields, path, "service", ANY, string),
        storage_class=storage_class,
        region=optional(fields, path, "region", ANY, _price_region),
        per_gib_month=required(fields, path, "per_gib_month", price),
    )


def _price_region(value: object, path: str) -> str:
    return pattern(
        value,
        path,
        REGION_OR_ANY_RE,
        'must be an AWS region such as eu-west-1, or "*" for every region',
    )
