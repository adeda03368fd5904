"""TLS, mutual TLS and basic auth for the HTTP server, from a Prometheus-style web config file.

The file format is the Prometheus exporter-toolkit's (`--web.config.file`), so one file can
serve drwatch, node_exporter and Prometheus alike:

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash, e.g. from `htpasswd -nBC 10 ""`

The toolkit options that Python's `ssl` module cannot honour exactly (cipher_suites,
curve_preferences, client_allowed_sans, client_auth_type values that request a certificate
without verifying it, TLS10 and TLS11) are refused by name rather than silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import socketserver
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Protocol

import bcrypt
import yaml

from drwatch.config import ConfigError

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_TOP_FIELDS: Final = ("tls_server_config", "basic_auth_users", "http_server_config")
_TLS_FIELDS: Final = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
)
# Known to the toolkit, not supported here: named so the error says why, not "unknown".
_UNSUPPORTED_TLS_FIELDS: Final = (
    "cert",
    "key",
    "client_ca",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
)
_TLS_VERSIONS: Final[Mapping[str, ssl.TLSVersion]] = MappingProxyType(
    {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
)
# The toolkit accepts these, but OpenSSL at security level 2 (Python's default) has no cipher
# for them: the setting would be accepted and then every such handshake would fail.
_UNUSABLE_TLS_VERSIONS: Final = ("TLS10", "TLS11")
# Python's ssl module verifies every certificate it asks for, so only the toolkit's
# verifying modes (and "none") can be honoured.
_CLIENT_AUTH: Final[Mapping[str, ssl.VerifyMode]] = MappingProxyType(
    {
        "NoClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }
)
_BCRYPT_RE: Final = re.compile(r"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}", re.ASCII)
_USER_RE: Final = re.compile(r"[^:\s]+")
HANDSHAKE_TIMEOUT_SECONDS: Final = 10.0
AUTH_CACHE_SIZE: Final = 64
REALM: Final = "drwatch"
# A web config is a few hundred bytes; the limits keep a hostile or broken file from costing
# memory, time or a RecursionError (PyYAML composes nested nodes recursively).
MAX_FILE_BYTES: Final = 1 << 20
MAX_NESTING: Final = 16
# Failed password checks per client address: a burst of 10, then one per second; at most
# 4,096 addresses are tracked (least recently seen forgotten first).
AUTH_FAILURE_BURST: Final = 10
AUTH_FAILURE_REFILL_PER_SECOND: Final = 1.0
AUTH_TRACKED_CLIENTS: Final = 4096
_QUOTED: Final = re.compile(r"'(?:[^'\\]|\\.)*'" r'|"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str | None = None


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A validated web config; `tls` None serves plain HTTP, no users means no auth."""

    tls: TlsServerConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))


