"""Evaluate every prediction store and gather the report's numbers into one JSON-able dict.

`build_report` is the library side of `plantkit report`: the terminal tables
(`plantkit.report.tables`), `--json` and the HTML page (`plantkit.report.html`) all read
the dict it returns, so they never disagree. Missing inputs (a split a store does not hold,
no train counts, no GFLOPs, no history.csv) become None values and notes, never errors.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from plantkit import metrics
from plantkit.artifacts import (
    HISTORY_FILE,
    KIND_FOLDERS,
    STORE_FILE,
    find_stores,
    is_visible,
    read_history_rows,
)
from plantkit.choices import default_workers
from plantkit.errors import PlantkitInputError
from plantkit.metrics import to_plain
from plantkit.store import SPLIT_ORDER, check_compatible, open_store

REPORT_FORMAT = "plantkit-report"
REPORT_VERSION = 1
# Predictions on the train split are memorised by the experts: reported only when asked for.
DEFAULT_SKIPPED_SPLITS = ("train",)
AVERAGE_K = 3  # the leaderboard's average-k column
ACCURACY_BIN_WIDTH = 0.01  # the reference study's 1 % accuracy bins

# Leaderboard columns: key, header, which way is better ("max"/"min"), how to show it.
COLUMNS = (
    ("params", "params", "min", "count"),
    ("gflops", "GFLOPs", "min", "float"),
    ("top1", "top-1", "max", "pct"),
    ("top5", "top-5", "max", "pct"),
    ("macro_top1", "macro top-1", "max", "pct"),
    ("macro_top5", "macro top-5", "max", "pct"),
    (f"avg{AVERAGE_K}", f"avg-{AVERAGE_K}", "max", "pct"),
    ("many", "many", "max", "pct"),
    ("medium", "medium", "max", "pct"),
    ("few", "few", "max", "pct"),
    ("ece", "ECE", "min", "pct"),
    ("species_above_90", "species > 90 %", "max", "count"),
)
BUCKET_RULES = metrics.SHOT_RULES  # thresholds: plantkit.metrics


# --- finding stores ---------------------------------------------------------------------


def collect_store_paths(paths: Sequence[str | os.PathLike], artifacts_root: str | os.PathLike
                        ) -> list[Path]:
    """Store files to report: those under the artifacts root, or under/at the given paths.

    A path may be a store file, an expert or combination folder holding predictions.h5, or
    any folder (searched for experts/*/ and combos/*/ stores, else for predictions.h5 files).
    """
    found: list[Path] = []
    if not paths:
        found = find_stores(artifacts_root)
        where = f"under {artifacts_root}"
    else:
        for given in map(Path, paths):
            if given.is_file():
                found.append(given)
            elif (given / STORE_FILE).is_file():
                found.append(given / STORE_FILE)
            elif given.is_dir():
                found.extend(find_stores(given) or sorted(
                    p for p in given.rglob(STORE_FILE)
                    if all(is_visible(part) for part in p.relative_to(given).parents)
                    and is_visible(p)))
            else:
                raise PlantkitInputError(f"{given} does not exist: give store files or folders")
        where = "in " + ", ".join(str(p) for p in paths)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise PlantkitInputError(
            f"no prediction stores found {where} (looked for {'/'.join(KIND_FOLDERS.values())}"
            f"/*/{STORE_FILE}): create some with `plantkit train`, `plantkit predict` or "
            "`plantkit import logits`"
        )
    return unique


# --- the report -------------------------------------------------------------------------


def build_report(
    store_paths: Sequence[str | os.PathLike],
    *,
    splits: Sequence[str] | None = None,
    ks: Sequence[int] = metrics.DEFAULT_KS,
    avg_ks: Sequence[int] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    data_root: str | os.PathLike | None = None,
    workers: int | None = None,
    advance: Callable[[int], None] | None = None,
    before_evaluation: Callable[[dict], None] | None = None,
) -> dict:
    """Evaluate every store on `splits` and return the report (plain JSON types, no NaN).

    `splits` None: every split any store holds except train. `ks`: the k of top-k and (when
    `avg_ks` is None) of average-k (`plantkit report --k`). `data_root` (a dataset folder)
    supplies species names and, for stores without them, train counts. `workers`
    processes evaluate the stores (None: plantkit.choices.default_workers(); 1: in this
    process). `advance(n)` is called as rows are read (progress; total: `rows_to_read`).
    `before_evaluation(outline)` sees the report's splits, classes and models (no numbers
    yet) before the slow part, to refuse bad options early (see `check_per_class`).
    """
    ks = metrics.parse_ks(ks)
    avg_ks = ks if avg_ks is None else metrics.parse_ks(avg_ks, "avg_ks")
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(open_store(p)) for p in store_paths]
        _check_names_unique(stores)
        check_compatible(stores)
        chosen = _chosen_splits(stores, splits)
        for split in chosen:
            check_compatible([s for s in stores if split in s.splits], splits=[split])
        first = stores[0]
        fingerprint, class_ids = first.fingerprint, list(first.class_ids)
        for store in stores:
            for split in chosen:
                if split in store.splits and store.num_rows(split) == 0:
                    raise PlantkitInputError(
                        f"{store.path}: split {split} holds 0 rows: predict or import it again"
                    )
        dataset = _dataset_info(data_root) if data_root is not None else None
        if dataset is not None:
            _check_dataset(dataset, data_root, first, class_ids, fingerprint)
        train_counts, counts_from = _train_counts(stores, dataset)
        names, names_from = species_names(class_ids, first.attrs, dataset)
        # Every split held counts towards the images per species, whichever are reported.
        held = _ordered({s for store in stores for s in store.splits} | set(chosen))
        split_images = {
            split: np.bincount(
                next(s for s in stores if split in s.splits).labels(split),
                minlength=len(class_ids),
            )
            for split in held
        }
        if before_evaluation is not None:
            before_evaluation({
                "splits": chosen,
                "classes": {"ids": class_ids, "names": names},
                "models": [{"name": s.name, "kind": s.kind, "splits": s.splits} for s in stores],
            })
        evaluation = {"ks": ks, "avg_ks": avg_ks, "bootstrap": bootstrap, "seed": seed}
        models = _evaluate_all(stores, chosen, train_counts, evaluation, workers, advance)
    image_counts, image_counts_from = _image_counts(train_counts, split_images)
    for model in models:
        for result in model["results"].values():
            _set_views(result, image_counts)
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "fingerprint": fingerprint,
        "num_classes": len(class_ids),
        "ks": list(ks),
        "avg_ks": list(avg_ks),
        "classes": {"ids": class_ids, "names": names, "names_from": names_from},
        "train_counts": None if train_counts is None else train_counts.tolist(),
        "train_counts_from": counts_from,
        "image_counts": image_counts.tolist(),
        "image_counts_from": image_counts_from,
        "splits": {},
        "models": models,
        "notes": [],
    }
    for split in chosen:
        report["splits"][split] = _split_section(split, models, split_images[split], ks,
                                                 avg_ks)
    unasked = [header for key, header, *_ in COLUMNS if _column_k(key) is not None
               and _column_k(key) not in (avg_ks if key.startswith("avg") else ks)]
    if unasked:
        report["notes"].append(
            f"--k {','.join(map(str, ks))}: the leaderboard's {', '.join(unasked)} "
            "column(s) show '-' (that k was not asked for); the top-k table has every k")
    if train_counts is None:
        report["notes"].append(
            "no train counts in the stores: many/medium/few show '-' (give --data ROOT, or "
            "import logits with --train-counts)"
        )
    return to_plain(report)


def rows_to_read(store_paths: Sequence[str | os.PathLike],
                 splits: Sequence[str] | None = None,
                 avg_ks: Sequence[int] = metrics.DEFAULT_AVG_KS) -> int:
    """Rows `build_report` reads over all stores: the total of its progress."""
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(open_store(p)) for p in store_paths]
        chosen = _chosen_splits(stores, splits)
        return sum(
            metrics.evaluation_rows(store, [s for s in chosen if s in store.splits],
                                    avg_ks=avg_ks)
            for store in stores
        )


def _column_k(key: str) -> int | None:
    """The k of a top-k / average-k leaderboard column (top5 -> 5), None for others."""
    for prefix in ("macro_top", "top", "avg"):
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            return int(key[len(prefix):])
    return None


def _check_names_unique(stores) -> None:
    seen: dict[tuple[str, str], Path] = {}
    for store in stores:
        key = (store.kind, store.name)
        if key in seen:
            raise PlantkitInputError(
                f"two {store.kind} stores are both named {store.name!r} ({seen[key]} and "
                f"{store.path}): report them separately"
            )
        seen[key] = store.path


def _chosen_splits(stores, splits: Sequence[str] | None) -> list[str]:
    held = {s for store in stores for s in store.splits}
    if splits:
        missing = [s for s in splits if s not in held]
        if missing:
            raise PlantkitInputError(
                f"--split {missing[0]}: no store holds that split (they hold: "
                f"{', '.join(_ordered(held)) or 'none'})"
            )
        return list(dict.fromkeys(splits))
    chosen = [s for s in _ordered(held) if s not in DEFAULT_SKIPPED_SPLITS]
    if not chosen:
        raise PlantkitInputError(
            "the stores hold only train predictions, which the experts memorised: predict val "
            "or test, or ask for it with --split train"
        )
    return chosen


def _ordered(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


def _evaluate_all(stores, chosen: list[str], train_counts, evaluation: dict,
                  workers: int | None, advance: Callable[[int], None] | None) -> list[dict]:
    """Every store's model entry, in the stores' order."""
    if workers is None:
        workers = default_workers()  # each process holds a few chunks (~200 MB)
    workers = max(1, min(workers, len(stores)))
    if workers == 1:
        return [_evaluate_model(s, chosen, train_counts, evaluation, advance) for s in stores]
    # A store is a few seconds of single-threaded NumPy: one process per core divides the
    # wall time by the cores. Spawned, not forked: the parent holds open HDF5 files.
    rows = [metrics.evaluation_rows(s, [x for x in chosen if x in s.splits],
                                    avg_ks=evaluation["avg_ks"]) for s in stores]
    context = multiprocessing.get_context("spawn")
    models: list[dict | None] = [None] * len(stores)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {
            pool.submit(_evaluate_path, s.path, chosen, train_counts, evaluation): i
            for i, s in enumerate(stores)
        }
        try:
            for future in as_completed(futures):
                i = futures[future]
                models[i] = future.result()
                if advance is not None:
                    advance(rows[i])
        except BaseException:
            # An error or Ctrl-C: do not wait for the stores not yet started.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return models


def _evaluate_path(path, chosen, train_counts, evaluation: dict) -> dict:
    with open_store(path) as store:
        return _evaluate_model(store, chosen, train_counts, evaluation, None)


def _evaluate_model(store, chosen: list[str], train_counts, settings: dict,
                    advance: Callable[[int], None] | None) -> dict:
    """One store's model entry; `settings`: evaluate_store's ks, avg_ks, bootstrap, seed."""
    held = [s for s in chosen if s in store.splits]
    attrs = store.attrs
    # evaluate_store fits the average-k thresholds on val whether or not val is reported.
    try:
        evaluation = metrics.evaluate_store(store, splits=tuple(held), advance=advance,
                                            **settings)
    except PlantkitInputError as exc:
        # The store's checks name the split, not the file: say which store it is.
        if str(store.path) in str(exc):
            raise
        raise PlantkitInputError(f"{store.path}: {exc}") from exc
    results = evaluation.pop("splits")
    if store.train_counts is None and train_counts is not None:
        for result in results.values():
            _add_shots(result, train_counts)
    # Notes name no model: the same note for several models is shown once, naming them.
    notes = [f"no {split} split in the store" for split in chosen if split not in held]
    if "val" not in store.splits and held:
        notes.append(f"no val split: average-{AVERAGE_K} needs thresholds fitted on val")
    for split in held:
        skipped = len(store.skipped_paths(split))
        if skipped:
            notes.append(f"{skipped} corrupt {split} image{'s' if skipped != 1 else ''} "
                         "skipped when predicting: not in the store, nor in its scores")
    gflops = _number(attrs.get("gflops"))
    if gflops is None:
        notes.append("no gflops attribute: cost unknown")
    history = read_history(Path(store.path).parent / HISTORY_FILE)
    if history is None and store.kind == "expert":
        notes.append(f"no {HISTORY_FILE} beside the store: no training curves")
    return {
        "name": store.name,
        "kind": store.kind,
        "store": str(store.path),
        "architecture": attrs.get("architecture"),
        "params": _number(attrs.get("params")),
        "gflops": gflops,
        "splits": list(store.splits),
        # class_names would repeat the report's classes.names for every model
        "attrs": {k: v for k, v in attrs.items() if k != "class_names"},
        "history": history,
        "evaluation": evaluation,
        "results": results,
        "notes": notes,
    }


def _add_shots(result: dict, train_counts: np.ndarray) -> None:
    """Many/medium/few from train counts the store lacks (given by --data)."""
    per_class = np.array(
        [np.nan if v is None else v for v in result["per_class_accuracy"]], dtype=float
    )
    result.update(metrics.shot_summary(per_class, train_counts))


def _set_views(result: dict, image_counts: np.ndarray) -> None:
    """The reference study's two views, over the report's common image counts (every model
    on the same x axis, whatever splits its own store holds)."""
    per_class = np.array(
        [np.nan if v is None else v for v in result["per_class_accuracy"]], dtype=float
    )
    result["accuracy_by_count"] = metrics.accuracy_by_count(per_class, image_counts)
    result["count_by_accuracy"] = metrics.count_by_accuracy_bin(
        per_class, image_counts, bin_width=ACCURACY_BIN_WIDTH
    )


def topk_keys(ks: Sequence[int], avg_ks: Sequence[int]) -> list[str]:
    """Result keys of the top-k table: top-k and macro top-k for each k, average-k, its macro
    and mean set size for each average k."""
    keys = [f"{prefix}{k}" for k in ks for prefix in ("top", "macro_top")]
    return keys + [key.format(k) for k in avg_ks
                   for key in ("avg{}", "macro_avg{}", "avg{}_set_size")]


def _split_section(split: str, models: list[dict], class_images: np.ndarray,
                   ks: Sequence[int], avg_ks: Sequence[int]) -> dict:
    rows = []
    keys = list(dict.fromkeys([c[0] for c in COLUMNS[2:]] + [f"avg{AVERAGE_K}_set_size"]
                              + topk_keys(ks, avg_ks)))
    for model in models:
        result = model["results"].get(split)
        row = {"name": model["name"], "kind": model["kind"],
               "params": model["params"], "gflops": model["gflops"]}
        for key in keys:
            row[key] = None if result is None else result.get(key)
        row["available"] = result is not None
        rows.append(row)
    # Ranked by top-1; models without this split last, in store order (sort is stable).
    rows.sort(key=lambda r: -r["top1"] if r["top1"] is not None else math.inf)
    best = {}
    columns = [(key, better) for key, _, better, _ in COLUMNS] + [
        (key, "max") for key in topk_keys(ks, avg_ks) if not key.endswith("_set_size")]
    for key, better in columns:
        values = [r[key] for r in rows if r[key] is not None]
        if values:
            best[key] = max(values) if better == "max" else min(values)
    return {
        "images": int(class_images.sum()),
        "species_present": int((class_images > 0).sum()),
        "class_images": class_images.tolist(),
        "leaderboard": rows,
        "best": best,
        "missing": [m["name"] for m in models if split not in m["results"]],
    }


def grouped_notes(report: dict) -> list[str]:
    """The report's notes, then each model note once, naming the models it applies to."""
    by_note: dict[str, list[str]] = {}
    for model in report["models"]:
        for note in model["notes"]:
            by_note.setdefault(note, []).append(model["name"])
    return list(report["notes"]) + [f"{note}: {', '.join(names)}"
                                    for note, names in by_note.items()]


