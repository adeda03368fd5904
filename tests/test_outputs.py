"""Output files never touch the evidence; every error path exits 2 without a traceback.

Issue 22, cases 1 (outputs destroying the history), 7 (files written 0644) and 9 (tracebacks
on a file that is not SQLite, on `-o /dev/full`). Every command runs through the real CLI.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import pytest
from click.testing import CliRunner, Result

from drwatch.cli import history as history_cli
from drwatch.cli.main import cli
from drwatch.core.model import Observations, UnitKey, UnitResult, UnitRun
from drwatch.history.store import HistoryStore
from tests.test_controls import build_history

ROOT = Path(__file__).parent.parent
T0 = datetime(2026, 10, 1, tzinfo=UTC)
PERIOD = ["--from", "2026-10-01", "--until", "2026-10-03"]
EXPORT = ["history", "export", "--since", "2026-10-01", "--until", "2026-11-01"]


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most hosts have: without the fix, files come out 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A small real history: a few empty polls of one unit."""
    path = tmp_path / "history.db"
    unit = UnitKey("rds", "111111111111", "eu-west-1")
    with HistoryStore(path) as store:
        for hours in range(0, 48, 6):
            run = UnitRun(unit, T0 + timedelta(hours=hours), 1.0, True)
            store.ingest(UnitResult(run, Observations((), (), ())))
    return path


