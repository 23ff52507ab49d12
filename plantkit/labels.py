"""Validate label vectors once, for the store (on write) and the metrics (on score)."""

from __future__ import annotations

import numpy as np

from plantkit.errors import PlantkitInputError


def checked_labels(
    labels, n_rows: int, num_classes: int, *, where: str = "", row_offset: int = 0
) -> np.ndarray:
    """`labels` as int64 after checking shape (n_rows,), integer dtype and range 0..C-1.

    `where` prefixes every message (e.g. "split 'val': "); `row_offset` shifts the row
    number a message names (a chunk's first row in its split).
    """
    labels = np.asarray(labels)
    if labels.shape != (n_rows,):
        raise PlantkitInputError(
            f"{where}labels must be a vector of {n_rows} class indices (one per row), got "
            f"shape {labels.shape}"
        )
    if n_rows and labels.dtype.kind not in "iu":
        raise PlantkitInputError(f"{where}labels must be integer class indices, got {labels.dtype}")
    outside = (labels < 0) | (labels >= num_classes)
    if outside.any():
        row = int(np.argmax(outside))
        raise PlantkitInputError(
            f"{where}label {labels[row]} at row {row_offset + row} is not a class index in "
            f"0-{num_classes - 1}"
        )
    return labels.astype(np.int64, copy=False)
