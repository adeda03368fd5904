"""The history writer under a full disk and a long-held lock: it says so and recovers by itself.

The full-disk tests run the writer, with the exporter's HTTP app in front of it, in a child
process, because a file-size limit or a mount applies to a whole process: one with
RLIMIT_FSIZE lowered (writes past the limit fail with EFBIG; Python ignores SIGXFSZ), and,
where unprivileged user namespaces exist, one whose history lives on a 32 MB tmpfs that a
filler file fills (a real ENOSPC). The parent drives the child over stdin and watches
/metrics and /-/ready. No test times anything: each waits for the event it needs.
"""

from __future__ import annotations

import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from drwatch.cli.serve import close_all
from drwatch.config import TierConfig
from drwatch.config.fields import ConfigError
from drwatch.config.history import parse_history
from drwatch.exporter.aws import ApiStats
from drwatch.exporter.metrics.history import HistoryMetrics, PollerErrorMetrics
from drwatch.exporter.metrics.view import MetricsView
from drwatch.exporter.server import ExporterApp, HttpServer
from drwatch.history.chain import verify_chain
from drwatch.history.figures import RpoPolicy
from drwatch.history.schedule import CompactionPlan, next_compaction
from drwatch.history.store import HistoryStore, open_reader
from drwatch.history.writer import (
    RETRY_MAX_SECONDS,
    HistoryWriter,
    HistoryWriterError,
    backoff_seconds,
    classify_write_error,
)
from tests.test_history_crash import poll

ROOT = Path(__file__).parent.parent
DEADLINE_SECONDS = 120.0  # generous: a loaded machine is slow, and nothing here is timed


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def stored_starts(path: Path) -> list[str]:
    reader = open_reader(path)
    try:
        return [row[0] for row in reader.execute("SELECT started FROM unit_runs ORDER BY seq")]
    finally:
        reader.close()


def expected_starts(numbers: range) -> list[str]:
    return [poll(n).run.started.isoformat() for n in numbers]


def call(app: ExporterApp, path: str) -> tuple[str, str]:
    answer: list[str] = []
    body = app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, _h: answer.append(s))
    return answer[0], b"".join(body).decode()


def app_for(writer: HistoryWriter) -> ExporterApp:
    view = MetricsView(lambda: (), ApiStats(), TierConfig(), extra=[HistoryMetrics(writer.status)])
    return ExporterApp(view, lambda: True, lambda: (), evidence=lambda: writer.status().problem)


def sample(body: str, name: str) -> float | None:
    """The value of the series `name` (with its labels, as rendered), or None."""
    for line in body.splitlines():
        key, _, value = line.rpartition(" ")
        if not line.startswith("#") and key == name:
            return float(value)
    return None


# --- a long-held write lock (in process: a lock is per connection) -------------------------


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    HistoryStore(tmp_path / "h.db").close()
    holder = sqlite3.connect(tmp_path / "h.db", isolation_level=None)
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_a_long_held_write_lock_shows_as_failing_then_the_writer_recovers_in_order(
    tmp_path: Path, held_lock: sqlite3.Connection
) -> None:
    path = tmp_path / "h.db"
    sleeps: list[float] = []
    writer = HistoryWriter(path, lock_wait_seconds=0.05, sleep=sleeps.append)
    app = app_for(writer)
    writer.submit(poll(0))
    writer.flush()
    assert call(app, "/-/ready")[0] == "200 OK"

    held_lock.execute("BEGIN IMMEDIATE")  # another process's writer, holding on
    for number in (1, 2, 3):
        writer.submit(poll(number))
    wait_for(lambda: writer.status().errors["locked"] >= 3, "three locked attempts")
    status, body = call(app, "/metrics")  # metrics still served, and say it
    assert status == "200 OK"
    assert "drwatch_history_write_success 0.0" in body
    assert sample(body, 'drwatch_history_write_errors_total{reason="locked"}') >= 3
    assert sample(body, "drwatch_history_queue_depth") == 3.0
    ready, text = call(app, "/-/ready")
    assert ready.startswith("503")
    assert "locked" in text
    assert stored_starts(path) == expected_starts(range(1))

    held_lock.execute("ROLLBACK")  # the lock goes away: no submit needed to recover
    wait_for(lambda: writer.status().queue_depth == 0, "the queue drained")
    writer.flush()  # nothing dropped or rejected
    assert call(app, "/-/ready")[0] == "200 OK"
    body = call(app, "/metrics")[1]
    assert "drwatch_history_write_success 1.0" in body
    assert sample(body, "drwatch_history_last_write_timestamp_seconds") is not None
    writer.close()
    assert stored_starts(path) == expected_starts(range(4))  # in order, none twice
    assert sleeps[:3] == [1.0, 2.0, 4.0]  # backoff doubles (at least 3 failed attempts)
    assert max(sleeps) <= RETRY_MAX_SECONDS
    with HistoryStore(path) as store:
        assert verify_chain(store.db).ok


