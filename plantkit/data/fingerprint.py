"""A dataset's identity: class ids plus each split's sorted relative paths and sizes, hashed.

Every later artifact (expert, store, combination, report) carries it, so artifacts of
different datasets are never mixed. Built from the directory scan alone (no image is
read), it costs about a second on Pl@ntNet-300K's 306k files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

FINGERPRINT_VERSION = "plantkit-dataset-v1"


def dataset_fingerprint(
    class_ids: Sequence[str], splits: Mapping[str, tuple[Sequence[str], Iterable[int]]]
) -> str:
    """sha256 (first 16 hex digits) of class ids and each split's (path, size) rows."""
    digest = hashlib.sha256()
    digest.update(f"{FINGERPRINT_VERSION}\n".encode())
    digest.update(("classes\t" + "\t".join(class_ids) + "\n").encode())
    for split in sorted(splits):
        paths, sizes = splits[split]
        rows = sorted(zip(paths, (int(s) for s in sizes)))
        digest.update(f"split\t{split}\t{len(rows)}\n".encode())
        digest.update("".join(f"{p}\t{s}\n" for p, s in rows).encode())
    return digest.hexdigest()[:16]