# --- inputs beside the stores -----------------------------------------------------------


def read_history(path: str | os.PathLike) -> dict | None:
    """A training history.csv as {"path", "columns", "rows"} (numbers; blanks None), or None."""
    path = Path(path)
    text_rows = read_history_rows(path)
    if not text_rows:
        return None
    columns = list(text_rows[0])
    rows = [{c: _cell(row.get(c)) for c in columns} for row in text_rows]
    return {"path": str(path), "columns": columns, "rows": rows}


def _cell(text: str | None):
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return text.strip()
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() \
        else value


def _dataset_info(root) -> dict:
    from plantkit.data.layout import open_dataset

    dataset = open_dataset(root)
    return {
        "class_ids": list(dataset.class_ids),
        "names": dict(dataset.class_names),
        "train_counts": dataset.counts()["train"].to_numpy(dtype=np.int64),
        "fingerprint": dataset.fingerprint,
        "root": str(dataset.root),
    }


def _check_dataset(dataset: dict, data_root, first, class_ids, fingerprint) -> None:
    """Refuse --data of another dataset than the stores' (other classes or fingerprint)."""
    if dataset["class_ids"] != list(class_ids):
        raise PlantkitInputError(
            f"--data {data_root} has {len(dataset['class_ids'])} classes that differ from the "
            f"{len(class_ids)} of store {first.path}: give the stores' dataset"
        )
    # Stores of imported logits carry "classes:<hash>": only their class ids can be checked.
    if not str(fingerprint).startswith("classes:") and dataset["fingerprint"] != fingerprint:
        raise PlantkitInputError(
            f"--data {data_root} has fingerprint {dataset['fingerprint']} but store "
            f"{first.path} has {fingerprint}: give the stores' dataset"
        )


