"""HTTP endpoints: /metrics, /-/healthy, /-/ready and a landing page at /.

The server bounds what one client can hold (docs/security.md): a deadline to receive each
request, a limit on concurrent connections (those beyond it are closed and counted in
drwatch_http_connections_rejected_total) and a listen backlog for bursts.
"""

from __future__ import annotations

import gzip
import io
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import jinja2
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

from drwatch import __version__
from drwatch.exporter.metrics.view import OPENMETRICS_EOF, MetricsView, families_text
from drwatch.exporter.poller import UnitStatus
from drwatch.exporter.webconfig import (
    HANDSHAKE_TIMEOUT_SECONDS,
    TlsServerMixin,
    WebConfig,
    WsgiApp,
    protect,
    server_ssl_context,
)

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
# Any method but these on a read-only path answers 405 (RFC 9110 requires the Allow header).
_READ_METHODS: Final = ("GET", "HEAD")
# Reloads the config; None on success, else what went wrong (the old config stays).
Reload = Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One landing-page row; plain strings so the template stays logic-free."""

    collector: str
    account_id: str
    region: str
    health: str
    last_success: str
    duration: str
    resources: int
    error: str
    skipped: int = 0  # records the unit's polls left out since start
    unavailable: str = ""  # optional features not offered here, comma-separated


def unit_row(status: UnitStatus) -> UnitRow:
    key = status.schedule.key
    run = status.last_run
    if run is None:
        health, duration, error = "pending", "", ""
    else:
        health = ("partial" if run.partial else "ok") if run.success else "failing"
        duration = f"{run.duration_seconds:.2f} s"
        error = run.error_code
    return UnitRow(
        collector=key.collector,
        account_id=key.account_id,
        region=key.region,
        health=health,
        last_success=status.last_success.strftime("%Y-%m-%d %H:%M:%S")
        if status.last_success
        else "",
        duration=duration,
        resources=len(status.observations.resources) if status.observations else 0,
        error=error,
        skipped=sum(status.records_skipped.values()),
        unavailable=", ".join(
            sorted(f for f, state in (run.features if run else {}).items() if state != "available")
        ),
    )


# The landing page's order: what needs a look first.
HEALTH_ORDER: Final = ("failing", "partial", "pending", "ok")


@dataclass(frozen=True, slots=True)
class UnitGroup:
    """The landing page's rows of one health, by collector, account and region."""

    health: str
    rows: tuple[UnitRow, ...]


@dataclass(frozen=True, slots=True)
class LandingSummary:
    units: int
    resources: int
    groups: tuple[UnitGroup, ...]  # every health of HEALTH_ORDER, empty ones included

    def count(self, health: str) -> int:
        return next(len(g.rows) for g in self.groups if g.health == health)


def landing_summary(statuses: Iterable[UnitStatus]) -> LandingSummary:
    """Failing units first, then partial, pending and ok; each by collector, account, region."""
    rows = sorted(
        (unit_row(s) for s in statuses), key=lambda r: (r.collector, r.account_id, r.region)
    )
    groups = tuple(
        UnitGroup(health, tuple(r for r in rows if r.health == health)) for health in HEALTH_ORDER
    )
    return LandingSummary(len(rows), sum(r.resources for r in rows), groups)


