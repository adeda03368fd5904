"""Security: no credentials in any output, an owner-only history file, read-only everywhere.

- A real `drwatch serve` (debug logs, TLS, basic auth, injected AWS errors) and `drwatch poll`
  run against the sandbox with distinctive keys; every output (logs, /metrics, the landing
  page, poll JSON, the history database and its export) is searched for the static keys, the
  assumed-role keys moto issued, and the basic-auth password.
- The history database and its -wal/-shm files are 0600.
- Read-only proof per collector: each collector's calls (from its unit runs in the history)
  are List/Describe/Get calls among its declared IAM actions, and the client guard refuses a
  write of every service a collector uses before any request leaves the process.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import botocore.session
import pytest
import yaml
from botocore import xform_name
from botocore.model import Shape
from moto.sts.models import sts_backends

from drwatch.config import AccountConfig, AwsConfig
from drwatch.exporter.aws import ApiStats, AwsAccess, ReadOnlyViolationError, is_read_only
from drwatch.exporter.collectors import COLLECTORS
from drwatch.history.store import HistoryStore
from drwatch.sandbox import demo
from drwatch.sandbox.faults import FaultRule
from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.server import Sandbox
from tests.test_exporter_e2e import IAM_ACTION_OF_OPERATION
from tests.test_webconfig import make_pki

ACCESS_KEY = "AKIADRWATCHLEAKTEST1"
SECRET_KEY = "drwatch-secret-key-that-must-never-appear-0b8f1e"
PASSWORD = "scrape-password-never-logged-7c41"
OWNER_ONLY = 0o600


def assumed_role_secrets() -> set[str]:
    """Every key, secret and token moto's STS has issued in this process."""
    found = set()
    for by_region in sts_backends.values():
        for backend in by_region.values():
            for role in backend.assumed_roles:
                found |= {role.access_key_id, role.secret_access_key, role.session_token}
    return found


def write_config(
    tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan, only: str | None = None
) -> Path:
    """Every collector on (or `only` that one), the fleet's accounts and regions."""
    path = tmp_path / f"drwatch-{only or 'all'}.yml"
    accounts = fleet.spec.accounts
    path.write_text(
        yaml.safe_dump(
            {
                "accounts": [
                    {"id": a, "role_arn": f"arn:aws:iam::{a}:role/drwatch-read"} for a in accounts
                ],
                "regions": list(fleet.spec.regions),
                "aws": {"endpoint_url": sandbox.endpoint_url, "max_attempts": 1},
                "collectors": {
                    c.name: {"enabled": only is None or c.name == only} for c in COLLECTORS
                },
                "s3_freshness": {"targets": demo.freshness_targets(fleet.spec)},
                "history": {"path": str(tmp_path / "history.db")},
            }
        )
    )
    return path


def drwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "drwatch", *args]


ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "PATH": "/usr/bin:/bin",
}


