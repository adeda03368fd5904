"""`listen_address:`: where the exporter serves /metrics ("host:port" or "[v6addr]:port")."""

from __future__ import annotations

import ipaddress
from typing import Final

from drwatch.config.fields import ConfigError, string
from drwatch.config.identifiers import HOSTNAME_RE

DEFAULT_PORT: Final = 9638
DEFAULT_LISTEN_ADDRESS: Final = f"0.0.0.0:{DEFAULT_PORT}"

_LISTEN_ADDRESS_PROBLEM: Final = 'must be "host:port", e.g. "0.0.0.0:9638" or "[::]:9638"'


def parse_listen_address(value: object, path: str) -> str:
    if value is None:
        return DEFAULT_LISTEN_ADDRESS
    address = string(value, path)
    split_listen_address(address, path)
    return address


def split_listen_address(address: str, path: str = "listen_address") -> tuple[str, int]:
    """``"host:port"`` or ``"[v6addr]:port"`` -> (host without brackets, port)."""
    host, separator, port_text = address.rpartition(":")
    if not separator or not host:
        raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM)
    return _listen_host(host, path), _listen_port(port_text, path)


def _listen_host(host: str, path: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM) from exc
        return host[1:-1]
    if ":" in host:
        raise ConfigError(path, 'IPv6 addresses need brackets, e.g. "[::]:9638"')
    if not HOSTNAME_RE.fullmatch(host):
        raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM)
    return host


def _listen_port(port_text: str, path: str) -> int:
    # The length cap keeps int() away from absurdly long digit strings.
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise ConfigError(path, _LISTEN_ADDRESS_PROBLEM)
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(path, "port must be between 1 and 65535")
    return port
