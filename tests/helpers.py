"""Test doubles for time and thread pools (injected, never patched)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)) -> None:
        self._now = start
        self._monotonic = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds


class ManualExecutor(Executor):
    """Queues work until the test calls run_pending(): makes overlap deterministic."""

    def __init__(self) -> None:
        self.pending: list[tuple[Future[Any], Callable[[], Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.pending.append((future, lambda: fn(*args, **kwargs)))
        return future

    def run_pending(self) -> None:
        pending, self.pending = self.pending, []
        for future, work in pending:
            try:
                future.set_result(work())
            except Exception as error:
                future.set_exception(error)


class ImmediateExecutor(ManualExecutor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.run_pending()
        return future


def serve_command(config: Path, port: int, *extra: str) -> list[str]:
    """`drwatch serve` on loopback, as a real process runs it."""
    listen = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "drwatch", "serve", "--config", str(config)]
    return [*command, "--web.listen-address", listen, *extra]
