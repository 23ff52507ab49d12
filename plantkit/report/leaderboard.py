"""Evaluate every prediction store and gather the report's numbers into one JSON-able dict.

`build_report` is the library side of `plantkit report`: the terminal tables
(`plantkit.report.tables`), `--json` and the HTML page (`plantkit.report.html`) all read
the dict it returns, so they never disagree. Missing inputs (a split a store does not hold,
no train counts, no GFLOPs, no history.csv) become None values and notes, never errors.

The parts: `inputs` (which stores and splits, their checks, what the dataset lends),
`evaluation` (each store's model entry, the process pool), `history` (history.csv),
`per_class` (the per-species table), `columns` (what the readers of the dict share); this
module assembles them and ranks each split's leaderboard.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from plantkit import metrics
from plantkit.metrics import to_plain
from plantkit.report import inputs
from plantkit.report.columns import AVERAGE_K, COLUMNS, MODEL_COLUMNS, column_k, topk_keys
from plantkit.report.evaluation import evaluate_all, set_views
from plantkit.store import open_store

REPORT_FORMAT = "plantkit-report"
REPORT_VERSION = 1


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
        inputs.check_stores(stores)
        chosen = inputs.chosen_splits(stores, splits)
        inputs.check_splits(stores, chosen)
        first = stores[0]
        fingerprint, class_ids = first.fingerprint, list(first.class_ids)
        dataset = None if data_root is None else inputs.dataset_info(
            data_root, first, class_ids, fingerprint)
        train_counts, counts_from = inputs.train_counts(stores, dataset)
        names, names_from = inputs.species_names(class_ids, first.attrs, dataset)
        # Every split held counts towards the images per species, whichever are reported.
        split_images = inputs.split_images(stores, chosen, len(class_ids))
        if before_evaluation is not None:
            before_evaluation({
                "splits": chosen,
                "classes": {"ids": class_ids, "names": names},
                "models": [{"name": s.name, "kind": s.kind, "splits": s.splits} for s in stores],
            })
        evaluation = {"ks": ks, "avg_ks": avg_ks, "bootstrap": bootstrap, "seed": seed}
        models = evaluate_all(stores, chosen, train_counts, evaluation, workers, advance)
    image_counts, image_counts_from = inputs.image_counts(train_counts, split_images)
    for model in models:
        for result in model["results"].values():
            set_views(result, image_counts)
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
        "splits": {split: _split_section(split, models, split_images[split], ks, avg_ks)
                   for split in chosen},
        "models": models,
        "notes": _report_notes(ks, avg_ks, train_counts is not None),
    }
    return to_plain(report)


def _report_notes(ks: Sequence[int], avg_ks: Sequence[int], has_train_counts: bool
                  ) -> list[str]:
    """Notes on the whole report: leaderboard columns of a k not asked for, no train counts."""
    notes = []
    unasked = [header for key, header, *_ in COLUMNS if column_k(key) is not None
               and column_k(key) not in (avg_ks if key.startswith("avg") else ks)]
    if unasked:
        notes.append(
            f"--k {','.join(map(str, ks))}: the leaderboard's {', '.join(unasked)} "
            "column(s) show '-' (that k was not asked for); the top-k table has every k")
    if not has_train_counts:
        notes.append(
            "no train counts in the stores: many/medium/few show '-' (give --data ROOT, or "
            "import logits with --train-counts)"
        )
    return notes


def _split_section(split: str, models: list[dict], class_images: np.ndarray,
                   ks: Sequence[int], avg_ks: Sequence[int]) -> dict:
    """One split of the report: its images, the leaderboard ranked by top-1, the best value
    of every column and the models without the split."""
    rows = []
    keys = list(dict.fromkeys([c[0] for c in COLUMNS if c[0] not in MODEL_COLUMNS]
                              + [f"avg{AVERAGE_K}_set_size"]
                              + topk_keys(ks, avg_ks)))
    for model in models:
        result = model["results"].get(split)
        row = {"name": model["name"], "kind": model["kind"],
               **{key: model.get(key) for key in MODEL_COLUMNS}}
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


__all__ = ["REPORT_FORMAT", "REPORT_VERSION", "build_report"]
