"""A whole split, a whole store: every metric as one JSON-able dict (keys: docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from plantkit.errors import PlantkitInputError
from plantkit.metrics import accuracy
from plantkit.metrics.average_k import TopValues, average_k_thresholds
from plantkit.metrics.bootstrap import bootstrap_ci
from plantkit.metrics.calibration import ece, reliability_bins
from plantkit.metrics.jsonform import to_plain
from plantkit.metrics.rows import RowScores, score_rows, true_class_rank
from plantkit.metrics.views import accuracy_by_count, count_by_accuracy_bin

# The dataset authors' recipe (`--k 1 3 5 10`): top-k and average-k for these k.
DEFAULT_KS = (1, 3, 5, 10)
DEFAULT_AVG_KS = DEFAULT_KS
# Per-species top-k kept beside per-species top-1 (the report's per-species views).
PER_CLASS_TOP_K = 5


def parse_ks(text: str | Sequence[int] | None, option: str = "--k") -> tuple[int, ...]:
    """The k of top-k and average-k from a comma-separated list ("1,3,5,10"), sorted and
    unique; None gives DEFAULT_KS. `plantkit report --k` and `plantkit combine --k`."""
    if text is None:
        return DEFAULT_KS
    parts = (text.replace(",", " ").split() if isinstance(text, str)
             else [str(k) for k in text])
    try:
        ks = sorted({int(part) for part in parts})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise PlantkitInputError(
            f"{option} {text!r}: give a comma-separated list of k >= 1, e.g. 1,3,5,10"
        )
    return tuple(ks)


def split_scores(rows: RowScores, labels, num_classes: int, *,
                 ks: Sequence[int] = (1,), set_sizes: Mapping[int, float] | None = None,
                 per_class_top1=None) -> dict:
    """The headline numbers of one split: top-k and macro top-k for each k, average-k, its
    macro and mean set size for each k in rows.covered, NLL and ECE (plain floats, NaN kept).

    What `plantkit report`, `plantkit combine` and combination.json print and store for a
    split. Mean set sizes come from rows.set_size, or from `set_sizes` for rows scored
    without per-row sizes (val, whose thresholds were fitted in the same pass).
    `per_class_top1`: the split's per-class top-1 when the caller has it already.
    """
    labels = np.asarray(labels, dtype=np.int64)
    result: dict = {}
    for k in ks:
        result[f"top{k}"] = accuracy.topk_accuracy(rows, k)
        result[f"macro_top{k}"] = (
            accuracy.macro_mean(per_class_top1) if k == 1 and per_class_top1 is not None
            else accuracy.macro_topk_accuracy(rows, labels, k, num_classes))
    for k in rows.covered:
        result[f"avg{k}"] = accuracy.average_k_accuracy(rows, k)
        result[f"macro_avg{k}"] = accuracy.macro_average_k_accuracy(rows, labels, k, num_classes)
        result[f"avg{k}_set_size"] = (
            accuracy.mean_set_size(rows, k) if k in rows.set_size else (set_sizes or {}).get(k)
        )
    result["nll"] = accuracy.nll_mean(rows)
    result["ece"] = ece(rows.conf, rows.hits(1))
    return result


def split_accuracy(store, split: str, ks: Sequence[int] = (1,), *,
                   chunk_rows: int = 4096) -> dict:
    """{"top{k}", "macro_top{k}"} of one split of an open store, read chunk by chunk (only
    true-class ranks, the tie rule of every plantkit metric): `plantkit train`'s summary."""
    labels = store.labels(split)
    ranks = [true_class_rank(chunk, labels[start:start + len(chunk)])
             for start, chunk in store.iter_logits(split, chunk_rows)]
    rank = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int32)
    return accuracy.accuracy_scores(rank, labels, store.num_classes, ks)


