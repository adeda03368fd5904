"""Files the commands write (reports, JSON companions, exports, merged histories), safely.

Every command that writes a file goes through here, so the rules hold everywhere:

- an output that resolves (symlinks followed, hard links compared by inode) to anything the
  command reads -- a history database or its `-wal`/`-shm`/`-journal` file, the config, a
  merge source -- or to another output of the same command is refused, exit 2, naming both;
- an existing file is replaced only with `--force`; an output that is a symbolic link is
  refused unless `--follow-symlinks` (then the link's target is written, the link kept);
- the data goes to a file of the output's name, created exclusively and owner-only in a
  fresh 0700 directory beside the output; it is fsync'd, given its mode (`--mode`, default
  0600: the files hold the same inventory as the 0600 history) and renamed into place only
  once complete. A failed write
  leaves no partial file and the old file as it was;
- an existing character device or FIFO (`/dev/stdout` through `--follow-symlinks`, a named
  pipe) cannot be renamed over: the complete file is staged, then copied into it;
- every failure is an `OutputProblem` (exit 2, one line, no traceback).

Writers in `drwatch.reports` and `drwatch.history` take the path or stream staged here; they
never decide where or how a user's file is created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import click

DEFAULT_MODE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


class OutputProblem(click.ClickException):
    """An output that must not or cannot be written: exit 2, like a usage error."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class OutputPolicy:
    """What `--force`, `--follow-symlinks` and `--mode` allow (see `common.output_options`)."""

    force: bool = False
    follow_symlinks: bool = False
    mode: int = DEFAULT_MODE


@dataclass(frozen=True, slots=True)
class Input:
    """A file the command reads, named as the user gave it (`--db`, `--config`, a source)."""

    label: str
    path: Path


def database_inputs(label: str, path: Path) -> tuple[Input, ...]:
    """A SQLite database and the files SQLite keeps beside it: writing over any loses data."""
    sidecars = (Input(f"{label} ({s[1:]} file)", Path(f"{path}{s}")) for s in SQLITE_SIDECARS)
    return (Input(label, path), *sidecars)


@dataclass(frozen=True, slots=True)
class Output:
    label: str
    requested: Path
    path: Path  # what is written: `requested`, or its symlink's target with --follow-symlinks
    in_place: bool  # an existing character device or FIFO: staged, then copied into it


def parse_mode(text: str) -> int:
    """`600`, `0600` or `0o640`: permission bits only, and the owner must be able to read."""
    digits = text.lower().removeprefix("0o")
    if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
        raise ValueError(f"{text!r} is not an octal mode such as 0600")
    mode = int(digits, 8)
    if mode > 0o777:
        raise ValueError(f"{text}: setuid, setgid and sticky bits are not allowed (at most 0777)")
    if not mode & stat.S_IRUSR:
        raise ValueError(f"{text}: the owner could not read the file (give at least 0400)")
    return mode


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: then only the real paths could match
        return False


def plan_outputs(
    outputs: Sequence[tuple[str, Path]], inputs: Sequence[Input], policy: OutputPolicy
) -> tuple[Output, ...]:
    """Checks every output before any work is done; raises OutputProblem naming the clash."""
    planned: list[Output] = []
    for label, requested in outputs:
        for item in inputs:
            if _same_file(requested, item.path):
                raise OutputProblem(
                    f"{label} {requested} is the {item.label} {item.path} this command reads: "
                    "refusing to write over it"
                )
        for other in planned:
            if _same_file(requested, other.requested):
                raise OutputProblem(
                    f"{label} {requested} and {other.label} {other.requested} "
                    "are the same file: give each output its own path"
                )
        planned.append(_plan_one(label, requested, policy))
    return tuple(planned)


