"""`drwatch serve` as a real process: readiness, scrape, clean exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.server import Sandbox
from tests.helpers import serve_command
from tests.test_cli import SANDBOX_ENV, sandbox_config_file

SECRET = "never-log-this-secret-key"


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 300) -> None:
    """Polls readiness until it answers 200 (the first complete poll) or the process exits.

    The deadline is only a safety net: on a loaded machine starting up and polling takes as
    long as it takes, so the wait is for the event rather than for a count of attempts.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or 503 before the first round
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"drwatch serve exited early: {process.communicate()}")
    raise AssertionError(f"drwatch serve not ready after {timeout} s")


def test_serve_polls_serves_and_exits_cleanly_on_sigterm(
    tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan
) -> None:
    config = sandbox_config_file(tmp_path, sandbox, fleet)
    port = free_port()
    process = subprocess.Popen(
        serve_command(config, port),
        env={**SANDBOX_ENV, "AWS_SECRET_ACCESS_KEY": SECRET, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready", process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            body = response.read().decode()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)  # exit, not seconds: a safety net
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    infos = [line for line in body.splitlines() if line.startswith("drwatch_resource_info{")]
    assert sum('service="rds"' in line for line in infos) == len(fleet.databases)
    assert "serving on http://127.0.0.1" in stderr
    assert SECRET not in stderr + body


def test_serve_speaks_the_exporter_conventions(
    tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan
) -> None:
    """`--web.listen-address :PORT`, `--web.telemetry-path`, `--log.format json`, process
    metrics, and no secret logged."""
    config = sandbox_config_file(tmp_path, sandbox, fleet)
    port = free_port()
    command = [*serve_command(config, port)[:-2], "--web.listen-address", f":{port}"]
    log = tmp_path / "stderr.log"  # a file: debug logs outgrow a pipe nobody reads meanwhile
    process = subprocess.Popen(
        [
            *command,
            "--web.telemetry-path",
            "/probe",
            "--log.format",
            "json",
            "--log.level",
            "debug",
        ],
        env={**SANDBOX_ENV, "AWS_SECRET_ACCESS_KEY": SECRET, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready", process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/probe") as response:
            body = response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as moved:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = log.read_text()
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert {"ts", "level", "source", "msg"} <= set(lines[0])
    assert moved.value.code == 404
    assert any(line["msg"] == f"serving on http://0.0.0.0:{port}/probe" for line in lines)
    assert any(line["level"] == "debug" for line in lines)
    assert "process_resident_memory_bytes " in body
    assert "python_info{" in body
    assert SECRET not in stderr + body
