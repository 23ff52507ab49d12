"""Checksums of weights and checkpoint files: sha256 recorded when a file is completed and
verified on every read. (Prediction stores carry HDF5's per-chunk fletcher32 instead; see
plantkit.store.)"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from plantkit.errors import PlantkitInputError

_BLOCK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class ChecksumMismatch(PlantkitInputError):
    """A file's content is not what was recorded when it was written."""


def read_verified(path: str | os.PathLike, expected: str | None, *, fix: str) -> bytes:
    """The bytes of `path`, refused when their sha256 is not `expected` (None: not recorded,
    accepted as written by an older plantkit)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PlantkitInputError(f"{path} is missing: {fix}") from None
    if expected is not None and sha256_bytes(data) != expected:
        raise ChecksumMismatch(
            f"{path} is corrupt (its sha256 differs from the one recorded when it was "
            f"written): {fix}"
        )
    return data


def verify_file(path: str | os.PathLike, expected: str | None, *, fix: str) -> None:
    """Refuse `path` when its sha256 is not `expected` (None: nothing recorded, accepted)."""
    path = Path(path)
    if not path.is_file():
        raise PlantkitInputError(f"{path} is missing: {fix}")
    if expected is not None and sha256_file(path) != expected:
        raise ChecksumMismatch(
            f"{path} is corrupt (its sha256 differs from the one recorded when it was "
            f"written): {fix}"
        )
