"""What an AWS request is (service, region, access key, operation) and how AWS says "no".

The fault middleware sees raw WSGI requests, so it recovers what botocore put on the wire:
the SigV4 credential scope names the signing service and region, `Action=` (query protocols)
or `X-Amz-Target` (json protocols) names the operation, and for rest protocols the method and
path are matched against the `requestUri` templates of botocore's own service model.

Error bodies are rendered in the format botocore's parser for that protocol reads, so an
injected fault surfaces as an ordinary `ClientError` with the injected code.
"""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import botocore.session
from botocore.exceptions import UnknownServiceError
from botocore.model import ServiceModel

WsgiEnviron = dict[str, Any]

# Signing names that differ from the botocore service name and matter to drwatch; anything
# else falls back to a (cached) scan of every service model.
KNOWN_SIGNING_ALIASES = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "apigateway"}


@dataclass(frozen=True, slots=True)
class RequestScope:
    """Who asks whom for what; None where the request does not say."""

    service: str | None  # SigV4 signing name, lower case
    region: str | None
    access_key: str | None
    operation: str | None


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A complete HTTP response, built outside moto."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class _RestRoute:
    operation: str
    method: str
    path: re.Pattern[str]
    query: tuple[tuple[str, str | None], ...]  # required query keys, optionally with a value
    specificity: int


