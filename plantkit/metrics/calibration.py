"""Calibration of the top-1 confidence: reliability bins and the expected calibration error."""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15


def reliability_bins(conf, correct, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Equal-width bins of top-1 confidence: edges (n_bins+1), mean confidence, accuracy and
    row count per bin (NaN where empty).

    A bin holds (lower, upper], the first one [0, upper], as scikit-learn's calibration_curve.
    """
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], conf)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "confidence": mean_conf, "accuracy": accuracy, "count": count}


def ece(conf, correct, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error: row-weighted mean |accuracy - confidence| over the bins."""
    bins = reliability_bins(conf, correct, n_bins)
    filled = bins["count"] > 0
    if not filled.any():
        return math.nan
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float((gaps * bins["count"][filled]).sum() / bins["count"].sum())
