"""HTTP endpoints: /metrics, /-/healthy, /-/ready and a landing page at /."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import jinja2
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from drwatch import __version__
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.poller import UnitStatus
from drwatch.exporter.webconfig import TlsServerMixin, WebConfig, protect, server_ssl_context

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
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


def unit_row(status: UnitStatus) -> UnitRow:
    key = status.schedule.key
    run = status.last_run
    if run is None:
        health, duration, error = "pending", "", ""
    else:
        health = "ok" if run.success else "failing"
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
    )


def landing_template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drwatch.exporter", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("landing.html.j2")


class ExporterApp:
    """The WSGI application; `ready` and `snapshot` come from the poller."""

    def __init__(
        self,
        metrics: MetricsView,
        ready: Callable[[], bool],
        snapshot: Callable[[], Sequence[UnitStatus]],
        reload: Reload | None = None,
    ) -> None:
        self._metrics = metrics
        self._ready = ready
        self._snapshot = snapshot
        self._landing = landing_template()
        # None: the lifecycle endpoint is off (`serve --web.enable-lifecycle` turns it on).
        self._reload = reload

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._serve_metrics(environ, start_response)
        if path == "/-/healthy":
            return text(start_response, "200 OK", "drwatch is healthy.\n")
        if path == "/-/ready":
            if self._ready():
                return text(start_response, "200 OK", "drwatch is ready.\n")
            return text(start_response, "503 Service Unavailable", "first poll not complete.\n")
        if path == "/-/reload":
            return self._serve_reload(environ, start_response)
        if path == "/":
            page = self._landing.render(
                version=__version__,
                ready=self._ready(),
                units=[unit_row(s) for s in self._snapshot()],
            )
            return respond(start_response, "200 OK", "text/html; charset=utf-8", page)
        return text(start_response, "404 Not Found", "not found; try /metrics\n")


    def _serve_reload(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        """Reloads the config like Prometheus' POST /-/reload: 200, or 500 with the error."""
        if self._reload is None:
            return text(start_response, "403 Forbidden", "lifecycle API is not enabled.\n")
        if environ.get("REQUEST_METHOD") not in ("POST", "PUT"):
            return text(start_response, "405 Method Not Allowed", "use POST to reload.\n")
        problem = self._reload()
        if problem is not None:
            return text(start_response, "500 Internal Server Error", f"reload failed: {problem}\n")
        return text(start_response, "200 OK", "config reloaded.\n")

    def _serve_metrics(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        gzipped = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        body = self._metrics.render(gzipped=gzipped)
        headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
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


class _ThreadingWSGIServer(TlsServerMixin, ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingWSGIServerV6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s are not news; access logs stay off."""


class HttpServer:
    """Serves an ExporterApp on a background thread; TLS and basic auth per `web`."""

    def __init__(
        self, app: ExporterApp, host: str, port: int, web: WebConfig | None = None
    ) -> None:
        web = web or WebConfig()
        # Built before binding, so a bad certificate fails without leaving a socket open.
        context = None if web.tls is None else server_ssl_context(web.tls)
        server_class = _ThreadingWSGIServerV6 if ":" in host else _ThreadingWSGIServer
        self._server = make_server(
            host, port, protect(app, web), server_class=server_class, handler_class=_QuietHandler
        )
        self._server.ssl_context = context
        self.scheme = "http" if context is None else "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="drwatch-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
