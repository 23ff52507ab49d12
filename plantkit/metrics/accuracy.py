"""Accuracies from row scores: top-k and average-k, micro and macro, per class, by train count."""

from __future__ import annotations

import math

import numpy as np

from plantkit.errors import PlantkitInputError
from plantkit.metrics.rows import RowScores

ABOVE_ACCURACY = 0.9  # the reference study's "species above 90 %"
# Train images per species: many > 100, medium 20-100, few < 20 (the long-tail convention).
MANY_SHOT_ABOVE = 100
FEW_SHOT_BELOW = 20


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


def _macro(per_class: np.ndarray) -> float:
    present = per_class[~np.isnan(per_class)]
    return float(present.mean()) if present.size else math.nan


def topk_accuracy(rows: RowScores, k: int) -> float:
    """Share of rows whose true class is in the top k."""
    return _mean(rows.hits(k))


def per_class_accuracy(rows: RowScores, labels, num_classes: int, k: int = 1) -> np.ndarray:
    """Top-k accuracy of each class (its recall for k=1); NaN for classes absent from labels."""
    return per_class_mean(rows.hits(k), labels, num_classes)


def macro_topk_accuracy(rows: RowScores, labels, k: int, num_classes: int) -> float:
    """Mean over the classes present in labels of their top-k accuracy."""
    return _macro(per_class_accuracy(rows, labels, num_classes, k))


def average_k_accuracy(rows: RowScores, k: int) -> float:
    """Share of rows whose average-k set holds the true class."""
    return _mean(rows.covered[k])


def macro_average_k_accuracy(rows: RowScores, labels, k: int, num_classes: int) -> float:
    """Mean over the classes present in labels of their average-k accuracy."""
    return _macro(per_class_mean(rows.covered[k], labels, num_classes))


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
    """Class masks: many (> 100 train images), medium (20-100), few (< 20)."""
    counts = np.asarray(train_counts)
    return {
        "many": counts > MANY_SHOT_ABOVE,
        "medium": (counts >= FEW_SHOT_BELOW) & (counts <= MANY_SHOT_ABOVE),
        "few": counts < FEW_SHOT_BELOW,
    }


def shot_accuracy(per_class, train_counts) -> dict[str, float]:
    """Macro accuracy within the many/medium/few-shot buckets (NaN for a bucket with no class
    present)."""
    per_class = np.asarray(per_class, dtype=np.float64)
    if np.shape(train_counts) != per_class.shape:
        raise PlantkitInputError(
            f"train counts hold {np.size(train_counts)} classes, per-class accuracy "
            f"{per_class.size}"
        )
    return {name: _macro(per_class[mask]) for name, mask in shot_buckets(train_counts).items()}