def summarise_split(rows: RowScores, labels, num_classes: int, *,
                    ks: Sequence[int] = DEFAULT_KS, train_counts=None, image_counts=None,
                    set_sizes: Mapping[int, float] | None = None, bootstrap: int = 0,
                    seed: int = 0) -> dict:
    """Every metric of one split as a JSON-able dict (NaN becomes None); keys in docs/metrics.md.

    Average-k entries appear for the k in rows.covered; their mean set size comes from
    rows.set_size, or from `set_sizes` for rows scored without per-row sizes (val, whose
    thresholds were fitted in the same pass).
    """
    labels = np.asarray(labels, dtype=np.int64)
    per_class = accuracy.per_class_accuracy(rows, labels, num_classes)
    present = ~np.isnan(per_class)
    result: dict = {"rows": len(rows), "classes_present": int(present.sum())}
    scores = split_scores(rows, labels, num_classes, ks=ks, set_sizes=set_sizes,
                          per_class_top1=per_class)
    nll, ece_value = scores.pop("nll"), scores.pop("ece")
    result.update(scores)
    result["species_above_90"] = accuracy.species_above(per_class, accuracy.ABOVE_ACCURACY)
    result["species_at_0"] = int((per_class[present] == 0).sum())
    result["nll"] = nll
    result["ece"] = ece_value
    reliability = reliability_bins(rows.conf, rows.hits(1))
    result["reliability"] = {key: value.tolist() for key, value in reliability.items()}
    if train_counts is not None:
        result.update(accuracy.shot_summary(per_class, train_counts))
    else:
        result.update(many=None, medium=None, few=None, shot_classes=None)
    result["per_class_accuracy"] = per_class.tolist()
    result[f"per_class_top{PER_CLASS_TOP_K}"] = accuracy.per_class_accuracy(
        rows, labels, num_classes, k=PER_CLASS_TOP_K).tolist()
    result["per_class_rows"] = np.bincount(labels, minlength=num_classes).tolist()
    if image_counts is not None:
        result["accuracy_by_count"] = accuracy_by_count(per_class, image_counts)
        result["count_by_accuracy"] = count_by_accuracy_bin(per_class, image_counts)
    result["bootstrap"] = None
    if bootstrap:
        intervals = bootstrap_ci(rows, labels, num_classes, n=bootstrap, seed=seed)
        result["bootstrap"] = {"resamples": int(bootstrap), "seed": int(seed), "level": 0.95,
                               **intervals}
    return to_plain(result)


def score_split(store, split: str, thresholds: Mapping[int, float] | None = None, *,
                top_values: TopValues | None = None, chunk_rows: int = 4096,
                advance: Callable[[int], None] | None = None) -> RowScores:
    """RowScores of one split of an open prediction store, read chunk by chunk."""
    labels = store.labels(split)
    parts = []
    for start, chunk in store.iter_logits(split, chunk_rows, as_stored=True):
        parts.append(score_rows(chunk, labels[start:start + len(chunk)],
                                thresholds=thresholds, top_values=top_values))
        if advance is not None:
            advance(len(chunk))
    return RowScores.concat(parts)


def _usable_avg_ks(num_classes: int, avg_ks: Sequence[int]) -> list[int]:
    return sorted({int(k) for k in avg_ks if 1 <= int(k) < num_classes})


def evaluation_rows(store, splits: Sequence[str] = ("val", "test"),
                    avg_ks: Sequence[int] = DEFAULT_AVG_KS) -> int:
    """Rows `evaluate_store` reads (a progress total): each split once, val also when it is
    needed for average-k thresholds only."""
    read = {s for s in splits if s in store.splits}
    if _usable_avg_ks(store.num_classes, avg_ks) and "val" in store.splits:
        read.add("val")
    return sum(store.num_rows(s) for s in read)


def class_image_counts(store) -> tuple[np.ndarray, str]:
    """Images per class over every split the store knows of, and which splits those are
    ("train+val+test"); train comes from the store's train counts when it has them."""
    counts = np.zeros(store.num_classes, dtype=np.int64)
    basis = []
    train_counts = store.train_counts
    if train_counts is not None:
        counts += np.asarray(train_counts, dtype=np.int64)
        basis.append("train")
    for split in store.splits:
        if split == "train" and train_counts is not None:
            continue
        counts += np.bincount(store.labels(split), minlength=store.num_classes)
        basis.append(split)
    return counts, "+".join(basis)


