"""`drwatch healthcheck`: asks a running `drwatch serve` whether it is ready, as its clients do.

It reads the config and the web config that `serve` reads, so it speaks HTTPS when TLS is on
and sends basic auth when users are configured; every path of the server is behind that auth,
so a plain-HTTP probe fails as soon as either is on. The password comes from a file or an
environment variable named by a flag, never from the command line (which `ps` shows).

Exit status as Docker's HEALTHCHECK expects it: 0 healthy, 1 not (anything else Docker
reserves), so every failure, a bad config included, exits 1 with the reason on stderr.

Which certificate is trusted: with `--tls.ca-file` the server's chain is verified against
that CA and its name against `--tls.server-name` (default: the host connected to); without
it, the server must present exactly the certificate its web config names (the first one of
`cert_file`), compared byte for byte before any credential is sent. The check connects to the
listen address on the same machine, so the pinned certificate is the one this server serves.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from drwatch.cli.common import config_option
from drwatch.config import ConfigError, load_config
from drwatch.exporter.webconfig import WebConfig, load_web_config

PATHS = ("/-/ready", "/-/healthy")


class UnhealthyError(Exception):
    """Why the check fails; the command prints it and exits 1."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@dataclass(frozen=True, slots=True)
class TlsClient:
    ca_file: Path | None = None
    server_name: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


def connect_host(host: str) -> str:
    """The address to dial for a listen host: the wildcard addresses mean this machine."""
    if host in ("", "0.0.0.0"):  # noqa: S104  (a listen address, not a bind)
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def first_certificate_der(path: Path) -> bytes:
    text = path.read_text(encoding="ascii", errors="replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise UnhealthyError(f"{path}: no PEM certificate")
    return ssl.PEM_cert_to_DER_cert(text[start : stop + len(end)] + "\n")


def client_context(web: WebConfig, tls: TlsClient) -> ssl.SSLContext:
    assert web.tls is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca_file is not None:
        context.load_verify_locations(cafile=str(tls.ca_file))
    else:
        # Pinned instead: the certificate is compared with the configured one after the
        # handshake, before anything is sent.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if web.tls.client_auth_type == "RequireAndVerifyClientCert" and tls.cert_file is None:
        raise UnhealthyError(
            "the web config requires client certificates: give --tls.cert-file and --tls.key-file"
        )
    if tls.cert_file is not None:
        key = None if tls.key_file is None else str(tls.key_file)
        context.load_cert_chain(str(tls.cert_file), key)
    return context


def check(
    host: str,
    port: int,
    web: WebConfig,
    path: str,
    credentials: Credentials | None,
    tls: TlsClient,
    timeout: float,
) -> str:
    """Asks `path`: the line to print when it answers 200; UnhealthyError otherwise."""
    scheme = "http" if web.tls is None else "https"
    url = f"{scheme}://{host}:{port}{path}"
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        if web.tls is not None:
            context = client_context(web, tls)
            sock = context.wrap_socket(sock, server_hostname=tls.server_name or host)
            if tls.ca_file is None:
                presented = sock.getpeercert(binary_form=True)
                if presented != first_certificate_der(web.tls.cert_file):
                    sock.close()
                    pinned = web.tls.cert_file
                    raise UnhealthyError(f"{url}: the server's certificate is not {pinned}")
        connection.sock = sock  # http.client sends over this socket instead of dialling
        headers = {"User-Agent": "drwatch-healthcheck"}
        if credentials is not None:
            headers["Authorization"] = credentials.header()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read(512).decode("utf-8", errors="replace").strip()
    except (OSError, http.client.HTTPException) as error:
        raise UnhealthyError(f"{url}: {error}") from error
    finally:
        connection.close()
    if response.status != 200:
        raise UnhealthyError(f"{url}: {response.status} {response.reason}: {body}")
    return f"{url}: {response.status} {body}"


def listen_parts(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port`, as serve's --web.listen-address takes them."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise UnhealthyError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def read_credentials(
    web: WebConfig, username: str | None, password_file: Path | None, password_env: str | None
) -> Credentials | None:
    if not web.basic_auth_users:
        return None
    if username is None:
        if len(web.basic_auth_users) != 1:
            raise UnhealthyError("the web config has several users: give --auth.username")
        (username,) = web.basic_auth_users
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise UnhealthyError(f"--auth.password-file: {error}") from error
    elif password_env is not None:
        if password_env not in os.environ:
            raise UnhealthyError(f"--auth.password-env: ${password_env} is not set")
        password = os.environ[password_env]
    else:
        raise UnhealthyError(
            "the web config turns basic auth on: give --auth.password-file or --auth.password-env"
        )
    return Credentials(username, password)


@click.command()
@config_option(
    "The drwatch config serve runs with: its listen_address and web_config_file.",
    required=True,
)
@click.option("--web.listen-address", "listen_address", help="As given to serve, if it was.")
@click.option(
    "--web.config.file",
    "web_config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="As given to serve, if it was (overrides web_config_file of the config).",
)
@click.option(
    "--path",
    "probe_path",
    type=click.Choice(PATHS),
    default="/-/ready",
    show_default=True,
    help="/-/ready also fails before the first poll and while evidence cannot be written.",
)
@click.option("--auth.username", "username", help="Default: the web config's only user.")
@click.option(
    "--auth.password-file",
    "password_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the basic auth password (one line).",
)
@click.option(
    "--auth.password-env",
    "password_env",
    metavar="NAME",
    help="Name of the environment variable holding the basic auth password.",
)
@click.option(
    "--tls.ca-file",
    "ca_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Verify the server against this CA (default: pin the web config's cert_file).",
)
@click.option("--tls.server-name", "server_name", help="Name to verify with --tls.ca-file.")
@click.option(
    "--tls.cert-file",
    "cert_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Client certificate, when the web config requires one.",
)
@click.option("--tls.key-file", "key_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--timeout", type=float, default=4.0, show_default=True, help="Seconds.")
def healthcheck(
    config_path: Path,
    listen_address: str | None,
    web_config_path: Path | None,
    probe_path: str,
    username: str | None,
    password_file: Path | None,
    password_env: str | None,
    ca_file: Path | None,
    server_name: str | None,
    cert_file: Path | None,
    key_file: Path | None,
    timeout: float,
) -> None:
    """Exit 0 if the local `drwatch serve` answers 200 on /-/ready, else 1 (Docker HEALTHCHECK).

    Example: drwatch healthcheck --config.file /etc/drwatch/drwatch.yml
    --auth.password-file /run/secrets/drwatch-password
    """
    try:
        config = load_config(config_path)
        host, port = listen_parts(listen_address or config.listen_address)
        web_path = web_config_path or config.web_config_file
        web = load_web_config(Path(web_path)) if web_path else WebConfig()
        credentials = read_credentials(web, username, password_file, password_env)
        tls = TlsClient(ca_file, server_name, cert_file, key_file)
        line = check(connect_host(host), port, web, probe_path, credentials, tls, timeout)
    except (ConfigError, UnhealthyError, OSError, ssl.SSLError) as error:
        click.echo(f"unhealthy: {error}", err=True)
        sys.exit(1)
    click.echo(line)
