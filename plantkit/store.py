"""The HDF5 prediction store: one file of logits, labels and paths per expert or combination.

The layout is documented in docs/store.md; change the two together and bump SCHEMA_VERSION
when a reader of the old layout would misread the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from plantkit import __version__
from plantkit.atomic import atomic_path
from plantkit.errors import PlantkitInputError
from plantkit.labels import checked_labels

STORE_FORMAT = "plantkit-predictions"
SCHEMA_VERSION = 1
STORE_FILENAME = "predictions.h5"
KIND_FOLDERS = {"expert": "experts", "combination": "combos"}
LOGITS_DTYPES = ("float32", "float16")
FEATURES_DTYPE = "float16"
SPLIT_ORDER = ("train", "val", "test")
# Attributes the store itself sets; callers' `attrs` may not use these names.
CORE_ATTRS = frozenset(
    {"format", "schema_version", "kind", "name", "fingerprint", "created_at",
     "plantkit_version", "dtype", "json_attrs"}
)

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# At most 1 MiB per chunk: a chunk fits HDF5's default 1 MiB chunk cache while a split is
# filled batch by batch (a larger cache measured no faster), and a reader of a few rows
# does not read megabytes.
_CHUNK_BYTES = 1 << 20
_MAX_CHUNK_ROWS = 1024
_STRINGS = h5py.string_dtype("utf-8")


def check_name(name: str, what: str = "name") -> str:
    """A store, expert or split name: letters, digits, '.', '_' and '-', no path separators."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise PlantkitInputError(
            f"{what} {name!r} is not usable: use letters, digits, '.', '_' and '-' only"
        )
    return name


def store_path(artifacts_root: str | os.PathLike, name: str, kind: str = "expert") -> Path:
    """Where the store of expert or combination `name` lives under the artifacts root."""
    return Path(artifacts_root) / _kind_folder(kind) / check_name(name) / STORE_FILENAME


def find_stores(artifacts_root: str | os.PathLike, kind: str | None = None) -> list[Path]:
    """Store files under ARTIFACTS/experts/*/ and ARTIFACTS/combos/*/, sorted by kind then name."""
    kinds = list(KIND_FOLDERS) if kind is None else [kind]
    found: list[Path] = []
    for each in kinds:
        folder = Path(artifacts_root) / _kind_folder(each)
        if folder.is_dir():
            found.extend(sorted(p for p in folder.glob(f"*/{STORE_FILENAME}") if p.is_file()))
    return found


def classes_fingerprint(class_ids: Sequence[str]) -> str:
    """Fingerprint of a class list alone ("classes:<16 hex>"), for predictions made without a
    dataset folder; it never equals a dataset fingerprint."""
    digest = hashlib.sha256(("\t".join(class_ids) + "\n").encode()).hexdigest()[:16]
    return f"classes:{digest}"


