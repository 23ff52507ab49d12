"""In-place streaming pieces shared by the combiners (float32): row shifts, unnormalised
exps at a temperature, the log of a mixture. The softmax and log-softmax of whole arrays are
plantkit.metrics' (scipy's)."""

from __future__ import annotations

import numpy as np

# Probabilities below the smallest normal float32 are stored as this log-probability, so the
# stored 'logits' stay finite (the store refuses -inf) and softmax still recovers the mixture.
TINY = np.finfo(np.float32).tiny


def shift_rows(logits: np.ndarray) -> np.ndarray:
    """Subtract each row's maximum in place; returns the row maxima (NaN or inf where the
    row holds one: callers check them).

    The shifted logits are <= 0 with a 0 at the maximum, so exp never overflows and the
    top-1 probability is 1 / sum(exp(shifted)). Hits are counted on the logits before the
    shift (plantkit.metrics.true_class_rank): the shift may round two close logits together.
    """
    row_max = logits.max(axis=1)
    logits -= row_max[:, None]
    return row_max


def exp_scaled(shifted: np.ndarray, beta: float, out: np.ndarray | None = None):
    """(exp(beta * shifted), 1 / row sums): softmax at temperature 1/beta, unnormalised."""
    if beta == 1.0:
        exps = np.exp(shifted, out=out)
    else:
        exps = np.multiply(shifted, np.float32(beta), out=out)
        np.exp(exps, out=exps)
    return exps, 1.0 / exps.sum(axis=1)


def log_mixture(mixture: np.ndarray) -> np.ndarray:
    """log of a probability mixture, in place, with zero probabilities floored at TINY."""
    np.maximum(mixture, TINY, out=mixture)
    return np.log(mixture, out=mixture)

