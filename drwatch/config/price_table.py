"""The shipped price table (prices/aws-storage-prices.yml) with the config's overrides.

Reading the file is the I/O `drwatch.core.pricing` leaves out; the rows become the same
`PriceOverride` records the config's `pricing.overrides` hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import yaml

from drwatch.config.pricing import PricingConfig
from drwatch.core.pricing import (
    ANY,
    STORAGE_CLASSES,
    PriceOverride,
    PriceTable,
    PriceTableError,
    index_rows,
)

DEFAULT_PRICE_FILE: Final = Path(__file__).parent / "prices" / "aws-storage-prices.yml"


def load_price_table(
    pricing: PricingConfig | None = None, path: Path = DEFAULT_PRICE_FILE
) -> PriceTable:
    """The price file at `path` with the config's overrides applied (none by default)."""
    pricing = pricing or PricingConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PriceTableError(f"{path}: {error}") from error
    if not isinstance(data, Mapping):
        raise PriceTableError(f"{path}: must be a mapping with source, as_of and prices")
    rows = index_rows(_row(item, f"{path}: prices[{i}]") for i, item in enumerate(data["prices"]))
    for storage_class in STORAGE_CLASSES:
        if (ANY, storage_class, ANY) not in rows:
            raise PriceTableError(f"{path}: no fallback price for storage class {storage_class}")
    transfer = pricing.inter_region_transfer_per_gib
    return PriceTable(
        rows=rows,
        overrides=index_rows(pricing.overrides),
        inter_region_transfer_per_gib=float(data["inter_region_transfer_per_gib"])
        if transfer is None
        else transfer,
        source=str(data["source"]),
        as_of=str(data["as_of"]),
        currency=str(data.get("currency", "USD")),
    )


def _row(item: object, where: str) -> PriceOverride:
    if not isinstance(item, Mapping):
        raise PriceTableError(f"{where}: must be a mapping")
    try:
        row = PriceOverride(
            service=str(item["service"]),
            storage_class=str(item["storage_class"]),
            region=str(item["region"]),
            per_gib_month=float(item["per_gib_month"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PriceTableError(f"{where}: {error!r}") from error
    if row.storage_class not in STORAGE_CLASSES or row.per_gib_month < 0:
        raise PriceTableError(f"{where}: bad storage class or negative price")
    return row
