"""What the report reads: the stores to report (`collect_store_paths`), the splits chosen,
the checks on the stores before anything is evaluated, the rows that will be read (the
progress total), and what the dataset beside them lends (species names, train counts)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from plantkit import metrics
from plantkit.artifacts import KIND_FOLDERS, STORE_FILE, find_stores, is_visible
from plantkit.errors import PlantkitInputError
from plantkit.store import SPLIT_ORDER, check_compatible, open_store

# Predictions on the train split are memorised by the experts: reported only when asked for.
DEFAULT_SKIPPED_SPLITS = ("train",)


# --- finding stores ---------------------------------------------------------------------


def collect_store_paths(paths: Sequence[str | os.PathLike], artifacts_root: str | os.PathLike
                        ) -> list[Path]:
    """Store files to report: those under the artifacts root, or under/at the given paths.

    A path may be a store file, an expert or combination folder holding predictions.h5, or
    any folder (searched for experts/*/ and combos/*/ stores, else for predictions.h5 files).
    """
    if not paths:
        found = find_stores(artifacts_root)
        where = f"under {artifacts_root}"
    else:
        found = [store for given in map(Path, paths) for store in _stores_at(given)]
        where = "in " + ", ".join(str(p) for p in paths)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise PlantkitInputError(
            f"no prediction stores found {where} (looked for {'/'.join(KIND_FOLDERS.values())}"
            f"/*/{STORE_FILE}): create some with `plantkit train`, `plantkit predict` or "
            "`plantkit import logits`"
        )
    return unique


def _stores_at(given: Path) -> list[Path]:
    """The store files one given path names: itself, the store in it, or those under it."""
    if given.is_file():
        return [given]
    if (given / STORE_FILE).is_file():
        return [given / STORE_FILE]
    if given.is_dir():
        return find_stores(given) or sorted(
            p for p in given.rglob(STORE_FILE)
            if all(is_visible(part) for part in p.relative_to(given).parents)
            and is_visible(p))
    raise PlantkitInputError(f"{given} does not exist: give store files or folders")


# --- the stores and their splits --------------------------------------------------------


def check_stores(stores) -> None:
    """Refuse stores that cannot share a report: two of one kind with one name, stores of
    other datasets or classes."""
    seen: dict[tuple[str, str], Path] = {}
    for store in stores:
        key = (store.kind, store.name)
        if key in seen:
            raise PlantkitInputError(
                f"two {store.kind} stores are both named {store.name!r} ({seen[key]} and "
                f"{store.path}): report them separately"
            )
        seen[key] = store.path
    check_compatible(stores)


def check_splits(stores, chosen: Sequence[str]) -> None:
    """Refuse stores that differ on a chosen split, or hold it with no rows."""
    for split in chosen:
        check_compatible([s for s in stores if split in s.splits], splits=[split])
    for store in stores:
        for split in chosen:
            if split in store.splits and store.num_rows(split) == 0:
                raise PlantkitInputError(
                    f"{store.path}: split {split} holds 0 rows: predict or import it again"
                )


def chosen_splits(stores, splits: Sequence[str] | None) -> list[str]:
    """The splits to report: those asked for (each held by some store), else every split
    held except train."""
    held = {s for store in stores for s in store.splits}
    if splits:
        missing = [s for s in splits if s not in held]
        if missing:
            raise PlantkitInputError(
                f"--split {missing[0]}: no store holds that split (they hold: "
                f"{', '.join(ordered_splits(held)) or 'none'})"
            )
        return list(dict.fromkeys(splits))
    chosen = [s for s in ordered_splits(held) if s not in DEFAULT_SKIPPED_SPLITS]
    if not chosen:
        raise PlantkitInputError(
            "the stores hold only train predictions, which the experts memorised: predict val "
            "or test, or ask for it with --split train"
        )
    return chosen


def ordered_splits(names: Iterable[str]) -> list[str]:
    """Split names in SPLIT_ORDER (train, val, test), any others after them by name."""
    names = set(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


def rows_to_read(store_paths: Sequence[str | os.PathLike],
                 splits: Sequence[str] | None = None,
                 avg_ks: Sequence[int] = metrics.DEFAULT_AVG_KS) -> int:
    """Rows `build_report` reads over all stores: the total of its progress."""
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(open_store(p)) for p in store_paths]
        chosen = chosen_splits(stores, splits)
        return sum(
            metrics.evaluation_rows(store, [s for s in chosen if s in store.splits],
                                    avg_ks=avg_ks)
            for store in stores
        )


def split_images(stores, chosen: Sequence[str], num_classes: int) -> dict[str, np.ndarray]:
    """Images per species of every split any store holds (whichever are reported) and of
    the chosen ones, in split order."""
    held = ordered_splits({s for store in stores for s in store.splits} | set(chosen))
    return {
        split: np.bincount(next(s for s in stores if split in s.splits).labels(split),
                           minlength=num_classes)
        for split in held
    }


def image_counts(train_counts, images: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Images per species over every split whose counts are known (train + val + test when
    all are), the x axis of the reference study's accuracy-against-count views."""
    parts = dict(images)
    if train_counts is not None:
        parts = {"train": train_counts, **{s: c for s, c in parts.items() if s != "train"}}
    total = sum(parts.values())
    return np.asarray(total, dtype=np.int64), list(parts)