# --- loading ---------------------------------------------------------------------------


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Reads and validates a web config file; `ConfigError` names the offending field.

    The TLS files are loaded once here too, so a bad certificate fails at start-up.
    """
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(str(file), f"larger than {MAX_FILE_BYTES} bytes")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(file), f"cannot read: {error}") from error
    config = parse_web_config(parse_yaml(text, str(file)), file.parent)
    if config.tls is not None:
        server_ssl_context(config.tls)
    return config


def parse_yaml(text: str, where: str) -> object:
    """The YAML data; errors give line and column but never the text (it may hold a password).

    `from None` on purpose: PyYAML's own exception quotes the offending line, and a chained
    cause would put it back into any traceback that gets logged.
    """
    try:
        _check_nesting(text, where)
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        raise ConfigError(where, _describe(error)) from None
    except yaml.YAMLError:
        raise ConfigError(where, "not valid YAML") from None


def _check_nesting(text: str, where: str) -> None:
    """Refuses deep nesting from the event stream, which PyYAML parses without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                at = _position(event.start_mark)
                raise ConfigError(where, f"nested deeper than {MAX_NESTING} levels{at}")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _describe(error: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem statement with its quoted fragments (characters, aliases, tags) cut."""
    at = _position(error.problem_mark or error.context_mark)
    problem = _QUOTED.sub("(...)", error.problem or "")
    return f"not valid YAML{at}" + (f": {problem}" if problem else "")


class _Mark(Protocol):
    """PyYAML's Python and C parsers have distinct mark classes; both have these."""

    line: int
    column: int


def _position(mark: _Mark | None) -> str:
    return "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"


def parse_web_config(data: object, base_dir: Path) -> WebConfig:
    if data is None:
        return WebConfig()
    root = _fields(data, "", _TOP_FIELDS, ())
    if root.get("http_server_config") not in (None, {}):
        raise ConfigError("http_server_config", "not supported by drwatch (HTTP/1.1 only)")
    tls_data = root.get("tls_server_config")
    tls = None if tls_data is None else _parse_tls(tls_data, base_dir)
    return WebConfig(tls, MappingProxyType(_parse_users(root.get("basic_auth_users"))))


def _fields(
    value: object, path: str, allowed: tuple[str, ...], unsupported: tuple[str, ...]
) -> Mapping[str, object]:
    where = path.rstrip(".") or "<root>"
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must be a mapping")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(where, f"field names must be strings, got {key!r}")
        if key in unsupported:
            raise ConfigError(f"{path}{key}", "not supported by drwatch")
        if key not in allowed:
            raise ConfigError(f"{path}{key}", f"unknown field (known: {', '.join(allowed)})")
    return value


def _parse_tls(value: object, base_dir: Path) -> TlsServerConfig:
    path = "tls_server_config."
    fields = _fields(value, path, _TLS_FIELDS, _UNSUPPORTED_TLS_FIELDS)
    auth = _string(fields.get("client_auth_type", "NoClientCert"), f"{path}client_auth_type")
    if auth not in _CLIENT_AUTH:
        raise ConfigError(
            f"{path}client_auth_type",
            f"must be one of {', '.join(_CLIENT_AUTH)} (drwatch always verifies client "
            f"certificates it asks for), got {auth!r}",
        )
    ca = fields.get("client_ca_file")
    if auth != "NoClientCert" and ca is None:
        raise ConfigError(f"{path}client_ca_file", f"required with client_auth_type {auth}")
    return TlsServerConfig(
        cert_file=_file(fields.get("cert_file"), f"{path}cert_file", base_dir),
        key_file=_file(fields.get("key_file"), f"{path}key_file", base_dir),
        client_auth_type=auth,
        client_ca_file=None if ca is None else _file(ca, f"{path}client_ca_file", base_dir),
        min_version=_version(fields.get("min_version", "TLS12"), f"{path}min_version"),
        max_version=None
        if fields.get("max_version") is None
        else _version(fields.get("max_version"), f"{path}max_version"),
    )


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, "must be a non-empty string")
    return value


def _file(value: object, path: str, base_dir: Path) -> Path:
    if value is None:
        raise ConfigError(path, "required")
    name = Path(_string(value, path))
    # As in the exporter-toolkit: relative paths are relative to the web config file.
    return name if name.is_absolute() else base_dir / name


def _version(value: object, path: str) -> str:
    text = _string(value, path)
    if text in _UNUSABLE_TLS_VERSIONS:
        raise ConfigError(
            path,
            f"{text} cannot take effect: OpenSSL at security level 2 has no cipher for TLS 1.0 "
            "or 1.1, so every such handshake would fail; use TLS12 or TLS13",
        )
    if text not in _TLS_VERSIONS:
        raise ConfigError(path, f"must be one of {', '.join(_TLS_VERSIONS)}, got {text!r}")
    return text


