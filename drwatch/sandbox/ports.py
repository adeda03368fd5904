"""Loopback ports for the sandbox's servers (moto, brokers, Prometheus) and the tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