def test_a_full_queue_drops_after_a_bounded_wait_and_counts_it(
    tmp_path: Path, held_lock: sqlite3.Connection
) -> None:
    path = tmp_path / "h.db"
    writer = HistoryWriter(
        path, queue_size=2, lock_wait_seconds=0.05, sleep=lambda _: None, submit_timeout_seconds=0
    )
    held_lock.execute("BEGIN IMMEDIATE")
    writer.submit(poll(0))
    wait_for(lambda: writer.status().errors["locked"] >= 1, "the head result failing")
    for number in range(1, 5):  # two fit in the queue, two are dropped: submit returns
        writer.submit(poll(number))
    assert writer.status().dropped["queue_full"] == 2
    held_lock.execute("ROLLBACK")
    with pytest.raises(HistoryWriterError, match="2 queue_full"):
        writer.flush()
    writer.close()
    assert stored_starts(path) == expected_starts(range(3))


def test_close_while_writes_fail_gives_up_counts_and_raises_without_hanging(
    tmp_path: Path, held_lock: sqlite3.Connection
) -> None:
    writer = HistoryWriter(tmp_path / "h.db", lock_wait_seconds=0.05)  # real, waking sleep
    held_lock.execute("BEGIN IMMEDIATE")
    writer.submit(poll(0))
    writer.submit(poll(1))
    wait_for(lambda: writer.status().errors["locked"] >= 1, "writes failing")
    with pytest.raises(HistoryWriterError, match="2 queued result"):
        writer.close()
    assert writer.status().dropped["shutdown"] == 2


def test_a_result_failing_for_a_reason_of_its_own_is_rejected_and_the_rest_stored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    writer = HistoryWriter(path, sleep=lambda _: None, max_other_attempts=3)
    bad = poll(0)
    naive = bad.run.__class__(bad.run.unit, datetime(2026, 10, 1), 1.0, True)
    writer.submit(bad.__class__(naive, bad.observations))
    writer.submit(poll(1))
    with pytest.raises(HistoryWriterError, match=r"rejected.*naive datetime"):
        writer.flush()
    status = writer.status()
    assert status.errors["other"] == 3
    assert status.dropped["rejected"] == 1
    assert status.write_success
    writer.close()
    assert stored_starts(path) == expected_starts(range(1, 2))


def test_a_failing_closer_never_skips_the_others() -> None:
    called: list[str] = []

    def failing() -> None:
        called.append("writer")
        raise HistoryWriterError("3 queued result(s) not stored at shutdown")

    close = close_all(lambda: called.append("poller"), failing, lambda: called.append("stack"))
    with pytest.raises(click.ClickException, match="not stored at shutdown"):
        close()
    assert called == ["poller", "writer", "stack"]


def test_write_errors_are_classified_into_a_fixed_set() -> None:
    def sqlite_error(code: int, text: str) -> sqlite3.Error:
        error = sqlite3.OperationalError(text)
        error.sqlite_errorcode = code  # type: ignore[attr-defined]
        return error

    assert classify_write_error(sqlite_error(13, "database or disk is full")) == "disk_full"
    assert classify_write_error(sqlite_error(5, "database is locked")) == "locked"
    assert classify_write_error(sqlite_error(778, "disk I/O error")) == "io_error"
    assert classify_write_error(OSError(28, "No space left on device")) == "disk_full"
    assert classify_write_error(ValueError("a bug")) == "other"
    assert [backoff_seconds(n) for n in (1, 2, 3, 10)] == [1.0, 2.0, 4.0, RETRY_MAX_SECONDS]