def fetch(url: str, auth: str | None, context: ssl.SSLContext) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", f"Basic {auth}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_ready(
    base: str, auth: str, context: ssl.SSLContext, process: subprocess.Popen[str]
) -> None:
    for _ in range(600):
        try:
            if fetch(f"{base}/-/ready", auth, context)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"drwatch serve exited early with {process.returncode}")
    raise AssertionError("drwatch serve never became ready")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox, fleet: FleetPlan
) -> dict[str, Any]:
    """One serve run (debug logs, basic auth, failing units) and one poll: all their output."""
    tmp_path = tmp_path_factory.mktemp("security")
    config = write_config(tmp_path, sandbox, fleet)
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    pki = make_pki(tmp_path)
    web.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    context = ssl.create_default_context(cafile=pki.server_ca)
    account, region = fleet.spec.accounts[0], fleet.spec.regions[1]
    # Error paths too: their messages end up in logs, the landing page and the history.
    sandbox.faults.replace(
        [
            FaultRule("AccessDenied", 403, service="rds", account_id=account, region=region),
            FaultRule("InternalFailure", 500, service="backup", account_id=account),
        ]
    )
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    auth = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    process = subprocess.Popen(
        drwatch(
            "serve",
            "--config",
            str(config),
            "--listen-address",
            f"127.0.0.1:{port}",
            "--web.config.file",
            str(web),
            "--log.level",
            "debug",  # logfmt, the default format; the poll below logs JSON
        ),
        env=ENV,
        # Files, not pipes: debug logs outgrow a pipe's buffer while nobody reads it.
        stdout=(tmp_path / "serve.out").open("w"),
        stderr=(tmp_path / "serve.err").open("w"),
        text=True,
    )
    outputs: dict[str, str] = {}
    try:
        wait_ready(base, auth, context, process)
        database = tmp_path / "history.db"
        modes = {
            name: mode_of(tmp_path / name)
            for name in ("history.db", "history.db-wal", "history.db-shm")
        }
        outputs["unauthorised /metrics"] = str(fetch(f"{base}/metrics", None, context))
        outputs["/metrics"] = fetch(f"{base}/metrics", auth, context)[1]
        outputs["/"] = fetch(f"{base}/", auth, context)[1]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    outputs["serve stdout"] = (tmp_path / "serve.out").read_text()
    outputs["serve stderr"] = (tmp_path / "serve.err").read_text()
    # The poll flow prints observations as JSON: RDS alone shows it (and keeps this quick).
    rds_only = write_config(tmp_path, sandbox, fleet, only="rds")
    polled = subprocess.run(
        drwatch(
            "poll", "--once", "--json", "--log-level", "debug", "--log.format", "json",
            "--config", str(rds_only),
        ),
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    outputs["poll stdout"], outputs["poll stderr"] = polled.stdout, polled.stderr
    exported = subprocess.run(
        drwatch(
            "history",
            "export",
            "--db",
            str(database),
            "--since",
            "2000-01-01",
            "--until",
            "2100-01-01",
        ),
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    outputs["history export"] = exported.stdout
    with sqlite3.connect(database) as conn:
        outputs["history dump"] = "\n".join(conn.iterdump())
        runs = conn.execute("SELECT collector, api_calls FROM unit_runs").fetchall()
    outputs["history files"] = "".join(
        file.read_bytes().decode("latin-1") for file in tmp_path.glob("history.db*")
    )
    sandbox.faults.clear()
    return {
        "outputs": outputs,
        "modes": modes,
        "returncode": process.returncode,
        "runs": runs,
        "secrets": {ACCESS_KEY, SECRET_KEY, PASSWORD} | assumed_role_secrets(),
    }


def test_no_credentials_in_any_output(served: dict[str, Any]) -> None:
    outputs: dict[str, str] = served["outputs"]
    assert served["returncode"] == 0, outputs["serve stderr"]
    # The outputs are real: debug logs, failing units, metrics behind auth, stored polls.
    assert " level=debug " in outputs["serve stderr"]
    assert '"level": "debug"' in outputs["poll stderr"]
    assert "serving on https://127.0.0.1" in outputs["serve stderr"]
    assert "AccessDenied" in outputs["serve stderr"]
    assert "401" in outputs["unauthorised /metrics"]
    assert "drwatch_collector_success" in outputs["/metrics"]
    assert "AccessDenied" in outputs["/"]
    assert json.loads(outputs["poll stdout"])["units"]
    assert "unit_runs" in outputs["history dump"]
    secrets = served["secrets"]
    assert len(secrets) > 3  # moto issued assumed-role keys to the exporter
    leaks = {
        (where, secret[:6] + "...")
        for where, text in outputs.items()
        for secret in secrets
        if secret and secret in text
    }
    assert not leaks


def test_the_history_and_its_wal_files_are_owner_only(served: dict[str, Any]) -> None:
    assert served["modes"] == dict.fromkeys(
        ("history.db", "history.db-wal", "history.db-shm"), OWNER_ONLY
    )


def test_new_and_loose_history_files_become_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        with HistoryStore(tmp_path / "new.db"):
            assert {mode_of(f) for f in tmp_path.glob("new.db*")} == {OWNER_ONLY}
        loose = tmp_path / "loose.db"
        HistoryStore(loose).close()
        loose.chmod(0o644)
        HistoryStore(loose).close()
        assert mode_of(loose) == OWNER_ONLY
    finally:
        os.umask(old_umask)


def iam_action(call: str) -> str:
    return IAM_ACTION_OF_OPERATION.get(call, call)


def test_each_collector_calls_only_its_declared_read_only_actions(served: dict[str, Any]) -> None:
    calls: dict[str, set[str]] = {}
    for collector, api_calls in served["runs"]:
        calls.setdefault(collector, set()).update(json.loads(api_calls))
    declared = {c.name: set(c.iam_actions) for c in COLLECTORS}
    assert set(calls) == set(declared)
    for collector, made in calls.items():
        # Assuming the account's role runs lazily inside the first unit that needs it.
        watched = made - {"sts:AssumeRole"}
        assert watched, collector
        assert all(is_read_only(call.split(":", 1)[1]) for call in watched), collector
        assert {iam_action(call) for call in watched} <= declared[collector], collector


def minimal_value(shape: Shape) -> Any:
    """The smallest value botocore's parameter validation accepts for `shape`."""
    kind = shape.type_name
    if kind == "structure":
        if shape.is_tagged_union:  # exactly one member must be set
            first = next(iter(shape.members))
            return {first: minimal_value(shape.members[first])}
        return {m: minimal_value(shape.members[m]) for m in shape.required_members}
    if kind == "list":
        return [minimal_value(shape.member)] * max(1, shape.metadata.get("min", 0))
    if kind == "map":
        return {}
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        return "x" * max(1, shape.metadata.get("min", 1))
    if kind in ("integer", "long", "double", "float"):
        return max(1, shape.metadata.get("min", 1))
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime(2026, 1, 1, tzinfo=UTC)
    return b"x"


def write_operations(service: str) -> list[str]:
    model = botocore.session.get_session().get_service_model(service)
    return [name for name in model.operation_names if not is_read_only(name)]


def collector_services() -> set[str]:
    """The IAM prefixes of every collector's actions (botocore's service names too)."""
    return {action.split(":", 1)[0] for c in COLLECTORS for action in c.iam_actions}


def test_every_collector_service_refuses_writes_before_sending(sandbox: Sandbox) -> None:
    account = AccountConfig(id="123456789012", name="sandbox")
    access = AwsAccess(
        [account],
        AwsConfig(endpoint_url=sandbox.endpoint_url, max_attempts=1),
        ApiStats(),
        sts_region="us-east-1",
        session_factory=demo.sandbox_session,
    )
    services = collector_services()
    assert {"rds", "backup", "ec2", "dynamodb", "elasticache", "s3"} <= services
    refused = 0
    for service in sorted(services):
        client = access.client(account.id, "eu-west-1", service)
        operations = write_operations(service)
        assert operations, service
        # Would the request reach the sandbox, this error would come back instead.
        sandbox.faults.replace(
            [FaultRule("ReachedTheSandbox", 418, operation=op) for op in operations]
        )
        for operation in operations:
            model = client.meta.service_model.operation_model(operation)
            params = minimal_value(model.input_shape) if model.input_shape else {}
            method = getattr(client, xform_name(operation))
            with pytest.raises(ReadOnlyViolationError):
                method(**params)
            refused += 1
    sandbox.faults.clear()
    assert refused > 100
