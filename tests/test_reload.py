"""Hot reload: SIGHUP and POST /-/reload on a real `drwatch serve`; bad files keep the old one."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from drwatch.config import ConfigError, load_config
from drwatch.exporter.reload import LiveExporter
from drwatch.exporter.server import ExporterApp
from drwatch.sandbox.demo import sandbox_session
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.server import Sandbox
from tests.conftest import NOW
from tests.helpers import FakeClock, ImmediateExecutor, serve_command
from tests.test_cli import SANDBOX_ENV
from tests.test_serve import wait_ready

# Any accounts do: reloads change which units exist, not what the sandbox holds.
ACCOUNTS = ("111111111111", "222222222222")


def config_data(
    sandbox: Sandbox, accounts: list[str], tmp_path: Path, **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "accounts": [
            {"id": a, "role_arn": f"arn:aws:iam::{a}:role/drwatch-read"} for a in accounts
        ],
        "regions": ["eu-west-1"],
        "collectors": {
            name: {"enabled": name == "rds"}
            for name in ("rds", "backup", "elasticache", "s3_replication", "dynamodb", "ebs")
        },
        "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 1},
        "history": {"path": str(tmp_path / "history.db")},
    }
    data.update(extra)
    return data


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data))


def scrape(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=60) as response:
        return str(response.read().decode())


def value(body: str, series: str) -> float | None:
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def post(url: str, method: str = "POST") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def success_series(account: str) -> str:
    return f'drwatch_collector_success{{account_id="{account}",collector="rds",region="eu-west-1"}}'


def runs_series(account: str) -> str:
    return success_series(account).replace("_success{", "_runs_total{")


def polled(base: str, account: str) -> str | None:
    """The scrape once the account's rds unit has completed a poll (success or not), else None."""
    body = scrape(base)
    return body if value(body, runs_series(account)) else None