def landing_template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drwatch.exporter", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("landing.html.j2")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client may hold; the defaults suit Prometheus scraping every 15 s or more.

    Not in the web config file: the exporter-toolkit's format has no such fields, and the
    same file must stay valid for node_exporter and Prometheus.
    """

    # The request line and headers must all arrive within this; each response write too.
    read_timeout: float = 60.0
    handshake_timeout: float = HANDSHAKE_TIMEOUT_SECONDS
    # Handler threads; a connection beyond them is closed at once and counted.
    max_connections: int = 64

    def __post_init__(self) -> None:
        if self.read_timeout <= 0 or self.handshake_timeout <= 0 or self.max_connections < 1:
            raise ValueError(f"timeouts must be > 0 and max_connections >= 1: {self}")


class ConnectionStats(Collector):
    """Connections the server turned away; rendered on /metrics by ExporterApp."""

    def __init__(self) -> None:
        self._rejected = 0
        self._lock = threading.Lock()

    @property
    def rejected(self) -> int:
        return self._rejected

    def reject(self) -> None:
        with self._lock:
            self._rejected += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "drwatch_http_connections_rejected",
            "Connections closed unserved because max_connections were already open.",
            value=self._rejected,
        )


class ExporterApp:
    """The WSGI application; `ready` and `snapshot` come from the poller."""

    def __init__(
        self,
        metrics: MetricsView,
        ready: Callable[[], bool],
        snapshot: Callable[[], Sequence[UnitStatus]],
        reload: Reload | None = None,
        evidence: Callable[[], str | None] | None = None,
        telemetry_path: str = "/metrics",
    ) -> None:
        self._metrics = metrics
        self._telemetry_path = telemetry_path
        self._read_paths = frozenset({telemetry_path, "/", "/-/healthy", "/-/ready"})
        self._ready = ready
        # Why evidence cannot be written to the history now, or None (then /-/ready is 503).
        self._evidence = evidence
        self._snapshot = snapshot
        self._landing = landing_template()
        # None: the lifecycle endpoint is off (`serve --web.enable-lifecycle` turns it on).
        self._reload = reload
        self.connections = ConnectionStats()
        # Its own registry, appended to the view's body: the server's counters stay here.
        self._http_registry = CollectorRegistry(auto_describe=False)
        self._http_registry.register(self.connections)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in self._read_paths and environ.get("REQUEST_METHOD", "GET") not in _READ_METHODS:
            return not_allowed(start_response, ", ".join(_READ_METHODS))
        if path == self._telemetry_path:
            return self._serve_metrics(environ, start_response)
        if path == "/-/healthy":
            return text(start_response, "200 OK", "drwatch is healthy.\n")
        if path == "/-/ready":
            if not self._ready():
                return text(start_response, "503 Service Unavailable", "first poll not complete.\n")
            problem = self._evidence() if self._evidence is not None else None
            if problem is not None:
                return text(start_response, "503 Service Unavailable", f"{problem}\n")
            return text(start_response, "200 OK", "drwatch is ready.\n")
        if path == "/-/reload":
            return self._serve_reload(environ, start_response)
        if path == "/":
            page = self._landing.render(
                version=__version__,
                telemetry_path=self._telemetry_path,
                ready=self._ready(),
                summary=landing_summary(self._snapshot()),
            )
            return respond(start_response, "200 OK", "text/html; charset=utf-8", page)
        return text(start_response, "404 Not Found", f"not found; try {self._telemetry_path}\n")

    def _serve_reload(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        """Reloads the config like Prometheus' POST /-/reload: 200, or 500 with the error."""
        if self._reload is None:
            return text(start_response, "403 Forbidden", "lifecycle API is not enabled.\n")
        if environ.get("REQUEST_METHOD") not in ("POST", "PUT"):
            return not_allowed(start_response, "POST, PUT")
        problem = self._reload()
        if problem is not None:
            return text(start_response, "500 Internal Server Error", f"reload failed: {problem}\n")
        return text(start_response, "200 OK", "config reloaded.\n")

    def _serve_metrics(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        """The text format, or OpenMetrics when the client's Accept header prefers it (as
        Prometheus does), chosen by prometheus_client's own negotiation; gzip when asked."""
        gzipped = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))
        _, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")
        tail = families_text(self._http_registry, openmetrics)
        if openmetrics:
            tail += OPENMETRICS_EOF
        # A gzip stream may hold several members (RFC 1952); the view's body already does.
        body = self._metrics.render(gzipped=gzipped, openmetrics=openmetrics) + (
            gzip.compress(tail) if gzipped else tail
        )
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]


def respond(
    start_response: StartResponse, status: str, content_type: str, body: str
) -> list[bytes]:
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    return respond(start_response, status, "text/plain; charset=utf-8", body)


def not_allowed(start_response: StartResponse, allow: str) -> list[bytes]:
    data = f"method not allowed; use {allow}\n".encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(data))),
        ("Allow", allow),
    ]
    start_response("405 Method Not Allowed", headers)
    return [data]


