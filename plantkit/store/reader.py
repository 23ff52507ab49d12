"""Store: a prediction store opened to read, every read verified (docs/store.md, Integrity)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from plantkit.artifacts import STORE_FILE, ChecksumMismatch
from plantkit.errors import PlantkitInputError
from plantkit.labels import checked_labels
from plantkit.store.attrs import decode_attrs
from plantkit.store.classifier import Classifier, read_classifier
from plantkit.store.schema import (
    CLASS_IDS_SHA256,
    FIX,
    PATHS_SHA256,
    SCHEMA_VERSION,
    SKIPPED_PATHS,
    SKIPPED_PATHS_SHA256,
    STORE_FORMAT,
    ordered_splits,
    strings_sha256,
    verifying,
)


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
            self._check_format()
        except BaseException:
            self.close()
            raise

    def _check_format(self) -> None:
        with self._reading("its attributes"):
            attrs = self._file.attrs
            if attrs.get("format") != STORE_FORMAT:
                raise PlantkitInputError(f"{self.path} is not a plantkit prediction store")
            version = int(attrs["schema_version"])
        if version > SCHEMA_VERSION:
            raise PlantkitInputError(
                f"{self.path} uses store schema {version}; this plantkit reads up to "
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
            raise ChecksumMismatch(f"{self.path} is damaged: {what} {problem}; {FIX}") from exc

    def _check_sha256(self, strings: list[str], expected, what: str) -> None:
        if verifying() and expected is not None and strings_sha256(strings) != str(expected):
            raise ChecksumMismatch(
                f"{self.path} is damaged: {what} differ from the sha256 recorded when they "
                f"were written; {FIX}"
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
            return decode_attrs(self._file.attrs)

    @property
    def train_counts(self) -> np.ndarray | None:
        with self._reading("the train counts"):
            return self._file["train_counts"][()] if "train_counts" in self._file else None

    def classifier(self) -> Classifier | None:
        """The expert's last linear layer over its stored features (float32), or None: the
        store keeps none (docs/store.md, "The classifier")."""
        with self._reading("the classifier"):
            stored = read_classifier(self._file)
        if stored is None:
            return None
        weight, bias, module = stored
        if weight.ndim != 2 or weight.shape[0] != self.num_classes or \
                bias.shape != (self.num_classes,):
            raise ChecksumMismatch(
                f"{self.path} is damaged: its classifier is {weight.shape} with bias "
                f"{bias.shape} for {self.num_classes} classes; {FIX}")
        return Classifier(weight.astype(np.float32, copy=False),
                          bias.astype(np.float32, copy=False), module)

    @property
    def splits(self) -> list[str]:
        with self._reading("its split list"):
            return ordered_splits(self._file["splits"])

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
        if not verifying():
            return labels
        try:
            return checked_labels(labels, len(labels), self.num_classes,
                                  where=f"{self.path} is damaged: split {split!r}: ")
        except PlantkitInputError as exc:
            raise PlantkitInputError(f"{exc}; {FIX}") from None

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
            return read_float32(dataset, rows)

    def iter_logits(self, split: str, chunk_rows: int = 4096, *, as_stored: bool = False
                    ) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, chunk_rows x C float32) pairs covering the split in row order;
        `as_stored`: chunks in the stored dtype (float16 or float32), for a reader that
        upcasts smaller blocks itself (`metrics.score_rows`) instead of each chunk twice."""
        dataset = self._dataset(split, "logits")
        if chunk_rows < 1:  # refused now, not at the first chunk
            raise PlantkitInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
        return self._iter_checked(dataset, chunk_rows, f"the logits of split {split!r}",
                                  None if as_stored else np.float32)

    def _iter_checked(self, dataset: h5py.Dataset, chunk_rows: int, what: str,
                      dtype) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, dataset.shape[0], chunk_rows):
            with self._reading(what):
                chunk = dataset[start:start + chunk_rows]
            yield start, chunk if dtype is None else chunk.astype(dtype, copy=False)

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
            return read_float32(dataset, rows)


def read_float32(dataset: h5py.Dataset, rows: slice | None, block_rows: int = 4096):
    """Rows of a float16 or float32 dataset as one float32 array."""
    start, stop, step = (rows or slice(None)).indices(dataset.shape[0])
    if step != 1 or dataset.dtype == np.float32:
        return dataset[start:stop:step].astype(np.float32, copy=False)
    # Block upcast kept: 1.0-1.45x numpy astype, 2.2-2.7x h5py astype (benchmarks/bench_store.py)
    out = np.empty((max(0, stop - start), *dataset.shape[1:]), dtype=np.float32)
    for first in range(start, stop, block_rows):
        last = min(stop, first + block_rows)
        out[first - start:last - start] = dataset[first:last]
    return out


def open_store(path: str | os.PathLike) -> Store:
    """Open a store file (or the expert/combination folder holding predictions.h5) to read."""
    return Store(path)