# --- what the dataset lends -------------------------------------------------------------


def dataset_info(root, first, class_ids, fingerprint) -> dict:
    """The dataset at `root` (--data): class ids, names, train counts, fingerprint, root;
    refused when it is another dataset than the stores' (other classes or fingerprint)."""
    from plantkit.data.layout import open_dataset

    opened = open_dataset(root)
    dataset = {
        "class_ids": list(opened.class_ids),
        "names": dict(opened.class_names),
        "train_counts": opened.counts()["train"].to_numpy(dtype=np.int64),
        "fingerprint": opened.fingerprint,
        "root": str(opened.root),
    }
    if dataset["class_ids"] != list(class_ids):
        raise PlantkitInputError(
            f"--data {root} has {len(dataset['class_ids'])} classes that differ from the "
            f"{len(class_ids)} of store {first.path}: give the stores' dataset"
        )
    # Stores of imported logits carry "classes:<hash>": only their class ids can be checked.
    if not str(fingerprint).startswith("classes:") and dataset["fingerprint"] != fingerprint:
        raise PlantkitInputError(
            f"--data {root} has fingerprint {dataset['fingerprint']} but store "
            f"{first.path} has {fingerprint}: give the stores' dataset"
        )
    return dataset


def train_counts(stores, dataset: dict | None) -> tuple[np.ndarray | None, str | None]:
    """The train counts of the first store that has them, else the dataset's."""
    for store in stores:
        counts = store.train_counts
        if counts is not None:
            return np.asarray(counts, dtype=np.int64), f"store {store.name}"
    if dataset is not None and dataset["class_ids"] == list(stores[0].class_ids):
        return dataset["train_counts"], f"dataset {dataset['root']}"
    return None, None


def species_names(class_ids: Sequence[str], attrs: dict, dataset: dict | None = None
                  ) -> tuple[list[str], str]:
    """Names in class-index order and where they came from: the store's class_names
    attribute, the dataset's names file, the shipped Pl@ntNet-300K table, else the ids."""
    ids = [str(c) for c in class_ids]
    given = attrs.get("class_names")
    if isinstance(given, list) and len(given) == len(ids):
        return [str(n) for n in given], "store attribute class_names"
    if isinstance(given, dict) and all(c in given for c in ids):
        return [str(given[c]) for c in ids], "store attribute class_names"
    if dataset is not None and dataset["names"] and all(c in dataset["names"] for c in ids):
        return [dataset["names"][c] for c in ids], f"dataset {dataset['root']}"
    if all(c.isdigit() for c in ids):  # Pl@ntNet species ids are numbers
        from plantkit.data.profiles import plantnet300k_table

        table = plantnet300k_table()
        known = dict(zip(table["species_id"], table["species_name"]))
        if all(c in known for c in ids):
            return [str(known[c]) for c in ids], "Pl@ntNet-300K table"
    return ids, "class ids (no names known)"


__all__ = ["DEFAULT_SKIPPED_SPLITS", "check_splits", "check_stores", "chosen_splits",
           "collect_store_paths", "dataset_info", "image_counts", "ordered_splits",
           "rows_to_read", "species_names", "split_images", "train_counts"]