@pytest.fixture(scope="module")
def report_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_history(tmp_path_factory.mktemp("outputs") / "history.db")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_usage_problem(result: Result, *named: str) -> None:
    """Exit 2, a one-line message naming `named`, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error:" in result.output
    for name in named:
        assert name in result.output


# --- case 1: an output resolving to an input is refused, the input untouched ---------------


@pytest.mark.parametrize("via_symlink", [False, True])
def test_export_onto_its_history_is_refused(db: Path, via_symlink: bool) -> None:
    before = db.read_bytes()
    target = db
    if via_symlink:
        target = db.parent / "export.json"
        target.symlink_to(db.name)
    extra = ["--follow-symlinks", "--force"] if via_symlink else ["--force"]
    result = run(*EXPORT, "--db", str(db), "--output", str(target), *extra)
    assert_usage_problem(result, str(target), f"history {db}")
    assert db.read_bytes() == before


@pytest.mark.parametrize("option", ["--out", "--json"])
def test_report_onto_its_history_is_refused(report_history: Path, option: str) -> None:
    before = report_history.read_bytes()
    other = report_history.parent / ("r.pdf" if option == "--json" else "r.json")
    paired = "--json" if option == "--out" else "--out"
    result = run(
        "report", "--framework", "soc2", *PERIOD, "--db", str(report_history),
        option, str(report_history), paired, str(other), "--force",
    )  # fmt: skip
    assert_usage_problem(result, f"{option} {report_history}", f"history {report_history}")
    assert report_history.read_bytes() == before
    assert not other.exists()


def test_output_onto_the_write_ahead_log_is_refused(db: Path) -> None:
    wal = Path(f"{db}-wal")
    result = run(*EXPORT, "--db", str(db), "--output", str(wal), "--force")
    assert_usage_problem(result, str(wal), "wal file")


def test_merge_onto_a_source_is_refused(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(db.read_bytes())
    before = db.read_bytes()
    result = run("history", "merge", "--force", "--out", str(db), str(db), str(other))
    assert_usage_problem(result, f"--out {db}", f"source history {db}")
    assert db.read_bytes() == before


def test_an_existing_file_is_replaced_only_with_force(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    out.write_text("the auditor's copy\n")
    result = run(*EXPORT, "--db", str(db), "--output", str(out))
    assert_usage_problem(result, str(out), "--force")
    assert out.read_text() == "the auditor's copy\n"
    result = run(*EXPORT, "--db", str(db), "--output", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert '"chain_head"' in out.read_text()


def test_a_symlinked_output_is_written_only_with_follow_symlinks(db: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    link = tmp_path / "link.csv"
    link.symlink_to(real.name)
    result = run(*EXPORT, "--format", "csv", "--db", str(db), "--output", str(link))
    assert_usage_problem(result, str(link), "symbolic link", "--follow-symlinks")
    assert not real.exists()
    result = run(*EXPORT, "--format", "csv", "--db", str(db), "-o", str(link), "--follow-symlinks")
    assert result.exit_code == 0, result.output
    assert link.is_symlink()
    assert real.read_text().startswith("table,seq")


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export.json"
    out.write_text("previous export\n")

    def half_then_disk_full(_db: object, _since: object, _until: object, stream: TextIO) -> int:
        stream.write('{"rows": [')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(history_cli, "write_json", half_then_disk_full)
    result = run(*EXPORT, "--db", str(db), "--output", str(out), "--force")
    assert_usage_problem(result, "No space left on device")
    assert out.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["export.json", db.name, *(p.name for p in tmp_path.glob("history.db-*"))]
    )


# --- case 7: files are created 0600 unless --mode --------------------------------------------


def test_export_and_report_files_are_owner_only(
    db: Path, report_history: Path, tmp_path: Path
) -> None:
    export = tmp_path / "e.csv"
    assert run(*EXPORT, "--format", "csv", "--db", str(db), "-o", str(export)).exit_code == 0
    pdf, companion = tmp_path / "r.pdf", tmp_path / "r.json"
    result = run(
        "report", "--framework", "gdpr", *PERIOD, "--db", str(report_history),
        "--out", str(pdf), "--json", str(companion),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for path in (export, pdf, companion):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_mode_sets_the_permissions_and_is_validated(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert run(*EXPORT, "--db", str(db), "-o", str(out), "--mode", "0640").exit_code == 0
    assert out.stat().st_mode & 0o777 == 0o640
    for bad in ("abc", "0999", "4755", "0200", "77777"):
        result = run(*EXPORT, "--db", str(db), "-o", str(tmp_path / "x"), "--mode", bad)
        assert_usage_problem(result, "--mode")
    from drwatch.cli.outputs import parse_mode  # here: the module is new with the fix

    assert parse_mode("600") == parse_mode("0o600") == 0o600


# --- case 9: every command reading a history, on bad inputs and unwritable outputs ---------

READERS = {
    "history stats": ["history", "stats"],
    "history verify": ["history", "verify"],
    "history compact": ["history", "compact"],
    "history export": EXPORT,
    "report soc2": ["report", "--framework", "soc2", *PERIOD],
    "report management": ["report", "--framework", "management", "--period", "2026-10"],
    "drill list": ["drill", "list"],
    "drill record": [
        "drill", "record", "--scenario", "database_failure", "--scope", "db1",
        "--incident-start", "2026-10-01T00:00:00Z", "--restored-at", "2026-10-01T01:00:00Z",
    ],
}  # fmt: skip
# `drill record` creates the history it is given when there is none: a missing file is fine.
CREATES_HISTORY = {"drill record"}


BAD_HISTORIES = [
    (command, kind)
    for command in sorted(READERS)
    for kind in ("not sqlite", "empty", "missing", "directory")
    if not (kind in {"missing", "empty"} and command in CREATES_HISTORY)
]


@pytest.mark.parametrize(("command", "kind"), BAD_HISTORIES)
def test_a_bad_history_exits_2_and_is_left_as_it_was(
    command: str, kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "history.db"
    if kind == "not sqlite":
        path.write_bytes(b"these are not the rows you are looking for\n" * 100)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None
    result = run(*READERS[command], "--db", str(path))
    assert_usage_problem(result, str(path))
    if before is not None:
        assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.db"] * path.exists()


def test_merge_of_a_file_that_is_not_sqlite_exits_2(db: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"nope" * 1000)
    result = run("history", "merge", "--out", str(tmp_path / "m.db"), str(db), str(bogus))
    assert_usage_problem(result, str(bogus))
    assert bogus.read_bytes() == b"nope" * 1000
    assert not (tmp_path / "m.db").exists()


WRITERS = {
    "history export": lambda db, out: [*EXPORT, "--db", str(db), "--output", out],
    "report": lambda db, out: ["report", "--framework", "soc2", *PERIOD, "--db", str(db),
                               "--out", out],
    "history merge": lambda db, out: ["history", "merge", "--out", out, str(db), str(db)],
}  # fmt: skip


# Merge refuses two copies of one source before writing anything: no /dev/full case for it.
UNWRITABLE = [
    (command, target)
    for command in sorted(WRITERS)
    for target in ("no such directory", "/dev/full")
    if not (command == "history merge" and target == "/dev/full")
]


@pytest.mark.parametrize(("command", "target"), UNWRITABLE)
def test_an_unwritable_output_exits_2(
    command: str, target: str, report_history: Path, tmp_path: Path
) -> None:
    out = str(tmp_path / "missing" / "out") if target == "no such directory" else target
    before = report_history.read_bytes()
    result = run(*WRITERS[command](report_history, out))
    assert_usage_problem(result, out)
    assert report_history.read_bytes() == before


def test_export_to_dev_full_from_the_real_command(db: Path) -> None:
    """The issue's reproduction, as an operator runs it: no traceback, exit 2."""
    completed = subprocess.run(
        [sys.executable, "-m", "drwatch", *EXPORT, "--db", str(db), "-o", "/dev/full"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "/dev/full" in completed.stderr
    assert "No space left" in completed.stderr
