"""Per-row scores: each chunk of logits reduced to the few numbers every metric is built from.

Tie rule: the rank of the true class is the number of *other* classes scoring at least as
high, so a tie is never counted in the model's favour (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from plantkit.errors import PlantkitInputError
from plantkit.labels import checked_labels
from plantkit.metrics.average_k import TopValues, float32_at_least


def softmax(logits) -> np.ndarray:
    """Row-wise softmax in float32, shifted by each row's max so large logits cannot overflow."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


@dataclass(frozen=True)
class RowScores:
    """What each row contributes to every metric; arrays of one length N.

    rank: how many other classes score at least as high as the true class (0 = top-1 hit).
    p_true: softmax probability of the true class. pred: argmax class (lowest index on ties).
    conf: top-1 probability. nll: -log p_true, exact even where p_true underflows.
    set_size[k] / covered[k]: size of the average-k set {c : p_c >= threshold_k} and whether
    it holds the true class, for each threshold given to `score_rows`.
    """

    rank: np.ndarray
    p_true: np.ndarray
    pred: np.ndarray
    conf: np.ndarray
    nll: np.ndarray
    set_size: dict[int, np.ndarray] = field(default_factory=dict)
    covered: dict[int, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rank)

    def hits(self, k: int = 1) -> np.ndarray:
        """Top-k hit per row."""
        return self.rank < k

    def with_coverage(self, thresholds: Mapping[int, float]) -> RowScores:
        """These rows with covered[k] for new thresholds (from p_true) and no set sizes."""
        return replace(self, set_size={}, covered=_coverage(self.p_true, thresholds))

    @classmethod
    def concat(cls, parts: Sequence[RowScores]) -> RowScores:
        """Rows of several chunks, in order; the chunks must share their thresholds."""
        parts = list(parts)
        if not parts:
            empty_int, empty_float = np.empty(0, np.int32), np.empty(0, np.float32)
            return cls(empty_int, empty_float, empty_int, empty_float, empty_float)
        keys, covered_keys = set(parts[0].set_size), set(parts[0].covered)
        if any(set(p.set_size) != keys or set(p.covered) != covered_keys for p in parts):
            raise ValueError("RowScores.concat: the chunks were scored with different thresholds")

        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(
            joined("rank"), joined("p_true"), joined("pred"), joined("conf"), joined("nll"),
            {k: np.concatenate([p.set_size[k] for p in parts]) for k in sorted(keys)},
            {k: np.concatenate([p.covered[k] for p in parts]) for k in sorted(covered_keys)},
        )


def score_rows(logits, labels, *, thresholds: Mapping[int, float] | None = None,
               top_values: TopValues | None = None) -> RowScores:
    """Reduce a chunk of logits (N x C, any float dtype; computed in float32) to RowScores.

    `thresholds` maps k to the average-k probability threshold fitted on val; each gives
    set_size[k] and covered[k]. `top_values` also collects the chunk's probabilities, to fit
    those thresholds in the same pass over val.
    """
    scores = _checked_logits(logits)
    labels = checked_labels(labels, scores.shape[0], scores.shape[1])
    rows = np.arange(scores.shape[0])
    true_score = scores[rows, labels]
    rank = np.count_nonzero(scores >= true_score[:, None], axis=1).astype(np.int32) - 1
    pred = scores.argmax(axis=1).astype(np.int32)

    # softmax() inlined: the shifted logits and the normaliser also give NLL and confidence.
    shifted = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    total = probs.sum(axis=1)
    # log-sum-exp form: -log p_true stays finite where p_true itself underflows to 0.
    nll = np.log(total) - shifted[rows, labels]
    probs /= total[:, None]
    p_true = probs[rows, labels]
    conf = (1.0 / total).astype(np.float32)  # the max's shifted exp is exactly 1
    if top_values is not None:
        top_values.update(probs)

    set_size = {}
    for k, threshold in sorted((thresholds or {}).items()):
        set_size[int(k)] = np.count_nonzero(probs >= float32_at_least(threshold),
                                            axis=1).astype(np.int32)
    return RowScores(rank, p_true, pred, conf, nll.astype(np.float32), set_size,
                     _coverage(p_true, thresholds))


def _coverage(p_true: np.ndarray, thresholds: Mapping[int, float] | None) -> dict:
    return {int(k): p_true >= float32_at_least(threshold)
            for k, threshold in sorted((thresholds or {}).items())}


def _checked_logits(logits) -> np.ndarray:
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise PlantkitInputError(
            f"logits must be a rows x classes array, got shape {logits.shape}"
        )
    if logits.dtype.kind != "f":
        raise PlantkitInputError(f"logits must be floating point, got {logits.dtype}")
    logits = logits.astype(np.float32, copy=False)
    if not np.isfinite(logits).all():
        row = int(np.argwhere(~np.isfinite(logits))[0][0])
        raise PlantkitInputError(f"logits hold NaN or infinite values (first at row {row})")
    return logits


