"""StoreWriter: write a whole store through a temporary file, renamed onto its path when
the with-block ends without error."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from plantkit import __version__
from plantkit.artifacts import check_name, kind_folder, replacing_file
from plantkit.choices import LOGITS_DTYPES
from plantkit.errors import PlantkitInputError
from plantkit.store.attrs import encode_attrs
from plantkit.store.chunks import create_checked
from plantkit.store.classifier import Classifier, checked_classifier, write_classifier
from plantkit.store.compat import Described, check_pair_compatible
from plantkit.store.reader import Store, open_store
from plantkit.store.schema import (
    CLASS_IDS_SHA256,
    SCHEMA_VERSION,
    STORE_FORMAT,
    STRINGS,
    strings_sha256,
    verifying,
)
from plantkit.store.split_writer import SplitWriter


def StoreWriter(path: str | os.PathLike, *, name: str, kind: str = "expert",
                class_ids: Sequence[str], fingerprint: str, attrs: dict | None = None,
                train_counts=None, append: bool = False
                ) -> contextlib.AbstractContextManager[StoreDraft]:
    """Write a store through a temporary file, renamed onto `path` when the with-block ends:

        with StoreWriter(path, name=..., class_ids=..., fingerprint=...) as writer:
            writer.create_split("val", n_rows=n).write(0, logits, labels, paths)

    The arguments are checked at once, before any file is touched. An exception inside the
    block, or a split with unwritten rows, leaves no file behind and an existing store
    untouched. `append=True` keeps the existing store's splits (those not created again
    here), its attributes (updated by `attrs`) and its train counts (unless given); the
    existing store must have the same kind, fingerprint and class ids, and its classifier
    is kept unless `set_classifier` replaces it.
    """
    draft = StoreDraft(path, name=name, kind=kind, class_ids=class_ids,
                       fingerprint=fingerprint, attrs=attrs, train_counts=train_counts)
    return _writing(draft, append)


@contextlib.contextmanager
def _writing(draft: StoreDraft, append: bool) -> Iterator[StoreDraft]:
    previous = None
    if append and draft.path.is_file():
        with open_store(draft.path) as old:
            draft.adopt(old)
        previous = draft.path
    with replacing_file(draft.path) as tmp:  # removes the temporary on any error inside
        file = h5py.File(tmp, "w")
        try:
            draft.open(file)
            yield draft
            draft.finish(previous)
        except BaseException:
            with contextlib.suppress(Exception):
                file.close()
            raise
        finally:
            draft.file = None
        file.close()  # a failing close (a full disk) is an error of the write, too


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


class StoreDraft:
    """The store a StoreWriter block is writing: `create_split` adds a split to it."""

    def __init__(self, path: str | os.PathLike, *, name: str, kind: str,
                 class_ids: Sequence[str], fingerprint: str, attrs: dict | None,
                 train_counts):
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
        encode_attrs(self.attrs)  # refuse bad attributes before any file is touched
        self.train_counts = (
            None if train_counts is None else _checked_train_counts(train_counts, self.class_ids)
        )
        self.classifier: Classifier | None = None
        self.file: h5py.File | None = None
        self._splits: dict[str, SplitWriter] = {}

    def adopt(self, previous: Store) -> None:
        """Take over what an appended store keeps: its attributes, train counts and
        classifier."""
        if previous.kind != self.kind:
            raise PlantkitInputError(
                f"{previous.path} holds a {previous.kind}, not a {self.kind}: cannot add "
                "splits to it"
            )
        check_pair_compatible(previous, Described(f"the new predictions for {self.name}",
                                                  self.fingerprint, self.class_ids))
        self.attrs = {**previous.attrs, **self.attrs}
        if self.train_counts is None:
            self.train_counts = previous.train_counts
        self.classifier = previous.classifier()

    def set_classifier(self, classifier: Classifier | None) -> None:
        """The expert's last linear layer over the features it stores (docs/store.md, "The
        classifier"), or None: the store keeps none (an appended store's is dropped)."""
        self.classifier = (None if classifier is None else
                           checked_classifier(classifier, len(self.class_ids),
                                              f"store {self.name}"))

    def open(self, file: h5py.File) -> None:
        self.file = file
        file.create_group("splits")

    def _open_file(self) -> h5py.File:
        if self.file is None:
            raise RuntimeError("StoreWriter's file is used outside its with-block")
        return self.file

    def create_split(self, split: str, *, n_rows: int, num_classes: int | None = None,
                     dtype: str = "float32", feature_dim: int | None = None,
                     skippable: bool = False) -> SplitWriter:
        """Preallocate a split's datasets; fill them with the returned writer's `write`.

        `skippable`: rows that cannot be computed (corrupt images) may be left out with the
        writer's `skip_unwritten` (the datasets are then created resizable)."""
        if self.file is None:
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
        group = self.file["splits"].create_group(split)
        writer = SplitWriter(group, split, int(n_rows), len(self.class_ids), dtype,
                             None if feature_dim is None else int(feature_dim),
                             skippable=skippable)
        self._splits[split] = writer
        return writer

    def finish(self, previous: Path | None) -> None:
        """Complete the file: refuse unwritten rows, copy the kept splits of `previous`
        (an appended store), then write the paths, class ids, train counts, classifier and
        attributes."""
        for writer in self._splits.values():
            writer.check_complete()
        if previous is not None:
            with open_store(previous) as old:
                for split in old.splits:
                    if split not in self._splits:
                        self._copy_split(old, split)
        for writer in self._splits.values():
            writer.seal()
        f = self._open_file()
        f.create_dataset("class_ids", data=np.array(self.class_ids, dtype=object),
                         dtype=STRINGS)
        if self.train_counts is not None:
            create_checked(f, "train_counts", self.train_counts.shape, np.dtype(np.int64),
                           data=self.train_counts)
        if self.classifier is not None:
            write_classifier(f, self.classifier)
        self._write_attrs()

    def _write_attrs(self) -> None:
        f = self._open_file()
        encoded, json_keys = encode_attrs(self.attrs)
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
        if verifying():
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
