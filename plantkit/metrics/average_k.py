"""Average-k (the dataset authors' definition): thresholds fitted on val probabilities.

lambda_k is the midpoint of the (k*N)-th and (k*N+1)-th largest of val's N x C
probabilities; prediction sets {c : p_c >= lambda_k} then hold k labels per val row on
average. `TopValues` keeps only the k_max*N + 1 largest probabilities while val streams by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from plantkit.errors import PlantkitInputError


def float32_at_least(threshold: float) -> np.float32:
    """The smallest float32 >= threshold: for float32 p, p >= it exactly when p >= threshold.

    A midpoint of two adjacent float32 values is not a float32; rounding it to nearest could
    let one of them cross the threshold.
    """
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise PlantkitInputError(f"average-k threshold must be a finite number, got {threshold}")
    cut = np.float32(threshold)
    if float(cut) < threshold:
        cut = np.nextafter(cut, np.float32(np.inf))
    return cut


class TopValues:
    """The n largest values over a stream of arrays (ties kept as often as they occur).

    It also counts the values equal to the n-th largest that it dropped, so `count_at_least`
    is exact for any threshold down to the n-th largest value.
    """

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"TopValues needs n >= 1, got {n}")
        self.n = int(n)
        self._kept = np.empty(0, dtype=np.float32)
        self._floor = np.float32(-np.inf)  # the n-th largest, once n values were seen
        self._dropped_at_floor = 0

    @classmethod
    def for_average_k(cls, n_rows: int, ks: Sequence[int]) -> TopValues:
        """Room for what average-k thresholds over n_rows val rows need: max(ks)*n_rows + 1."""
        return cls(max(int(k) for k in ks) * int(n_rows) + 1)

    @property
    def full(self) -> bool:
        return self._kept.size >= self.n

    def update(self, values) -> None:
        values = np.asarray(values, dtype=np.float32).ravel()
        was_full, old_floor = self.full, self._floor
        if was_full:
            # Values at or below the n-th largest cannot enter; those equal to it are counted.
            self._dropped_at_floor += int(np.count_nonzero(values == old_floor))
            values = values[values > old_floor]
            if not values.size:
                return
        merged = np.concatenate([self._kept, values])
        if merged.size <= self.n:
            self._kept = merged
            return
        cut = merged.size - self.n
        merged = np.partition(merged, cut)
        self._floor = merged[cut]
        dropped_at_floor = int(np.count_nonzero(merged[:cut] == self._floor))
        if was_full and self._floor == old_floor:
            self._dropped_at_floor += dropped_at_floor
        else:  # a higher floor: nothing dropped before can equal it
            self._dropped_at_floor = dropped_at_floor
        self._kept = merged[cut:].copy()

    def values(self) -> np.ndarray:
        """The kept values, largest first."""
        return np.sort(self._kept)[::-1]

    def count_at_least(self, threshold: float) -> int:
        """How many values seen so far are >= threshold (compared as float32 values are)."""
        cut = float32_at_least(threshold)
        kept = int(np.count_nonzero(self._kept >= cut))
        if not self.full or cut > self._floor:
            return kept
        if cut == self._floor:
            return kept + self._dropped_at_floor
        raise ValueError(
            f"threshold {threshold} is below the {self.n}-th largest value {self._floor}: the "
            "values below it were not kept"
        )


def average_k_threshold(sorted_desc_values, k: int, n_rows: int) -> float:
    """lambda_k: midpoint of the (k*N)-th and (k*N+1)-th largest val probabilities.

    The dataset authors' definition: sets {c : p_c >= lambda_k} then hold k labels per row on
    average over val, or more where lambda_k falls between equal probabilities.
    """
    m = int(k) * int(n_rows)
    values = np.asarray(sorted_desc_values)
    if k < 1 or n_rows < 1:
        raise PlantkitInputError(f"average-k needs k >= 1 and rows >= 1, got k={k}, {n_rows}")
    if values.size <= m:
        raise PlantkitInputError(
            f"average-k with k={k} over {n_rows} rows needs the {m + 1} largest probabilities, "
            f"got {values.size}: k must be below the number of classes"
        )
    return 0.5 * (float(values[m - 1]) + float(values[m]))


def average_k_thresholds(top_values: TopValues, n_rows: int,
                         ks: Sequence[int]) -> dict[int, float]:
    """lambda_k for each k from the val probabilities collected in `top_values`
    (`TopValues.for_average_k(n_rows, ks)`, filled by `score_rows(..., top_values=)`)."""
    ks = sorted({int(k) for k in ks})
    if not ks:
        return {}
    if top_values.n < ks[-1] * n_rows + 1:
        raise ValueError(f"top_values keeps {top_values.n} values; k={ks[-1]} over {n_rows} "
                         f"rows needs {ks[-1] * n_rows + 1}")
    values = top_values.values()
    return {k: average_k_threshold(values, k, n_rows) for k in ks}
