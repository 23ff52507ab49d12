"""Combination stores: ARTIFACTS/combos/<name>/predictions.h5 plus combination.json, written
all or nothing for one run."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from plantkit.artifacts import (
    COMBINATION_FILE,
    COMBOS_DIR,
    STORE_FILE,
    artifact_lock,
    check_name,
    replacing_dir,
    write_text,
)
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet
from plantkit.store import StoreWriter

COMBINATION_FORMAT = "plantkit-combination"
COMBINATION_VERSION = 1


class CombinationWriters:
    """One temporary folder and store per combination; every folder is switched into place
    when the with-block ends without error, none otherwise (an existing combination of the
    same name is then left as it was). Each combination's lock is held for the whole block.

    Inside the block: write(name, split, rows, log_probs) for every output chunk, then
    set_result(name, attrs, document) for every combination.
    """

    def __init__(self, artifacts_root: str | os.PathLike, names: Sequence[str],
                 experts: ExpertSet, *, dtype: str = "float32",
                 splits: Sequence[str] = COMBINE_SPLITS):
        self.root = Path(artifacts_root) / COMBOS_DIR
        self.names = [check_name(n, "combination name") for n in names]
        self.experts, self.dtype, self.splits = experts, dtype, list(splits)
        self._results: dict[str, tuple[dict, dict]] = {}

    def __enter__(self) -> CombinationWriters:
        self._root_existed = self.root.exists()
        self._folders = contextlib.ExitStack()
        self._stores = contextlib.ExitStack()
        try:
            for name in self.names:
                self._folders.enter_context(artifact_lock(self.root / name))
            self.folders = {name: self._folders.enter_context(
                replacing_dir(self.root / name)) for name in self.names}
            self.writers = {}
            self.split_writers = {}
            for name, folder in self.folders.items():
                writer = self._stores.enter_context(StoreWriter(
                    folder / STORE_FILE, name=name, kind="combination",
                    class_ids=self.experts.class_ids, fingerprint=self.experts.fingerprint,
                    train_counts=self.experts.train_counts))
                self.writers[name] = writer
                for split in self.splits:
                    self.split_writers[name, split] = writer.create_split(
                        split, n_rows=self.experts.num_rows(split), dtype=self.dtype)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, name: str, split: str, rows: slice, log_probs: np.ndarray) -> None:
        self.split_writers[name, split].write(
            rows.start, log_probs, self.experts.labels[split][rows],
            self.experts.paths[split][rows])

    def set_result(self, name: str, attrs: Mapping, document: Mapping) -> None:
        """The store's extra attributes and the combination.json document of one output."""
        self._results[name] = (dict(attrs), dict(document))

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                missing = [n for n in self.names if n not in self._results]
                if missing:
                    raise RuntimeError(f"no result was set for combination {missing[0]}")
                for name, (attrs, _) in self._results.items():
                    self.writers[name].attrs.update(attrs)
            self._stores.__exit__(exc_type, exc, tb)
            if exc_type is None:
                for name, (_, document) in self._results.items():
                    write_text(self.folders[name] / COMBINATION_FILE,
                                      json.dumps(document, indent=2, allow_nan=False) + "\n")
        except BaseException:
            self._folders.__exit__(*sys.exc_info())
            self._remove_root_if_new()
            raise
        self._folders.__exit__(exc_type, exc, tb)
        if exc_type is not None:
            self._remove_root_if_new()
        return False

    def _remove_root_if_new(self) -> None:
        if not self._root_existed:
            with contextlib.suppress(OSError):
                self.root.rmdir()  # only when empty: nothing of this run is left behind
