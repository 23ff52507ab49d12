"""Bring predictions made outside plantkit (.npy logits and labels) into an expert's store."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from plantkit.artifacts import artifact_lock, check_name, store_path
from plantkit.errors import PlantkitInputError
from plantkit.labels import checked_labels
from plantkit.store import LOGITS_DTYPES, StoreWriter, classes_fingerprint, open_store

if TYPE_CHECKING:
    from plantkit.data.layout import Dataset

# Rows per write: bounds memory to a few MB whatever the size of the memory-mapped .npy.
IMPORT_CHUNK_ROWS = 4096


@dataclass
class ImportedSplit:
    """What an import wrote, for the command's summary."""

    store: Path
    split: str
    rows: int
    num_classes: int
    dtype: str
    splits: list[str]
    fingerprint: str


def read_class_ids(path: str | os.PathLike) -> list[str]:
    """Class ids in index order from a {"0": "1355868", ...} JSON mapping, a JSON list, or a
    text file with one id per line."""
    path = _existing(path, "--classes")
    text = _read_text(path, "--classes")
    if path.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlantkitInputError(f"--classes {path} is not valid JSON ({exc})") from exc
        class_ids = _ids_from_json(mapping, path)
    else:
        class_ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not class_ids:
        raise PlantkitInputError(f"--classes {path} holds no class ids")
    repeated = [c for c, n in Counter(class_ids).items() if n > 1]
    if repeated:
        raise PlantkitInputError(f"--classes {path} lists class id {repeated[0]} more than once")
    return class_ids


def _ids_from_json(mapping, path: Path) -> list[str]:
    if isinstance(mapping, list):
        return [str(c) for c in mapping]
    if not isinstance(mapping, dict):
        raise PlantkitInputError(
            f"--classes {path} must map class indices to class ids ({{\"0\": \"1355868\", ...}})"
        )
    try:
        by_index = {int(k): str(v) for k, v in mapping.items()}
    except ValueError:
        raise PlantkitInputError(
            f"--classes {path}: keys must be class indices 0, 1, 2 ..."
        ) from None
    if sorted(by_index) != list(range(len(by_index))):
        missing = sorted(set(range(len(by_index))) - set(by_index))
        raise PlantkitInputError(
            f"--classes {path}: class indices must run 0-{len(by_index) - 1} without gaps "
            f"(index {missing[0]} is missing)"
        )
    return [by_index[i] for i in range(len(by_index))]


def read_train_counts(path: str | os.PathLike, class_ids: list[str]) -> np.ndarray:
    """Train images per class, in class-index order, from a CSV of (class id, count) rows.

    A first row whose count is not a number is taken as a header.
    """
    path = _existing(path, "--train-counts")
    rows = list(csv.reader(_read_text(path, "--train-counts").splitlines()))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if rows and len(rows[0]) >= 2 and not rows[0][1].strip().lstrip("-").isdigit():
        rows = rows[1:]
    index_of = {c: i for i, c in enumerate(class_ids)}
    counts = np.full(len(class_ids), -1, dtype=np.int64)
    for line, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise PlantkitInputError(
                f"--train-counts {path}: row {line} needs two columns: class id, train images"
            )
        class_id, value = row[0].strip(), row[1].strip()
        if class_id not in index_of:
            raise PlantkitInputError(
                f"--train-counts {path}: class id {class_id} is not one of the store's classes"
            )
        if not value.isdigit():
            raise PlantkitInputError(
                f"--train-counts {path}: count {value!r} of class {class_id} is not a "
                "non-negative integer"
            )
        if counts[index_of[class_id]] >= 0:
            raise PlantkitInputError(
                f"--train-counts {path}: class id {class_id} appears more than once"
            )
        counts[index_of[class_id]] = int(value)
    missing = [class_ids[i] for i in np.flatnonzero(counts < 0)]
    if missing:
        raise PlantkitInputError(
            f"--train-counts {path}: {len(missing)} class(es) have no count, first {missing[0]}"
        )
    return counts


def read_paths(path: str | os.PathLike) -> list[str]:
    """Image paths, one per line (blank lines kept: they are rows without a path)."""
    path = _existing(path, "--paths")
    return _read_text(path, "--paths").splitlines()


def load_npy(path: str | os.PathLike, option: str) -> np.ndarray:
    """A memory-mapped .npy array (pickles refused)."""
    path = _existing(path, option)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PlantkitInputError(
            f"{option} {path} is not a .npy array file (write it with numpy.save): {exc}"
        ) from exc


