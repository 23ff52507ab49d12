"""The HDF5 prediction store: one file of logits, labels and paths per expert or combination.

The layout is documented in docs/store.md; change the two together and bump SCHEMA_VERSION
when a reader of the old layout would misread the new one.

Integrity: logits, features, labels and train counts carry HDF5's per-chunk fletcher32
checksum (verified by HDF5 on every chunk read); paths and class ids, variable-length
strings that cannot carry a filter, carry a sha256 attribute verified when they are read;
labels are range-checked on read. A mismatch raises ChecksumMismatch (a
PlantkitInputError: one line naming the file, exit code 2). Stores written before these
checksums existed have none and are read as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from plantkit import __version__
from plantkit.artifacts import (
    STORE_FILE,
    ChecksumMismatch,
    check_name,
    kind_folder,
    replacing_file,
)
from plantkit.choices import LOGITS_DTYPES
from plantkit.errors import PlantkitInputError
from plantkit.labels import checked_labels

STORE_FORMAT = "plantkit-predictions"
SCHEMA_VERSION = 1
FEATURES_DTYPE = "float16"
SPLIT_ORDER = ("train", "val", "test")
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

# At most 1 MiB per chunk: a chunk fits HDF5's default 1 MiB chunk cache while a split is
# filled batch by batch (a larger cache measured no faster), and a reader of a few rows
# does not read megabytes.
_CHUNK_BYTES = 1 << 20
_MAX_CHUNK_ROWS = 1024
# labels and train_counts: 64k int64 (512 KiB) per chunk.
_MAX_VECTOR_CHUNK = 1 << 16
_STRINGS = h5py.string_dtype("utf-8")
_FIX = "re-create it (plantkit predict, plantkit import logits or plantkit combine)"

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


def strings_sha256(strings: Iterable[str]) -> str:
    """The sha256 (hex) a store records for paths and class ids: joined with "\n", UTF-8."""
    return hashlib.sha256("\n".join(strings).encode("utf-8")).hexdigest()


def classes_fingerprint(class_ids: Sequence[str]) -> str:
    """Fingerprint of a class list alone ("classes:<16 hex>"), for predictions made without a
    dataset folder; it never equals a dataset fingerprint."""
    digest = hashlib.sha256(("\t".join(class_ids) + "\n").encode()).hexdigest()[:16]
    return f"classes:{digest}"


def _ordered_splits(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


# --- attributes --------------------------------------------------------------------------


def _encode_attrs(attrs: dict) -> tuple[dict, list[str]]:
    """HDF5-storable values and the keys that were JSON-encoded (dicts, lists, None ...)."""
    encoded, json_keys = {}, []
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise PlantkitInputError(f"store attribute names must be strings, got {key!r}")
        if key in CORE_ATTRS:
            raise PlantkitInputError(
                f"store attribute {key!r} is set by the store itself; rename it"
            )
        if isinstance(value, (str, bool, np.bool_)):
            encoded[key] = value
        elif isinstance(value, (int, np.integer)) and -(2**63) <= int(value) < 2**63:
            encoded[key] = np.int64(value)
        elif isinstance(value, (float, np.floating)):
            encoded[key] = np.float64(value)
        else:
            try:
                encoded[key] = json.dumps(value, allow_nan=True)
            except (TypeError, ValueError) as exc:
                raise PlantkitInputError(
                    f"store attribute {key!r}: {type(value).__name__} is not JSON-serialisable"
                ) from exc
            json_keys.append(key)
    return encoded, json_keys


def _decode_attrs(raw: h5py.AttributeManager) -> dict:
    json_keys = set(json.loads(raw.get("json_attrs", "[]")))
    decoded = {}
    for key, value in raw.items():
        if key in CORE_ATTRS:
            continue
        if key in json_keys:
            decoded[key] = json.loads(value)
        elif isinstance(value, np.ndarray):
            decoded[key] = value.tolist()
        elif isinstance(value, (np.generic, bytes)):
            decoded[key] = value.decode() if isinstance(value, bytes) else value.item()
        else:
            decoded[key] = value
    return decoded


# --- writing -----------------------------------------------------------------------------


class SplitWriter:
    """Preallocated datasets of one split, filled by `write` in any row order.

    Paths are held in memory (one string per row) and written when the store is completed.
    A split created `skippable` may end with `skip_unwritten`: its rows never written are
    dropped (the others keep their order) and recorded as skipped images.
    """

    def __init__(self, group: h5py.Group, name: str, n_rows: int, num_classes: int,
                 dtype: str, feature_dim: int | None, skippable: bool = False):
        self.name = name
        self.n_rows = n_rows
        self.num_classes = num_classes
        self.dtype = np.dtype(dtype)
        self.feature_dim = feature_dim
        self.skippable = skippable
        self.skipped: list[str] = []
        self._written = np.zeros(n_rows, dtype=bool)
        self._group = group
        self._logits = _create_checked(group, "logits", (n_rows, num_classes), self.dtype,
                                       resizable=skippable)
        self._labels = _create_checked(group, "labels", (n_rows,), np.dtype(np.int64),
                                       resizable=skippable)
        self._paths = np.full(n_rows, "", dtype=object)
        self._features = None
        if feature_dim is not None:
            self._features = _create_checked(group, "features", (n_rows, feature_dim),
                                             np.dtype(FEATURES_DTYPE), resizable=skippable)

    @property
    def rows_written(self) -> int:
        return int(self._written.sum())

    def write(self, start: int, logits, labels, paths: Sequence[str] | None = None,
              features=None) -> None:
        """Fill rows start .. start+len(logits)-1; `paths` None stores empty strings.

        Bad values raise PlantkitInputError naming the split and the first bad row.
        """
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise PlantkitInputError(
                f"split {self.name!r}: logits must be rows x {self.num_classes} "
                f"(one column per class), got shape {logits.shape}"
            )
        if logits.dtype.kind != "f":
            raise PlantkitInputError(
                f"split {self.name!r}: logits must be floating point, got {logits.dtype}"
            )
        rows = logits.shape[0]
        start = int(start)
        stop = start + rows
        if start < 0 or stop > self.n_rows:
            raise PlantkitInputError(
                f"split {self.name!r}: rows {start}-{stop - 1} fall outside the split's "
                f"{self.n_rows} rows"
            )
        stored_logits = self._cast_finite(logits, self.dtype, "logits", start)
        labels = checked_labels(labels, rows, self.num_classes, where=f"split {self.name!r}: ",
                                row_offset=start)
        paths = [""] * rows if paths is None else list(paths)
        if len(paths) != rows:
            raise PlantkitInputError(
                f"split {self.name!r}: {len(paths)} paths for {rows} rows of logits"
            )
        stored_features = None
        if self._features is not None:
            if features is None:
                raise PlantkitInputError(
                    f"split {self.name!r} was created with features: pass `features`"
                )
            features = np.asarray(features)
            if features.shape != (rows, self.feature_dim):
                raise PlantkitInputError(
                    f"split {self.name!r}: features must be {rows} x {self.feature_dim}, "
                    f"got shape {features.shape}"
                )
            stored_features = self._cast_finite(
                features, np.dtype(FEATURES_DTYPE), "features", start
            )
        elif features is not None:
            raise PlantkitInputError(
                f"split {self.name!r} was created without features: pass feature_dim "
                "to create_split to store them"
            )
        if rows == 0:
            return
        self._logits[start:stop] = stored_logits
        self._labels[start:stop] = labels
        self._paths[start:stop] = [str(p) for p in paths]
        if stored_features is not None:
            self._features[start:stop] = stored_features
        self._written[start:stop] = True

    def _cast_finite(self, values: np.ndarray, dtype: np.dtype, what: str, start: int):
        # Checked before the cast: numpy's float16 arithmetic is several times slower.
        finite = np.isfinite(values)
        if not finite.all():
            raise PlantkitInputError(
                f"split {self.name!r}: {what} hold NaN or infinite values (first at row "
                f"{start + int(np.argwhere(~finite)[0][0])})"
            )
        limit = np.finfo(dtype).max
        if values.size and np.finfo(values.dtype).max > limit and (
            values.max() > limit or values.min() < -limit
        ):
            first = int(np.argwhere(np.abs(values) > limit)[0][0])
            raise PlantkitInputError(
                f"split {self.name!r}: {what} at row {start + first} exceed the {dtype} range "
                f"(|x| > {limit:g}); store float32 instead"
            )
        return values.astype(dtype, copy=False)

    def skip_unwritten(self, skipped_paths: Sequence[str]) -> None:
        """Drop the rows never written, keeping the others' order, and record
        `skipped_paths` (one per dropped row) as the split's skipped images.

        For images that could not be read: call it once, after the last `write`, on a split
        created with `skippable=True`. The kept rows move up in place, block by block, and
        the datasets shrink: memory stays at one block.
        """
        if not self.skippable:
            raise RuntimeError(f"split {self.name!r} was not created skippable")
        skipped = [str(p) for p in skipped_paths]
        kept = np.flatnonzero(self._written)
        if len(skipped) != self.n_rows - len(kept):
            raise RuntimeError(
                f"split {self.name!r}: {len(skipped)} skipped paths for "
                f"{self.n_rows - len(kept)} rows never written"
            )
        if len(kept) < self.n_rows:
            first = int(np.argmin(self._written))
            for dataset in (self._logits, self._labels, self._features):
                if dataset is not None:
                    _compact(dataset, self._written, first, len(kept))
            self._paths = self._paths[kept]
            self.n_rows = len(kept)
            self._written = np.ones(len(kept), dtype=bool)
        self.skipped = skipped

    def _seal(self) -> None:
        """Write the paths (and any skipped paths) with their sha256 (the other datasets
        carry fletcher32)."""
        paths = self._group.create_dataset("paths", shape=(self.n_rows,), dtype=_STRINGS)
        if self.n_rows:
            paths[:] = self._paths
        if _verify:
            self._group.attrs[PATHS_SHA256] = strings_sha256(self._paths.tolist())
        if self.skipped:
            self._group.create_dataset(SKIPPED_PATHS, data=np.array(self.skipped, dtype=object),
                                       dtype=_STRINGS)
            if _verify:
                self._group.attrs[SKIPPED_PATHS_SHA256] = strings_sha256(self.skipped)

    def _check_complete(self) -> None:
        if self._written.all():
            return
        missing = ~self._written
        raise RuntimeError(
            f"split {self.name!r}: {int(missing.sum())} of {self.n_rows} rows were never "
            f"written (first: row {int(np.argmax(missing))}); the store was not saved"
        )


def _chunks(n_rows: int, width: int, dtype: np.dtype) -> tuple[int, int] | None:
    if n_rows == 0 or width == 0:
        return None
    rows = _CHUNK_BYTES // max(1, width * dtype.itemsize)
    return (max(1, min(n_rows, _MAX_CHUNK_ROWS, rows)), width)


def _create_checked(group: h5py.Group, name: str, shape: tuple, dtype: np.dtype,
                    data=None, resizable: bool = False) -> h5py.Dataset:
    """A dataset chunked with HDF5's fletcher32 checksum (empty ones stay contiguous: they
    hold nothing to check); without checksums, as before, when verification is off.
    `resizable`: its rows may be cut (SplitWriter.skip_unwritten), so it is chunked."""
    if len(shape) == 2:
        chunks = _chunks(shape[0], shape[1], dtype)
    else:
        chunks = (min(shape[0], _MAX_VECTOR_CHUNK),) if shape[0] else None
    resizable = resizable and chunks is not None
    if not _verify and not resizable:
        chunks = chunks if len(shape) == 2 else None
    checked = _verify and chunks is not None
    maxshape = (None, *shape[1:]) if resizable else None
    return group.create_dataset(name, shape=shape, dtype=dtype, data=data, chunks=chunks,
                                fletcher32=checked, maxshape=maxshape)


def _compact(dataset: h5py.Dataset, keep: np.ndarray, first: int, n_kept: int) -> None:
    """Move the rows where `keep` (from row `first` on) up to close the gaps, in blocks of
    whole chunks, then cut the dataset to `n_kept` rows. Every write lands below the block
    being read, so no row is overwritten before it is moved."""
    row_bytes = dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64))
    chunk = dataset.chunks[0]
    block = max(1, 4 * _CHUNK_BYTES // max(1, row_bytes) // chunk) * chunk  # about 4 MiB
    dest = first
    for start in range(first, len(keep), block):
        stop = min(len(keep), start + block)
        mask = keep[start:stop]
        if mask.any():
            values = dataset[start:stop][mask]
            dataset[dest:dest + len(values)] = values
            dest += len(values)
    dataset.resize(n_kept, axis=0)


class StoreWriter:
    """Write a store through a temporary file, renamed onto `path` when the with-block ends.

    An exception inside the block, or a split with unwritten rows, leaves no file behind and
    an existing store untouched. `append=True` keeps the existing store's splits (those not
    created again here), its attributes (updated by `attrs`) and its train counts (unless
    given); the existing store must have the same kind, fingerprint and class ids.
    """

    def __init__(self, path: str | os.PathLike, *, name: str, kind: str = "expert",
                 class_ids: Sequence[str], fingerprint: str, attrs: dict | None = None,
                 train_counts=None, append: bool = False):
        self.path = Path(path)
        self.name = check_name(name, "store name")
        kind_folder(kind)
        self.kind = kind
        self.class_ids = [str(c) for c in class_ids]
        if not self.class_ids:
            raise PlantkitInputError(f"store {self.name}: class_ids is empty")
        if len(set(self.class_ids)) != len(self.class_ids):
            raise PlantkitInputError(f"store {self.name}: class_ids hold duplicates")
        if not isinstance(fingerprint, str) or not fingerprint:
            raise PlantkitInputError(f"store {self.name}: the dataset fingerprint is empty")
        self.fingerprint = fingerprint
        self.attrs = dict(attrs or {})
        _encode_attrs(self.attrs)  # refuse bad attributes before any file is touched
        self.train_counts = (
            None if train_counts is None else _checked_train_counts(train_counts, self.class_ids)
        )
        self.append = append
        self._splits: dict[str, SplitWriter] = {}
        self._file: h5py.File | None = None
        self._stack: contextlib.ExitStack | None = None
        self._previous: Path | None = None

    def __enter__(self) -> StoreWriter:
        if self.append and self.path.is_file():
            with open_store(self.path) as previous:
                self._adopt(previous)
            self._previous = self.path
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(replacing_file(self.path))
        try:
            self._file = h5py.File(tmp, "w")
            self._file.create_group("splits")
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def _adopt(self, previous: Store) -> None:
        if previous.kind != self.kind:
            raise PlantkitInputError(
                f"{previous.path} holds a {previous.kind}, not a {self.kind}: cannot add "
                "splits to it"
            )
        _check_pair_compatible(previous, _Described(f"the new predictions for {self.name}",
                                                    self.fingerprint, self.class_ids))
        self.attrs = {**previous.attrs, **self.attrs}
        if self.train_counts is None:
            self.train_counts = previous.train_counts

    def create_split(self, split: str, *, n_rows: int, num_classes: int | None = None,
                     dtype: str = "float32", feature_dim: int | None = None,
                     skippable: bool = False) -> SplitWriter:
        """Preallocate a split's datasets; fill them with the returned writer's `write`.

        `skippable`: rows that cannot be computed (corrupt images) may be left out with the
        writer's `skip_unwritten` (the datasets are then created resizable)."""
        if self._file is None:
            raise RuntimeError("StoreWriter.create_split must be called inside its with-block")
        check_name(split, "split name")
        if split in self._splits:
            raise PlantkitInputError(f"split {split!r} was already created in this store")
        if num_classes is not None and num_classes != len(self.class_ids):
            raise PlantkitInputError(
                f"split {split!r}: {num_classes} classes, but the store has "
                f"{len(self.class_ids)} class ids"
            )
        if dtype not in LOGITS_DTYPES:
            raise PlantkitInputError(
                f"logits dtype {dtype!r} is not supported: use {' or '.join(LOGITS_DTYPES)}"
            )
        if int(n_rows) < 0:
            raise PlantkitInputError(f"split {split!r}: n_rows must be >= 0, got {n_rows}")
        if feature_dim is not None and int(feature_dim) < 1:
            raise PlantkitInputError(f"split {split!r}: feature_dim must be >= 1")
        group = self._file["splits"].create_group(split)
        writer = SplitWriter(group, split, int(n_rows), len(self.class_ids), dtype,
                             None if feature_dim is None else int(feature_dim),
                             skippable=skippable)
        self._splits[split] = writer
        return writer

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        try:
            if exc_type is None:
                self._finish()
            self._close()  # a failing close (a full disk) is an error of the write, too
        except BaseException as error:
            with contextlib.suppress(Exception):
                self._close()
            stack.__exit__(type(error), error, error.__traceback__)  # removes the temporary
            raise
        return stack.__exit__(exc_type, exc, tb)

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _finish(self) -> None:
        for writer in self._splits.values():
            writer._check_complete()
        f = self._file
        if self._previous is not None:
            with open_store(self._previous) as old:
                for split in old.splits:
                    if split not in self._splits:
                        self._copy_split(old, split)
        for writer in self._splits.values():
            writer._seal()
        f.create_dataset("class_ids", data=np.array(self.class_ids, dtype=object),
                         dtype=_STRINGS)
        if self.train_counts is not None:
            _create_checked(f, "train_counts", self.train_counts.shape, np.dtype(np.int64),
                            data=self.train_counts)
        encoded, json_keys = _encode_attrs(self.attrs)
        dtypes = {str(f["splits"][s]["logits"].dtype) for s in f["splits"]}
        f.attrs.update(
            format=STORE_FORMAT,
            schema_version=np.int64(SCHEMA_VERSION),
            kind=self.kind,
            name=self.name,
            fingerprint=self.fingerprint,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            plantkit_version=__version__,
            dtype=dtypes.pop() if len(dtypes) == 1 else ("mixed" if dtypes else ""),
        )
        if _verify:
            f.attrs[CLASS_IDS_SHA256] = strings_sha256(self.class_ids)
        f.attrs["json_attrs"] = json.dumps(json_keys)
        for key, value in encoded.items():
            f.attrs[key] = value

    def _copy_split(self, old: Store, split: str, block_rows: int = 4096) -> None:
        """Copy a kept split of the old store through the checked reads and the writer: a
        damaged split is refused (ChecksumMismatch) rather than carried into the new store,
        and one written before checksums existed gains them. (h5py's copy would carry the
        chunks without checking them.)"""
        n_rows = old.num_rows(split)
        feature_dim = old.feature_dim(split)
        writer = self.create_split(split, n_rows=n_rows, dtype=old.logits_dtype(split),
                                   feature_dim=feature_dim)
        labels, paths = old.labels(split), old.paths(split)
        for start, logits in old.iter_logits(split, block_rows):
            stop = start + len(logits)
            features = None if feature_dim is None else old.features(split, slice(start, stop))
            writer.write(start, logits, labels[start:stop], paths[start:stop], features)
        writer.skipped = old.skipped_paths(split)  # kept with the rows they are missing from


