"""Per-row scores: each chunk of logits reduced to the few numbers every metric is built from.

Tie rule (`true_class_rank`, the only definition of a hit in plantkit): the rank of the
true class is the number of *other* classes scoring at least as high, so a tie is never
counted in the model's favour (docs/metrics.md). Softmax and log-softmax are scipy's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import special

from plantkit.errors import PlantkitInputError
from plantkit.labels import checked_labels
from plantkit.metrics.average_k import TopValues, float32_at_least


def softmax(logits) -> np.ndarray:
    """Row-wise softmax in float32 (scipy.special.softmax: shifted by each row's max, so
    large logits cannot overflow)."""
    return special.softmax(np.asarray(logits, dtype=np.float32), axis=1)


def log_softmax(logits) -> np.ndarray:
    """Row-wise log-softmax in float32 (scipy.special.log_softmax: finite where the
    probability itself underflows to 0)."""
    return special.log_softmax(np.asarray(logits, dtype=np.float32), axis=1)


# Rows compared at once by true_class_rank: a few MB of booleans at 1,081 classes.
_RANK_BLOCK_ROWS = 4096


def true_class_rank(scores, labels) -> np.ndarray:
    """The tie rule: per row, the number of *other* classes not scoring below the true class
    (int32). 0 is a top-1 hit, rank < k a top-k hit; a true class tied with others counts all
    of them above it, so a tie is never counted in the model's favour. "Not below" rather
    than ">=" so that NaN counts against the model too: a NaN true score is below nothing
    (rank C - 1, a miss), and a NaN elsewhere is above the true class.

    `scores`: rows x classes logits, log-probabilities or probabilities (any monotone
    transform of one row gives the same ranks, as long as it creates no new ties); compared
    in float32, as the store hands float16 logits over.
    """
    scores = np.asarray(scores)
    if scores.dtype != np.float32:
        scores = scores.astype(np.float32)
    labels = np.asarray(labels)
    rank = np.empty(len(labels), dtype=np.int32)
    for first in range(0, len(labels), _RANK_BLOCK_ROWS):
        block = scores[first:first + _RANK_BLOCK_ROWS]
        y = labels[first:first + _RANK_BLOCK_ROWS]
        true_score = block[np.arange(len(y)), y]
        below = row_counts(block < true_score[:, None])
        rank[first:first + len(y)] = block.shape[1] - below - 1  # not below: all but those
    return rank


def row_counts(mask: np.ndarray) -> np.ndarray:
    """The True values of each row of a 2-D boolean array (int32).

    Summed as bytes into uint16 where the rows are short enough: 2x a sum into int32 and 5x
    np.count_nonzero with an axis, which converts the booleans first (on 512 x 1,081
    blocks; benchmarks/bench_score_rows.py times score_rows against count_nonzero)."""
    if mask.shape[1] < np.iinfo(np.uint16).max:
        return np.add.reduce(mask.view(np.uint8), axis=1, dtype=np.uint16).astype(np.int32)
    return mask.sum(axis=1, dtype=np.int32)


def topk_hits(scores, labels, k: int = 1) -> np.ndarray:
    """Top-k hit per row under the tie rule of `true_class_rank`."""
    return true_class_rank(scores, labels) < k


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


# Rows scored at once by score_rows: 2 MB of float32 at 1,081 classes, so that its dozen
# passes over a block (rank, argmax, softmax, sets) run in the CPU's cache, not memory.
# With the in-place softmax and `row_counts`, 3.1x scipy's softmax and np.count_nonzero over
# the whole chunk for the same numbers (benchmarks/bench_score_rows.py, 2 cores).
_SCORE_BLOCK_ROWS = 512


def score_rows(logits, labels, *, thresholds: Mapping[int, float] | None = None,
               top_values: TopValues | None = None) -> RowScores:
    """Reduce a chunk of logits (N x C, any float dtype; computed in float32) to RowScores.

    `thresholds` maps k to the average-k probability threshold fitted on val; each gives
    set_size[k] and covered[k]. `top_values` also collects the chunk's probabilities, to fit
    those thresholds in the same pass over val.
    """
    logits = _checked_shape(logits)
    labels = checked_labels(labels, logits.shape[0], logits.shape[1])
    cuts = {int(k): float32_at_least(t) for k, t in sorted((thresholds or {}).items())}
    parts = [_score_block(logits, labels, first, cuts, top_values)
             for first in range(0, max(logits.shape[0], 1), _SCORE_BLOCK_ROWS)]
    return parts[0] if len(parts) == 1 else RowScores.concat(parts)


def _score_block(logits: np.ndarray, labels: np.ndarray, first: int, cuts: dict,
                 top_values: TopValues | None) -> RowScores:
    """RowScores of logits[first:first + _SCORE_BLOCK_ROWS]; `cuts`: float32 thresholds."""
    # A float32 copy of its own: the softmax below overwrites it in place.
    block = np.array(logits[first:first + _SCORE_BLOCK_ROWS], dtype=np.float32)
    y = labels[first:first + len(block)]
    if not np.isfinite(block).all():
        row = first + int(np.argwhere(~np.isfinite(block))[0][0])
        raise PlantkitInputError(f"logits hold NaN or infinite values (first at row {row})")
    rows = np.arange(len(block))
    rank = true_class_rank(block, y)
    pred = block.argmax(axis=1).astype(np.int32)
    # Softmax in place (scipy.special.softmax's formula, shifted by each row's max, without
    # its three temporaries): it was a third of a report's time.
    block -= block.max(axis=1, keepdims=True)
    shifted_true = block[rows, y]
    np.exp(block, out=block)
    total = block.sum(axis=1)  # >= 1: the row's max contributes exp(0)
    block /= total[:, None]
    probs = block
    p_true = probs[rows, y]
    conf = probs[rows, pred]
    # -log p_true in log-sum-exp form: exact and finite even where p_true underflows to 0.
    nll = (np.log(total) - shifted_true).astype(np.float32)
    if top_values is not None:
        top_values.update(probs)
    set_size = {k: row_counts(probs >= cut)
                for k, cut in cuts.items()}
    covered = {k: p_true >= cut for k, cut in cuts.items()}
    return RowScores(rank, p_true, pred, conf, nll, set_size, covered)


def _coverage(p_true: np.ndarray, thresholds: Mapping[int, float] | None) -> dict:
    return {int(k): p_true >= float32_at_least(threshold)
            for k, threshold in sorted((thresholds or {}).items())}


def _checked_shape(logits) -> np.ndarray:
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise PlantkitInputError(
            f"logits must be a rows x classes array, got shape {logits.shape}"
        )
    if logits.dtype.kind != "f":
        raise PlantkitInputError(f"logits must be floating point, got {logits.dtype}")
    return logits
