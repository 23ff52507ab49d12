"""Bootstrap intervals of top-1 and macro top-1, vectorised over resamples."""

from __future__ import annotations

import math

import numpy as np

from plantkit.metrics.rows import RowScores


def bootstrap_ci(rows: RowScores, labels, num_classes: int, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of top-1 and macro top-1 over `n` seeded resamples of the rows.

    Each resample draws N rows with replacement; its macro top-1 averages over the classes
    present in that resample.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_rows = len(labels)
    if n < 1 or n_rows == 0:
        return {"top1": (math.nan, math.nan), "macro_top1": (math.nan, math.nan)}
    rng = np.random.default_rng(seed)
    top1, macro = np.empty(n), np.empty(n)
    # Blocks of about 4M drawn rows: tens of MB at a time, whatever n is.
    block = max(1, 4_000_000 // n_rows)
    for first in range(0, n, block):
        picks = rng.integers(0, n_rows, size=(min(block, n - first), n_rows), dtype=np.int32)
        top1[first:first + len(picks)], macro[first:first + len(picks)] = _resample_scores(
            rows.hits(1), labels, num_classes, picks)
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(top1, [tail, 1.0 - tail])
    macro_lo, macro_hi = np.quantile(macro, [tail, 1.0 - tail])
    return {"top1": (float(lo), float(hi)), "macro_top1": (float(macro_lo), float(macro_hi))}


def _resample_scores(hits: np.ndarray, labels: np.ndarray, num_classes: int,
                     picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 and macro top-1 of each resample; picks is resamples x rows of row indices."""
    n_resamples = len(picks)
    # One code per row, class * 2 + hit; one bincount over (resample, code) then counts the
    # rows and the hits of every class in every resample at once.
    codes = (labels * 2 + hits).astype(np.int32)
    offsets = np.arange(n_resamples, dtype=np.int64)[:, None] * (2 * num_classes)
    keys = (codes[picks] + offsets).ravel()
    counts = np.bincount(keys, minlength=n_resamples * 2 * num_classes)
    counts = counts.reshape(n_resamples, num_classes, 2)
    correct = counts[:, :, 1]
    seen = counts.sum(axis=2)
    present = seen > 0
    per_class = np.divide(correct, seen, out=np.zeros(seen.shape), where=present)
    top1 = correct.sum(axis=1) / picks.shape[1]
    return top1, per_class.sum(axis=1) / present.sum(axis=1)
