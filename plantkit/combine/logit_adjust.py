"""Post-hoc logit adjustment (Menon et al. 2021): log p - tau * log(train prior), tau on val."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from plantkit import metrics
from plantkit.choices import ADJUST_TARGETS
from plantkit.errors import PlantkitInputError

TARGETS = ADJUST_TARGETS
# The val trade-off curve is traced over these taus (plus a given tau off the grid).
TAU_GRID = tuple(round(0.1 * i, 1) for i in range(21))


def parse_tau(value: str) -> float | None:
    """A tau >= 0 from `--logit-adjust`, or None for 'auto'."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        tau = float(value)
    except ValueError:
        tau = math.nan
    if not math.isfinite(tau) or tau < 0:
        raise PlantkitInputError(f"--logit-adjust {value!r}: give a number >= 0 or 'auto'")
    return tau


def log_prior(train_counts) -> np.ndarray:
    """log of the train class frequencies (float32); a class without train images counts as
    one, so its log prior stays finite."""
    if train_counts is None:
        raise PlantkitInputError(
            "logit adjustment needs the train counts (class priors), and the expert stores "
            "hold none: predict with a dataset, or import logits with --train-counts"
        )
    counts = np.maximum(np.asarray(train_counts, dtype=np.float64), 1.0)
    return np.log(counts / counts.sum()).astype(np.float32)


def adjust(log_probs, prior: np.ndarray, tau: float) -> np.ndarray:
    """log_softmax(log_probs - tau * log prior): the adjusted prediction as log-probabilities."""
    scores = np.asarray(log_probs, dtype=np.float32)
    if tau == 0:
        return metrics.log_softmax(scores)
    return metrics.log_softmax(scores - np.float32(tau) * prior)


class TauCurve:
    """Micro and macro top-1 over several taus, chunk by chunk: `add(scores_at, labels)` with
    scores_at(tau) -> the chunk's rows x C scores at that tau (any monotone transform of the
    log-probabilities of a row ranks the same). The val curve of every tau-fitted method:
    logit adjustment here, tau-normalisation (plantkit.combine.tau_norm)."""

    def __init__(self, taus: Sequence[float], num_classes: int):
        self.taus = sorted({float(t) for t in taus})
        self.num_classes = num_classes
        self._ranks: list[list[np.ndarray]] = [[] for _ in self.taus]
        self._labels: list[np.ndarray] = []

    def add(self, scores_at: Callable[[float], np.ndarray], labels: np.ndarray) -> None:
        for ranks, tau in zip(self._ranks, self.taus):
            ranks.append(metrics.true_class_rank(scores_at(tau), labels))
        self._labels.append(np.asarray(labels))

    def result(self) -> dict[str, list[float]]:
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)
        top1, macro = [], []
        for ranks in self._ranks:
            rank = np.concatenate(ranks) if ranks else np.zeros(0, np.int32)
            scores = metrics.accuracy_scores(rank, labels, self.num_classes)
            top1.append(scores["top1"])
            macro.append(scores["macro_top1"])
        return {"tau": list(self.taus), "val_top1": top1, "val_macro_top1": macro}


class TradeoffCurve(TauCurve):
    """Micro and macro top-1 of the adjusted predictions over several taus, chunk by chunk."""

    def __init__(self, taus: Sequence[float], prior: np.ndarray, num_classes: int):
        super().__init__(taus, num_classes)
        self.prior = prior

    def update(self, log_probs: np.ndarray, labels: np.ndarray) -> None:
        # Ranked before renormalising: log_softmax only shifts each row.
        self.add(lambda tau: log_probs - np.float32(tau) * self.prior, labels)


def pick_tau(curve: dict[str, list[float]], target: str) -> float:
    """The tau of the curve with the best val `target` (top1 or macro); ties: the smallest."""
    if target not in TARGETS:
        raise PlantkitInputError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    values = np.asarray(curve["val_top1" if target == "top1" else "val_macro_top1"])
    return float(curve["tau"][int(np.nanargmax(values))])
