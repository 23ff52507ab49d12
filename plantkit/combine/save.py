"""Combination stores: ARTIFACTS/combos/<name>/predictions.h5 plus combination.json, written
all or nothing for one run."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
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
from plantkit.combine.apply import RunnableForm, write_runnable
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet
from plantkit.store import StoreDraft, StoreWriter

COMBINATION_FORMAT = "plantkit-combination"
COMBINATION_VERSION = 1


class CombinationWriters:
    """The open stores of one run's combinations (see combination_writers): write(name,
    split, rows, log_probs) for every output chunk, then set_result(name, attrs, document)
    for every combination."""

    def __init__(self, root: Path, folders: Mapping[str, Path], experts: ExpertSet,
                 writers: Mapping[str, StoreDraft], split_writers: Mapping[tuple, object]):
        self.root, self.folders, self.experts = root, dict(folders), experts
        self.writers, self.split_writers = dict(writers), dict(split_writers)
        self.results: dict[str, tuple[dict, dict]] = {}
        self.runnables: dict[str, RunnableForm] = {}

    def write(self, name: str, split: str, rows: slice, log_probs: np.ndarray) -> None:
        self.split_writers[name, split].write(
            rows.start, log_probs, self.experts.labels[split][rows],
            self.experts.paths[split][rows])

    def set_result(self, name: str, attrs: Mapping, document: Mapping,
                   runnable: RunnableForm | None = None) -> None:
        """The store's extra attributes, the combination.json document of one output and its
        runnable form (plantkit.combine.apply: runnable.json, runnable.npz, a router's
        gates)."""
        self.results[name] = (dict(attrs), dict(document))
        if runnable is not None:
            self.runnables[name] = runnable

    def store_attrs(self) -> None:
        """Every combination's attributes into its (still open) store."""
        missing = [n for n in self.folders if n not in self.results]
        if missing:
            raise RuntimeError(f"no result was set for combination {missing[0]}")
        for name, (attrs, _) in self.results.items():
            self.writers[name].attrs.update(attrs)

    def write_documents(self) -> None:
        for name, (_, document) in self.results.items():
            write_text(self.folders[name] / COMBINATION_FILE,
                       json.dumps(document, indent=2, allow_nan=False) + "\n")
            if name in self.runnables:
                write_runnable(self.folders[name], self.runnables[name])


@contextlib.contextmanager
def combination_writers(artifacts_root: str | os.PathLike, names: Sequence[str],
                        experts: ExpertSet, *, dtype: str = "float32",
                        splits: Sequence[str] = COMBINE_SPLITS) -> Iterator[CombinationWriters]:
    """One temporary folder and store per combination; every folder is switched into place
    when the with-block ends without error, none otherwise (an existing combination of the
    same name is then left as it was, and a combos folder this call created is removed).
    Each combination's lock is held for the whole block."""
    root = Path(artifacts_root) / COMBOS_DIR
    names = [check_name(n, "combination name") for n in names]
    root_existed = root.exists()
    try:
        with contextlib.ExitStack() as folder_stack:
            for name in names:
                folder_stack.enter_context(artifact_lock(root / name))
            folders = {name: folder_stack.enter_context(replacing_dir(root / name))
                       for name in names}
            with contextlib.ExitStack() as store_stack:
                writers = _open_stores(store_stack, root, folders, experts, dtype, splits)
                yield writers
                writers.store_attrs()
            writers.write_documents()  # the stores are closed: only now the documents
    except BaseException:
        if not root_existed:
            with contextlib.suppress(OSError):
                root.rmdir()  # only when empty: nothing of this run is left behind
        raise


def _open_stores(stack: contextlib.ExitStack, root: Path, folders: Mapping[str, Path],
                 experts: ExpertSet, dtype: str, splits: Sequence[str]) -> CombinationWriters:
    writers, split_writers = {}, {}
    for name, folder in folders.items():
        writer = stack.enter_context(StoreWriter(
            folder / STORE_FILE, name=name, kind="combination", class_ids=experts.class_ids,
            fingerprint=experts.fingerprint, train_counts=experts.train_counts))
        writers[name] = writer
        for split in splits:
            split_writers[name, split] = writer.create_split(
                split, n_rows=experts.num_rows(split), dtype=dtype)
    return CombinationWriters(root, folders, experts, writers, split_writers)