def _plan_one(label: str, requested: Path, policy: OutputPolicy) -> Output:
    path = requested
    if requested.is_symlink():
        if not policy.follow_symlinks:
            raise OutputProblem(
                f"{label} {requested} is a symbolic link (to {os.readlink(requested)}): "
                "give --follow-symlinks to write to its target"
            )
        path = Path(os.path.realpath(requested))
    try:
        info = path.stat()
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise OutputProblem(
                f"{label} {requested}: directory {path.parent} does not exist"
            ) from None
        return Output(label, requested, path, in_place=False)
    except OSError as error:
        raise OutputProblem(f"{label} {requested}: {error.strerror}") from error
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return Output(label, requested, path, in_place=True)
    if stat.S_ISDIR(info.st_mode):
        raise OutputProblem(f"{label} {requested}: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise OutputProblem(f"{label} {requested}: not a regular file, refusing to write to it")
    if not policy.force:
        raise OutputProblem(f"{label} {requested}: already exists; give --force to replace it")
    return Output(label, requested, path, in_place=False)


@dataclass(slots=True)
class Staging:
    """Temporary files for planned outputs; `staged()` commits them or removes them."""

    policy: OutputPolicy
    _files: list[tuple[Output, Path]] = field(default_factory=list)
    _dirs: list[Path] = field(default_factory=list)

    def path(self, output: Output) -> Path:
        """An empty owner-only file to write the output to (by a writer that takes a path);
        it has the output's own name, so a writer that derives names from it (the PDF's
        attached `<stem>.json`) sees the real one."""
        staged = self.new_path(output)
        try:
            os.close(os.open(staged, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as error:
            raise OutputProblem(f"{output.label} {output.requested}: {error.strerror}") from error
        return staged

    def new_path(self, output: Output) -> Path:
        """A path that does not exist yet, in a private (0700) directory beside the output,
        for writers that create the file themselves (a merged SQLite database)."""
        directory = None if output.in_place else output.path.parent
        try:
            private = Path(tempfile.mkdtemp(prefix=f".{output.path.name}.", dir=directory))
        except OSError as error:
            raise OutputProblem(f"{output.label} {output.requested}: {error.strerror}") from error
        self._dirs.append(private)
        self._files.append((output, private / output.path.name))
        return private / output.path.name

    @contextlib.contextmanager
    def text(self, output: Output) -> Iterator[TextIO]:
        """A text stream (UTF-8) on a staged file, closed (flushed) when the block ends."""
        with self.path(output).open("w", encoding="utf-8", newline="") as stream:
            yield stream

    def commit(self) -> None:
        for output, staged in self._files:
            try:
                if output.in_place:
                    _copy_into(staged, output.path)
                else:
                    self._install(staged, output.path)
            except OSError as error:
                raise OutputProblem(
                    f"{output.label} {output.requested}: cannot write: {error.strerror or error}"
                ) from error

    def _install(self, staged: Path, target: Path) -> None:
        for suffix in ("-wal", "-journal"):  # a database writer left data in its journal
            journal = Path(f"{staged}{suffix}")
            if journal.exists() and journal.stat().st_size > 0:
                raise OSError(f"{journal} is not empty: the database was not closed cleanly")
        fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, self.policy.mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.policy.force:
            os.replace(staged, target)  # replaces a link itself, never writes through it
        else:
            try:
                os.link(staged, target)  # fails if something appeared at `target` meanwhile
            except FileExistsError:
                raise
            except OSError as error:  # no hard links on this file system: check, then rename
                if os.path.lexists(target):
                    raise FileExistsError(
                        errno.EEXIST, "appeared while writing", str(target)
                    ) from error
                os.replace(staged, target)
            else:
                os.unlink(staged)
        _fsync_directory(target.parent)

    def discard(self) -> None:
        for private in self._dirs:
            shutil.rmtree(private, ignore_errors=True)


def _copy_into(staged: Path, target: Path) -> None:
    with staged.open("rb") as source, target.open("wb") as sink:
        shutil.copyfileobj(source, sink)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename is done anyway
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged(policy: OutputPolicy) -> Iterator[Staging]:
    """Write the outputs inside the block; they are installed only if it ends normally."""
    staging = Staging(policy)
    try:
        yield staging
        staging.commit()
    except OSError as error:
        raise OutputProblem(f"cannot write the output: {error}") from error
    finally:
        staging.discard()
