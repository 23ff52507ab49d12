"""Accuracies from row scores: top-k and average-k, micro and macro, per class, by train count.

The one macro average (`macro_mean`: the mean over the classes present), the one per-class
top-1 (`per_class_recall`, scikit-learn's recall of the tie-rule predictions) and the one
definition of the many/medium/few-shot buckets live here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from plantkit.choices import FEW_SHOT_BELOW, MANY_SHOT_ABOVE
from plantkit.errors import PlantkitInputError
from plantkit.metrics.rows import RowScores

ABOVE_ACCURACY = 0.9  # the reference study's "species above 90 %"
# A row that is not a top-1 hit is predicted as this non-class for scikit-learn's recall:
# for recall only whether the prediction is the true class matters, not which class it is.
_MISS = -1


def _mean(values) -> float:
    values = np.asarray(values)
    return float(values.mean(dtype=np.float64)) if values.size else math.nan


def per_class_mean(values, labels, num_classes: int) -> np.ndarray:
    """Mean of a per-row value within each class (NaN for classes without rows)."""
    labels = np.asarray(labels)
    seen = np.bincount(labels, minlength=num_classes)
    total = np.bincount(labels, weights=np.asarray(values, dtype=np.float64),
                        minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, total / seen, np.nan)


def macro_mean(per_class) -> float:
    """The one macro average: the mean of per-class values over the classes present (NaN entries,
    classes without rows, left out); NaN when no class is present."""
    per_class = np.asarray(per_class, dtype=np.float64)
    present = per_class[~np.isnan(per_class)]
    return float(present.mean()) if present.size else math.nan


def per_class_recall(hits, labels, num_classes: int) -> np.ndarray:
    """Per-class top-1 accuracy (recall) with scikit-learn's `recall_score(average=None)`;
    NaN for classes without rows.

    `hits`: top-1 hits under plantkit's tie rule (`true_class_rank(...) == 0`), not argmax:
    a hit row is predicted as its true class, any other row as no class, so a tie never
    counts as recall (argmax would let the lowest index win it).
    """
    hits = np.asarray(hits, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    if hits.shape != labels.shape:
        raise ValueError(f"per_class_recall: {hits.shape} hits for {labels.shape} labels")
    if not labels.size:
        return np.full(num_classes, np.nan)
    # Imported on first use: importing sklearn.metrics costs a process 1 to 2 s.
    from sklearn.metrics import recall_score

    return recall_score(labels, np.where(hits, labels, _MISS), labels=np.arange(num_classes),
                        average=None, zero_division=np.nan).astype(np.float64)


def per_class_topk(rank, labels, num_classes: int, k: int = 1) -> np.ndarray:
    """Top-k accuracy of each class from true-class ranks; NaN for classes without rows.
    k = 1 is scikit-learn's recall (`per_class_recall`); scikit-learn has no per-class
    top-k, so k > 1 is plantkit's bincount (`per_class_mean`)."""
    hits = np.asarray(rank) < k
    if k == 1:
        return per_class_recall(hits, labels, num_classes)
    return per_class_mean(hits, labels, num_classes)


def accuracy_scores(rank, labels, num_classes: int, ks: Sequence[int] = (1,)) -> dict:
    """{"top{k}", "macro_top{k}"} for each k, from true-class ranks (`true_class_rank`)."""
    rank = np.asarray(rank)
    result = {}
    for k in ks:
        result[f"top{k}"] = _mean(rank < k)
        result[f"macro_top{k}"] = macro_mean(per_class_topk(rank, labels, num_classes, k))
    return result


def topk_accuracy(rows: RowScores, k: int) -> float:
    """Share of rows whose true class is in the top k."""
    return _mean(rows.hits(k))


def per_class_accuracy(rows: RowScores, labels, num_classes: int, k: int = 1) -> np.ndarray:
    """Top-k accuracy of each class (its recall for k=1); NaN for classes absent from labels."""
    return per_class_topk(rows.rank, labels, num_classes, k)


def macro_topk_accuracy(rows: RowScores, labels, k: int, num_classes: int) -> float:
    """Mean over the classes present in labels of their top-k accuracy."""
    return macro_mean(per_class_accuracy(rows, labels, num_classes, k))


def average_k_accuracy(rows: RowScores, k: int) -> float:
    """Share of rows whose average-k set holds the true class."""
    return _mean(rows.covered[k])


def macro_average_k_accuracy(rows: RowScores, labels, k: int, num_classes: int) -> float:
    """Mean over the classes present in labels of their average-k accuracy."""
    return macro_mean(per_class_mean(rows.covered[k], labels, num_classes))


def mean_set_size(rows: RowScores, k: int) -> float:
    """Mean size of the average-k sets (k on val by construction, unless ties widen them)."""
    return _mean(rows.set_size[k])


def nll_mean(rows: RowScores) -> float:
    """Mean negative log-likelihood of the true class (natural log)."""
    return _mean(rows.nll)


def species_above(per_class, accuracy: float = ABOVE_ACCURACY) -> int:
    """Number of classes with accuracy strictly above `accuracy` (absent classes not counted)."""
    per_class = np.asarray(per_class, dtype=np.float64)
    return int((per_class[~np.isnan(per_class)] > accuracy).sum())


def shot_buckets(train_counts) -> dict[str, np.ndarray]:
    """Class masks: many (> MANY_SHOT_ABOVE = 100 train images), medium (20-100 inclusive),
    few (< FEW_SHOT_BELOW = 20): `SHOT_RULES` in words."""
    counts = np.asarray(train_counts)
    return {
        "many": counts > MANY_SHOT_ABOVE,
        "medium": (counts >= FEW_SHOT_BELOW) & (counts <= MANY_SHOT_ABOVE),
        "few": counts < FEW_SHOT_BELOW,
    }


def shot_class_counts(train_counts, present=None) -> dict[str, int]:
    """Number of classes in each shot bucket; only those where the mask `present` is true
    when given."""
    buckets = shot_buckets(train_counts)
    if present is not None:
        buckets = {name: mask & np.asarray(present, dtype=bool) for name, mask in buckets.items()}
    return {name: int(mask.sum()) for name, mask in buckets.items()}


def shot_accuracy(per_class, train_counts) -> dict[str, float]:
    """Macro accuracy within the many/medium/few-shot buckets (NaN for a bucket with no class
    present)."""
    per_class = np.asarray(per_class, dtype=np.float64)
    if np.shape(train_counts) != per_class.shape:
        raise PlantkitInputError(
            f"train counts hold {np.size(train_counts)} classes, per-class accuracy "
            f"{per_class.size}"
        )
    return {name: macro_mean(per_class[mask])
            for name, mask in shot_buckets(train_counts).items()}


def shot_summary(per_class, train_counts) -> dict:
    """Many / medium / few-shot macro accuracy and "shot_classes": the classes present (not
    NaN in per_class) in each bucket."""
    per_class = np.asarray(per_class, dtype=np.float64)
    return {**shot_accuracy(per_class, train_counts),
            "shot_classes": shot_class_counts(train_counts, ~np.isnan(per_class))}