def _store_notes(store, splits: Sequence[str], wanted_avg_ks: list[int],
                 usable_avg_ks: list[int]) -> list[str]:
    """What `evaluate_store` cannot report for this store, and why."""
    num_classes = store.num_classes
    notes = []
    if len(usable_avg_ks) < len(wanted_avg_ks):
        skipped = ", ".join(str(k) for k in wanted_avg_ks if k not in usable_avg_ks)
        notes.append(f"average-k for k={skipped} skipped: k must be 1 to {num_classes - 1} "
                     f"for {num_classes} classes")
    if usable_avg_ks and "val" not in store.splits:
        notes.append(f"{store.name} has no val split: average-k needs thresholds fitted on "
                     "val, so it is not reported")
    if store.train_counts is None:
        notes.append(f"{store.name} has no train counts: many/medium/few-shot accuracy is not "
                     "reported")
    notes.extend(f"{store.name} has no {split} split" for split in splits
                 if split not in store.splits)
    return notes


def evaluate_store(store, *, splits: Sequence[str] = ("val", "test"),
                   ks: Sequence[int] = DEFAULT_KS, avg_ks: Sequence[int] = DEFAULT_AVG_KS,
                   bootstrap: int = 0, seed: int = 0, chunk_rows: int = 4096,
                   advance: Callable[[int], None] | None = None) -> dict:
    """Every metric of an open prediction store's splits, as one JSON-able dict.

    Average-k thresholds are fitted on the store's val split (whether or not val is among
    `splits`) and reused on every other split; without val, average-k entries are None.
    Splits the store lacks, and other missing inputs, are listed in "notes". `advance(n)`
    is called after every chunk of n rows (total: `evaluation_rows`). Keys: docs/metrics.md.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise PlantkitInputError(f"top-k needs k >= 1, got {list(ks)}")
    num_classes = store.num_classes
    wanted_avg_ks = sorted({int(k) for k in avg_ks})
    usable_avg_ks = _usable_avg_ks(num_classes, avg_ks)
    notes = _store_notes(store, splits, wanted_avg_ks, usable_avg_ks)
    train_counts = store.train_counts
    image_counts, count_basis = class_image_counts(store)

    def summary(split: str, rows: RowScores, set_sizes=None) -> dict:
        result = summarise_split(rows, store.labels(split), num_classes, ks=ks,
                                 train_counts=train_counts, image_counts=image_counts,
                                 set_sizes=set_sizes, bootstrap=bootstrap, seed=seed)
        for k in wanted_avg_ks:
            for key in (f"avg{k}", f"macro_avg{k}", f"avg{k}_set_size"):
                result.setdefault(key, None)
        return result

    results = {}
    thresholds: dict[int, float] = {}
    if usable_avg_ks and "val" in store.splits:
        # One pass over val scores it and collects the probabilities the thresholds need.
        n_val = store.num_rows("val")
        top_values = TopValues.for_average_k(n_val, usable_avg_ks)
        val_rows = score_split(store, "val", top_values=top_values, chunk_rows=chunk_rows,
                               advance=advance)
        thresholds = average_k_thresholds(top_values, n_val, usable_avg_ks)
        if "val" in splits:
            set_sizes = {k: top_values.count_at_least(t) / n_val for k, t in thresholds.items()}
            results["val"] = summary("val", val_rows.with_coverage(thresholds), set_sizes)
    for split in splits:
        if split in store.splits and split not in results:
            results[split] = summary(split, score_split(store, split, thresholds,
                                                        chunk_rows=chunk_rows, advance=advance))

    return to_plain({
        "name": store.name,
        "kind": store.kind,
        "num_classes": num_classes,
        "ks": ks,
        "avg_ks": wanted_avg_ks,
        "average_k": {"fitted_on": "val" if thresholds else None,
                      "thresholds": {str(k): v for k, v in thresholds.items()}},
        "train_counts": None if train_counts is None else np.asarray(train_counts).tolist(),
        "image_counts": image_counts.tolist(),
        "count_basis": count_basis,
        "notes": notes,
        "splits": {split: results[split] for split in splits if split in results},
    })
