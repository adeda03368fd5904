"""Fault injection in front of moto: errors, throttling and latency, per service/region/account.

`FaultMiddleware` wraps moto's WSGI app. For each request it works out the signing service,
region, account and operation (see `awsprotocol`), asks the `FaultInjector` what to do, and
either sleeps, answers with an AWS-shaped error, drops the connection without an answer, or
passes the request through. Kinds of fault (`FaultRule.kind`):

- "error": an AWS error reply (`error_code`, `http_status`): throttling (`Throttling`,
  `ThrottlingException`, `SlowDown`), server errors (`InternalFailure` 500,
  `ServiceUnavailable` 503), `AccessDenied`, expired credentials (`ExpiredToken`; scope the
  rule to one `access_key` to expire exactly the keys a client holds now). With an empty
  `error_code` and a latency, the rule only delays.
- "timeout": hold the request `latency_seconds`, then close the connection unanswered; with
  a latency beyond the client's read timeout the client times out first.
- "drop": close the connection at once without an answer, as a crashed endpoint or a
  refusing proxy does (botocore: `ConnectionClosedError`). A refused TCP connect cannot be
  scoped to one operation on a shared port: point a client at a closed port for that.
- "html": an HTML page with `http_status` (an endpoint without the operation, a proxy).
- "remove_field": pass the request on, then remove `field` from the answer's records (only
  from the record with a member equal to `record`, if set); see record_faults.py. An
  operation made unavailable is an "error" rule: `UnknownOperation` 400, `InternalFailure`
  500 or an "html" 404.

Rules can be changed in-process (`sandbox.faults.add(...)`) or over HTTP on the same port, so
a demo or a benchmark running in another process can steer them:

    POST   /_drwatch/faults   JSON list of rules (replaces the current list)
    GET    /_drwatch/faults   JSON list of the current rules
    DELETE /_drwatch/faults   remove every rule
"""

from __future__ import annotations

import dataclasses
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from drwatch.sandbox.awsprotocol import (
    HttpReply,
    RequestScope,
    ServiceCatalog,
    WsgiEnviron,
    identify_request,
    json_version_of,
    read_body,
    render_error,
)
from drwatch.sandbox.record_faults import html_reply, remove_fields

CONTROL_PATH = "/_drwatch/faults"
FAULT_KINDS = ("error", "timeout", "drop", "html", "remove_field")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[WsgiEnviron, StartResponse], Iterable[bytes]]
AccountResolver = Callable[[str], str]
Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Fail (or slow down) the requests that match every field that is set.

    `error_code` "" with a positive `latency_seconds` only delays the request.
    """

    error_code: str = ""
    http_status: int = 400
    message: str = "injected by drwatch sandbox"
    service: str | None = None  # SigV4 signing name, e.g. "rds"; None = any
    operation: str | None = None  # e.g. "DescribeDBInstances"; None = any
    region: str | None = None
    account_id: str | None = None
    probability: float = 1.0
    latency_seconds: float = 0.0
    kind: str = "error"  # see the module doc: error, timeout, drop
    access_key: str | None = None  # only requests signed with this access key id
    field: str | None = None  # kind "remove_field": the member to remove
    record: str | None = None  # kind "remove_field": only the record with this id/name/ARN

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(FAULT_KINDS)}, got {self.kind!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability: must be within [0, 1], got {self.probability}")
        if self.latency_seconds < 0:
            raise ValueError(f"latency_seconds: must be >= 0, got {self.latency_seconds}")
        if not 100 <= self.http_status <= 599:
            raise ValueError(f"http_status: must be an HTTP status, got {self.http_status}")
        if self.kind == "error" and not self.error_code and self.latency_seconds == 0:
            raise ValueError("error_code: empty is only allowed with latency_seconds > 0")
        if (self.kind == "remove_field") != bool(self.field):
            raise ValueError("field: required with kind remove_field, and only with it")

    def matches(self, scope: RequestScope, account_id: str | None) -> bool:
        """Scope check only; the probability roll is the injector's."""
        expected_actual = (
            (self.service, scope.service),
            (self.operation, scope.operation),
            (self.region, scope.region),
            (self.account_id, account_id),
            (self.access_key, scope.access_key),
        )
        return all(
            expected is None or (actual is not None and expected.lower() == actual.lower())
            for expected, actual in expected_actual
        )


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do with one request: wait this long, then fail with `error` unless None."""

    latency_seconds: float = 0.0
    error: FaultRule | None = None


def rule_to_dict(rule: FaultRule) -> dict[str, Any]:
    return dataclasses.asdict(rule)


def rule_from_dict(data: Mapping[str, Any]) -> FaultRule:
    """Build a rule from JSON data; errors name the offending field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"rule: must be a JSON object, got {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(FaultRule)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: {', '.join(fields)})")
    if data.get("kind", "error") == "error" and "error_code" not in data:
        raise ValueError("error_code: required")
    _check_json_types(data)
    try:
        return FaultRule(**data)
    except TypeError as error:
        raise ValueError(str(error)) from error