def _train_counts(stores, dataset: dict | None) -> tuple[np.ndarray | None, str | None]:
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


def _image_counts(train_counts, split_images: dict[str, np.ndarray]
                  ) -> tuple[np.ndarray, list[str]]:
    """Images per species over every split whose counts are known (train + val + test when
    all are), the x axis of the reference study's accuracy-against-count views."""
    parts = dict(split_images)
    if train_counts is not None:
        parts = {"train": train_counts, **{s: c for s, c in parts.items() if s != "train"}}
    total = sum(parts.values())
    return np.asarray(total, dtype=np.int64), list(parts)


# --- the per-class table ----------------------------------------------------------------


def per_class_table(report: dict, split: str, *, expert: str | None = None,
                    species: Sequence[str] = (), worst: int | None = None,
                    best: int | None = None) -> dict:
    """Rows of the per-class table: one model's accuracy per species, sorted by train count.

    `expert` None: the best model by top-1 on `split`. `species` (class ids or names) keeps
    only those; `worst`/`best` keep the N lowest/highest accuracies among the rest (both:
    the union). Species absent from the split have accuracy None and are never worst/best.
    """
    section = report["splits"].get(split)
    if section is None:
        raise PlantkitInputError(
            f"--split {split}: not in the report (it has {', '.join(report['splits'])})"
        )
    model = _chosen_model(report, split, expert)
    result = model["results"][split]
    accuracy = np.array(
        [np.nan if v is None else v for v in result["per_class_accuracy"]], dtype=float
    )
    keep = _species_indices(report, species)
    if worst is not None or best is not None:
        present = [i for i in keep if not math.isnan(accuracy[i])]
        # stable sort: equal accuracies keep class-index order
        order = sorted(present, key=lambda i: accuracy[i])
        picked = set(order[:worst] if worst else [])
        picked |= set(order[::-1][:best] if best else [])
        keep = [i for i in keep if i in picked]
    train_counts = report["train_counts"]
    class_images = section["class_images"]
    if train_counts is not None:
        keep.sort(key=lambda i: (-train_counts[i], i))
        sorted_by = "train images"
    else:
        keep.sort(key=lambda i: (-class_images[i], i))
        sorted_by = f"{split} images (no train counts)"
    rows = [
        {
            "class_index": i,
            "class_id": report["classes"]["ids"][i],
            "name": report["classes"]["names"][i],
            "train_images": None if train_counts is None else train_counts[i],
            "split_images": class_images[i],
            "accuracy": None if math.isnan(accuracy[i]) else float(accuracy[i]),
        }
        for i in keep
    ]
    return {"split": split, "model": model["name"], "kind": model["kind"],
            "sorted_by": sorted_by, "rows": rows}


