"""A running exporter whose config reloads (SIGHUP, POST /-/reload) and whose accounts follow
AWS Organizations, limited to this replica's shard.

The unit set is derived, never edited by hand: (static accounts + discovered accounts) ->
this shard's accounts -> units. Reloads and discovery refreshes both recompute it and swap
it into the running poller (`Poller.replace_units`), so units that stay keep their data and
counters, new accounts are polled at once, and removed accounts' series disappear.

A reload that fails (bad file, Organizations unreachable with new discovery settings) keeps
the running config, logs why and sets `drwatch_config_last_reload_successful` to 0, as
Prometheus does. Settings that belong to resources opened once at start-up (listen address,
history, thread pool size, price table) are only logged as needing a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import Final

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from drwatch.config import AccountConfig, Config, ConfigError
from drwatch.core.sharding import Shard
from drwatch.exporter.aws import AwsAccess, EventHandler, SessionFactory
from drwatch.exporter.collectors import collector_classes
from drwatch.exporter.discovery import MANAGEMENT_KEY, AccountDiscovery, combine, management_account
from drwatch.exporter.metrics.health import ScopeMetrics, ScopeStatus
from drwatch.exporter.poller import Clock, ResultSink, SystemClock
from drwatch.exporter.runner import UnitRunner, classify_error, unit_schedules
from drwatch.exporter.service import Exporter, build_exporter
from drwatch.history.writer import WriterStatus

log = logging.getLogger(__name__)

# Fields whose change only takes effect after a restart (they size or open things once).
RESTART_ONLY_FIELDS: Final = ("listen_address", "history", "poller", "pricing")
ORGANIZATIONS_SERVICE: Final = "organizations"

ConfigLoader = Callable[[], Config]


class DiscoveryFailedError(RuntimeError):
    """Organizations could not be read; the message carries the AWS error code."""


def _discovery_changed(old: Config, new: Config) -> bool:
    """Discovery is rebuilt (and re-run) when its settings or its AWS client settings change."""
    return (old.organizations, old.aws, old.regions[0]) != (
        new.organizations,
        new.aws,
        new.regions[0],
    )


def restart_only_changes(old: Config, new: Config) -> list[str]:
    return [name for name in RESTART_ONLY_FIELDS if getattr(old, name) != getattr(new, name)]


class LiveExporter:
    """Owns an Exporter and keeps its unit set in line with the config and the organisation."""

    def __init__(
        self,
        config: Config,
        load: ConfigLoader,
        *,
        shard: Shard | None = None,
        clock: Clock | None = None,
        executor: Executor | None = None,
        session_factory: SessionFactory = botocore.session.Session,
        extra_handlers: Sequence[tuple[str, EventHandler]] = (),
        on_result: ResultSink | None = None,
        lifecycle: bool = True,
        history: Callable[[], WriterStatus] | None = None,
        telemetry_path: str = "/metrics",
    ) -> None:
        """Builds the exporter and runs the first discovery; raises DiscoveryFailedError.

        `history` is the history writer's status (its metrics, and /-/ready).

        `shard` (from `--shard`) overrides the config's `shard` for the process lifetime.
        """
        self._load = load
        self._shard_override = shard
        self._clock = clock or SystemClock()
        self._session_factory = session_factory
        self._extra_handlers = tuple(extra_handlers)
        # `_changes` serialises reloads and refreshes, which wait on AWS; `_lock` guards the
        # state only for moments, so scrapes (status) never wait for an AWS call.
        self._changes = threading.Lock()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._config = config
        self._discovery: AccountDiscovery | None = None
        self._watched: tuple[AccountConfig, ...] = ()
        self._reload_ok = True
        self._last_reload = self._clock.now()
        self._effective = self._scoped(config, ())
        self.exporter: Exporter = build_exporter(
            self._effective,
            clock=self._clock,
            executor=executor,
            session_factory=session_factory,
            extra_handlers=extra_handlers,
            on_result=on_result,
            extra_metrics=(ScopeMetrics(self.status),),
            reload=self.reload if lifecycle else None,
            history=history,
            telemetry_path=telemetry_path,
        )
        self._aws = self.exporter.aws
        self._watched = self._effective.accounts
        self._discovery = self._new_discovery(config)
        self._apply(config, self._discover(self._discovery))

    # -- what is watched -----------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The config in force, with `accounts` as this shard's effective accounts."""
        with self._lock:
            return self._scoped(self._config, self._discovered())

    @property
    def shard(self) -> Shard:
        with self._lock:
            return self._shard_override or self._config.shard

    def _discovered(self) -> tuple[AccountConfig, ...]:
        return self._discovery.state.accounts if self._discovery is not None else ()

    def _scoped(self, config: Config, discovered: Sequence[AccountConfig]) -> Config:
        shard = self._shard_override or config.shard
        return replace(config, accounts=shard.select(combine(config.accounts, discovered)))

    def _apply(self, config: Config, discovered: Sequence[AccountConfig]) -> None:
        effective = self._scoped(config, discovered)
        self._config = config
        if effective == self._effective:
            return  # the usual discovery refresh: nothing changed, nothing to rebuild
        self.exporter.poller.replace_units(
            unit_schedules(effective, collector_classes(effective.enabled_collectors())),
            UnitRunner(
                effective,
                self._aws_for(effective),
                collector_classes(effective.enabled_collectors()),
                self._clock,
            ),
        )
        self.exporter.metrics.set_tiers(effective.tiers)
        self.exporter.metrics.set_retention(effective.retention)
        self._effective, self._watched = effective, effective.accounts

    def _aws_for(self, effective: Config) -> AwsAccess:
        """The current AwsAccess with the new accounts, or a new one if client settings changed."""
        previous = self._effective
        if previous.aws == effective.aws and previous.regions[0] == effective.regions[0]:
            self._aws.set_accounts(effective.accounts)
            return self._aws
        self._aws = AwsAccess(
            effective.accounts,
            effective.aws,
            self.exporter.aws.stats,
            sts_region=effective.regions[0],
            session_factory=self._session_factory,
            extra_handlers=self._extra_handlers,
        )
        return self._aws

    # -- discovery ------------------------------------------------------------------------

    def _new_discovery(self, config: Config) -> AccountDiscovery | None:
        settings = config.organizations
        if settings is None:
            return None
        access = AwsAccess(
            [management_account(settings)],
            config.aws,
            self.exporter.aws.stats,
            sts_region=config.regions[0],
            session_factory=self._session_factory,
            extra_handlers=self._extra_handlers,
        )
        # Organizations is global; any region of the partition reaches its one endpoint.
        return AccountDiscovery(
            settings,
            lambda: access.client(MANAGEMENT_KEY, config.regions[0], ORGANIZATIONS_SERVICE),
            self._clock.now,
        )

    def _discover(self, discovery: AccountDiscovery | None) -> tuple[AccountConfig, ...]:
        if discovery is None:
            return ()
        try:
            return discovery.refresh()
        except (ClientError, BotoCoreError) as error:
            code, message = classify_error(error)
            raise DiscoveryFailedError(
                f"organizations discovery failed: {code} {message}"
            ) from error

    def refresh_accounts(self) -> bool:
        """Re-reads the organisation and applies the account set; False (logged) on failure."""
        with self._changes:
            discovery = self._discovery
            if discovery is None:
                return True
            try:
                discovered = self._discover(discovery)
            except DiscoveryFailedError as error:
                log.warning(
                    "%s; still watching the %d accounts found before",
                    error,
                    len(discovery.state.accounts),
                )
                return False
            with self._lock:
                self._apply(self._config, discovered)
            return True

    def start_refreshing(self) -> None:
        """Refreshes discovery every `organizations.refresh_interval` in a background thread."""
        self._refresher = threading.Thread(
            target=self._refresh_loop, name="drwatch-discovery", daemon=True
        )
        self._refresher.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh_interval()):
            self.refresh_accounts()

    def _refresh_interval(self) -> float:
        with self._lock:
            settings = self._config.organizations
        # Without discovery the loop only waits, so a reload that adds it is picked up.
        return settings.refresh_interval_seconds if settings is not None else 60.0

    # -- reload ---------------------------------------------------------------------------

    def reload(self) -> str | None:
        """Loads the config again and applies it; None on success, else the problem."""
        with self._changes:
            try:
                config = self._load()
                discovery = self._discovery
                if discovery is None or _discovery_changed(self._config, config):
                    discovery = self._new_discovery(config)
                    discovered = self._discover(discovery)
                else:
                    discovered = discovery.state.accounts
            except (ConfigError, DiscoveryFailedError) as error:
                with self._lock:
                    self._reload_ok = False
                log.error("config reload failed, the running config stays in force: %s", error)
                return str(error)
            with self._lock:
                for name in restart_only_changes(self._config, config):
                    log.warning("config reload: %s changed; it takes effect after a restart", name)
                self._discovery = discovery
                self._apply(config, discovered)
                self._reload_ok, self._last_reload = True, self._clock.now()
                log.info(
                    "config reloaded: %d accounts in shard %s",
                    len(self._watched),
                    self.shard.label,
                )
            return None

    # -- status and lifecycle -------------------------------------------------------------

    def status(self) -> ScopeStatus:
        with self._lock:
            discovery = self._discovery
            return ScopeStatus(
                shard=self.shard.label,
                watched_accounts=len(self._watched),
                reload_successful=self._reload_ok,
                last_reload_success=self._last_reload,
                discovery_enabled=discovery is not None,
                discovery_successful=discovery is not None and discovery.state.successful,
                last_discovery_success=discovery.state.last_success if discovery else None,
                discovered_accounts=len(discovery.state.accounts) if discovery else 0,
            )

    def close(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
        self.exporter.close()
