"""`s3_freshness:`: bucket prefixes where backup jobs drop files, and their tiers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from drwatch.config.accounts import AccountConfig, account_of
from drwatch.config.fields import (
    ConfigError,
    child,
    list_of,
    optional,
    pattern,
    positive_duration,
    reject_duplicates,
    require,
    required,
    section,
)
from drwatch.config.identifiers import configured_region
from drwatch.config.tiers import TierConfig, known_tier

_BUCKET_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
_S3_FRESHNESS_FIELDS: Final = ("targets",)
_FRESHNESS_TARGET_FIELDS: Final = (
    "bucket",
    "prefix",
    "account",
    "region",
    "tier",
    "expected_interval",
)


@dataclass(frozen=True, slots=True)
class FreshnessTarget:
    """A bucket/prefix where a backup job drops files (dumps, exports, cluster state).

    The newest object's time under the prefix is the target's recovery point; `tier` gives
    it an RPO. `expected_interval` is how often the job should write (exported as-is).
    """

    bucket: str
    prefix: str
    account_id: str
    region: str
    tier: str
    expected_interval_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class S3FreshnessConfig:
    """Targets of the `s3_freshness` collector; the collector is on by default iff any."""

    targets: tuple[FreshnessTarget, ...] = ()


def parse_s3_freshness(
    value: object,
    accounts: Sequence[AccountConfig],
    regions: Sequence[str],
    tiers: TierConfig,
) -> S3FreshnessConfig:
    fields = section(value, "s3_freshness", _S3_FRESHNESS_FIELDS)
    items = fields.get("targets")
    if items is None:
        return S3FreshnessConfig()
    path = "s3_freshness.targets"
    targets = list_of(
        items, path, lambda v, p: _parse_freshness_target(v, p, accounts, regions, tiers)
    )
    reject_duplicates([(t.account_id, t.bucket, t.prefix) for t in targets], path)
    return S3FreshnessConfig(targets=targets)


def _parse_freshness_target(
    value: object,
    path: str,
    accounts: Sequence[AccountConfig],
    regions: Sequence[str],
    tiers: TierConfig,
) -> FreshnessTarget:
    fields = section(require(value, path), path, _FRESHNESS_TARGET_FIELDS)
    bucket = required(fields, path, "bucket", _bucket)
    prefix = fields.get("prefix")
    # "" (the whole bucket) is allowed, but must be said: a forgotten prefix lists everything.
    if not isinstance(prefix, str):
        raise ConfigError(child(path, "prefix"), 'required: a key prefix such as "dumps/", or ""')
    region = configured_region(fields.get("region"), child(path, "region"), regions)
    return FreshnessTarget(
        bucket=bucket,
        prefix=prefix,
        account_id=account_of(fields.get("account"), child(path, "account"), accounts),
        region=region,
        tier=optional(fields, path, "tier", tiers.default_tier, known_tier(tiers)),
        expected_interval_seconds=optional(
            fields, path, "expected_interval", None, positive_duration
        ),
    )


def _bucket(value: object, path: str) -> str:
    return pattern(value, path, _BUCKET_RE, "must be an S3 bucket name (3-63 of a-z0-9.-)")
