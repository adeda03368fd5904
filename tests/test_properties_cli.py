"""The CLI turns bad periods, paths and formats into a clear message and exit code 2.

Exit 2 is click's usage-error code: scripts and CI can tell "you called it wrong" (2) from
"it ran and found a problem" (1). No traceback reaches the user.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from drwatch.cli.main import cli
from drwatch.history.store import HistoryStore


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "history.db"
    HistoryStore(path).close()
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # periods
        (["--since", "2026-13-01", "--until", "2026-12-01"], "Invalid value for '--since'"),
        (["--since", "yesterday", "--until", "2026-12-01"], "Invalid value for '--since'"),
        (["--since", "2026-11-01", "--until", "2026-10-01"], "must be after --since"),
        (["--since", "2026-11-01", "--until", "2026-11-01"], "must be after --since"),
        # formats
        (
            ["--since", "2026-10-01", "--until", "2026-11-01", "--format", "xml"],
            "'xml' is not one of",
        ),
        # paths
        (
            ["--since", "2026-10-01", "--until", "2026-11-01", "--output", "/nonexistent/x.json"],
            "--output /nonexistent/x.json: directory /nonexistent does not exist",
        ),
    ],
)
def test_history_export_rejects_bad_input_with_exit_2(
    db: Path, args: list[str], message: str
) -> None:
    code, output = run("history", "export", "--db", str(db), *args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check-config", "/nonexistent/drwatch.yml"], "/nonexistent/drwatch.yml"),
        (["check-config", "/"], "is a directory"),
        (["poll", "--once", "--config", "/nonexistent/drwatch.yml"], "cannot read"),
        (["serve", "--config", "/nonexistent.yml"], "/nonexistent.yml"),
        (["history", "stats"], "give --config"),
        (["history", "compact", "--db", "x.db", "--raw-days", "0"], "Invalid value"),
        (["iam-policy", "--config", "/nonexistent.yml"], "/nonexistent.yml"),
    ],
)
def test_bad_paths_and_values_exit_2(args: list[str], message: str) -> None:
    code, output = run(*args)
    assert code == 2, output
    assert message.lower() in output.lower()
    assert "Traceback" not in output


def test_a_bad_web_config_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "drwatch.yml"
    config.write_text(
        "accounts: [{id: '111111111111'}]\nregions: [eu-west-1]\n"
        f"history: {{path: {tmp_path / 'h.db'}}}\n"
    )
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: my-plain-password\n")
    code, output = run("serve", "--config", str(config), "--web.config.file", str(web))
    assert code == 2, output
    assert "basic_auth_users.alice: must be a bcrypt hash" in output
    assert "my-plain-password" not in output
    missing = tmp_path / "absent.yml"
    code, output = run("serve", "--config", str(config), "--web.config.file", str(missing))
    assert code == 2, output
    assert "cannot read" in output


def test_the_web_config_file_config_key_is_used_and_checked(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {cert_file: server.crt}\n")
    config = tmp_path / "drwatch.yml"
    config.write_text(
        "accounts: [{id: '111111111111'}]\nregions: [eu-west-1]\n"
        f"history: {{path: {tmp_path / 'h.db'}}}\nweb_config_file: {web}\n"
    )
    code, output = run("serve", "--config", str(config))
    assert code == 2, output
    assert "tls_server_config.key_file: required" in output
