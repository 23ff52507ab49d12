"""The reference study's two views of per-species accuracy against image count."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Lower edges of the image-count bins of the reference study's accuracy-by-count view
# (1-10, 11-20, 21-50, ..., 2001+): roughly log-spaced, as the counts are.
COUNT_BIN_EDGES = (1, 11, 21, 51, 101, 201, 501, 1001, 2001)


def accuracy_by_count(per_class, class_counts,
                      lower_edges: Sequence[int] = COUNT_BIN_EDGES) -> dict[str, list]:
    """Mean per-class accuracy in image-count bins [lower_edges[i], lower_edges[i+1]-1], the
    last open-ended.

    Classes without an accuracy (NaN) or below the first edge are left out; an empty bin has
    mean NaN.
    """
    per_class = np.asarray(per_class, dtype=np.float64)
    counts = np.asarray(class_counts)
    edges = np.asarray(lower_edges)
    which = np.searchsorted(edges, counts, side="right") - 1
    used = ~np.isnan(per_class) & (which >= 0)
    n_bins = len(edges)
    classes = np.bincount(which[used], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(which[used], weights=per_class[used], minlength=n_bins) / classes
    upper = [int(e) - 1 for e in edges[1:]] + [None]
    labels = [f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in zip(edges, upper)]
    return {"bins": labels, "lower": [int(e) for e in edges], "upper": upper,
            "mean_accuracy": mean.tolist(), "classes": classes.tolist()}


def count_by_accuracy_bin(per_class, class_counts, bin_width: float = 0.01) -> dict[str, list]:
    """Mean image count of the classes in each accuracy bin [i*w, (i+1)*w); the last bin holds
    accuracy 1 exactly (101 bins for w=0.01).

    Classes without an accuracy (NaN) are left out; an empty bin has mean NaN.
    """
    per_class = np.asarray(per_class, dtype=np.float64)
    counts = np.asarray(class_counts, dtype=np.float64)
    n_bins = int(round(1.0 / bin_width)) + 1
    used = ~np.isnan(per_class)
    # The small nudge keeps 0.29 (28.999999999999996 bins in floating point) in the 29 bin;
    # accuracies are ratios of counts, far further than that from a bin edge.
    which = np.floor(per_class[used] / bin_width + 1e-9).astype(np.int64).clip(0, n_bins - 1)
    classes = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(which, weights=counts[used], minlength=n_bins) / classes
    return {"lower": [round(i * bin_width, 10) for i in range(n_bins)],
            "mean_count": mean.tolist(), "classes": classes.tolist()}