def without_head_bodies(app: WsgiApp) -> WsgiApp:
    """Drops the body of HEAD answers, which wsgiref would send (other servers drop it).

    The body is still produced, so Content-Length is the GET answer's, as RFC 9110 allows.
    """

    def serve(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "HEAD":
            return body
        for _ in body:
            pass  # a lazy app calls start_response on its first chunk
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return []

    return serve


class _DeadlineReader(socket.SocketIO):
    """Reads a socket against one deadline rather than per call.

    A per-call timeout lets a client that sends a byte every few seconds hold its thread for
    ever; with one deadline for the request head, every connection's thread is freed by then.
    """

    def __init__(self, connection: socket.socket, seconds: float) -> None:
        super().__init__(connection, "rb")
        self._connection = connection
        self._deadline: float | None = time.monotonic() + seconds

    def readinto(self, buffer: Any) -> int | None:
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request not received in time")
            self._connection.settimeout(left)
        return super().readinto(buffer)

    def end_deadline(self) -> None:
        self._deadline = None


class _Handler(WSGIRequestHandler):
    """One request per connection, as wsgiref serves, under the server's HttpLimits."""

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader super() made; releases its socket reference
        self._reader = _DeadlineReader(self.connection, self._limits().read_timeout)
        self.rfile = io.BufferedReader(self._reader)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        # The head is in. From here the timeout bounds each socket call instead: a write of
        # the answer (one sendall per chunk, so a client that stops reading is dropped).
        self._reader.end_deadline()
        self.connection.settimeout(self._limits().read_timeout)
        return parsed

    def _limits(self) -> HttpLimits:
        server = self.server
        return server.limits if isinstance(server, _ThreadingWSGIServer) else HttpLimits()

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s are not news; access logs stay off."""


class _ThreadingWSGIServer(TlsServerMixin, ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when a few scrapers arrive
    # together. SOMAXCONN (4096 with current Linux headers; the kernel caps it at
    # net.core.somaxconn) rather than 128: in bench/http_load.py 200 simultaneous connects
    # overflowed a backlog of 128 and the dropped SYNs, retried after 1 s and 3 s, made p99
    # 2 s against 0.2 s. Queued connections wait in the kernel, not in a thread.
    request_queue_size = socket.SOMAXCONN

    def __init__(
        self,
        address: tuple[str, int],
        limits: HttpLimits,
        ssl_context: ssl.SSLContext | None,
        on_reject: Callable[[], None],
    ) -> None:
        self.limits = limits
        self.ssl_context = ssl_context
        self.handshake_timeout = limits.handshake_timeout
        self._on_reject = on_reject
        self._active = 0
        self._active_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def active_connections(self) -> int:
        return self._active

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._claim():
            # Closed in the accept loop: answering (a TLS handshake first) would need the
            # very thread there is none of.
            self._on_reject()
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()  # the thread did not start, so it will not release its slot
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # timeouts, resets, TLS alerts: the client's doing
            log.debug("connection from %s ended: %s", client_address, error)
            return
        log.error("error serving %s", client_address, exc_info=True)

    def _claim(self) -> bool:
        with self._active_lock:
            if self._active >= self.limits.max_connections:
                return False
            self._active += 1
            return True

    def _release(self) -> None:
        with self._active_lock:
            self._active -= 1


class _ThreadingWSGIServerV6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class HttpServer:
    """Serves an ExporterApp on a background thread; TLS and basic auth per `web`."""

    def __init__(
        self,
        app: ExporterApp,
        host: str,
        port: int,
        web: WebConfig | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        web = web or WebConfig()
        # Built before binding, so a bad certificate fails without leaving a socket open.
        context = None if web.tls is None else server_ssl_context(web.tls)
        server_class = _ThreadingWSGIServerV6 if ":" in host else _ThreadingWSGIServer
        self._stats = app.connections
        self._server = server_class(
            (host, port), limits or HttpLimits(), context, app.connections.reject
        )
        self._server.set_app(without_head_bodies(protect(app, web)))
        self.scheme = "http" if context is None else "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="drwatch-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def active_connections(self) -> int:
        return self._server.active_connections

    @property
    def rejected_connections(self) -> int:
        return self._stats.rejected

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