def _check_json_types(data: Mapping[str, Any]) -> None:
    expected: dict[str, tuple[type, ...]] = {
        "error_code": (str,),
        "http_status": (int,),
        "message": (str,),
        "service": (str, type(None)),
        "operation": (str, type(None)),
        "region": (str, type(None)),
        "account_id": (str, type(None)),
        "probability": (int, float),
        "latency_seconds": (int, float),
        "kind": (str,),
        "access_key": (str, type(None)),
        "field": (str, type(None)),
        "record": (str, type(None)),
    }
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, expected[name]):
            raise ValueError(f"{name}: wrong type {type(value).__name__}")


class FaultInjector:
    """The current fault rules and the seeded random source for probabilistic ones.

    Thread-safe: the server answers requests on many threads while tests change rules.
    """

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._rules: tuple[FaultRule, ...] = ()
        self._random = random.Random(seed)  # noqa: S311 - reproducible chaos, not crypto

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        with self._lock:
            return self._rules

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = (*self._rules, rule)

    def replace(self, rules: Iterable[FaultRule]) -> None:
        new_rules = tuple(rules)
        with self._lock:
            self._rules = new_rules

    def clear(self) -> None:
        """Remove every rule and rewind the random source, so runs are reproducible."""
        with self._lock:
            self._rules = ()
            self._random = random.Random(self._seed)  # noqa: S311 - reproducible, not crypto

    def needs_account(self) -> bool:
        return any(rule.account_id is not None for rule in self.rules)

    def decide(self, scope: RequestScope, account_id: str | None) -> FaultDecision:
        """Rules apply in order: latencies add up, the first error to fire wins."""
        latency = 0.0
        with self._lock:
            for rule in self._rules:
                if rule.kind == "remove_field":
                    continue  # applied to the answer: see field_removals
                if not rule.matches(scope, account_id) or not self._fires(rule):
                    continue
                latency += rule.latency_seconds
                if rule.error_code or rule.kind != "error":
                    return FaultDecision(latency, rule)
        return FaultDecision(latency, None)

    def field_removals(
        self, scope: RequestScope, account_id: str | None
    ) -> list[tuple[str, str | None]]:
        """(field, record) of every "remove_field" rule that matches the request."""
        return [
            (rule.field, rule.record)
            for rule in self.rules
            if rule.kind == "remove_field" and rule.field and rule.matches(scope, account_id)
        ]

    def _fires(self, rule: FaultRule) -> bool:
        # Certain rules do not draw, so adding one never shifts the sequence of the others.
        if rule.probability >= 1.0:
            return True
        return self._random.random() < rule.probability


