"""One writer per artifact: an advisory lock (a POSIX record lock, fcntl.lockf) held while a
command writes it. Unlike flock, a record lock belongs to the process alone: the data-loading
workers a command forks do not share it, so a killed command's orphaned workers never keep
its artifacts locked.

The lock lives beside the artifact as a hidden `.NAME.lock` file that records the holder's pid
and command line, so a second writer can say who is in the way. The kernel drops the lock
when the holder exits, even on kill -9, so a stale lock never blocks anyone. The holder
deletes the file before it lets go, and a new holder checks that the file it locked is still
the one at that path (else it locked a deleted file and tries again), so no lock files pile
up and two writers never hold "the same" lock. Readers take no lock: writers only ever
switch complete versions into place (see plantkit.artifacts.protocol).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from plantkit.errors import PlantkitInputError

LOCK_SUFFIX = ".lock"
_WAIT_POLL_SECONDS = 0.2

# Artifacts this process holds locks on (absolute path -> nesting depth), so a command that
# holds an expert's lock can call library code that asks for it again.
_held: dict[Path, int] = {}
_wait_default = False


class ArtifactBusy(PlantkitInputError):
    """Another process is writing the artifact."""


def set_wait(wait: bool) -> None:
    """Whether artifact_lock waits for a busy artifact (`plantkit --wait`) or refuses at once."""
    global _wait_default
    _wait_default = bool(wait)


def lock_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(os.path.abspath(artifact))
    return artifact.parent / f".{artifact.name}{LOCK_SUFFIX}"


def holds_lock(path: str | os.PathLike) -> bool:
    """True when this process holds the lock of `path` or of a folder above it."""
    path = Path(os.path.abspath(path))
    return any(path == held or held in path.parents for held in _held)


@contextlib.contextmanager
def artifact_lock(artifact: str | os.PathLike, *, wait: bool | None = None,
                  on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the write lock of `artifact` (a file or folder, existing or not) for the block.

    A busy artifact raises ArtifactBusy naming the other process, or with `wait` (default:
    set_wait) waits, calling `on_wait(message)` once (default: print it on stderr).
    """
    key = Path(os.path.abspath(artifact))
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    wait = _wait_default if wait is None else wait
    path = lock_path(key)
    created = [p for p in reversed(path.parents) if not p.exists()]
    fd = _acquire(path, key, wait, on_wait)
    try:
        _record_owner(fd)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: see the module's docstring
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
        for folder in reversed(created):  # folders made for the lock alone, if left empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def _acquire(path: Path, key: Path, wait: bool, on_wait) -> int:
    """An open, locked descriptor of the file now at `path`."""
    announced = False
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _unlockable(key, exc) from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                os.close(fd)
                raise _unlockable(key, exc) from exc
            owner = _read_owner(fd)
            os.close(fd)
            if not wait:
                raise ArtifactBusy(
                    f"{key} is being written by another plantkit process ({owner}); wait for "
                    "it to finish, or pass --wait (plantkit --wait ...) to queue behind it"
                ) from None
            if not announced:
                message = f"waiting for {key}: another plantkit process is writing it ({owner})"
                (on_wait or (lambda m: print(m, file=sys.stderr, flush=True)))(message)
                announced = True
            time.sleep(_WAIT_POLL_SECONDS)
            continue
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder before us deleted it: lock the file there now


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _record_owner(fd: int) -> None:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}: {command}"[:500].encode(errors="replace"), 0)


def _read_owner(fd: int) -> str:
    text = os.pread(fd, 500, 0).decode(errors="replace").strip()
    return text or "pid unknown"


def _unlockable(key: Path, exc: OSError) -> PlantkitInputError:
    from plantkit.artifacts.errors import environment_error

    return environment_error(exc, doing=f"locking {key} for writing") or PlantkitInputError(
        f"cannot lock {key} for writing: {exc}"
    )