def _parse_users(value: object) -> dict[str, bytes]:
    if value is None:
        return {}
    fields = _fields(value, "basic_auth_users.", tuple(str(k) for k in _keys(value)), ())
    users = {}
    for user, hashed in fields.items():
        path = f"basic_auth_users.{user}"
        if not _USER_RE.fullmatch(user):
            raise ConfigError(path, "user names must not be empty or hold ':' or spaces")
        if not isinstance(hashed, str) or not _BCRYPT_RE.fullmatch(hashed):
            # Never echo the value: it may be a plain password pasted by mistake.
            raise ConfigError(path, "must be a bcrypt hash ($2y$, $2b$ or $2a$, 60 characters)")
        users[user] = hashed.encode("ascii")
    return users


def _keys(value: object) -> Iterable[object]:
    return value.keys() if isinstance(value, Mapping) else ()


# --- TLS -------------------------------------------------------------------------------


def server_ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """The server-side context; load errors name the config field of the bad file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    if tls.max_version is not None:
        context.maximum_version = _TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            "tls_server_config.cert_file", f"cannot load {tls.cert_file} with its key: {error}"
        ) from error
    context.verify_mode = _CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                "tls_server_config.client_ca_file", f"cannot load {tls.client_ca_file}: {error}"
            ) from error
    return context


# --- basic auth ------------------------------------------------------------------------


Clock = Callable[[], float]
PasswordCheck = Callable[[bytes, bytes], bool]


class FailureLimiter:
    """A token bucket of failed password checks per client address.

    A check takes a token before bcrypt runs and a success gives it back, so concurrent
    attempts cannot overdraw the bucket. Full buckets are not stored, and at most `clients`
    addresses are: the least recently seen is forgotten first (it starts again full).
    """

    def __init__(
        self,
        burst: int = AUTH_FAILURE_BURST,
        per_second: float = AUTH_FAILURE_REFILL_PER_SECOND,
        clients: int = AUTH_TRACKED_CLIENTS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._clients = clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, as of
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Takes a token and returns 0, or returns the seconds until one is due."""
        with self._lock:
            now = self._clock()
            tokens = self._tokens(client, now)
            if tokens < 1:
                self._store(client, tokens, now)
                return (1 - tokens) / self._rate
            self._store(client, tokens - 1, now)
            return 0.0

    def give_back(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            self._store(client, self._tokens(client, now) + 1, now)

    def _tokens(self, client: str, now: float) -> float:
        tokens, since = self._buckets.pop(client, (self._burst, now))
        return min(self._burst, tokens + (now - since) * self._rate)

    def _store(self, client: str, tokens: float, now: float) -> None:
        if tokens >= self._burst:
            return  # a full bucket is the default: no need to remember it
        self._buckets[client] = (tokens, now)  # (re)inserted last: most recently seen
        while len(self._buckets) > self._clients:
            self._buckets.popitem(last=False)


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    allowed: bool
    # Seconds until the client may try again: non-zero only when refused without a check.
    retry_after: int = 0


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes.

    Unknown users are checked against a dummy hash of the highest configured cost, so the
    answer takes at least as long as for any known user with a wrong password (no user
    enumeration by timing); bcrypt's own comparison is constant-time. Successful checks are
    cached under an HMAC with a per-process random key, so a scrape every 15 s does not pay
    bcrypt each time and the cache never holds a password. Failed checks are rate-limited
    per client address (`FailureLimiter`), so guessing cannot buy unbounded bcrypt time.
    """

    def __init__(
        self,
        users: Mapping[str, bytes],
        limiter: FailureLimiter | None = None,
        checkpw: PasswordCheck = bcrypt.checkpw,
    ) -> None:
        self._users = dict(users)
        cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        self._limiter = limiter or FailureLimiter()
        self._checkpw = checkpw
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def unknown_user_cost(self) -> int:
        """The bcrypt cost an unknown user's check pays."""
        return int(self._dummy[4:6])

    def allows(self, authorization: str | None, client: str = "") -> bool:
        return self.check(authorization, client).allowed

    def check(self, authorization: str | None, client: str) -> AuthVerdict:
        """`client` is the peer address the failure limit is kept for."""
        credentials = _parse_basic(authorization)
        if credentials is None:
            return AuthVerdict(False)  # nothing to hash, so nothing to limit
        fingerprint = hmac.new(
            self._cache_key, credentials[0] + b"\0" + credentials[1], hashlib.sha256
        ).digest()
        if self._cached(fingerprint):
            return AuthVerdict(True)
        wait = self._limiter.take(client)
        if wait > 0:
            return AuthVerdict(False, retry_after=max(1, math.ceil(wait)))
        if not self._verify(*credentials):
            return AuthVerdict(False)
        self._limiter.give_back(client)
        self._remember(fingerprint)
        return AuthVerdict(True)

    def _verify(self, user: bytes, password: bytes) -> bool:
        hashed = self._hash_of(user)
        try:
            ok = self._checkpw(password, hashed if hashed is not None else self._dummy)
        except ValueError:  # bcrypt refuses passwords over 72 bytes; no hash matches them
            ok = False
        return ok and hashed is not None

    def _cached(self, fingerprint: bytes) -> bool:
        with self._lock:
            if fingerprint not in self._cache:
                return False
            self._cache.move_to_end(fingerprint)
            return True

    def _remember(self, fingerprint: bytes) -> None:
        with self._lock:
            self._cache[fingerprint] = None
            while len(self._cache) > AUTH_CACHE_SIZE:
                self._cache.popitem(last=False)

    def _hash_of(self, user: bytes) -> bytes | None:
        # Compare every name in constant time and keep going, so timing does not say which.
        found = None
        for name, hashed in self._users.items():
            if hmac.compare_digest(name.encode("utf-8"), user):
                found = hashed
        return found


def _parse_basic(authorization: str | None) -> tuple[bytes, bytes] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


class BasicAuthMiddleware:
    """Every path answers 401 without valid credentials: the landing page lists the estate."""

    def __init__(self, app: WsgiApp, auth: BasicAuth) -> None:
        self._app = app
        self._auth = auth

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        client = str(environ.get("REMOTE_ADDR", ""))
        verdict = self._auth.check(environ.get("HTTP_AUTHORIZATION"), client)
        if verdict.allowed:
            return self._app(environ, start_response)
        if verdict.retry_after:
            log.debug("basic auth rate-limited for %s", client)
            retry = ("Retry-After", str(verdict.retry_after))
            return _refuse(start_response, "429 Too Many Requests", "too many failures\n", retry)
        log.debug("basic auth refused for %s", client)
        challenge = ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        return _refuse(start_response, "401 Unauthorized", "unauthorized\n", challenge)


def _refuse(
    start_response: StartResponse, status: str, text: str, header: tuple[str, str]
) -> list[bytes]:
    body = text.encode("utf-8")
    content = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, [*content, header])
    return [body]


def protect(app: WsgiApp, web: WebConfig) -> WsgiApp:
    """The app behind basic auth when the web config names users, else unchanged."""
    if not web.basic_auth_users:
        return app
    if web.tls is None:
        log.warning("basic auth without TLS: passwords cross the network in clear text")
    return BasicAuthMiddleware(app, BasicAuth(web.basic_auth_users))


# --- the server side of TLS ------------------------------------------------------------


class TlsServerMixin(socketserver.TCPServer):
    """Wraps accepted connections in TLS when `ssl_context` is set (plain TCP otherwise).

    The handshake runs in the connection's own thread, with a timeout, rather than in the
    accept loop: a client that connects and never speaks must not block other scrapes. The
    request handler sets the timeouts of what follows (drwatch.exporter.server).
    """

    ssl_context: ssl.SSLContext | None = None
    handshake_timeout: float = HANDSHAKE_TIMEOUT_SECONDS

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.ssl_context is None:
            return sock, address
        wrapped = self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(self.handshake_timeout)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as error:
                # A refused client certificate or a port scan: not the server's failure.
                log.debug("TLS handshake with %s failed: %s", client_address, error)
                return
        super().finish_request(request, client_address)
