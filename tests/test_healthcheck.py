"""`drwatch healthcheck` against a real `drwatch serve` with TLS and basic auth.

The image's HEALTHCHECK runs this command: it must speak HTTPS and basic auth as the web
config says, take the password from a file or the environment (never argv), and exit 1,
not 0, when the server is absent, the password is wrong or the certificate is not the one
configured.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from drwatch.sandbox.fleet import FleetPlan
from drwatch.sandbox.ports import free_port
from drwatch.sandbox.server import Sandbox
from tests.helpers import serve_command
from tests.test_cli import SANDBOX_ENV, sandbox_config_file
from tests.test_webconfig import HASH, PASSWORD, Pki, make_pki

ENV = {**SANDBOX_ENV, "PATH": "/usr/bin:/bin"}


def healthcheck(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    command = [sys.executable, "-m", "drwatch", "healthcheck", "--config.file", str(config)]
    done = subprocess.run(
        [*command, *args],
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def write_configs(tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan, pki: Pki, port: int) -> Path:
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(pki.server_cert),
                    "key_file": str(pki.server_key),
                },
                "basic_auth_users": {"prometheus": HASH},
            }
        )
    )
    config = sandbox_config_file(tmp_path, sandbox, fleet)
    data = yaml.safe_load(config.read_text())
    data.update(listen_address=f"127.0.0.1:{port}", web_config_file=str(web))
    config.write_text(yaml.safe_dump(data))
    return config


@pytest.mark.slow
def test_healthcheck_speaks_tls_and_basic_auth_to_a_real_serve(
    tmp_path: Path, sandbox: Sandbox, fleet: FleetPlan
) -> None:
    pki = make_pki(tmp_path)
    port = free_port()
    config = write_configs(tmp_path, sandbox, fleet, pki, port)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    by_file = ("--auth.password-file", str(password_file))

    # Nothing listening yet: unhealthy, exit 1 (Docker reserves 2).
    code, output = healthcheck(config, *by_file)
    assert code == 1, output
    assert "unhealthy" in output

    process = subprocess.Popen(
        serve_command(config, port),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            code, output = healthcheck(config, *by_file)
            if code == 0 or time.monotonic() > deadline:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.5)
        assert code == 0, output
        assert output.startswith(f"https://127.0.0.1:{port}/-/ready: 200")

        # The password from an environment variable named by a flag; /-/healthy as well.
        code, output = healthcheck(
            config,
            "--auth.password-env",
            "PROBE_PASSWORD",
            "--path",
            "/-/healthy",
            env={"PROBE_PASSWORD": PASSWORD},
        )
        assert code == 0, output
        # Verified against the CA and the certificate's name instead of the pinned file.
        code, output = healthcheck(
            config, *by_file, "--tls.ca-file", str(pki.server_ca), "--tls.server-name", "localhost"
        )
        assert code == 0, output
        code, output = healthcheck(
            config, *by_file, "--tls.ca-file", str(pki.client_ca), "--tls.server-name", "localhost"
        )
        assert code == 1, output
        assert "CERTIFICATE_VERIFY_FAILED" in output

        # Wrong password, no password, a certificate other than the configured one: all 1.
        wrong = tmp_path / "wrong"
        wrong.write_text("not the password")
        code, output = healthcheck(config, "--auth.password-file", str(wrong))
        assert (code, "401" in output) == (1, True), output
        code, output = healthcheck(config)
        assert code == 1
        assert "--auth.password-file or --auth.password-env" in output
        other = tmp_path / "other-web.yml"
        other.write_text(
            yaml.safe_dump(
                {
                    "tls_server_config": {
                        "cert_file": str(pki.client_cert),
                        "key_file": str(pki.client_key),
                    },
                    "basic_auth_users": {"prometheus": HASH},
                }
            )
        )
        code, output = healthcheck(config, *by_file, "--web.config.file", str(other))
        assert code == 1
        assert "certificate is not" in output
        # No secret on any command line used above, and none printed.
        assert PASSWORD not in output

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    code, output = healthcheck(config, *by_file)
    assert code == 1, output


def test_healthcheck_plain_http_and_bad_config(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yml"
    code, output = healthcheck(missing)
    assert code == 1
    assert "unhealthy" in output