def import_logits(
    artifacts_root: str | os.PathLike,
    *,
    expert: str,
    split: str,
    logits_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    classes_path: str | os.PathLike | None = None,
    train_counts_path: str | os.PathLike | None = None,
    paths_path: str | os.PathLike | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> ImportedSplit:
    """Write one split of outside predictions into ARTIFACTS/experts/EXPERT/predictions.h5.

    Class ids come from `data_root` (with the dataset's fingerprint, paths and train
    counts), from `classes_path` (fingerprint "classes:<hash>"), or, for a store that
    exists, from that store. Every input is checked before the store is touched.
    """
    check_name(expert, "--expert")
    check_name(split, "--split")
    if dtype not in LOGITS_DTYPES:
        raise PlantkitInputError(f"--dtype {dtype} is not supported: use float16 or float32")
    if data_root is not None and classes_path is not None:
        raise PlantkitInputError("give --data ROOT or --classes FILE, not both")
    if data_root is not None and (train_counts_path is not None or paths_path is not None):
        raise PlantkitInputError(
            "--train-counts and --paths come from the dataset with --data: drop them"
        )
    target = store_path(artifacts_root, expert, "expert")
    # The expert's folder is the artifact: the checks of the existing store and the write
    # happen under its lock, so a predict or another import cannot come between them.
    with artifact_lock(target.parent):
        return _import_locked(
            target, expert=expert, split=split, logits_path=logits_path,
            labels_path=labels_path, data_root=data_root, classes_path=classes_path,
            train_counts_path=train_counts_path, paths_path=paths_path, dtype=dtype,
            overwrite=overwrite)


@dataclass
class _ClassSource:
    """Where an import's class ids come from: --data, --classes or the existing store."""

    class_ids: list[str]
    fingerprint: str
    source: str
    dataset: Dataset | None = None  # set for --data
    train_counts: np.ndarray | None = None  # from the dataset's train split, for --data


def _import_locked(target: Path, *, expert, split, logits_path, labels_path, data_root,
                   classes_path, train_counts_path, paths_path, dtype, overwrite) -> ImportedSplit:
    existing = _existing_store_summary(target)
    classes = _class_source(target, expert, existing, data_root, classes_path)
    class_ids, fingerprint = classes.class_ids, classes.fingerprint
    if existing is not None:
        _check_against_existing(existing, target, class_ids, fingerprint, classes.source)
        if split in existing["splits"] and not overwrite:
            raise PlantkitInputError(
                f"{target} already holds split {split!r}: pass --overwrite to replace it"
            )

    logits, labels = _load_logits_labels(logits_path, labels_path, len(class_ids))
    n_rows = logits.shape[0]
    paths = _row_paths(classes.dataset, split, labels, n_rows, data_root, labels_path, paths_path)
    train_counts = classes.train_counts
    if train_counts_path is not None:
        train_counts = read_train_counts(train_counts_path, class_ids)

    # Checked here, chunk by chunk, so the message names the file rather than the split.
    for start in range(0, n_rows, IMPORT_CHUNK_ROWS):
        _check_finite(logits[start:start + IMPORT_CHUNK_ROWS], start, dtype, logits_path)

    attrs = {"origin": "imported", f"imported_{split}": str(Path(logits_path))}
    with StoreWriter(target, name=expert, kind="expert", class_ids=class_ids,
                     fingerprint=fingerprint, attrs=attrs, train_counts=train_counts,
                     append=True) as writer:
        split_writer = writer.create_split(split, n_rows=n_rows, dtype=dtype)
        for start in range(0, n_rows, IMPORT_CHUNK_ROWS):
            stop = min(n_rows, start + IMPORT_CHUNK_ROWS)
            split_writer.write(
                start, np.asarray(logits[start:stop]), labels[start:stop],
                None if paths is None else paths[start:stop],
            )
    with open_store(target) as store:
        splits = store.splits
    return ImportedSplit(target, split, n_rows, len(class_ids), dtype, splits, fingerprint)


def _class_source(target: Path, expert, existing: dict | None, data_root,
                  classes_path) -> _ClassSource:
    if data_root is not None:
        from plantkit.data.layout import open_dataset

        dataset = open_dataset(data_root)
        train_counts = np.bincount(dataset.splits["train"].labels,
                                   minlength=len(dataset.class_ids))
        return _ClassSource(dataset.class_ids, dataset.fingerprint, f"--data {data_root}",
                            dataset, train_counts)
    if classes_path is not None:
        class_ids = read_class_ids(classes_path)
        return _ClassSource(class_ids, classes_fingerprint(class_ids),
                            f"--classes {classes_path}")
    if existing is not None:
        return _ClassSource(existing["class_ids"], existing["fingerprint"], str(target))
    raise PlantkitInputError(
        f"no store for expert {expert} yet: give --data ROOT or --classes FILE for its "
        "class ids"
    )


def _load_logits_labels(logits_path, labels_path,
                        num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The checked logits (memory-mapped) and labels (int64) of an import."""
    logits = load_npy(logits_path, "--logits")
    labels = load_npy(labels_path, "--labels")
    _check_shapes(logits, labels, num_classes, logits_path, labels_path)
    if logits.shape[0] == 0:
        raise PlantkitInputError(f"--logits {logits_path} holds 0 rows: nothing to import")
    labels = np.asarray(labels, dtype=np.int64)
    checked_labels(labels, len(labels), num_classes, where=f"--labels {labels_path}: ")
    return logits, labels


def _row_paths(dataset: Dataset | None, split: str, labels: np.ndarray, n_rows: int,
               data_root, labels_path, paths_path) -> list[str] | None:
    """Image paths of the rows: the dataset's for --data, else --paths' lines, else none."""
    if dataset is not None:
        return _dataset_rows(dataset, split, labels, data_root, labels_path)
    if paths_path is None:
        return None
    paths = read_paths(paths_path)
    if len(paths) != n_rows:
        raise PlantkitInputError(
            f"--paths {paths_path} has {len(paths)} lines for {n_rows} rows of logits"
        )
    return paths


def _existing(path, option: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PlantkitInputError(f"{option} {path}: no such file")
    return path


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlantkitInputError(f"{option} {path} cannot be read as UTF-8 text: {exc}") from exc


def _existing_store_summary(target: Path) -> dict | None:
    if not target.is_file():
        return None
    with open_store(target) as store:
        if store.kind != "expert":
            raise PlantkitInputError(f"{target} holds a {store.kind}, not an expert")
        return {"class_ids": store.class_ids, "fingerprint": store.fingerprint,
                "splits": store.splits}


def _check_against_existing(existing: dict, target: Path, class_ids: list[str],
                            fingerprint: str, source: str) -> None:
    if existing["class_ids"] != class_ids:
        raise PlantkitInputError(
            f"{source} gives {len(class_ids)} class ids that differ from the "
            f"{len(existing['class_ids'])} of {target}; import into another --expert"
        )
    if existing["fingerprint"] != fingerprint:
        raise PlantkitInputError(
            f"{source} has dataset fingerprint {fingerprint} but {target} has "
            f"{existing['fingerprint']}; import into another --expert"
        )


def _check_shapes(logits: np.ndarray, labels: np.ndarray, num_classes: int,
                  logits_path, labels_path) -> None:
    if logits.ndim != 2:
        raise PlantkitInputError(
            f"--logits {logits_path} must be a rows x classes array, got shape {logits.shape}"
        )
    if logits.dtype.kind != "f":
        raise PlantkitInputError(
            f"--logits {logits_path} must hold float16 or float32 values, got {logits.dtype}"
        )
    if logits.shape[1] != num_classes:
        raise PlantkitInputError(
            f"--logits {logits_path} has {logits.shape[1]} columns but there are "
            f"{num_classes} classes"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise PlantkitInputError(
            f"--labels {labels_path} must be a vector of integer class indices, got "
            f"{labels.dtype} with shape {labels.shape}"
        )
    if labels.shape[0] != logits.shape[0]:
        raise PlantkitInputError(
            f"--labels {labels_path} has {labels.shape[0]} rows but --logits {logits_path} "
            f"has {logits.shape[0]}"
        )


def _check_finite(chunk: np.ndarray, start: int, dtype: str, logits_path) -> None:
    chunk = np.asarray(chunk)
    finite = np.isfinite(chunk)
    if not finite.all():
        row = start + int(np.argwhere(~finite)[0][0])
        raise PlantkitInputError(
            f"--logits {logits_path} holds NaN or infinite values (first at row {row})"
        )
    limit = np.finfo(dtype).max
    if chunk.size and (chunk.max() > limit or chunk.min() < -limit):
        hint = ": use --dtype float32" if dtype == "float16" else ""
        raise PlantkitInputError(
            f"--logits {logits_path} holds values beyond the {dtype} range (|x| > {limit:g})"
            + hint
        )


def _dataset_rows(dataset, split: str, labels: np.ndarray, data_root, labels_path) -> list[str]:
    """The dataset's paths for `split`, once the labels show the rows are in its order."""
    if split not in dataset.splits:
        raise PlantkitInputError(
            f"--split {split}: the dataset at --data {data_root} has splits "
            f"{', '.join(dataset.splits)}"
        )
    rows = dataset.splits[split]
    if len(rows) != len(labels):
        raise PlantkitInputError(
            f"--labels {labels_path} has {len(labels)} rows but the {split} split of "
            f"--data {data_root} has {len(rows)} images"
        )
    differ = np.flatnonzero(rows.labels != labels)
    if differ.size:
        raise PlantkitInputError(
            f"--labels {labels_path} disagrees with the {split} split of --data {data_root} at "
            f"{differ.size} row(s), first row {differ[0]}: rows must follow the dataset's order "
            "(sorted by relative path)"
        )
    return list(rows.paths)
