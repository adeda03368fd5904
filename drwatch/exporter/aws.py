"""AWS access: one session per account, one client per (account, region, service), API counters.

Clients are created once and reused across polls (botocore clients are thread-safe, sessions
are not, hence the lock around creation). Every HTTP attempt is counted through botocore's
`response-received` event, so retries and throttling show up in the API cost metrics.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import botocore.session
import botocore.utils
from botocore.client import BaseClient
from botocore.config import Config as BotocoreConfig
from botocore.credentials import DeferredRefreshableCredentials

from drwatch import __version__
from drwatch.config import AccountConfig, AwsConfig

READ_ONLY_PREFIXES = ("List", "Describe", "Get")
# Error codes that say the keys a client signs with are no longer valid (revoked session,
# clock skew past expiry, keys rotated early): assuming the role again is the cure.
EXPIRED_CREDENTIAL_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId"}
)
ASSUMED_ROLE_SECONDS = 3600

EventHandler = Callable[..., Any]
SessionFactory = Callable[[], botocore.session.Session]


class ReadOnlyViolationError(RuntimeError):
    """Raised before sending any AWS request that is not a List/Describe/Get call."""


def is_read_only(operation: str) -> bool:
    return operation.startswith(READ_ONLY_PREFIXES)


def refuse_writes(model: Any, **_: Any) -> None:
    """`before-call` guard: drwatch must never change an estate it watches."""
    if not is_read_only(model.name):
        raise ReadOnlyViolationError(f"drwatch refuses to call {model.name}: not a read-only API")


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parsing with a fast path for the ISO 8601 AWS writes.

    botocore hands every timestamp to dateutil, which took most of the time spent parsing
    RDS snapshot pages (several timestamps per snapshot; bench/scale.py's profile). Numbers
    (epoch seconds) and what `fromisoformat` cannot read still go to botocore. The values
    are equal to botocore's; only the tzinfo class differs (botocore's depends on the
    machine's local zone anyway).
    """
    if isinstance(value, str) and not _looks_numeric(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    parsed: datetime = botocore.utils.parse_timestamp(value)
    return parsed


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def error_code_of(parsed_response: Mapping[str, Any] | None, exception: Exception | None) -> str:
    if exception is not None:
        return type(exception).__name__
    if parsed_response is None:
        return ""
    error = parsed_response.get("Error")
    if isinstance(error, Mapping) and error.get("Code"):
        return str(error["Code"])
    return ""


class ApiStats:
    """Thread-safe counters of AWS API attempts and errors, and the calls of the current unit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[tuple[str, str, str]] = Counter()
        self._local = threading.local()

    def on_response_received(
        self,
        event_name: str,
        parsed_response: Mapping[str, Any] | None = None,
        exception: Exception | None = None,
        **_: Any,
    ) -> None:
        # event_name is "response-received.<service-id>.<Operation>"
        _event, service, operation = event_name.split(".", 2)
        code = error_code_of(parsed_response, exception)
        with self._lock:
            self._requests[(service, operation)] += 1
            if code:
                self._errors[(service, operation, code)] += 1
        unit_calls: Counter[str] | None = getattr(self._local, "calls", None)
        if unit_calls is not None:
            unit_calls[f"{service}:{operation}"] += 1

    @contextmanager
    def attribute_to_unit(self) -> Iterator[Counter[str]]:
        """Counts the calls made by this thread inside the block (one unit run)."""
        calls: Counter[str] = Counter()
        self._local.calls = calls
        try:
            yield calls
        finally:
            self._local.calls = None

    def requests(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._requests)

    def errors(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._errors)


@dataclass(frozen=True, slots=True)
class ClientKey:
    account_id: str
    region: str
    service: str


def botocore_config(settings: AwsConfig) -> BotocoreConfig:
    retries: Any = {"mode": settings.retry_mode, "max_attempts": settings.max_attempts}
    return BotocoreConfig(
        retries=retries,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        max_pool_connections=settings.max_pool_connections,
        user_agent_extra=f"drwatch/{__version__}",
    )


class AwsAccess:
    """Hands out cached, instrumented, read-only clients for every configured account."""

    def __init__(
        self,
        accounts: Sequence[AccountConfig],
        settings: AwsConfig,
        stats: ApiStats,
        *,
        sts_region: str,
        session_factory: SessionFactory = botocore.session.Session,
        extra_handlers: Sequence[tuple[str, EventHandler]] = (),
    ) -> None:
        self._accounts = {account.id: account for account in accounts}
        self._settings = settings
        self._config = botocore_config(settings)
        self._stats = stats
        self._sts_region = sts_region
        self._session_factory = session_factory
        self._extra_handlers = tuple(extra_handlers)
        self._lock = threading.Lock()
        self._sessions: dict[str, botocore.session.Session] = {}
        self._clients: dict[ClientKey, BaseClient] = {}
        self._loader: Any = None  # botocore's data loader, shared by every session

    @property
    def stats(self) -> ApiStats:
        return self._stats

    def set_accounts(self, accounts: Sequence[AccountConfig]) -> None:
        """Changes the accounts (discovery, config reload).

        Sessions and clients of accounts whose settings are unchanged are kept, so an hourly
        discovery that finds nothing new costs no AssumeRole and no client creation.
        """
        new = {account.id: account for account in accounts}
        with self._lock:
            for account_id, old in self._accounts.items():
                if new.get(account_id) != old:
                    self._drop_session(account_id)
            self._accounts = new

    def client(self, account_id: str, region: str, service: str) -> BaseClient:
        key = ClientKey(account_id, region, service)
        with self._lock:
            cached = self._clients.get(key)
            if cached is None:
                cached = self._new_client(key)
                self._clients[key] = cached
            return cached

    def forget_credentials(self, account_id: str) -> None:
        """Drops the account's session and clients: the next call assumes the role afresh.

        botocore refreshes assumed-role keys shortly before their stated expiry; keys that
        AWS rejects earlier would otherwise keep failing until then.
        """
        with self._lock:
            self._drop_session(account_id)

    def _drop_session(self, account_id: str) -> None:
        """Forgets the account's session and clients; the caller holds the lock."""
        self._sessions.pop(account_id, None)
        for key in [k for k in self._clients if k.account_id == account_id]:
            del self._clients[key]

    def _new_client(self, key: ClientKey) -> BaseClient:
        session = self._session_for(key.account_id)
        client = session.create_client(
            key.service,
            region_name=key.region,
            endpoint_url=self._settings.endpoint_url,
            config=self._config,
        )
        self._instrument(client)
        client.meta.events.register("before-call.*.*", refuse_writes)
        return client

    def _instrument(self, client: BaseClient) -> None:
        client.meta.events.register("response-received.*.*", self._stats.on_response_received)
        for event, handler in self._extra_handlers:
            client.meta.events.register(event, handler)

    def _session_for(self, account_id: str) -> botocore.session.Session:
        session = self._sessions.get(account_id)
        if session is None:
            session = self._new_session(self._accounts[account_id])
            self._sessions[account_id] = session
        return session

    def _new_session(self, account: AccountConfig) -> botocore.session.Session:
        base = self._fresh_session()
        if account.role_arn is None:
            return base  # default credential chain of the process
        session = self._fresh_session()
        # botocore has no public setter for refreshable credentials; assigning them to the
        # session is the documented-by-usage way to get automatic refresh before expiry.
        session._credentials = self._assume_role_credentials(base, account)  # type: ignore[attr-defined]
        return session

    def _fresh_session(self) -> botocore.session.Session:
        """A session from the factory that shares the first one's data loader.

        Each session otherwise parses its own copy of every service model it touches (the
        EC2 model alone is tens of MB in memory): ~38 MB per account for the collectors'
        services, so an organisation's worth of accounts would not fit in memory.
        """
        session = self._session_factory()
        if self._loader is None:
            self._loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", self._loader)
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=parse_timestamp
        )
        return session

    def _assume_role_credentials(
        self, base: botocore.session.Session, account: AccountConfig
    ) -> DeferredRefreshableCredentials:
        sts: Any = base.create_client(
            "sts",
            region_name=self._sts_region,
            endpoint_url=self._settings.endpoint_url,
            config=self._config,
        )
        self._instrument(sts)
        role_arn = account.role_arn
        assert role_arn is not None

        def refresh() -> dict[str, str]:
            params: dict[str, Any] = {
                "RoleArn": role_arn,
                "RoleSessionName": account.session_name,
                "DurationSeconds": ASSUMED_ROLE_SECONDS,
            }
            if account.external_id:
                params["ExternalId"] = account.external_id
            credentials = sts.assume_role(**params)["Credentials"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "token": credentials["SessionToken"],
                "expiry_time": credentials["Expiration"].isoformat(),
            }

        return DeferredRefreshableCredentials(refresh_using=refresh, method="assume-role")
