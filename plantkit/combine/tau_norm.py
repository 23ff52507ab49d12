"""Post-hoc tau-normalisation (Kang et al. 2020, "Decoupling representation and classifier for
long-tailed recognition"): an expert's classifier rows w_c become w_c / ||w_c||^tau, the bias
dropped, tau picked on val.

On long-tailed data the frequent classes' rows have the larger norms, so their logits win
ties of evidence; tau > 0 evens the norms out, trading micro for macro top-1. The logit of
class c for penultimate features f is

    f . w_c / ||w_c||^tau  =  (f @ W.T)[c] * ||w_c||^-tau,

computed in that second form: one matmul per chunk serves every tau of the val curve, and
tau 0 is the expert's own logits without their bias, f @ W.T, exactly. NumPy over the stored
features and classifier (plantkit.store.Classifier); the val curve and the choice of tau are
logit adjustment's (plantkit.combine.logit_adjust: TAU_GRID, TauCurve, pick_tau).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from plantkit import metrics
from plantkit.combine.logit_adjust import TAU_GRID, TauCurve, pick_tau
from plantkit.errors import PlantkitInputError

METHOD = "tau-norm"


def class_scale(weight, tau: float) -> np.ndarray:
    """||w_c||^-tau per class (C float32); a row of zeros keeps scale 1 (its logits stay 0)."""
    tau = float(tau)
    if not math.isfinite(tau) or tau < 0:
        raise PlantkitInputError(f"tau-normalisation: tau must be a number >= 0, got {tau}")
    norms = np.linalg.norm(np.asarray(weight, dtype=np.float64), axis=1)
    scale = np.ones_like(norms)
    nonzero = norms > 0
    scale[nonzero] = norms[nonzero] ** -tau
    return scale.astype(np.float32)


def normalised_weight(weight, tau: float) -> np.ndarray:
    """The tau-normalised classifier: each row w_c / ||w_c||^tau (float32)."""
    return np.asarray(weight, dtype=np.float32) * class_scale(weight, tau)[:, None]


def bias_free_logits(features, weight) -> np.ndarray:
    """features @ W.T (rows x C float32): the expert's logits without the bias."""
    features = np.asarray(features, dtype=np.float32)
    weight = np.asarray(weight, dtype=np.float32)
    if features.ndim != 2 or weight.ndim != 2 or features.shape[1] != weight.shape[1]:
        raise PlantkitInputError(
            f"tau-normalisation: features {features.shape} do not fit a classifier "
            f"{weight.shape} (rows x D and C x D)")
    return features @ weight.T


def tau_norm_log_probs(features, weight, tau: float) -> np.ndarray:
    """log_softmax of the tau-normalised logits of `features` (rows x D): what the stored
    predictions and `plantkit classify` give."""
    return metrics.log_softmax(bias_free_logits(features, weight) * class_scale(weight, tau))


class TauNormCurve(TauCurve):
    """Val micro and macro top-1 of the tau-normalised classifier over several taus, fed
    chunks of features and labels."""

    def __init__(self, weight, taus: Sequence[float], num_classes: int):
        super().__init__(taus, num_classes)
        self.weight = np.asarray(weight, dtype=np.float32)
        self.scales = {tau: class_scale(self.weight, tau) for tau in self.taus}

    def update(self, features: np.ndarray, labels: np.ndarray) -> None:
        logits = bias_free_logits(features, self.weight)
        self.add(lambda tau: logits * self.scales[tau], labels)


@dataclass(frozen=True)
class TauNormFit:
    """The classifier weight (C x D float32, before normalisation), the tau picked on val and
    the val curve {tau, val_top1, val_macro_top1}."""

    weight: np.ndarray
    tau: float
    curve: dict[str, list[float]]


def fit_tau_norm(val_chunks: Iterable[tuple[np.ndarray, np.ndarray]], weight, num_classes: int,
                 target: str, taus: Sequence[float] = TAU_GRID) -> TauNormFit:
    """Trace the val curve over `taus` from (features, labels) chunks of val and pick the tau
    with the best val `target` (top1 or macro; ties: the smallest tau)."""
    curve = TauNormCurve(weight, taus, num_classes)
    for features, labels in val_chunks:
        curve.update(features, labels)
    result = curve.result()
    return TauNormFit(curve.weight, pick_tau(result, target), result)
