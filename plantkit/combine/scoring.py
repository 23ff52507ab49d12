"""Scores of a combination's output, accumulated chunk by chunk with plantkit.metrics.

Every number is plantkit.metrics' (`split_scores`): top-k and macro top-k under its tie rule,
average-k with thresholds fitted on the combination's own val output and reused on test,
NLL and ECE; `plantkit report` on the saved store prints the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from plantkit import metrics

FIT_SPLIT = "val"  # average-k thresholds are fitted here (streamed first) and reused after


class CombinationScores:
    """One combination's scores on every split, fed row chunks of log-probabilities.

    The streaming pass hands over the whole val split before any test row, so val's
    average-k thresholds are known when test arrives.
    """

    def __init__(self, labels: Mapping[str, np.ndarray], num_classes: int,
                 ks: Sequence[int] = metrics.DEFAULT_KS,
                 avg_ks: Sequence[int] | None = None):
        self.labels = {split: np.asarray(y) for split, y in labels.items()}
        self.num_classes = num_classes
        self.ks = sorted({int(k) for k in ks})
        self.wanted_avg_ks = self.ks if avg_ks is None else sorted({int(k) for k in avg_ks})
        self.avg_ks = [k for k in self.wanted_avg_ks if 1 <= k < num_classes]
        self._parts: dict[str, list[tuple[int, metrics.RowScores]]] = {s: [] for s in labels}
        n_val = len(self.labels.get(FIT_SPLIT, ()))
        self._top_values = (metrics.TopValues.for_average_k(n_val, self.avg_ks)
                            if self.avg_ks and n_val else None)
        self._val_rows_seen = 0
        self._thresholds: dict[int, float] | None = None

    def update(self, split: str, rows: slice, log_probs: np.ndarray) -> None:
        labels = self.labels[split][rows]
        if split == FIT_SPLIT:
            if self._thresholds is not None:
                raise RuntimeError("val rows arrived after its average-k thresholds were fitted")
            scored = metrics.score_rows(log_probs, labels, top_values=self._top_values)
            self._val_rows_seen += len(labels)
        else:
            scored = metrics.score_rows(log_probs, labels, thresholds=self.thresholds())
        self._parts[split].append((rows.start, scored))

    def thresholds(self) -> dict[int, float]:
        """val's average-k thresholds (fitted once every val row was seen)."""
        if self._thresholds is None:
            if self._top_values is None:
                self._thresholds = {}
            else:
                n_val = len(self.labels[FIT_SPLIT])
                if self._val_rows_seen != n_val:
                    raise RuntimeError(f"average-k thresholds need all {n_val} val rows, "
                                       f"{self._val_rows_seen} were scored")
                self._thresholds = metrics.average_k_thresholds(self._top_values, n_val,
                                                                self.avg_ks)
        return self._thresholds

    def result(self, split: str) -> dict:
        """metrics.split_scores of the split (rows put back in order)."""
        parts = [scored for _, scored in sorted(self._parts[split], key=lambda p: p[0])]
        rows = metrics.RowScores.concat(parts)
        set_sizes = None
        if split == FIT_SPLIT:
            thresholds = self.thresholds()
            rows = rows.with_coverage(thresholds)
            n_val = max(len(rows), 1)
            top_values = self._top_values  # None: no average-k, so no thresholds either
            set_sizes = {} if top_values is None else {
                k: top_values.count_at_least(t) / n_val for k, t in thresholds.items()}
        result = metrics.split_scores(rows, self.labels[split], self.num_classes, ks=self.ks,
                                      set_sizes=set_sizes)
        for k in self.wanted_avg_ks:  # k >= classes: None, as in the report
            for key in (f"avg{k}", f"macro_avg{k}", f"avg{k}_set_size"):
                result.setdefault(key, None)
        return result
