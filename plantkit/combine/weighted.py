"""Per-expert weights on the simplex: proportional to val accuracy, or fitted by val NLL."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from plantkit.errors import PlantkitInputError

# Weights below this are set to zero (the expert need not run) and the rest renormalised.
PRUNE_BELOW = 1e-6
_FLOOR = 1e-30  # keeps log() finite where every expert gives the true class probability 0


def accuracy_weights(val_top1) -> np.ndarray:
    """The reference study's rule, on val: weight proportional to each expert's top-1."""
    accuracy = np.asarray(val_top1, dtype=np.float64)
    if accuracy.ndim != 1 or accuracy.size == 0 or (accuracy < 0).any():
        raise PlantkitInputError(f"accuracy weights need one accuracy >= 0 per expert, "
                                 f"got {accuracy}")
    total = accuracy.sum()
    return accuracy / total if total > 0 else np.full(accuracy.size, 1.0 / accuracy.size)


def fit_simplex_weights(true_probs) -> np.ndarray:
    """Weights on the simplex minimising the val NLL of the mixture sum_m w_m p_m.

    `true_probs`: rows x experts, each expert's probability of the true class (the NLL of a
    mixture needs nothing else). The problem is convex in w; SLSQP solves it with the
    simplex as bounds plus one equality, so useless experts get weight exactly 0.
    """
    true_probs = np.asarray(true_probs, dtype=np.float64)
    if true_probs.ndim != 2 or true_probs.shape[0] == 0 or true_probs.shape[1] == 0:
        raise PlantkitInputError(
            f"weight fitting needs a rows x experts matrix, got shape {true_probs.shape}"
        )
    n_experts = true_probs.shape[1]
    if n_experts == 1:
        return np.ones(1)

    def objective(w):
        mixed = np.maximum(true_probs @ w, _FLOOR)
        return -np.log(mixed).mean(), -(true_probs / mixed[:, None]).mean(axis=0)

    start = np.full(n_experts, 1.0 / n_experts)
    result = minimize(
        objective, start, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * n_experts,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                      "jac": lambda w: np.ones_like(w)}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    weights = result.x if np.isfinite(result.x).all() else start
    if objective(weights)[0] > objective(start)[0]:  # a failed solve never beats uniform
        weights = start
    return normalised(weights)


def normalised(weights) -> np.ndarray:
    """Weights clipped at 0, those below PRUNE_BELOW dropped, summing to 1."""
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    if weights.sum() <= 0:
        return np.full(weights.size, 1.0 / weights.size)
    weights[weights < PRUNE_BELOW * weights.sum()] = 0.0
    return weights / weights.sum()
