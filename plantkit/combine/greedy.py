"""Ensemble selection with replacement (Caruana et al. 2004), on val."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantkit.choices import GREEDY_METRICS
from plantkit.errors import PlantkitInputError

METRICS = GREEDY_METRICS
_FLOOR = 1e-30


@dataclass(frozen=True)
class GreedySelection:
    """counts[m]: how often expert m was picked (the mixture weights are counts / picks).

    path: one entry per step, {step, added, val_nll, val_top1 (None for metric nll)}; the
    selection is the prefix of the path with the best val score (best_step picks).
    """

    counts: np.ndarray
    path: list[dict]
    best_step: int

    @property
    def weights(self) -> np.ndarray:
        return self.counts / self.counts.sum()


def greedy_selection(true_probs, *, metric: str = "nll", steps: int | None = None,
                     candidate_probs=None, true_slot=None) -> GreedySelection:
    """Add, step by step, the expert (repeats allowed) that most improves the val score of the
    average of those picked; keep the best prefix.

    true_probs: rows x experts, each expert's probability of the true class. For metric
    "top1", candidate_probs (rows x K x experts: the probabilities of K candidate classes per
    row) and true_slot (rows: which candidate is the true class) stand in for the full class
    axis: a row is a hit when its true class beats every other candidate strictly (ties count
    against, as in plantkit.metrics). Ties between experts go to the lower index, then top-1
    ties to the lower NLL. steps defaults to max(20, 2 x experts).
    """
    true_probs = np.asarray(true_probs, dtype=np.float64)
    if metric not in METRICS:
        raise PlantkitInputError(f"--greedy-metric {metric!r}: use one of {', '.join(METRICS)}")
    if true_probs.ndim != 2 or 0 in true_probs.shape:
        raise PlantkitInputError(f"greedy selection needs a rows x experts matrix, got "
                                 f"{true_probs.shape}")
    n_rows, n_experts = true_probs.shape
    steps = max(20, 2 * n_experts) if steps is None else int(steps)
    if metric == "top1":
        if candidate_probs is None or true_slot is None:
            raise ValueError("metric 'top1' needs candidate_probs and true_slot")
        candidate_probs = np.asarray(candidate_probs, dtype=np.float64)
        true_slot = np.asarray(true_slot)
        other = np.ones(candidate_probs.shape[:2], dtype=bool)
        other[np.arange(n_rows), true_slot] = False

    summed = np.zeros(n_rows)
    summed_candidates = None if metric == "nll" else np.zeros(candidate_probs.shape[:2])
    path: list[dict] = []
    added: list[int] = []  # path's "added", step by step
    best: tuple[float, ...] | None = None
    best_step = 0
    for step in range(1, steps + 1):
        nll = -np.log(np.maximum((summed[:, None] + true_probs) / step, _FLOOR)).mean(axis=0)
        top1 = None
        if metric == "top1":
            top1 = np.empty(n_experts)
            for m in range(n_experts):
                mixed = summed_candidates + candidate_probs[:, :, m]
                true_score = mixed[np.arange(n_rows), true_slot]
                rival = np.where(other, mixed, -np.inf).max(axis=1)
                top1[m] = (true_score > rival).mean()
            # lexsort: last key first; the lower index wins remaining ties.
            pick = int(np.lexsort((np.arange(n_experts), nll, -top1))[0])
        else:
            pick = int(np.argmin(nll))
        summed += true_probs[:, pick]
        if summed_candidates is not None:
            summed_candidates += candidate_probs[:, :, pick]
        val_nll = float(nll[pick])
        path.append({"step": step, "added": pick, "val_nll": val_nll,
                     "val_top1": None if top1 is None else float(top1[pick])})
        added.append(pick)
        score = (val_nll,) if top1 is None else (-float(top1[pick]), val_nll)
        if best is None or score < best:
            best, best_step = score, step
    chosen = np.bincount(added[:best_step], minlength=n_experts)
    return GreedySelection(chosen.astype(np.int64), path, best_step)
