"""What an expert folder and a weights file must be before anything loads them; torch-free.

The one home of these rules: `plantkit predict`, `train --init-from` and `import plantnet`
run them before torch and keras are imported (a damaged input is refused at once, in one
line naming the file), and plantkit.models.expert runs them again when it loads.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from plantkit.artifacts import EXPERT_FILE, WEIGHTS_FILE, read_json, verify_file
from plantkit.errors import PlantkitInputError

EXPERT_FORMAT = "plantkit-expert"
EXPERT_FORMAT_VERSION = 1


def damaged_fix(folder: str | PathLike) -> str:
    """What to do about a damaged expert folder."""
    return f"the expert {Path(folder)} is damaged: train, import or copy it again"


def check_file(path: str | PathLike, what: str, fix: str = "") -> os.stat_result:
    """Refuse a file that cannot be read whole: missing, a folder or other non-regular file,
    empty, or unreadable. `what` names it ("checkpoint" ...); `fix` says what to do."""
    path = Path(path)
    then = f": {fix}" if fix else ""
    try:
        status = path.stat()
    except FileNotFoundError:
        raise PlantkitInputError(f"{what} {path} does not exist{then}") from None
    except OSError as exc:
        raise _unreadable(what, path, exc, fix) from None
    if stat.S_ISDIR(status.st_mode):
        raise PlantkitInputError(f"{what} {path} is a folder, not a file{then}")
    if not stat.S_ISREG(status.st_mode):
        raise PlantkitInputError(f"{what} {path} is not a regular file{then}")
    if status.st_size == 0:
        raise PlantkitInputError(f"{what} {path} is empty (0 bytes){then}")
    # Permission bits say little (root reads anything): opening and reading is the test.
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise _unreadable(what, path, exc, fix) from None
    return status


def _unreadable(what: str, path: Path, exc: OSError, fix: str) -> PlantkitInputError:
    reason = exc.strerror or type(exc).__name__
    return PlantkitInputError(f"cannot read {what} {path}: {reason}{f': {fix}' if fix else ''}")


def _damaged(path: Path, problem: str) -> PlantkitInputError:
    return PlantkitInputError(f"{path} {problem}: {damaged_fix(path.parent)}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_triple(value) -> bool:
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


# What Expert(**config) needs, key -> (required, valid, what it should be): the rest of the
# config has defaults.
_CONFIG_CHECKS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "arch": (True, lambda v: isinstance(v, str) and v != "", "a name"),
    "num_classes": (True, lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "input_size": (False, lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "source": (False, lambda v: v is None or isinstance(v, str), "a library name"),
    "mean": (False, _is_triple, "three numbers"),
    "std": (False, _is_triple, "three numbers"),
    "amp": (False, lambda v: isinstance(v, bool), "true or false"),
}


def read_expert_json(directory: str | PathLike) -> dict:
    """The content of an expert folder's ``expert.json`` (config, info, class_ids ...), refused
    unless it is a plantkit expert description holding what the loader reads."""
    path = Path(directory) / EXPERT_FILE
    if not path.is_file():
        raise PlantkitInputError(f"{Path(directory)} is not an expert folder: no {EXPERT_FILE}")
    document = read_json(path, "an expert description")  # not JSON, not an object
    _check_format(path, document)
    config = document.get("config")
    if not isinstance(config, dict):
        raise _damaged(path, "has no config object")
    _check_config(path, config)
    _check_extras(path, document, config)
    return document


def _check_format(path: Path, document: dict) -> None:
    if document.get("format") != EXPERT_FORMAT:
        raise PlantkitInputError(f"{path} is not a plantkit expert description")
    version = document.get("format_version", 0)
    if not _is_int(version):
        raise _damaged(path, f"has format_version {version!r}, not an integer")
    if version > EXPERT_FORMAT_VERSION:
        raise PlantkitInputError(f"{path} was written by a newer plantkit; upgrade plantkit")


def _check_config(path: Path, config: dict) -> None:
    for key, (required, valid, expected) in _CONFIG_CHECKS.items():
        if key not in config:
            if required:
                raise _damaged(path, f"has no config.{key}")
            continue
        if not valid(config[key]):
            raise _damaged(path, f"has config.{key} {config[key]!r}, not {expected}")


def _check_extras(path: Path, document: dict, config: dict) -> None:
    """weights_sha256, info and class_ids, each optional but checked when present."""
    digest = document.get("weights_sha256")
    if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
        raise _damaged(path, f"has weights_sha256 {digest!r}, not a sha256 hex digest")
    if document.get("info") is not None and not isinstance(document["info"], dict):
        raise _damaged(path, "has an info that is not an object")
    class_ids = document.get("class_ids")
    if class_ids is not None and not (isinstance(class_ids, list)
                                      and len(class_ids) == config["num_classes"]):
        raise _damaged(path, f"has class_ids that are not a list of {config['num_classes']:,}")


# Weights files verified in this process: resolved path -> (what its stat said, the sha256
# it matched). A normal predict checks the folder before torch loads and loads it after; the
# second check hashes again only if the file changed in between (replacing a file, as the
# write protocol does, gives it another inode; writing into it, another mtime).
_verified: dict[str, tuple] = {}


def check_expert_weights(folder: str | PathLike, document: dict) -> Path:
    """The expert's weights file, refused (naming it) when it is missing, not a regular file,
    unreadable, or not the bytes whose sha256 expert.json records."""
    path = Path(folder) / WEIGHTS_FILE
    fix = damaged_fix(folder)
    status = check_file(path, "weights file", fix)
    expected = document.get("weights_sha256")
    key = ((status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
            status.st_ctime_ns), expected)
    where = str(path.resolve())
    if _verified.get(where) == key:
        return path
    try:
        verify_file(path, expected, fix=fix)
    except OSError as exc:
        raise _unreadable("weights file", path, exc, fix) from None
    _verified[where] = key
    return path


def check_expert_folder(folder: str | PathLike) -> dict:
    """The expert.json of the expert in `folder`, once the folder, that document and the
    weights it records pass every check above; refused in one line naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PlantkitInputError(f"no expert folder {folder}: train or import it first")
    document = read_expert_json(folder)
    check_expert_weights(folder, document)
    return document
