"""The HTTP server under hostile or clumsy clients: timeouts, connection limit, methods,
bounded authentication cost, and web config errors that never echo the file.

No test measures speed: timeouts under test are 0.5 s and each test waits for the event
(the server closing the socket, a counter moving) with a generous upper bound.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from drwatch.config import ConfigError
from drwatch.exporter.server import HttpLimits, HttpServer
from drwatch.exporter.webconfig import (
    BasicAuth,
    BasicAuthMiddleware,
    FailureLimiter,
    WebConfig,
    load_web_config,
)
from tests.helpers import FakeClock
from tests.test_webconfig import HASH, PASSWORD, Pki, client_context, empty_app, make_pki, tls_yaml

SHORT = 0.5  # the timeout under test
PATIENCE = 30.0  # how long a test waits for what must happen much sooner
MARKER = "hunter2-MARKER-never-echo"
REJECTED = "drwatch_http_connections_rejected_total"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def serve() -> Iterator[Callable[..., HttpServer]]:
    """Starts servers on loopback and stops them after the test."""
    servers: list[HttpServer] = []

    def start(web: WebConfig | None = None, **limits: Any) -> HttpServer:
        server = HttpServer(empty_app(), "127.0.0.1", 0, web, HttpLimits(**limits))
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def connect(server: HttpServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)


def closed_by_server(sock: socket.socket) -> bool:
    """Blocks until the server closes (True) or PATIENCE passes with the socket open."""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def exchange(server: HttpServer, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Sends raw bytes, reads to EOF: what the client really receives, body and all."""
    with connect(server) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET /metrics HTTP/1.1\r\nHost: drwatch\r\n"])
def test_idle_and_half_sent_plain_requests_release_their_thread(
    serve: Callable[..., HttpServer], sent: bytes
) -> None:
    server = serve(read_timeout=SHORT)
    with connect(server) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock)
    wait_until(lambda: server.active_connections == 0)


def test_a_trickled_request_head_is_cut_at_the_deadline(serve: Callable[..., HttpServer]) -> None:
    """One byte every 50 ms never idles 0.5 s, yet the whole head must arrive in 0.5 s."""
    server = serve(read_timeout=SHORT)
    header = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 10_000
    with connect(server) as sock:
        sent = 0
        while sent < 600:  # 30 s of trickle: far beyond the 0.5 s deadline
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable or not send_quietly(sock, header[sent : sent + 1]):
                break
            sent += 1
        assert sent < 600
        assert closed_by_server(sock)


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def test_tls_connections_time_out_in_and_after_the_handshake(
    serve: Callable[..., HttpServer], tmp_path: Path, pki: Pki
) -> None:
    (tmp_path / "web.yml").write_text(tls_yaml(pki))
    server = serve(load_web_config(tmp_path / "web.yml"), read_timeout=SHORT,
                   handshake_timeout=SHORT)  # fmt: skip
    with connect(server) as silent:  # never starts the handshake
        # 10 times the setting, half the 10 s default: shows the setting is the one used.
        silent.settimeout(10 * SHORT)
        assert closed_by_server(silent)
    context = client_context(pki)
    with context.wrap_socket(connect(server), server_hostname="localhost") as idle:
        assert closed_by_server(idle)  # handshake done, no request
    wait_until(lambda: server.active_connections == 0)


# --- connection limit -------------------------------------------------------------------


