"""Errors of the machine around plantkit (full disk, permissions, wrong file types) as input
errors: one line naming the path and what to do, exit code 2."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from plantkit.errors import PlantkitInputError

_ADVICE = {
    errno.ENOSPC: "no space left on the device: free some space or pass --artifacts on "
                  "another disk",
    errno.EDQUOT: "disk quota exceeded: free some space or pass --artifacts on another disk",
    errno.EACCES: "permission denied: make it writable, or pass --artifacts to a folder you "
                  "may write",
    errno.EPERM: "operation not permitted: make it writable, or pass --artifacts to a folder "
                 "you may write",
    errno.EROFS: "read-only file system: pass --artifacts to a writable folder",
    errno.ENOTDIR: "a file stands where a folder is expected: move it away or choose another "
                   "path",
    errno.EISDIR: "a folder stands where a file is expected: choose a file path",
    errno.ENAMETOOLONG: "the file name is too long: choose a shorter name",
    errno.ELOOP: "too many symbolic links: check the path",
    errno.ENOENT: "it does not exist: check the path",
    errno.EEXIST: "it exists already: move it away or choose another path",
    errno.ENOTEMPTY: "the folder is not empty: move it away or choose another path",
    errno.EMFILE: "too many open files: raise `ulimit -n` or pass fewer --workers",
}
# h5py reports HDF5's failures as OSError without errno, with "errno = N" in the text.
_HDF5_ERRNO = re.compile(r"errno = (\d+)")
_HDF5_FILENAME = re.compile(r"(?:filename|name) = '([^']+)'")
# The protocol's temporaries (".NAME.tmp-1a2b3c4d"): the user knows the artifact by NAME.
_TEMPORARY = re.compile(r"^\.(.+)\.tmp-[0-9a-f]+$")
_NO_SPACE_TEXT = ("No space left on device", "file write failed", "unexpected pos")


def error_number(exc: BaseException) -> int | None:
    """The errno of `exc`, also when HDF5 or torch only name it in the message."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    text = str(exc)
    found = _HDF5_ERRNO.search(text)
    if found:
        return int(found.group(1))
    if any(marker in text for marker in _NO_SPACE_TEXT):
        return errno.ENOSPC
    return None


def environment_error(exc: BaseException, doing: str | None = None) -> PlantkitInputError | None:
    """A one-line PlantkitInputError for an OSError of the environment, or None for others."""
    number = error_number(exc)
    if number not in _ADVICE:
        return None
    path = getattr(exc, "filename", None)
    if path is None and (found := _HDF5_FILENAME.search(str(exc))):
        path = found.group(1)
    path = _shown(path)
    other = _shown(getattr(exc, "filename2", None))
    where = f"{path}" + (f" -> {other}" if other else "") if path else None
    subject = doing or (f"writing {where}" if where else "a file operation")
    if doing and where and where not in doing:
        subject = f"{doing} ({where})"
    return PlantkitInputError(f"{subject} failed: {_ADVICE[number]}")


def _shown(path) -> str | None:
    """The artifact a path belongs to: a protocol temporary is shown as what it would become."""
    if path is None:
        return None
    path = Path(os.fsdecode(path))
    for part in [path, *path.parents]:
        found = _TEMPORARY.match(part.name)
        if found:
            return str(part.with_name(found.group(1)) / path.relative_to(part))
    return str(path)
