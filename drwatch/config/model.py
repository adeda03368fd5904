"""The whole, validated configuration: one frozen dataclass holding every section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from drwatch.config.accounts import AccountConfig
from drwatch.config.aws import AwsConfig, PollerConfig
from drwatch.config.catalogue import KNOWN_COLLECTORS
from drwatch.config.collectors import CollectorConfig
from drwatch.config.freshness import S3FreshnessConfig
from drwatch.config.history import HistoryConfig
from drwatch.config.kafka import KafkaConfig
from drwatch.config.listen import DEFAULT_LISTEN_ADDRESS, split_listen_address
from drwatch.config.organizations import OrganizationsConfig
from drwatch.config.pricing import PricingConfig
from drwatch.config.tiers import TierConfig
from drwatch.core.controls import ControlParameters
from drwatch.core.retention import RetentionPolicy
from drwatch.core.sharding import Shard


@dataclass(frozen=True, slots=True)
class Config:
    """The whole, validated drwatch configuration.

    Section defaults are default factories: each section type is frozen, so a fresh default
    equals the shared one, and ruff cannot see that frozenness across modules.
    """

    accounts: tuple[AccountConfig, ...]
    regions: tuple[str, ...]
    collectors: Mapping[str, CollectorConfig]
    tiers: TierConfig = field(default_factory=TierConfig)
    aws: AwsConfig = field(default_factory=AwsConfig)
    poller: PollerConfig = field(default_factory=PollerConfig)
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    # Prometheus-style web config (TLS, basic auth); `serve --web.config.file` overrides it.
    web_config_file: str | None = None
    history: HistoryConfig = field(default_factory=HistoryConfig)
    s3_freshness: S3FreshnessConfig = field(default_factory=S3FreshnessConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    controls: ControlParameters = field(default_factory=ControlParameters)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    # Discovery adds accounts; the shard keeps this replica's share of all accounts.
    organizations: OrganizationsConfig | None = None
    shard: Shard = field(default_factory=Shard)

    @property
    def history_path(self) -> str:
        """``history.path``; the old top-level ``history_path`` key still sets it."""
        return self.history.path

    @property
    def listen_host(self) -> str:
        """Host part of ``listen_address``, without IPv6 brackets (ready for bind)."""
        return split_listen_address(self.listen_address)[0]

    @property
    def listen_port(self) -> int:
        """Port part of ``listen_address``."""
        return split_listen_address(self.listen_address)[1]

    def enabled_collectors(self) -> tuple[str, ...]:
        """Names of the enabled collectors, in ``KNOWN_COLLECTORS`` order."""
        return tuple(
            name
            for name in KNOWN_COLLECTORS
            if name in self.collectors and self.collectors[name].enabled
        )