def test_poller_worker_errors_are_exported() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PollerErrorMetrics(lambda: 3))
    assert "drwatch_poller_worker_errors_total 3.0" in generate_latest(registry).decode()


# --- a real full filesystem (child processes) ---------------------------------------------


def child_main(path: str, out: str, mode: str) -> None:
    """The child: a writer behind the exporter's HTTP app, driven over stdin."""
    writer = HistoryWriter(path, sleep=lambda _: time.sleep(0.05), backoff=lambda _: 0.05)
    server = HttpServer(app_for(writer), "127.0.0.1", 0)
    server.start()
    filler = Path(path).parent / "filler"
    print(f"port {server.port}", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "submit":
            writer.submit(poll(int(argument)))
        elif command == "break" and mode == "rlimit":
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
        elif command == "break":
            with filler.open("wb") as stream, _suppress_no_space():
                while True:
                    stream.write(b"\0" * 65536)
                    stream.flush()
        elif command == "mend" and mode == "rlimit":
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        elif command == "mend":
            filler.unlink()
        elif command == "quit":
            break
        print(f"done {command}", flush=True)
    server.stop()
    writer.close()
    if out != path:  # the tmpfs vanishes with the child: keep a consistent copy
        with sqlite3.connect(path) as source, sqlite3.connect(out) as target:
            source.backup(target)
    print("closed", flush=True)


class _suppress_no_space:  # noqa: N801  (a context manager read as a phrase)
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: object, _tb: object) -> bool:
        return isinstance(error, OSError) and error.errno == 28


class Child:
    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = self._line()
        assert first.startswith("port "), first + self._stderr()
        self.base = f"http://127.0.0.1:{first.split()[1]}"

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def _stderr(self) -> str:
        self.process.kill()
        return self.process.communicate()[1]

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        reply = self._line()
        assert reply.startswith("done") or reply == "closed", reply + self._stderr()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric(self, name: str) -> float | None:
        status, body = self.get("/metrics")
        assert status == 200
        return sample(body, name)

    def finish(self) -> str:
        self.send("quit")
        _, stderr = self.process.communicate(timeout=DEADLINE_SECONDS)
        assert self.process.returncode == 0, stderr
        return stderr


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


def child_code(path: Path, out: Path, mode: str) -> str:
    arguments = f"{str(path)!r}, {str(out)!r}, {mode!r}"
    return f"from tests.test_history_writer import child_main; child_main({arguments})"


def child_command(tmp_path: Path, mode: str) -> tuple[list[str], Path]:
    out = tmp_path / "history.db"
    if mode == "rlimit":
        return [sys.executable, "-c", child_code(out, out, mode)], out
    mount = tmp_path / "small"
    mount.mkdir()
    inside = mount / "history.db"
    code = child_code(inside, out, mode)
    script = 'mount -t tmpfs -o size=32m tmpfs "$1" && exec "$2" -c "$3"'
    return ["unshare", "-rm", "sh", "-c", script, "sh", str(mount), sys.executable, code], out


