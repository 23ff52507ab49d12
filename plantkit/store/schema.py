"""The store's format: constants, names in the file, split order, fingerprints, the
integrity switch.

The layout is documented in docs/store.md; change the two together and bump SCHEMA_VERSION
when a reader of the old layout would misread the new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import h5py

from plantkit.choices import SPLITS

STORE_FORMAT = "plantkit-predictions"
SCHEMA_VERSION = 1
FEATURES_DTYPE = "float16"
SPLIT_ORDER = SPLITS  # the order splits are listed in
# Attributes the store itself sets; callers' `attrs` may not use these names.
CORE_ATTRS = frozenset(
    {"format", "schema_version", "kind", "name", "fingerprint", "created_at",
     "plantkit_version", "dtype", "json_attrs", "class_ids_sha256"}
)
# sha256 of the strings joined with "\n" (UTF-8): of /class_ids as a root attribute, of a
# split's paths as an attribute of its group.
CLASS_IDS_SHA256 = "class_ids_sha256"
PATHS_SHA256 = "paths_sha256"
# Images of a split that could not be decoded and have no row (docs/store.md): a dataset
# of the split group, with the sha256 of its strings as a group attribute.
SKIPPED_PATHS = "skipped_paths"
SKIPPED_PATHS_SHA256 = "skipped_paths_sha256"

STRINGS = h5py.string_dtype("utf-8")
# The advice every "damaged store" error ends with.
FIX = "re-create it (plantkit predict, plantkit import logits or plantkit combine)"

# Benchmarks only (set_verification): off writes stores without checksums, as before issue
# 9, and reads without checking checksums or label ranges.
_verify = True


def set_verification(enabled: bool) -> None:
    """Benchmarks only: measure what the integrity checks cost.

    Off, stores are written without checksums (fletcher32 and sha256 attributes, the layout
    plantkit wrote before) and reads skip the sha256 and label-range checks. HDF5 still
    verifies the fletcher32 checksums of a store that has them: compare stores written with
    verification on against stores written with it off.
    """
    global _verify
    _verify = bool(enabled)


def verifying() -> bool:
    """Whether stores are written with checksums and reads check them (set_verification)."""
    return _verify


def strings_sha256(strings: Iterable[str]) -> str:
    """The sha256 (hex) a store records for paths and class ids: joined with "\n", UTF-8."""
    return hashlib.sha256("\n".join(strings).encode("utf-8")).hexdigest()


def classes_fingerprint(class_ids: Sequence[str]) -> str:
    """Fingerprint of a class list alone ("classes:<16 hex>"), for predictions made without a
    dataset folder; it never equals a dataset fingerprint."""
    digest = hashlib.sha256(("\t".join(class_ids) + "\n").encode()).hexdigest()[:16]
    return f"classes:{digest}"


def ordered_splits(names: Iterable[str]) -> list[str]:
    """`names` with train, val and test first (in that order), then the others sorted."""
    names = set(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))