def _kind_folder(kind: str) -> str:
    try:
        return KIND_FOLDERS[kind]
    except KeyError:
        raise PlantkitInputError(
            f"store kind {kind!r} is unknown: use one of {', '.join(KIND_FOLDERS)}"
        ) from None


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
    """Preallocated datasets of one split, filled by `write` in any row order."""

    def __init__(self, group: h5py.Group, name: str, n_rows: int, num_classes: int,
                 dtype: str, feature_dim: int | None):
        self.name = name
        self.n_rows = n_rows
        self.num_classes = num_classes
        self.dtype = np.dtype(dtype)
        self.feature_dim = feature_dim
        self._written = np.zeros(n_rows, dtype=bool)
        self._logits = group.create_dataset(
            "logits", shape=(n_rows, num_classes), dtype=self.dtype,
            chunks=_chunks(n_rows, num_classes, self.dtype),
        )
        self._labels = group.create_dataset("labels", shape=(n_rows,), dtype=np.int64)
        self._paths = group.create_dataset("paths", shape=(n_rows,), dtype=_STRINGS)
        self._features = None
        if feature_dim is not None:
            self._features = group.create_dataset(
                "features", shape=(n_rows, feature_dim), dtype=FEATURES_DTYPE,
                chunks=_chunks(n_rows, feature_dim, np.dtype(FEATURES_DTYPE)),
            )

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
        self._paths[start:stop] = np.array(paths, dtype=object)
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
        _kind_folder(kind)
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
        tmp = self._stack.enter_context(atomic_path(self.path))
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
                     dtype: str = "float32", feature_dim: int | None = None) -> SplitWriter:
        """Preallocate a split's datasets; fill them with the returned writer's `write`."""
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
                             None if feature_dim is None else int(feature_dim))
        self._splits[split] = writer
        return writer

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        try:
            if exc_type is None:
                self._finish()
        except BaseException as error:
            self._close()
            stack.__exit__(type(error), error, error.__traceback__)  # removes the temporary
            raise
        self._close()
        return stack.__exit__(exc_type, exc, tb)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _finish(self) -> None:
        for writer in self._splits.values():
            writer._check_complete()
        f = self._file
        if self._previous is not None:
            with h5py.File(self._previous, "r") as old:
                for split in old["splits"]:
                    if split not in self._splits:
                        old.copy(old["splits"][split], f["splits"], name=split)
        f.create_dataset("class_ids", data=np.array(self.class_ids, dtype=object),
                         dtype=_STRINGS)
        if self.train_counts is not None:
            f.create_dataset("train_counts", data=self.train_counts)
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
        f.attrs["json_attrs"] = json.dumps(json_keys)
        for key, value in encoded.items():
            f.attrs[key] = value


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

    Logits and features come back as float32 whatever their stored dtype.
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.is_dir():
            path = path / STORE_FILENAME
        if not path.is_file():
            raise PlantkitInputError(f"no prediction store at {path}")
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise PlantkitInputError(f"{path} is not a readable HDF5 file ({exc})") from exc
        self.path = path
        attrs = self._file.attrs
        if attrs.get("format") != STORE_FORMAT:
            self.close()
            raise PlantkitInputError(f"{path} is not a plantkit prediction store")
        if int(attrs["schema_version"]) > SCHEMA_VERSION:
            version = int(attrs["schema_version"])
            self.close()
            raise PlantkitInputError(
                f"{path} uses store schema {version}; this plantkit reads up to "
                f"{SCHEMA_VERSION}: upgrade plantkit"
            )

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"Store({self.kind} {self.name!r}, splits={self.splits}, path={str(self.path)!r})"

    # root metadata
    @property
    def name(self) -> str:
        return str(self._file.attrs["name"])

    @property
    def kind(self) -> str:
        return str(self._file.attrs["kind"])

    @property
    def fingerprint(self) -> str:
        return str(self._file.attrs["fingerprint"])

    @property
    def schema_version(self) -> int:
        return int(self._file.attrs["schema_version"])

    @property
    def created_at(self) -> str:
        return str(self._file.attrs["created_at"])

    @property
    def plantkit_version(self) -> str:
        return str(self._file.attrs["plantkit_version"])

    @cached_property
    def class_ids(self) -> list[str]:
        return list(self._file["class_ids"].asstr()[()])

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @cached_property
    def attrs(self) -> dict:
        """The writer's extra attributes (architecture, params, gflops ...), JSON values decoded."""
        return _decode_attrs(self._file.attrs)

    @property
    def train_counts(self) -> np.ndarray | None:
        return self._file["train_counts"][()] if "train_counts" in self._file else None

    @property
    def splits(self) -> list[str]:
        return _ordered_splits(self._file["splits"])

    # per split
    def _group(self, split: str) -> h5py.Group:
        if split not in self._file["splits"]:
            have = ", ".join(self.splits) or "none"
            raise PlantkitInputError(
                f"{self.path} has no {split!r} split (it has: {have})"
            )
        return self._file["splits"][split]

    def num_rows(self, split: str) -> int:
        return int(self._group(split)["labels"].shape[0])

    def logits_dtype(self, split: str) -> str:
        return str(self._group(split)["logits"].dtype)

    def labels(self, split: str) -> np.ndarray:
        return self._group(split)["labels"][()]

    def paths(self, split: str) -> list[str]:
        return list(self._group(split)["paths"].asstr()[()])

    def logits(self, split: str, rows: slice | None = None) -> np.ndarray:
        """All logits of a split (N x C float32), or those of a row slice."""
        return _read_float32(self._group(split)["logits"], rows)

    def iter_logits(self, split: str, chunk_rows: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, chunk_rows x C float32) pairs covering the split in row order."""
        return _iter_rows(self._group(split)["logits"], chunk_rows)

    def has_features(self, split: str) -> bool:
        return "features" in self._group(split)

    def feature_dim(self, split: str) -> int | None:
        group = self._group(split)
        return int(group["features"].shape[1]) if "features" in group else None

    def features(self, split: str, rows: slice | None = None) -> np.ndarray:
        """Penultimate features (N x D, upcast to float32), or those of a row slice."""
        group = self._group(split)
        if "features" not in group:
            raise PlantkitInputError(
                f"{self.path} holds no features for split {split!r}: predict with --features"
            )
        return _read_float32(group["features"], rows)

    def iter_features(self, split: str, chunk_rows: int = 4096):
        """(first row, chunk_rows x D float32) pairs covering the split in row order."""
        self.features(split, slice(0, 0))  # the clear error when there are none
        return _iter_rows(self._group(split)["features"], chunk_rows)


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


def _iter_rows(dataset: h5py.Dataset, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    if chunk_rows < 1:
        raise PlantkitInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
    for start in range(0, dataset.shape[0], chunk_rows):
        yield start, dataset[start:start + chunk_rows].astype(np.float32, copy=False)


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