def check_per_class(outline: dict, *, expert: str | None = None,
                    species: Sequence[str] = ()) -> None:
    """Refuse an unknown --expert or --species before any store is evaluated.

    `outline`: what `build_report` passes to `before_evaluation` (or a whole report).
    """
    split = list(outline["splits"])[-1]
    if expert is not None:
        _named_model(outline["models"], expert, split, lambda m: split in m["splits"])
    _species_indices(outline, species)


def _named_model(models: list[dict], name: str, split: str, holds: Callable[[dict], bool]
                 ) -> dict:
    for model in models:
        if model["name"] == name:
            if not holds(model):
                raise PlantkitInputError(f"--expert {name}: its store has no {split} split")
            return model
    raise PlantkitInputError(
        f"--expert {name}: no such expert or combination (have: "
        f"{', '.join(m['name'] for m in models)})"
    )


def _chosen_model(report: dict, split: str, name: str | None) -> dict:
    having = [m for m in report["models"] if split in m["results"]]
    if name is not None:
        return _named_model(report["models"], name, split, lambda m: split in m["results"])
    if not having:
        raise PlantkitInputError(f"no store holds the {split} split")
    return max(having, key=lambda m: m["results"][split]["top1"] or 0.0)


def _species_indices(report: dict, species: Sequence[str]) -> list[int]:
    ids = report["classes"]["ids"]
    if not species:
        return list(range(len(ids)))
    index = {c: i for i, c in enumerate(ids)}
    by_name = {n.lower(): i for i, n in enumerate(report["classes"]["names"])}
    picked = []
    for wanted in species:
        i = index.get(str(wanted), by_name.get(str(wanted).lower()))
        if i is None:
            raise PlantkitInputError(
                f"--species {wanted}: not a class id or species name of the stores "
                f"(ids such as {', '.join(ids[:3])})"
            )
        picked.append(i)
    return list(dict.fromkeys(picked))


# --- JSON -------------------------------------------------------------------------------


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return float(value)
    return None


__all__ = [
    "AVERAGE_K",
    "BUCKET_RULES",
    "COLUMNS",
    "build_report",
    "check_per_class",
    "topk_keys",
    "collect_store_paths",
    "grouped_notes",
    "per_class_table",
    "read_history",
    "rows_to_read",
    "species_names",
]
