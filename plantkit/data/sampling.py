"""The training samplers (`plantkit train --sampler`): which rows an epoch draws, in which order.

Each epoch draws as many rows as the split has; what differs is how likely each class is:

- `none`: every image once, in a random order (instance-balanced: class c with n_c / n);
- `inverse`: the reference study's WeightedRandomSampler, weight 1 / n_c per image, with
  replacement: every class equally likely;
- `sqrt`: square-root sampling (Mahajan et al. 2018; Kang et al. 2020): class c with
  probability proportional to sqrt(n_c), images of a class equally likely, with replacement;
- `balanced`: class-balanced sampling as Kang et al. 2020 (and Shen et al. 2016's class-aware
  sampling) run it: a class drawn uniformly for every row, then the next image of that class's
  own shuffled cycle (each image of a class is seen once before any is seen twice); the
  class distribution of `inverse`, with less repetition inside a class;
- `progressive`: progressively-balanced sampling (Kang et al. 2020, eq. 2): class c with
  p_c(t) = (1 - t/T) n_c / n + (t/T) / C at epoch t of T (t = 0 .. T - 1, so the first epoch
  is instance-balanced and the last nearly class-balanced).

With `defer_epoch` E (`--defer-epoch`, deferred re-sampling, Cao et al. 2019's DRS) every
epoch before E is `none`, the sampler's from epoch E on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from plantkit.choices import SAMPLERS


def class_probabilities(sampler: str, counts: np.ndarray, *, epoch: int = 0,
                        epochs: int = 1) -> np.ndarray:
    """p_c, the chance that a row of the epoch is of class c (summing to 1), under `sampler`."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    instance = counts / counts.sum()
    uniform = present / present.sum()
    if sampler == "none":
        return instance
    if sampler in ("inverse", "balanced"):
        return uniform
    if sampler == "sqrt":
        root = np.sqrt(counts)
        return root / root.sum()
    if sampler == "progressive":
        t = min(epoch / max(epochs, 1), 1.0)
        return (1.0 - t) * instance + t * uniform
    raise ValueError(f"unknown sampler {sampler!r}: use {', '.join(SAMPLERS)}")


def sampler_at(sampler: str, epoch: int, defer_epoch: int | None) -> str:
    """The sampler epoch `epoch` runs: `none` before `defer_epoch`, else `sampler`."""
    if defer_epoch is not None and epoch < defer_epoch:
        return "none"
    return sampler


def inverse_frequency_sampler(
    labels: np.ndarray,
    *,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> WeightedRandomSampler:
    """Rows drawn with replacement, weight 1/(images of its class): every class equally likely.

    `num_samples` defaults to the number of rows (one epoch = the split's size).
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels)
    weights = torch.from_numpy(1.0 / counts[labels])
    return WeightedRandomSampler(
        # torch's stub says Sequence[float]; the sampler takes any tensor (torch.as_tensor).
        weights,  # type: ignore[arg-type]
        num_samples=len(labels) if num_samples is None else num_samples,
        replacement=True,
        generator=generator,
    )


def draw_rows(labels: np.ndarray, sampler: str, generator: torch.Generator, *, epoch: int = 0,
              epochs: int = 1) -> list[int]:
    """One epoch's rows (len(labels) of them) under `sampler`, drawn from `generator`."""
    from torch.utils.data import RandomSampler

    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if sampler == "none":
        return list(RandomSampler(range(n), generator=generator))
    if sampler == "inverse":
        return list(inverse_frequency_sampler(labels, generator=generator))
    counts = np.bincount(labels)
    p = class_probabilities(sampler, counts, epoch=epoch, epochs=epochs)
    if sampler == "balanced":
        return _class_cycles(labels, counts, p, n, generator)
    weights = torch.from_numpy(p[labels] / counts[labels])  # p_c spread over c's images
    return torch.multinomial(weights, n, replacement=True, generator=generator).tolist()


def _class_cycles(labels, counts, p, n, generator) -> list[int]:
    """Classes drawn from p; each class's images in shuffled rounds, one round after another."""
    classes = torch.multinomial(torch.from_numpy(p), n, replacement=True,
                                generator=generator).numpy()
    rows_of = [np.flatnonzero(labels == c) for c in range(len(counts))]
    taken = np.bincount(classes, minlength=len(counts))
    queues: dict[int, list[int]] = {}
    for c in np.flatnonzero(taken):
        rounds = -(-int(taken[c]) // len(rows_of[c]))  # ceil
        order = [rows_of[c][torch.randperm(len(rows_of[c]), generator=generator).numpy()]
                 for _ in range(rounds)]
        queues[int(c)] = np.concatenate(order).tolist()[::-1]  # pop() from the end
    return [queues[int(c)].pop() for c in classes]