@pytest.mark.parametrize("mode", ["rlimit", "tmpfs"])
def test_a_full_disk_shows_as_failing_and_the_writer_recovers_when_space_returns(
    tmp_path: Path, mode: str
) -> None:
    if mode == "tmpfs" and not unshare_works():
        pytest.skip("no unprivileged user namespaces here for a size-limited tmpfs")
    command, out = child_command(tmp_path, mode)
    child = Child(command)
    try:
        for number in range(2):
            child.send(f"submit {number}")
        wait_for(lambda: child.metric("drwatch_history_last_write_timestamp_seconds"), "a write")
        wait_for(lambda: child.metric("drwatch_history_queue_depth") == 0.0, "two writes")
        assert child.get("/-/ready")[0] == 200

        child.send("break")  # the disk is full from here on
        for number in range(2, 5):
            child.send(f"submit {number}")
        wait_for(lambda: child.metric("drwatch_history_write_success") == 0.0, "failing")
        wait_for(lambda: child.get("/-/ready")[0] == 503, "not ready")
        reasons = {
            reason: child.metric(f'drwatch_history_write_errors_total{{reason="{reason}"}}')
            for reason in ("disk_full", "io_error", "locked", "other")
        }
        expected = "disk_full" if mode == "tmpfs" else {"disk_full", "io_error"}
        failing = {reason for reason, count in reasons.items() if count}
        assert failing <= ({expected} if isinstance(expected, str) else expected), reasons
        assert failing
        assert "drwatch_history_write_success 0.0" in child.get("/metrics")[1]
        assert child.metric("drwatch_history_queue_depth") == 3.0

        child.send("mend")  # space returns: no submit needed to recover
        wait_for(lambda: child.metric("drwatch_history_queue_depth") == 0.0, "drained")
        wait_for(lambda: child.get("/-/ready")[0] == 200, "ready again")
        assert child.metric("drwatch_history_write_success") == 1.0
        child.send("submit 5")
        wait_for(lambda: child.metric("drwatch_history_queue_depth") == 0.0, "the last write")
        stderr = child.finish()
    finally:
        if child.process.poll() is None:
            child.process.kill()
    assert "retrying with backoff" in stderr
    assert stored_starts(out) == expected_starts(range(6))  # every result, once, in order
    from drwatch.cli.main import cli

    verified = CliRunner().invoke(cli, ["history", "verify", "--db", str(out)])
    assert verified.exit_code == 0, verified.output


# --- scheduled compaction ----------------------------------------------------------------------

POLICY = RpoPolicy({}, 86400)


def test_next_compaction_is_daily_at_the_configured_minute_plus_jitter() -> None:
    plan = CompactionPlan(
        minute_of_day=3 * 60 + 30, raw_days=35, retention_days=2557, policy=POLICY
    )
    before = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)
    assert next_compaction(before, plan, 60) == datetime(2026, 10, 1, 3, 31, tzinfo=UTC)
    after = datetime(2026, 10, 1, 3, 31, tzinfo=UTC)
    assert next_compaction(after, plan, 60) == datetime(2026, 10, 2, 3, 31, tzinfo=UTC)
    jitters = {random.Random(seed).uniform(0, plan.jitter_seconds) for seed in range(5)}
    assert all(0 <= j < plan.jitter_seconds for j in jitters)
    assert len(jitters) == 5


def test_the_writer_compacts_on_schedule_between_results(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    now = [datetime(2026, 10, 1, 0, 0, tzinfo=UTC)]
    plan = CompactionPlan(
        minute_of_day=3 * 60 + 30, raw_days=35, retention_days=2557, policy=POLICY
    )
    writer = HistoryWriter(path, clock=lambda: now[0], compaction=plan, rng=random.Random(1))
    first = writer.status().compaction
    assert first is not None
    assert first.last_run is None
    assert timedelta(hours=3, minutes=30) <= first.next_run - now[0] < timedelta(hours=4)
    writer.submit(poll(0))
    writer.flush()
    now[0] = first.next_run + timedelta(seconds=1)  # the clock passes the planned time
    writer.submit(poll(1))  # wakes the thread, which compacts before ingesting
    done = wait_for(
        lambda: (c := writer.status().compaction) and c.last_run_success and c, "a compaction"
    )
    assert done.last_success == now[0]
    assert done.next_run > now[0] + timedelta(hours=23)
    body = call(app_for(writer), "/metrics")[1]
    assert sample(body, "drwatch_history_compaction_last_run_success") == 1.0
    assert sample(body, "drwatch_history_compaction_last_run_duration_seconds") is not None
    writer.close()
    with HistoryStore(path) as store:
        assert store.db.execute("SELECT count(*) FROM compactions").fetchone()[0] == 1
        assert verify_chain(store.db).ok


def test_compact_at_is_validated() -> None:
    assert parse_history(None, None).compact_minute_of_day == 3 * 60 + 30
    assert parse_history({"compact_at": "off"}, None).compact_minute_of_day is None
    assert parse_history({"compact_at": False}, None).compact_minute_of_day is None
    assert parse_history({"compact_at": "23:59"}, None).compact_minute_of_day == 1439
    for bad in ("24:00", "3:30", 1439, "03:30:00", ""):
        with pytest.raises(ConfigError, match=r"history\.compact_at"):
            parse_history({"compact_at": bad}, None)
