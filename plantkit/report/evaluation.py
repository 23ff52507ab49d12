"""Each store's model entry of the report: its evaluation (`metrics.evaluate_store`), cost,
history and notes, computed in this process or in a pool of processes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from plantkit import metrics
from plantkit.artifacts import COMBINATION_FILE, HISTORY_FILE, read_json
from plantkit.choices import default_workers
from plantkit.errors import PlantkitInputError
from plantkit.measured_cost import read_measured_cost
from plantkit.metrics import to_plain
from plantkit.parent_watch import exit_with
from plantkit.report.columns import ACCURACY_BIN_WIDTH, AVERAGE_K
from plantkit.report.history import read_history
from plantkit.report.train_options import read_options
from plantkit.store import open_store

# combination.json's keys a report's model entry carries for a combination.
COMBINATION_KEYS = ("method", "experts", "params", "expected_gflops", "expected_gflops_val")


def evaluate_all(stores, chosen: list[str], train_counts, evaluation: dict,
                 workers: int | None, advance: Callable[[int], None] | None) -> list[dict]:
    """Every store's model entry, in the stores' order; `evaluation`: evaluate_store's ks,
    avg_ks, bootstrap, seed. `workers` None: plantkit.choices.default_workers()."""
    if workers is None:
        workers = default_workers()  # each process holds a few chunks (~200 MB)
    workers = max(1, min(workers, len(stores)))
    if workers == 1:
        return [_evaluate_model(s, chosen, train_counts, evaluation, advance) for s in stores]
    # A store is a second of single-threaded NumPy: one process per core divides the wall
    # time by the cores. Spawned, not forked: the parent holds open HDF5 files. (A fork
    # server that imports scikit-learn once saved CPU but no wall time on 2 cores, and it
    # outlived a parent killed with SIGKILL.)
    rows = [metrics.evaluation_rows(s, [x for x in chosen if x in s.splits],
                                    avg_ks=evaluation["avg_ks"]) for s in stores]
    context = multiprocessing.get_context("spawn")
    models: list[dict | None] = [None] * len(stores)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with,
                             initargs=(os.getpid(),)) as pool:
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
    done = [m for m in models if m is not None]
    if len(done) != len(models):  # as_completed yields every future or raises
        raise RuntimeError("a store's evaluation went missing")
    return done


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
    gflops = _number(attrs.get("gflops"))
    folder = Path(store.path).parent
    history = read_history(folder / HISTORY_FILE)
    measured = read_measured_cost(folder)
    combination = _combination_summary(folder) if store.kind == "combination" else None
    return {
        "name": store.name,
        "kind": store.kind,
        "store": str(store.path),
        "architecture": attrs.get("architecture"),
        "params": _number(attrs.get("params")),
        "gflops": gflops,
        # what `plantkit classify` last measured with this model (plantkit.measured_cost)
        "measured_gflops": _number((measured or {}).get("measured_gflops_per_image")),
        "measured_cost": measured,
        "combination": combination,
        # an expert's long-tail options from train_config.json (plantkit.report.train_options)
        "training_options": read_options(folder) if store.kind == "expert" else None,
        "splits": list(store.splits),
        # class_names would repeat the report's classes.names for every model
        "attrs": {k: v for k, v in attrs.items() if k != "class_names"},
        "history": history,
        "evaluation": evaluation,
        "results": results,
        "notes": _model_notes(store, chosen, held, gflops, history),
    }


def _combination_summary(folder: Path) -> dict | None:
    """What combination.json beside a combination store says was fitted (method, experts,
    params, expected GFLOPs on val and test); None when it is missing or unreadable."""
    try:
        document = read_json(folder / COMBINATION_FILE, "the combination's document")
    except PlantkitInputError:  # a store copied without its folder: the numbers stay
        return None
    return {key: document.get(key) for key in COMBINATION_KEYS}


def _model_notes(store, chosen: list[str], held: list[str], gflops, history) -> list[str]:
    """What one store lacks. Notes name no model: the same note for several models is shown
    once, naming them (`columns.grouped_notes`)."""
    notes = [f"no {split} split in the store" for split in chosen if split not in held]
    if "val" not in store.splits and held:
        notes.append(f"no val split: average-{AVERAGE_K} needs thresholds fitted on val")
    for split in held:
        skipped = len(store.skipped_paths(split))
        if skipped:
            notes.append(f"{skipped} corrupt {split} image{'s' if skipped != 1 else ''} "
                         "skipped when predicting: not in the store, nor in its scores")
    if gflops is None:
        notes.append("no gflops attribute: cost unknown")
    if history is None and store.kind == "expert":
        notes.append(f"no {HISTORY_FILE} beside the store: no training curves")
    return notes


def _number(value) -> int | float | None:
    """A numeric attribute in its JSON form (`to_plain`), or None when it is not a finite
    number (missing, a bool, text, NaN)."""
    value = to_plain(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def class_accuracy(result: dict) -> np.ndarray:
    """A result's per-class accuracy as floats, NaN for the classes absent from the split."""
    return np.array(
        [np.nan if v is None else v for v in result["per_class_accuracy"]], dtype=float
    )


def _add_shots(result: dict, train_counts: np.ndarray) -> None:
    """Many/medium/few from train counts the store lacks (given by --data)."""
    result.update(metrics.shot_summary(class_accuracy(result), train_counts))


def set_views(result: dict, image_counts: np.ndarray) -> None:
    """The reference study's two views, over the report's common image counts (every model
    on the same x axis, whatever splits its own store holds)."""
    per_class = class_accuracy(result)
    result["accuracy_by_count"] = metrics.accuracy_by_count(per_class, image_counts)
    result["count_by_accuracy"] = metrics.count_by_accuracy_bin(
        per_class, image_counts, bin_width=ACCURACY_BIN_WIDTH
    )


__all__ = ["evaluate_all", "class_accuracy", "set_views"]
