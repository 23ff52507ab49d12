"""Softmax pieces shared by the combiners, in float32 and in place where it saves a pass."""

from __future__ import annotations

import numpy as np

# Probabilities below the smallest normal float32 are stored as this log-probability, so the
# stored 'logits' stay finite (the store refuses -inf) and softmax still recovers the mixture.
TINY = np.finfo(np.float32).tiny


def shift_rows(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each row's maximum in place; returns (argmax per row, row maxima).

    The shifted logits are <= 0 with a 0 at the argmax, so exp never overflows and the
    top-1 probability is 1 / sum(exp(shifted)).
    """
    pred = logits.argmax(axis=1)
    row_max = np.take_along_axis(logits, pred[:, None], axis=1)[:, 0]
    logits -= row_max[:, None]
    return pred, row_max


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


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32 (a new array)."""
    scores = np.asarray(scores, dtype=np.float32)
    shifted = scores - scores.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (a new array)."""
    return np.exp(log_softmax(scores))


def true_class_probs(exps: np.ndarray, inv_total: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(y_i | x_i) from unnormalised exps and their 1 / row sums."""
    return exps[np.arange(len(labels)), labels] * inv_total
