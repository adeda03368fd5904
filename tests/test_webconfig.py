"""TLS, mutual TLS and basic auth on the real HTTP server, with real HTTPS clients.

Certificates are made in the test with `cryptography`: a server CA, a client CA, and a rogue
CA whose client certificate must be refused. Clients are Python's ssl/urllib and curl.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drwatch.config import ConfigError, TierConfig
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.server import ExporterApp, HttpServer
from drwatch.exporter.webconfig import BasicAuth, WebConfig, load_web_config

PASSWORD = "correct horse battery staple"
# Cost 4 (bcrypt's minimum) keeps the tests fast; $2y$ is the prefix htpasswd writes.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)


@dataclass(frozen=True)
class Pki:
    server_ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    def authority(name: str) -> tuple[x509.Name, ec.EllipticCurvePrivateKey, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(name, key, None, ca=True)
        return cert.subject, key, _write_cert(cert, directory / f"{name}.crt")

    def leaf(name: str, ca: tuple[x509.Name, ec.EllipticCurvePrivateKey], server: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_cert(_issue(name, key, ca, server=server), directory / f"{name}.crt")
        _write_key(key, directory / f"{name}.key")

    server_ca, server_ca_key, server_ca_file = authority("server-ca")
    client_ca, client_ca_key, client_ca_file = authority("client-ca")
    rogue_ca, rogue_ca_key, _ = authority("rogue-ca")
    leaf("server", (server_ca, server_ca_key), server=True)
    leaf("client", (client_ca, client_ca_key), server=False)
    leaf("rogue", (rogue_ca, rogue_ca_key), server=False)
    return Pki(
        server_ca=server_ca_file,
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_ca=client_ca_file,
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        rogue_cert=directory / "rogue.crt",
        rogue_key=directory / "rogue.key",
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def empty_app() -> ExporterApp:
    """The real app over a poller with no units: /metrics still carries self-metrics."""
    return ExporterApp(MetricsView(lambda: (), ApiStats(), TierConfig()), lambda: True, lambda: ())


def write_web_config(directory: Path, text: str) -> WebConfig:
    path = directory / "web.yml"
    path.write_text(text)
    return load_web_config(path)


def start(web: WebConfig) -> HttpServer:
    server = HttpServer(empty_app(), "127.0.0.1", 0, web)
    server.start()
    return server


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.server_ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def get(
    url: str, context: ssl.SSLContext | None = None, user: str | None = None, password: str = ""
) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def refused(url: str, context: ssl.SSLContext | None) -> bool:
    """True when the TLS connection fails (the server refused us, or we refused it)."""
    try:
        get(url, context)
    except (urllib.error.URLError, ssl.SSLError, ConnectionError):
        return True
    return False


def tls_yaml(pki: Pki, extra: str = "") -> str:
    return (
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        + extra
    )


MTLS = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}\n"


def test_tls_serves_metrics_to_a_client_that_trusts_the_ca(tmp_path: Path, pki: Pki) -> None:
    server = start(write_web_config(tmp_path, tls_yaml(pki)))
    try:
        url = f"https://127.0.0.1:{server.port}/metrics"
        status, body = get(url, client_context(pki))
        assert status == 200
        assert "drwatch_build_info" in body
        # Plain HTTP to the TLS port gets no metrics, and the server keeps serving after it.
        assert refused(f"http://127.0.0.1:{server.port}/metrics", None)
        assert refused(url, ssl.create_default_context())  # a client that does not trust us
        assert get(url, client_context(pki))[0] == 200
        assert server.scheme == "https"
    finally:
        server.stop()


def test_mutual_tls_requires_a_client_cert_from_the_configured_ca(tmp_path: Path, pki: Pki) -> None:
    web = write_web_config(tmp_path, tls_yaml(pki, MTLS.format(ca=pki.client_ca)))
    server = start(web)
    url = f"https://127.0.0.1:{server.port}/metrics"
    try:
        assert refused(url, client_context(pki))  # no client certificate
        assert refused(url, client_context(pki, pki.rogue_cert, pki.rogue_key))  # other CA
        status, body = get(url, client_context(pki, pki.client_cert, pki.client_key))
        assert status == 200
        assert "drwatch_build_info" in body
    finally:
        server.stop()


def test_min_version_refuses_older_clients(tmp_path: Path, pki: Pki) -> None:
    server = start(write_web_config(tmp_path, tls_yaml(pki, "  min_version: TLS13\n")))
    url = f"https://127.0.0.1:{server.port}/-/healthy"
    try:
        old = client_context(pki)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        assert refused(url, old)
        assert get(url, client_context(pki))[0] == 200
    finally:
        server.stop()


def test_basic_auth_guards_every_path(tmp_path: Path, pki: Pki) -> None:
    web = write_web_config(tmp_path, tls_yaml(pki) + f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    server = start(web)
    base = f"https://127.0.0.1:{server.port}"
    context = client_context(pki)
    try:
        for path in ("/metrics", "/", "/-/healthy", "/-/ready", "/nowhere"):
            status, body = get(base + path, context)
            assert (status, body) == (401, "unauthorized\n"), path
        assert get(f"{base}/metrics", context, "prometheus", "wrong")[0] == 401
        assert get(f"{base}/metrics", context, "nobody", PASSWORD)[0] == 401
        assert get(f"{base}/metrics", context, "prometheus", PASSWORD * 4)[0] == 401  # > 72 B
        status, body = get(f"{base}/metrics", context, "prometheus", PASSWORD)
        assert status == 200
        assert "drwatch_build_info" in body
    finally:
        server.stop()


def test_401_carries_a_basic_challenge(tmp_path: Path) -> None:
    server = start(write_web_config(tmp_path, f"basic_auth_users:\n  alice: '{HASH}'\n"))
    try:
        with pytest.raises(urllib.error.HTTPError) as refused_request:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
        assert refused_request.value.code == 401
        assert refused_request.value.headers["WWW-Authenticate"].startswith('Basic realm="drwatch"')
    finally:
        server.stop()


def test_curl_with_client_cert_and_password(tmp_path: Path, pki: Pki) -> None:
    curl = shutil.which("curl")
    assert curl is not None, "curl is a test dependency: run scripts/system-deps"
    extra = MTLS.format(ca=pki.client_ca)
    web = write_web_config(
        tmp_path, tls_yaml(pki, extra) + f"basic_auth_users:\n  prometheus: '{HASH}'\n"
    )
    server = start(web)
    url = f"https://127.0.0.1:{server.port}/metrics"
    common = [curl, "-sS", "--max-time", "10", "--cacert", str(pki.server_ca)]
    mtls = ["--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    try:
        ok = subprocess.run(
            [*common, *mtls, "-u", f"prometheus:{PASSWORD}", "-o", "-", "-w", "%{http_code}", url],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.endswith("200")
        assert "drwatch_build_info" in ok.stdout
        wrong = subprocess.run(
            [*common, *mtls, "-u", "prometheus:nope", "-o", "/dev/null", "-w", "%{http_code}", url],
            capture_output=True,
            text=True,
            check=False,
        )
        assert wrong.stdout == "401"
        no_cert = subprocess.run(
            [*common, "-u", f"prometheus:{PASSWORD}", url], capture_output=True, check=False
        )
        assert no_cert.returncode != 0  # handshake refused: no status line at all
    finally:
        server.stop()


def test_relative_paths_are_relative_to_the_web_config_file(tmp_path: Path, pki: Pki) -> None:
    for source in (pki.server_cert, pki.server_key):
        shutil.copy(source, tmp_path / source.name)
    web = write_web_config(
        tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    )
    assert web.tls is not None
    assert web.tls.cert_file == tmp_path / "server.crt"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("tls_server_config: {key_file: k}\n", "tls_server_config.cert_file"),
        (
            "tls_server_config: {cert_file: c, key_file: k, min_version: TLS9}\n",
            "tls_server_config.min_version",
        ),
        (
            "tls_server_config: {cert_file: c, key_file: k, cipher_suites: [x]}\n",
            "tls_server_config.cipher_suites",
        ),
        (
            "tls_server_config: {cert_file: c, key_file: k, "
            "client_auth_type: RequireAnyClientCert}\n",
            "tls_server_config.client_auth_type",
        ),
        (
            "tls_server_config: {cert_file: c, key_file: k, "
            "client_auth_type: RequireAndVerifyClientCert}\n",
            "tls_server_config.client_ca_file",
        ),
        (
            "tls_server_config: {cert_file: /nonexistent.crt, key_file: /nonexistent.key}\n",
            "tls_server_config.cert_file",
        ),
        ("basic_auth_users: {alice: plain-password}\n", "basic_auth_users.alice"),
        ("basic_auth_users: [alice]\n", "basic_auth_users"),
        ("tls_config: {}\n", "tls_config"),
        ("- a list\n", "<root>"),
    ],
)
def test_bad_web_configs_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        write_web_config(tmp_path, text)
    assert error.value.field == field
    assert "plain-password" not in str(error.value)


def test_unknown_users_cost_a_bcrypt_check_too() -> None:
    """Unknown user and wrong password both take the bcrypt path (counted, not timed)."""
    hashes: list[bytes] = []

    def counting(password: bytes, hashed: bytes) -> bool:
        hashes.append(hashed)
        return bcrypt.checkpw(password, hashed)

    slow = bcrypt.hashpw(b"x", bcrypt.gensalt(6))
    auth = BasicAuth({"alice": slow}, checkpw=counting)
    assert not auth.allows("Basic " + base64.b64encode(b"nobody:x").decode())
    assert not auth.allows("Basic " + base64.b64encode(b"alice:y").decode())
    assert len(hashes) == 2
    assert hashes[1] == slow
    assert hashes[0] != slow
    assert hashes[0][:7] == slow[:7]  # the dummy: same algorithm and cost
