"""Scores of a combination's output, accumulated chunk by chunk with plantkit.metrics."""

from __future__ import annotations

import numpy as np

from plantkit import metrics


class SplitScores:
    """Top-1, macro top-1, NLL and ECE of one split, fed row chunks of log-probabilities."""

    def __init__(self, labels: np.ndarray, num_classes: int):
        self.labels = np.asarray(labels)
        self.num_classes = num_classes
        self._parts: list[metrics.RowScores] = []

    def update(self, rows: slice, log_probs: np.ndarray) -> None:
        self._parts.append(metrics.score_rows(log_probs, self.labels[rows]))

    def result(self) -> dict[str, float]:
        return scores_of(metrics.RowScores.concat(self._parts), self.labels, self.num_classes)


def scores_of(rows: metrics.RowScores, labels, num_classes: int) -> dict[str, float]:
    """The four numbers every combination reports for a split."""
    return {
        "top1": metrics.topk_accuracy(rows, 1),
        "macro_top1": metrics.macro_topk_accuracy(rows, labels, 1, num_classes),
        "nll": metrics.nll_mean(rows),
        "ece": metrics.ece(rows.conf, rows.hits(1)),
    }


def hit_scores(pred: np.ndarray, labels, num_classes: int) -> dict[str, float]:
    """Top-1 and macro top-1 from predicted classes (argmax, lowest index on ties)."""
    hits = np.asarray(pred) == np.asarray(labels)
    per_class = metrics.per_class_mean(hits, labels, num_classes)
    present = per_class[~np.isnan(per_class)]
    return {"top1": float(hits.mean()) if hits.size else float("nan"),
            "macro_top1": float(present.mean()) if present.size else float("nan")}