def parse_credential_scope(authorization: str) -> tuple[str, str, str] | None:
    """(access_key, region, signing_name) from a SigV4 `Authorization` header, else None."""
    match = re.search(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request", authorization)
    if match is None:
        return None
    access_key, region, service = match.groups()
    return access_key, region, service.lower()


def read_form_body(environ: WsgiEnviron) -> dict[str, list[str]]:
    """Parse a form-encoded body and put it back, so the wrapped app can read it again."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return {}
    raw = read_body(environ)
    return parse_qs(raw.decode("utf-8", errors="replace"))


def read_body(environ: WsgiEnviron) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    raw: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw


def _compile_request_uri(operation: str, method: str, request_uri: str) -> _RestRoute:
    path_template, _, query_template = request_uri.partition("?")
    pattern = ""
    literal_chars = 0
    for literal, label in re.findall(r"([^{]*)(?:\{([^}]*)\})?", path_template):
        pattern += re.escape(literal)
        literal_chars += len(literal)
        if label:
            pattern += "(.+)" if label.endswith("+") else "([^/]+)"
    query: list[tuple[str, str | None]] = []
    for item in filter(None, query_template.split("&")):
        key, sep, value = item.partition("=")
        query.append((key, value if sep else None))
    return _RestRoute(
        operation=operation,
        method=method.upper(),
        path=re.compile(pattern.rstrip("/") + "/?$"),
        query=tuple(query),
        specificity=literal_chars * 10 + len(query),
    )


class ServiceCatalog:
    """Cached lookups in botocore's service models (loading a model costs milliseconds)."""

    def __init__(self) -> None:
        self._session = botocore.session.get_session()
        self._lock = threading.Lock()
        self._models: dict[str, ServiceModel | None] = {}
        self._routes: dict[str, tuple[_RestRoute, ...]] = {}
        self._signing_index: dict[str, str] | None = None

    def model_for_signing_name(self, signing_name: str) -> ServiceModel | None:
        with self._lock:
            if signing_name not in self._models:
                self._models[signing_name] = self._load_model(signing_name)
            return self._models[signing_name]

    def protocol_for(self, signing_name: str | None) -> str:
        model = self.model_for_signing_name(signing_name) if signing_name else None
        if model is None:
            return "query"
        return str(model.resolved_protocol)

    def _load_model(self, signing_name: str) -> ServiceModel | None:
        name = KNOWN_SIGNING_ALIASES.get(signing_name, signing_name)
        try:
            return self._session.get_service_model(name)
        except UnknownServiceError:
            pass
        real_name = self._signing_name_index().get(signing_name)
        return self._session.get_service_model(real_name) if real_name else None

    def _signing_name_index(self) -> dict[str, str]:
        # Only reached for signing names that are not service names: loads every model once.
        if self._signing_index is None:
            index: dict[str, str] = {}
            for name in self._session.get_available_services():
                model = self._session.get_service_model(name)
                index.setdefault(str(model.signing_name), name)
            self._signing_index = index
        return self._signing_index

    def rest_operation(self, signing_name: str, method: str, path: str, query: str) -> str | None:
        """The operation whose method and requestUri match best, for rest protocols."""
        model = self.model_for_signing_name(signing_name)
        if model is None:
            return None
        with self._lock:
            routes = self._routes.get(signing_name)
            if routes is None:
                routes = self._compile_routes(model)
                self._routes[signing_name] = routes
        query_params = parse_qs(query, keep_blank_values=True)
        best: _RestRoute | None = None
        for route in routes:
            if route.method != method.upper() or not route.path.match(path):
                continue
            if not _query_satisfies(query_params, route.query):
                continue
            if best is None or route.specificity > best.specificity:
                best = route
        return best.operation if best else None

    @staticmethod
    def _compile_routes(model: ServiceModel) -> tuple[_RestRoute, ...]:
        routes = []
        for name in model.operation_names:
            http = model.operation_model(name).http
            if "requestUri" in http:
                method = http.get("method", "POST")
                routes.append(_compile_request_uri(name, method, http["requestUri"]))
        return tuple(routes)


def _query_satisfies(
    params: dict[str, list[str]], required: tuple[tuple[str, str | None], ...]
) -> bool:
    for key, value in required:
        if key not in params:
            return False
        if value is not None and value not in params[key]:
            return False
    return True


def identify_request(environ: WsgiEnviron, catalog: ServiceCatalog) -> RequestScope:
    """Service, region, access key and operation of a raw request, as far as it tells."""
    scope = parse_credential_scope(environ.get("HTTP_AUTHORIZATION", ""))
    access_key, region, service = scope if scope else (None, None, None)
    return RequestScope(
        service=service,
        region=region,
        access_key=access_key,
        operation=_operation_of(environ, service, catalog),
    )


def _operation_of(environ: WsgiEnviron, service: str | None, catalog: ServiceCatalog) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return str(query["Action"][0])
    protocol = catalog.protocol_for(service)
    if protocol in ("query", "ec2"):
        action = read_form_body(environ).get("Action")
        return str(action[0]) if action else None
    if protocol in ("rest-json", "rest-xml") and service:
        return catalog.rest_operation(
            service,
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", "/"),
            environ.get("QUERY_STRING", ""),
        )
    return None


def render_error(
    protocol: str, code: str, message: str, status: int, json_version: str = "1.0"
) -> HttpReply:
    """An error response botocore's parser for `protocol` turns into ClientError(code)."""
    request_id = str(uuid.uuid4())
    if protocol in ("json", "rest-json"):
        content_type = (
            f"application/x-amz-json-{json_version}" if protocol == "json" else "application/json"
        )
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = (
            ("Content-Type", content_type),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", request_id),
        )
        return HttpReply(status, headers, body)
    if protocol == "smithy-rpc-v2-cbor":
        headers = (
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-RequestId", request_id),
        )
        return HttpReply(status, headers, _cbor_text_map({"__type": code, "message": message}))
    if protocol == "ec2":
        xml = (
            f"<Response><Errors><Error><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    elif protocol == "rest-xml":
        xml = (
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    else:
        sender = "Receiver" if status >= 500 else "Sender"
        xml = (
            f"<ErrorResponse><Error><Type>{sender}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    headers = (
        ("Content-Type", "text/xml"),
        ("x-amzn-RequestId", request_id),
        ("x-amz-request-id", request_id),
    )
    return HttpReply(status, headers, ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode())


def json_version_of(model: ServiceModel | None) -> str:
    if model is None:
        return "1.0"
    return str(model.metadata.get("jsonVersion", "1.0"))


def _cbor_text_map(items: dict[str, str]) -> bytes:
    """Minimal CBOR encoding of a small map of text strings (RFC 8949, major types 3 and 5)."""
    out = bytearray(_cbor_head(5, len(items)))
    for key, value in items.items():
        for text in (key, value):
            encoded = text.encode("utf-8")
            out += _cbor_head(3, len(encoded)) + encoded
    return bytes(out)


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for extra, size in ((24, 1), (25, 2), (26, 4)):
        if length < 256**size:
            return bytes([major << 5 | extra]) + length.to_bytes(size, "big")
    raise ValueError("CBOR item too long for an error message")
