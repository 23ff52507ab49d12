"""The write protocol: at every instant an artifact's name resolves to a complete old or a
complete new version (docs/artifacts.md, "Writing").

- A file is written under a hidden temporary name beside it, flushed to disk, then switched
  into place with one `os.replace`.
- A folder is written complete under a hidden temporary name beside it, then switched with
  the old one in a single atomic exchange (Linux `renameat2(RENAME_EXCHANGE)`); the old
  version, now under the temporary name, is deleted afterwards. Where the file system cannot
  exchange, the old folder is first renamed to `.NAME.old-PID`, and the next writer puts it
  back if a kill came between the two renames.
- Hidden names (a leading '.') are never read as artifacts; the next writer of the same
  artifact deletes the leftovers of a killed one (or recovers a complete old version, saying
  so in one line).

Every write holds a lock (plantkit.artifacts.locks): the cleanup of leftovers is only safe
when no other process is writing the same artifact. A writer that does not hold a lock
covering the target (its own, or its artifact folder's) takes the target's own for the write;
commands that write several files of one artifact hold the artifact folder's lock throughout.

`PLANTKIT_FAULT_AT=N` kills the process (SIGKILL) at the N-th step of the protocol and
`PLANTKIT_FAULT_LOG=FILE` appends one line per step: the fault-injection tests use them to
kill a command at every step that writes or renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from plantkit.artifacts.locks import _held, artifact_lock, holds_lock

FAULT_AT_ENV = "PLANTKIT_FAULT_AT"
FAULT_LOG_ENV = "PLANTKIT_FAULT_LOG"
TMP_MARK = ".tmp-"
OLD_MARK = ".old-"

_steps = 0
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def fault_point(what: str) -> None:
    """One step of the protocol: counted, logged, and the kill point of the fault tests."""
    global _steps
    at, log = os.environ.get(FAULT_AT_ENV), os.environ.get(FAULT_LOG_ENV)
    if not at and not log:
        return
    _steps += 1
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{_steps}\t{what}\n")
    if at and _steps == int(at):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def reset_fault_steps() -> None:
    """Start counting steps from zero (a forked test process)."""
    global _steps
    _steps = 0


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}{TMP_MARK}{secrets.token_hex(4)}")


def is_leftover_of(path: Path, target: Path) -> bool:
    prefix = f".{target.name}"
    return path.name.startswith(prefix + TMP_MARK) or path.name.startswith(prefix + OLD_MARK)


def _lock_unless_held(target: Path):
    """The lock of `target` itself, unless this process holds one that covers it already."""
    return contextlib.nullcontext() if holds_lock(target) else artifact_lock(target)


def clean_leftovers(target: str | os.PathLike,
                    say: Callable[[str], None] | None = None) -> list[Path]:
    """Delete what killed writers of `target` left beside it; return what was removed.

    A complete old version left by the two-rename fallback (`.NAME.old-PID`) is renamed
    back when `target` itself is missing, and `say` is told so.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    leftovers = sorted(p for p in target.parent.iterdir() if is_leftover_of(p, target))
    for path in leftovers:
        if OLD_MARK in path.name and not os.path.lexists(target):
            fault_point(f"recover {target}")
            os.rename(path, target)
            (say or _say)(f"recovered {target} from an interrupted replace ({path.name})")
            continue
        fault_point(f"remove leftover {path}")
        _remove(path)
        removed.append(path)
    return removed


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def fsync_file(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        fsync_file(path)


def _fsync_tree(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fsync_file(os.path.join(dirpath, name))
        _fsync_dir(Path(dirpath))


@contextlib.contextmanager
def replacing_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary path beside `target`; when the block ends without error, the
    file written there replaces `target` in one step. On error the temporary is removed and
    `target` is left as it was."""
    target = Path(target)
    with _lock_unless_held(target):
        yield from _replacing_file(target)


def _make_parents(target: Path) -> list[Path]:
    """Create target's missing parent folders; return them (outermost first)."""
    created = [p for p in reversed(target.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    return created


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _replacing_file(target: Path) -> Iterator[Path]:
    created = _make_parents(target)
    clean_leftovers(target)
    tmp = _tmp_name(target)
    fault_point(f"create {tmp}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        yield tmp
        fault_point(f"wrote {tmp}")
        fsync_file(tmp)
        fault_point(f"replace {target}")
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        _remove_if_empty(created)
        raise


def _named(exc: OSError, target: Path) -> OSError:
    """`exc` with the artifact's path when the failing call did not name one (a plain
    write into a full disk, say), so the one-line error can say where."""
    if exc.filename is not None or exc.errno is None or "filename = " in str(exc):
        return exc
    return OSError(exc.errno, exc.strerror, str(target))


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `target` through the protocol."""
    try:
        with replacing_file(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
    except OSError as exc:
        named = _named(exc, Path(target))
        if named is exc:
            raise
        raise named from exc
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `target` through the protocol."""
    return write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def replacing_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden folder beside `target`; when the block ends without error, it takes
    `target`'s place in one atomic step and the old version is deleted. On error the new
    folder is removed and `target` is left as it was."""
    target = Path(target)
    with _lock_unless_held(target):
        yield from _replacing_dir(target)


def _replacing_dir(target: Path) -> Iterator[Path]:
    created = _make_parents(target)
    clean_leftovers(target)
    tmp = _tmp_name(target)
    fault_point(f"create {tmp}")
    tmp.mkdir(mode=0o777)
    key = Path(os.path.abspath(tmp))
    _held[key] = 1  # the new version belongs to the caller's lock on `target`
    try:
        yield tmp
        fault_point(f"wrote {tmp}")
        _fsync_tree(tmp)
        _switch_dir(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            if tmp.exists():
                shutil.rmtree(tmp)
        _remove_if_empty(created)
        if isinstance(exc, OSError) and _named(exc, target) is not exc:
            raise _named(exc, target) from exc
        raise
    finally:
        _held.pop(key, None)


def _switch_dir(tmp: Path, target: Path) -> None:
    if not os.path.lexists(target):
        fault_point(f"rename {tmp} -> {target}")
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        return
    fault_point(f"exchange {tmp} <-> {target}")
    if _exchange(tmp, target):
        _fsync_dir(target.parent)
        fault_point(f"remove old {tmp}")
        shutil.rmtree(tmp)  # now the old version
        return
    old = target.with_name(f".{target.name}{OLD_MARK}{os.getpid()}")
    fault_point(f"rename {target} -> {old}")
    os.rename(target, old)
    fault_point(f"rename {tmp} -> {target}")
    os.rename(tmp, target)
    _fsync_dir(target.parent)
    fault_point(f"remove old {old}")
    shutil.rmtree(old)


_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system or file system cannot."""
    global _libc
    if os.environ.get("PLANTKIT_NO_EXCHANGE") or not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    number = ctypes.get_errno()
    if number in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(number, os.strerror(number), str(a), None, str(b))


def discard(path: str | os.PathLike) -> None:
    """Delete an artifact (or a file or folder inside one) so that no half-deleted version is
    ever visible: it is first renamed to a hidden temporary name, then removed."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    with _lock_unless_held(path):
        hidden = _tmp_name(path)
        fault_point(f"rename {path} -> {hidden}")
        os.rename(path, hidden)
        fault_point(f"remove {hidden}")
        _remove(hidden)