def wait_for(condition: Any, what: str, timeout: float = 300) -> Any:
    """Waits for an event; the deadline is a safety net, not a guess at how long it takes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = condition()
        if outcome:
            return outcome
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sighup_and_post_reload_a_running_serve(tmp_path: Path, sandbox: Sandbox) -> None:
    first, second = ACCOUNTS
    config = tmp_path / "drwatch.yml"
    write(config, config_data(sandbox, [first], tmp_path))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "stderr.log"  # a file: a pipe read only at exit can fill and block serve
    process = subprocess.Popen(
        serve_command(config, port, "--web.enable-lifecycle"),
        env={**SANDBOX_ENV, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
    )
    try:
        wait_ready(f"{base}/-/ready", process)
        body = scrape(base)
        assert value(body, success_series(first)) == 1
        assert value(body, success_series(second)) is None
        assert value(body, "drwatch_config_last_reload_successful") == 1
        started = value(body, "drwatch_config_last_reload_success_timestamp_seconds")
        assert started is not None

        # SIGHUP: a second account is added and polled at once, without a restart. The wait
        # is for that poll to complete (its unit counts a run), however long a loaded
        # machine takes; then it must have succeeded.
        write(config, config_data(sandbox, [first, second], tmp_path))
        process.send_signal(signal.SIGHUP)
        body = wait_for(lambda: polled(base, second), "the poll of the account the reload added")
        assert value(body, success_series(second)) == 1, [
            line for line in body.splitlines() if line.startswith("drwatch_collector_errors")
        ]

        # A bad file over HTTP: 500 naming the field, the running config stays.
        config.write_text(config.read_text().replace("eu-west-1", "Ireland"))
        status, text = post(f"{base}/-/reload")
        assert status == 500
        assert "regions[0]: must be an AWS region name" in text
        body = scrape(base)
        assert value(body, "drwatch_config_last_reload_successful") == 0
        assert value(body, success_series(second)) == 1
        assert process.poll() is None

        # Fixed again (the second account removed): 200, its series disappear.
        time.sleep(1.1)  # the success timestamp has one-second resolution in this check
        write(config, config_data(sandbox, [first], tmp_path))
        assert post(f"{base}/-/reload") == (200, "config reloaded.\n")
        body = scrape(base)
        assert value(body, "drwatch_config_last_reload_successful") == 1
        assert value(body, "drwatch_config_last_reload_success_timestamp_seconds") > started + 1
        assert value(body, success_series(second)) is None
        assert value(body, success_series(first)) == 1
        assert post(f"{base}/-/reload", method="GET")[0] == 405

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)  # the exit, with a safety net
    finally:
        if process.poll() is None:
            process.kill()
    stderr = log.read_text()
    assert process.returncode == 0, stderr
    assert "config reload failed, the running config stays in force: regions[0]" in stderr


def test_lifecycle_endpoint_is_off_unless_enabled(sandbox: Sandbox, tmp_path: Path) -> None:
    config = load_config_data(config_data(sandbox, ["111111111111"], tmp_path), tmp_path)
    runtime = LiveExporter(
        config,
        lambda: config,
        clock=FakeClock(NOW),
        executor=ImmediateExecutor(),
        session_factory=sandbox_session,
        lifecycle=False,
    )
    runtime.close()
    assert call(runtime.exporter.app, "POST", "/-/reload")[0] == "403 Forbidden"


def load_config_data(data: dict[str, Any], tmp_path: Path) -> Any:
    path = tmp_path / "config.yml"
    write(path, data)
    return load_config(path)


def call(app: ExporterApp, method: str, path: str) -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(
        app({"REQUEST_METHOD": method, "PATH_INFO": path}, lambda status, _h: seen.append(status))
    )
    return seen[0], body


def test_reload_applies_tiers_and_intervals_and_names_restart_only_changes(
    sandbox: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "drwatch.yml"
    data = config_data(sandbox, [ACCOUNTS[0]], tmp_path)
    write(path, data)
    runtime = LiveExporter(
        load_config(path),
        lambda: load_config(path),
        clock=FakeClock(NOW),
        executor=ImmediateExecutor(),
        session_factory=sandbox_session,
    )
    try:
        runtime.exporter.poller.run_round()
        before = runtime.exporter.metrics.render().decode()
        assert 'drwatch_rpo_target_seconds{tier="premium"} 300.0' in before
        data["tiers"] = {"targets": {"premium": {"rpo": "1m", "rto": "5m"}}, "default": "premium"}
        data["collectors"]["rds"]["interval"] = "10m"
        data["listen_address"] = "127.0.0.1:1"
        write(path, data)
        with caplog.at_level(logging.WARNING, logger="drwatch.exporter.reload"):
            assert runtime.reload() is None
        after = runtime.exporter.metrics.render().decode()
        assert 'drwatch_rpo_target_seconds{tier="premium"} 60.0' in after
        assert (
            'tier="standard"' not in after.split("drwatch_rpo_target_seconds", 1)[1].split("#")[0]
        )
        (unit,) = runtime.exporter.poller.snapshot()
        assert unit.schedule.interval_seconds == 600
        assert unit.runs == 1  # the unit kept its data and counters
        assert "listen_address changed; it takes effect after a restart" in caplog.text

        path.write_text("accounts: [")
        problem = runtime.reload()
        assert problem is not None
        assert problem.startswith(str(path))
        assert runtime.exporter.poller.snapshot()[0].schedule.interval_seconds == 600
    finally:
        runtime.close()
    with pytest.raises(ConfigError):
        load_config(path)


def test_replacing_units_keeps_survivors_and_drops_removed_ones_even_in_flight() -> None:
    from drwatch.core.model import UnitKey, UnitResult
    from drwatch.exporter.poller import Poller, UnitSchedule
    from tests.helpers import ManualExecutor
    from tests.test_poller import ScriptedRunner, names

    def schedule(account: str, interval: float = 60) -> UnitSchedule:
        return UnitSchedule(UnitKey("rds", account, "eu-west-1"), interval, 3 * interval, interval)

    clock = FakeClock(NOW)
    executor = ManualExecutor()
    stored: list[UnitResult] = []
    poller = Poller(
        [schedule("111111111111"), schedule("222222222222")],
        ScriptedRunner(clock, ["a", "b"]),
        executor,
        clock,
        on_result=stored.append,
    )
    poller.submit_due()
    executor.run_pending()
    assert poller.ready
    assert names(poller) == [["a"], ["b"]]
    clock.advance(60)
    poller.submit_due()  # both units queued now
    runner = ScriptedRunner(clock, ["c", "d"])
    poller.replace_units([schedule("111111111111", 120), schedule("333333333333")], runner)
    assert poller.ready  # a new, never-run unit does not take readiness away
    # Queued runs start after the swap: the survivor with the new runner (new config); the
    # removed unit not at all, so no spurious failure of an account that is gone is stored.
    executor.run_pending()
    statuses = {s.schedule.key.account_id: s for s in poller.snapshot()}
    assert set(statuses) == {"111111111111", "333333333333"}
    assert statuses["111111111111"].schedule.interval_seconds == 120
    assert statuses["111111111111"].runs == 2  # its counters survived
    assert statuses["333333333333"].runs == 0
    assert [r.run.unit.account_id for r in stored] == [
        "111111111111",
        "222222222222",
        "111111111111",
    ]
    poller.submit_due()  # the new unit is due at once, the survivor keeps its due time
    executor.run_pending()
    assert runner.calls == [
        UnitKey("rds", a, "eu-west-1") for a in ("111111111111", "333333333333")
    ]
    assert names(poller) == [["c"], ["d"]]
