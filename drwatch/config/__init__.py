"""Load and validate the drwatch YAML configuration.

The file is parsed into frozen dataclasses once, at start-up, so the rest of the
program never sees a half-valid setting. Every problem is reported as a
:class:`ConfigError` whose text names the offending field by its dotted path
(``collectors.rds.interval: must be >= 60``), which is what ``drwatch
check-config`` prints.

Conventions of the file format:

* ``null`` and an absent key mean the same thing: "use the default".
* Unknown keys are errors at every level, because a misspelt key silently
  falling back to its default is the classic way a DR setting goes missing.
* Durations are seconds (``300``) or text with units (``"5m"``, ``"1h30m"``).
* Secret-looking values (``external_id``) are never echoed in errors or reprs.

Layout: ``fields`` (the validators, once), ``identifiers`` (AWS names), ``catalogue``
(collector names and defaults, shared with the exporter), one module per section, ``model``
(:class:`Config`), ``load`` (the strict YAML loader, :func:`load_config`,
:func:`parse_config`) and ``price_table`` (the shipped prices in ``prices/``). This module
only re-exports the public names.
"""

from __future__ import annotations

from drwatch.config.accounts import AccountConfig
from drwatch.config.aws import AwsConfig, PollerConfig
from drwatch.config.catalogue import DEFAULT_ENABLED_COLLECTORS, DEFAULT_INTERVALS, KNOWN_COLLECTORS
from drwatch.config.collectors import CollectorConfig
from drwatch.config.controls import (
    DEFAULT_DRILL_CADENCE_SECONDS,
    DEFAULT_RESTORE_TEST_CADENCE_SECONDS,
)
from drwatch.config.fields import ConfigError
from drwatch.config.freshness import FreshnessTarget, S3FreshnessConfig
from drwatch.config.history import (
    DEFAULT_HISTORY_PATH,
    DEFAULT_HISTORY_RAW_DAYS,
    DEFAULT_HISTORY_RETENTION_DAYS,
    HistoryConfig,
)
from drwatch.config.kafka import KafkaClusterConfig, KafkaConfig, MirrorMaker2Flow
from drwatch.config.listen import DEFAULT_LISTEN_ADDRESS, DEFAULT_PORT
from drwatch.config.load import load_config, parse_config
from drwatch.config.model import Config
from drwatch.config.organizations import OrganizationsConfig
from drwatch.config.pricing import PricingConfig
from drwatch.config.tiers import DEFAULT_TIER_TARGETS, TierConfig
from drwatch.core.pricing import STORAGE_CLASSES, PriceOverride
from drwatch.core.tiers import TierTarget

__all__ = [
    "DEFAULT_DRILL_CADENCE_SECONDS",
    "DEFAULT_ENABLED_COLLECTORS",
    "DEFAULT_HISTORY_PATH",
    "DEFAULT_HISTORY_RAW_DAYS",
    "DEFAULT_HISTORY_RETENTION_DAYS",
    "DEFAULT_INTERVALS",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_PORT",
    "DEFAULT_RESTORE_TEST_CADENCE_SECONDS",
    "DEFAULT_TIER_TARGETS",
    "KNOWN_COLLECTORS",
    "STORAGE_CLASSES",
    "AccountConfig",
    "AwsConfig",
    "CollectorConfig",
    "Config",
    "ConfigError",
    "FreshnessTarget",
    "HistoryConfig",
    "KafkaClusterConfig",
    "KafkaConfig",
    "MirrorMaker2Flow",
    "OrganizationsConfig",
    "PollerConfig",
    "PriceOverride",
    "PricingConfig",
    "S3FreshnessConfig",
    "TierConfig",
    "TierTarget",
    "load_config",
    "parse_config",
]