class FaultMiddleware:
    """WSGI middleware that applies the injector's decisions and serves the control endpoint."""

    def __init__(
        self,
        app: WsgiApp,
        injector: FaultInjector,
        account_resolver: AccountResolver,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._app = app
        self._injector = injector
        self._resolve_account = account_resolver
        self._sleep = sleep
        self._catalog = ServiceCatalog()

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") == CONTROL_PATH:
            return self._control(environ, start_response)
        if not self._injector.rules:
            return self._app(environ, start_response)
        scope = identify_request(environ, self._catalog)
        account_id = self._account_of(scope)
        decision = self._injector.decide(scope, account_id)
        if decision.latency_seconds > 0:
            self._sleep(decision.latency_seconds)
        if decision.error is None:
            removals = self._injector.field_removals(scope, account_id)
            if removals:
                return self._rewritten(environ, start_response, removals)
            return self._app(environ, start_response)
        if decision.error.kind == "html":
            return _send(html_reply(decision.error.http_status), start_response)
        if decision.error.kind != "error":
            return _drop_connection(environ, start_response)
        return _send(self._error_reply(scope, decision.error), start_response)

    def _rewritten(
        self,
        environ: WsgiEnviron,
        start_response: StartResponse,
        removals: list[tuple[str, str | None]],
    ) -> Iterable[bytes]:
        """moto's answer with the fields removed (Content-Length recomputed)."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        chunks = self._app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if str(captured["status"]).startswith("2"):
            body = remove_fields(body, content_type, removals)
        start_response(captured["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _account_of(self, scope: RequestScope) -> str | None:
        # Resolving walks moto's IAM state, so only do it when a rule cares.
        if scope.access_key is None or not self._injector.needs_account():
            return None
        return self._resolve_account(scope.access_key)

    def _error_reply(self, scope: RequestScope, rule: FaultRule) -> HttpReply:
        protocol = self._catalog.protocol_for(scope.service)
        model = self._catalog.model_for_signing_name(scope.service) if scope.service else None
        return render_error(
            protocol, rule.error_code, rule.message, rule.http_status, json_version_of(model)
        )

    def _control(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "DELETE":
            self._injector.clear()
        elif method == "POST":
            try:
                self._injector.replace(_rules_from_json(read_body(environ)))
            except ValueError as error:
                return _send_json(400, {"error": str(error)}, start_response)
        elif method != "GET":
            return _send_json(405, {"error": f"method {method} not allowed"}, start_response)
        rules = [rule_to_dict(rule) for rule in self._injector.rules]
        return _send_json(200, rules, start_response)


def _rules_from_json(raw: bytes) -> list[FaultRule]:
    try:
        data = json.loads(raw or b"null")
    except json.JSONDecodeError as error:
        raise ValueError(f"body: not JSON ({error})") from error
    if not isinstance(data, list):
        raise ValueError("body: must be a JSON list of rules")
    rules = []
    for index, item in enumerate(data):
        try:
            rules.append(rule_from_dict(item))
        except ValueError as error:
            raise ValueError(f"[{index}].{error}") from error
    return rules


def _drop_connection(environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
    """Shuts the client's connection down unanswered (werkzeug hands us its socket).

    The response werkzeug then tries to write meets a closed socket, which it treats as a
    client that went away: no traceback, no answer.
    """
    connection = environ.get("werkzeug.socket")
    if connection is None:
        raise RuntimeError("drop/timeout faults need werkzeug's server (werkzeug.socket)")
    connection.shutdown(socket.SHUT_RDWR)
    start_response("500 Internal Server Error", [("Content-Length", "0")])
    return [b""]


def _send(reply: HttpReply, start_response: StartResponse) -> Iterable[bytes]:
    headers = [*reply.headers, ("Content-Length", str(len(reply.body)))]
    start_response(f"{reply.status} {_reason(reply.status)}", headers)
    return [reply.body]


def _send_json(status: int, payload: Any, start_response: StartResponse) -> Iterable[bytes]:
    body = json.dumps(payload).encode()
    reply = HttpReply(status, (("Content-Type", "application/json"),), body)
    return _send(reply, start_response)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