def test_connections_beyond_the_limit_are_closed_and_counted(
    serve: Callable[..., HttpServer],
) -> None:
    server = serve(max_connections=2)  # default read timeout: 60 s, longer than PATIENCE
    holders = [connect(server), connect(server)]
    wait_until(lambda: server.active_connections == 2)
    with connect(server) as third:
        assert closed_by_server(third)
    assert server.rejected_connections == 1
    holders.pop().close()
    wait_until(lambda: server.active_connections == 1)
    _, _, plain = exchange(server, b"GET /metrics HTTP/1.0\r\n\r\n")
    assert f"{REJECTED} 1.0" in plain.decode()
    # The client sees EOF a moment before the server thread gives its slot back.
    wait_until(lambda: server.active_connections == 1)
    _, headers, zipped = exchange(server, b"GET /metrics HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
    assert headers["Content-Encoding"] == "gzip"
    assert f"{REJECTED} 1.0" in gzip.decompress(zipped).decode()
    holders.pop().close()


def test_the_rejection_counter_is_exposed_from_zero(serve: Callable[..., HttpServer]) -> None:
    _, _, body = exchange(serve(), b"GET /metrics HTTP/1.0\r\n\r\n")
    assert f"# TYPE {REJECTED} counter" in body.decode()
    assert f"{REJECTED} 0.0" in body.decode()


# --- methods ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/-/healthy", "/-/ready", "/"])
def test_head_answers_headers_without_a_body(serve: Callable[..., HttpServer], path: str) -> None:
    server = serve()
    status, headers, body = exchange(server, f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
    assert status.split()[1] == "200"
    assert int(headers["Content-Length"]) > 0
    assert body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/metrics", "/-/healthy", "/-/ready", "/"])
def test_other_methods_on_read_paths_answer_405_with_allow(
    serve: Callable[..., HttpServer], path: str, method: str
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", serve().port, timeout=PATIENCE)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
    finally:
        connection.close()


# --- authentication cost ----------------------------------------------------------------


class CountingCheck:
    """bcrypt.checkpw that records the hash of every call."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.hashes.append(hashed)
        return bcrypt.checkpw(password, hashed)


def test_unknown_users_pay_the_highest_configured_cost() -> None:
    cheap = bcrypt.hashpw(b"a", bcrypt.gensalt(4))
    dear = bcrypt.hashpw(b"b", bcrypt.gensalt(6))
    check = CountingCheck()
    auth = BasicAuth({"cheap": cheap, "dear": dear, "also-cheap": cheap}, checkpw=check)
    assert auth.unknown_user_cost == 6
    assert not auth.allows(basic("nobody", "x"))
    assert [h[4:6] for h in check.hashes] == [b"06"]


def test_failures_beyond_the_burst_are_refused_without_bcrypt() -> None:
    clock = FakeClock()
    check = CountingCheck()
    auth = BasicAuth({"alice": HASH.encode()}, FailureLimiter(clock=clock.monotonic), check)
    for _ in range(10):
        assert auth.check(basic("alice", "wrong"), "10.0.0.1").retry_after == 0
    assert len(check.hashes) == 10
    limited = auth.check(basic("alice", PASSWORD), "10.0.0.1")  # even the right password
    assert (limited.allowed, limited.retry_after) == (False, 1)
    assert len(check.hashes) == 10  # refused before bcrypt ran
    assert not auth.check(basic("alice", "wrong"), "10.0.0.2").retry_after  # other address
    clock.advance(1)
    assert auth.check(basic("alice", PASSWORD), "10.0.0.1").allowed  # one token refilled
    assert len(check.hashes) == 12


def test_successful_checks_give_their_token_back() -> None:
    check = CountingCheck()
    auth = BasicAuth({"alice": HASH.encode()}, FailureLimiter(clock=FakeClock().monotonic), check)
    outcomes = [auth.check(basic("alice", "wrong"), "10.0.0.1").allowed for _ in range(9)]
    outcomes.append(auth.check(basic("alice", PASSWORD), "10.0.0.1").allowed)
    outcomes.append(auth.check(basic("alice", "wrong"), "10.0.0.1").allowed)
    assert outcomes == [False] * 9 + [True, False]
    assert len(check.hashes) == 11
    assert auth.check(basic("alice", "wrong"), "10.0.0.1").retry_after == 1


def test_the_limiter_tracks_a_bounded_number_of_addresses() -> None:
    limiter = FailureLimiter(burst=1, clients=2, clock=FakeClock().monotonic)
    assert [limiter.take(a) for a in ("a", "b", "c")] == [0.0, 0.0, 0.0]
    assert limiter.take("c") == 1.0  # c is still tracked and empty
    assert limiter.take("a") == 0.0  # a was forgotten (least recent): full again


def test_the_middleware_answers_429_with_retry_after() -> None:
    auth = BasicAuth({"alice": HASH.encode()}, FailureLimiter(burst=1))
    app = BasicAuthMiddleware(lambda environ, start: [b"ok"], auth)
    answers: list[tuple[str, dict[str, str]]] = []
    environ = {"HTTP_AUTHORIZATION": basic("alice", "wrong"), "REMOTE_ADDR": "192.0.2.1"}
    for _ in range(2):
        app(environ, lambda status, headers: answers.append((status, dict(headers))))
    assert [status for status, _ in answers] == ["401 Unauthorized", "429 Too Many Requests"]
    assert answers[1][1]["Retry-After"] == "1"


# --- web config errors ------------------------------------------------------------------

BAD_YAML = [
    f'basic_auth_users:\n  alice: "{MARKER}\n',  # unterminated quoted scalar
    f"basic_auth_users:\n  alice: {MARKER}: x\n",  # mapping value where none is allowed
    f"basic_auth_users:\n  alice: *{MARKER}\n",  # undefined alias: PyYAML quotes its name
    f"basic_auth_users:\n  alice: {MARKER}\n\t- x\n",  # a tab that cannot start a token
]


@pytest.mark.parametrize("text", BAD_YAML)
def test_yaml_errors_give_line_and_column_never_the_text(tmp_path: Path, text: str) -> None:
    (tmp_path / "web.yml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_web_config(tmp_path / "web.yml")
    message = str(error.value)
    assert "line " in message
    assert "column " in message
    assert MARKER not in message
    assert error.value.__cause__ is None  # nor in a logged traceback's chained cause
    assert error.value.__suppress_context__


def test_deep_nesting_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested deeper than 16 levels at line 1, column 17"):
        load_web_config(tmp_path / "web.yml")


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("#" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        load_web_config(tmp_path / "web.yml")


@pytest.mark.parametrize("field", ["min_version", "max_version"])
@pytest.mark.parametrize("version", ["TLS10", "TLS11"])
def test_tls_versions_openssl_refuses_are_config_errors(
    tmp_path: Path, field: str, version: str
) -> None:
    (tmp_path / "web.yml").write_text(
        f"tls_server_config: {{cert_file: c, key_file: k, {field}: {version}}}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_web_config(tmp_path / "web.yml")
    assert error.value.field == f"tls_server_config.{field}"
    assert "security level 2" in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [(BAD_YAML[1], "line 2, column"), ("[" * 100_000, "nested deeper than 16 levels")],
)
def test_serve_with_a_bad_web_config_exits_2_without_echoing_it(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "drwatch.yml"
    config.write_text('accounts: [{id: "111111111111"}]\nregions: [us-east-1]\n')
    (tmp_path / "bad.yml").write_text(text)
    command = [sys.executable, "-m", "drwatch", "serve", "--config", str(config)]
    result = subprocess.run(
        [*command, "--listen-address", "127.0.0.1:0", "--web.config.file", "bad.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert MARKER not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
