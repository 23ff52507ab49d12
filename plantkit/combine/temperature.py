"""Temperature scaling: one temperature per expert, fitted on val by NLL."""

from __future__ import annotations

import numpy as np

from plantkit.errors import PlantkitInputError

# Temperatures are searched in this range; an expert right on every fitting row would
# otherwise be pushed towards T -> 0.
TEMPERATURE_RANGE = (0.05, 20.0)
# Rows evaluated at once: keeps the temporaries of a 1,081-class fit to a few MB.
_BLOCK_ROWS = 2048


def nll_derivatives(shifted: np.ndarray, labels: np.ndarray, beta: float):
    """(NLL, dNLL/dbeta, d2NLL/dbeta2) of softmax(beta * shifted), mean over rows.

    With beta = 1/T the NLL is convex: its derivative is E_p[z] - z_y and its second
    derivative the variance of z under p, so one pass gives a Newton step.
    """
    n = len(labels)
    total = np.zeros(3)
    for first in range(0, n, _BLOCK_ROWS):
        block = shifted[first:first + _BLOCK_ROWS]
        y = labels[first:first + _BLOCK_ROWS]
        scaled = block * np.float32(beta)
        exps = np.exp(scaled, out=scaled)
        # float32 sums (pairwise, accurate to ~1e-7 relative) then float64 per row: summing
        # in float64 would make NumPy convert every element first.
        sums = exps.sum(axis=1).astype(np.float64)
        weighted = np.multiply(exps, block, out=exps)
        mean_z = weighted.sum(axis=1).astype(np.float64) / sums
        mean_z2 = np.einsum("ij,ij->i", weighted, block).astype(np.float64) / sums
        z_true = block[np.arange(len(y)), y].astype(np.float64)
        total[0] += (np.log(sums) - beta * z_true).sum()
        total[1] += (mean_z - z_true).sum()
        total[2] += np.maximum(mean_z2 - mean_z**2, 0.0).sum()
    return tuple(total / max(n, 1))


def fit_temperature(shifted: np.ndarray, labels: np.ndarray, *, tol: float = 1e-5,
                    max_iter: int = 60) -> float:
    """The temperature T minimising the mean NLL of softmax(shifted / T) on these rows.

    `shifted`: rows x C logits (any per-row shift; each row's max subtracted keeps exp in
    range). Safeguarded Newton on beta = 1/T (convex, so a bracket from the sign of the
    derivative keeps every step safe); each iteration is one pass over the rows, where a
    derivative-free scalar search needs more (scipy's bounded minimize_scalar takes 5x the
    time for the same T to 1e-4: benchmarks/bench_kernels.py). T is clipped to
    TEMPERATURE_RANGE.
    """
    shifted = np.asarray(shifted, dtype=np.float32)
    labels = np.asarray(labels)
    if shifted.ndim != 2 or len(shifted) != len(labels) or len(labels) == 0:
        raise PlantkitInputError(
            f"temperature fitting needs rows x classes logits and one label per row, got "
            f"{shifted.shape} and {labels.shape}"
        )
    lo, hi = 1.0 / TEMPERATURE_RANGE[1], 1.0 / TEMPERATURE_RANGE[0]
    beta = 1.0
    for _ in range(max_iter):
        _, slope, curvature = nll_derivatives(shifted, labels, beta)
        if slope > 0:
            hi = beta
        else:
            lo = beta
        newton = beta - slope / curvature if curvature > 0 else np.nan
        step = newton if lo < newton < hi else 0.5 * (lo + hi)
        if abs(step - beta) <= tol * beta:
            beta = step
            break
        beta = step
    return float(1.0 / np.clip(beta, 1.0 / TEMPERATURE_RANGE[1], 1.0 / TEMPERATURE_RANGE[0]))


def fitting_rows(n_rows: int, max_rows: int) -> np.ndarray:
    """At most max_rows row indices spread evenly over 0 .. n_rows-1 (all rows if fewer).

    Stores list rows sorted by path, i.e. by class: evenly spaced rows keep every class's
    share, where a block of consecutive rows would not.
    """
    if n_rows <= max_rows:
        return np.arange(n_rows)
    return np.unique(np.linspace(0, n_rows - 1, max_rows).round().astype(np.int64))