def _checked_train_counts(train_counts, class_ids: Sequence[str]) -> np.ndarray:
    counts = np.asarray(train_counts)
    if counts.shape != (len(class_ids),):
        raise PlantkitInputError(
            f"train_counts must hold one count per class ({len(class_ids)}), got shape "
            f"{counts.shape}"
        )
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise PlantkitInputError("train_counts must be non-negative integers")
    return counts.astype(np.int64)


# --- reading -----------------------------------------------------------------------------


class Store:
    """A read-only prediction store; close it, or use it as a context manager.

    Logits and features come back as float32 whatever their stored dtype. Every read is
    verified (docs/store.md, "Integrity"): damaged data raise ChecksumMismatch, a
    PlantkitInputError naming the file.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.is_dir():
            path = path / STORE_FILE
        if not path.is_file():
            raise PlantkitInputError(f"no prediction store at {path}")
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise PlantkitInputError(f"{path} is not a readable HDF5 file ({exc})") from exc
        self.path = path
        try:
            with self._reading("its attributes"):
                attrs = self._file.attrs
                if attrs.get("format") != STORE_FORMAT:
                    raise PlantkitInputError(f"{path} is not a plantkit prediction store")
                version = int(attrs["schema_version"])
            if version > SCHEMA_VERSION:
                raise PlantkitInputError(
                    f"{path} uses store schema {version}; this plantkit reads up to "
                    f"{SCHEMA_VERSION}: upgrade plantkit"
                )
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"Store({self.kind} {self.name!r}, splits={self.splits}, path={str(self.path)!r})"

    # integrity
    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn HDF5's read failures (a fletcher32 mismatch, a damaged structure) into one
        line naming the file and `what` was being read."""
        try:
            yield
        except (OSError, UnicodeDecodeError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # The only filter a store uses is fletcher32: its failure is a checksum mismatch.
            problem = ("fail their fletcher32 checksum" if "filter returned failure" in detail
                       else f"cannot be read ({detail})")
            raise ChecksumMismatch(f"{self.path} is damaged: {what} {problem}; {_FIX}") from exc

    def _check_sha256(self, strings: list[str], expected, what: str) -> None:
        if _verify and expected is not None and strings_sha256(strings) != str(expected):
            raise ChecksumMismatch(
                f"{self.path} is damaged: {what} differ from the sha256 recorded when they "
                f"were written; {_FIX}"
            )

    def _attr(self, key: str):
        with self._reading("its attributes"):
            return self._file.attrs[key]

    # root metadata
    @property
    def name(self) -> str:
        return str(self._attr("name"))

    @property
    def kind(self) -> str:
        return str(self._attr("kind"))

    @property
    def fingerprint(self) -> str:
        return str(self._attr("fingerprint"))

    @property
    def schema_version(self) -> int:
        return int(self._attr("schema_version"))

    @property
    def created_at(self) -> str:
        return str(self._attr("created_at"))

    @property
    def plantkit_version(self) -> str:
        return str(self._attr("plantkit_version"))

    @cached_property
    def class_ids(self) -> list[str]:
        with self._reading("the class ids"):
            class_ids = list(self._file["class_ids"].asstr()[()])
            expected = self._file.attrs.get(CLASS_IDS_SHA256)
        self._check_sha256(class_ids, expected, "the class ids")
        return class_ids

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @cached_property
    def attrs(self) -> dict:
        """The writer's extra attributes (architecture, params, gflops ...), JSON values decoded."""
        with self._reading("its attributes"):
            return _decode_attrs(self._file.attrs)

    @property
    def train_counts(self) -> np.ndarray | None:
        with self._reading("the train counts"):
            return self._file["train_counts"][()] if "train_counts" in self._file else None

    @property
    def splits(self) -> list[str]:
        with self._reading("its split list"):
            return _ordered_splits(self._file["splits"])

    # per split
    def _group(self, split: str) -> h5py.Group:
        with self._reading("its split list"):
            if split in self._file["splits"]:
                return self._file["splits"][split]
        have = ", ".join(self.splits) or "none"
        raise PlantkitInputError(f"{self.path} has no {split!r} split (it has: {have})")

    def _dataset(self, split: str, name: str) -> h5py.Dataset:
        group = self._group(split)
        with self._reading(f"the {name} of split {split!r}"):
            return group[name]

    def num_rows(self, split: str) -> int:
        return int(self._dataset(split, "labels").shape[0])

    def logits_dtype(self, split: str) -> str:
        return str(self._dataset(split, "logits").dtype)

    def labels(self, split: str) -> np.ndarray:
        """The split's labels (int64), refused when one is not a class index."""
        dataset = self._dataset(split, "labels")
        with self._reading(f"the labels of split {split!r}"):
            labels = dataset[()]
        if not _verify:
            return labels
        try:
            return checked_labels(labels, len(labels), self.num_classes,
                                  where=f"{self.path} is damaged: split {split!r}: ")
        except PlantkitInputError as exc:
            raise PlantkitInputError(f"{exc}; {_FIX}") from None

    def paths(self, split: str) -> list[str]:
        dataset = self._dataset(split, "paths")
        what = f"the paths of split {split!r}"
        with self._reading(what):
            paths = list(dataset.asstr()[()])
            expected = dataset.parent.attrs.get(PATHS_SHA256)
        self._check_sha256(paths, expected, what)
        return paths

    def skipped_paths(self, split: str) -> list[str]:
        """Paths of the split's images that could not be decoded and have no row (empty when
        none were skipped, or in stores written before skipping existed)."""
        group = self._group(split)
        what = f"the skipped paths of split {split!r}"
        with self._reading(what):
            if SKIPPED_PATHS not in group:
                return []
            skipped = list(group[SKIPPED_PATHS].asstr()[()])
            expected = group.attrs.get(SKIPPED_PATHS_SHA256)
        self._check_sha256(skipped, expected, what)
        return skipped

    def logits(self, split: str, rows: slice | None = None) -> np.ndarray:
        """All logits of a split (N x C float32), or those of a row slice."""
        dataset = self._dataset(split, "logits")
        with self._reading(f"the logits of split {split!r}"):
            return _read_float32(dataset, rows)

    def iter_logits(self, split: str, chunk_rows: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, chunk_rows x C float32) pairs covering the split in row order."""
        return self._iter_rows(self._dataset(split, "logits"), chunk_rows,
                               f"the logits of split {split!r}")

    def has_features(self, split: str) -> bool:
        group = self._group(split)
        with self._reading(f"the features of split {split!r}"):
            return "features" in group

    def feature_dim(self, split: str) -> int | None:
        if not self.has_features(split):
            return None
        return int(self._dataset(split, "features").shape[1])

    def features(self, split: str, rows: slice | None = None) -> np.ndarray:
        """Penultimate features (N x D, upcast to float32), or those of a row slice."""
        if not self.has_features(split):
            raise PlantkitInputError(
                f"{self.path} holds no features for split {split!r}: predict with --features"
            )
        dataset = self._dataset(split, "features")
        with self._reading(f"the features of split {split!r}"):
            return _read_float32(dataset, rows)

    def iter_features(self, split: str, chunk_rows: int = 4096):
        """(first row, chunk_rows x D float32) pairs covering the split in row order."""
        self.features(split, slice(0, 0))  # the clear error when there are none
        return self._iter_rows(self._dataset(split, "features"), chunk_rows,
                               f"the features of split {split!r}")

    def _iter_rows(self, dataset: h5py.Dataset, chunk_rows: int,
                   what: str) -> Iterator[tuple[int, np.ndarray]]:
        if chunk_rows < 1:
            raise PlantkitInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
        return self._iter_checked(dataset, chunk_rows, what)

    def _iter_checked(self, dataset: h5py.Dataset, chunk_rows: int,
                      what: str) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, dataset.shape[0], chunk_rows):
            with self._reading(what):
                chunk = dataset[start:start + chunk_rows]
            yield start, chunk.astype(np.float32, copy=False)


def _read_float32(dataset: h5py.Dataset, rows: slice | None, block_rows: int = 4096):
    start, stop, step = (rows or slice(None)).indices(dataset.shape[0])
    if step != 1 or dataset.dtype == np.float32:
        return dataset[start:stop:step].astype(np.float32, copy=False)
    # Upcasting float16 block by block into one preallocated array is steadier (about 3x
    # faster at the median) than converting one freshly read N x C array.
    out = np.empty((max(0, stop - start), *dataset.shape[1:]), dtype=np.float32)
    for first in range(start, stop, block_rows):
        last = min(stop, first + block_rows)
        out[first - start:last - start] = dataset[first:last]
    return out


def open_store(path: str | os.PathLike) -> Store:
    """Open a store file (or the expert/combination folder holding predictions.h5) to read."""
    return Store(path)


class _Described:
    """What compatibility checks need of a store: a label, a fingerprint, class ids."""

    def __init__(self, label: str, fingerprint: str, class_ids: Sequence[str]):
        self.label, self.fingerprint, self.class_ids = label, fingerprint, list(class_ids)


def _label(store) -> str:
    return store.label if isinstance(store, _Described) else f"{store.name} ({store.path})"


def _check_pair_compatible(first, other) -> None:
    if first.fingerprint != other.fingerprint:
        raise PlantkitInputError(
            f"{_label(first)} and {_label(other)} were made for different datasets "
            f"(fingerprints {first.fingerprint} and {other.fingerprint})"
        )
    if first.class_ids != other.class_ids:
        a, b = first.class_ids, other.class_ids
        pairs = enumerate(zip(a, b, strict=False))
        i = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
        shown_a = a[i] if i < len(a) else "nothing"
        shown_b = b[i] if i < len(b) else "nothing"
        raise PlantkitInputError(
            f"{_label(first)} and {_label(other)} have different class ids ({len(a)} vs "
            f"{len(b)} classes; first difference at index {i}: {shown_a} vs {shown_b})"
        )


def check_compatible(stores: Sequence[Store], splits: Iterable[str] = ()) -> None:
    """Refuse stores of different datasets or class ids, naming the first pair that differs.

    For each of `splits`, every store must hold it with the same labels row by row (the
    guard for imported predictions, whose fingerprint covers the classes alone).
    """
    stores = list(stores)
    for other in stores[1:]:
        _check_pair_compatible(stores[0], other)
    for split in splits:
        reference = stores[0].labels(split) if stores else None
        for other in stores[1:]:
            labels = other.labels(split)
            if labels.shape != reference.shape or not np.array_equal(labels, reference):
                raise PlantkitInputError(
                    f"{_label(stores[0])} and {_label(other)} disagree on the rows of split "
                    f"{split!r} ({len(reference)} vs {len(labels)} rows, or labels in another "
                    "order)"
                )
