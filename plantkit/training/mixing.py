"""Mixup and CutMix for training (`plantkit train --mixup ALPHA --cutmix ALPHA`).

timm's `Mixup` mixes the images (each image with its partner in the flipped batch; with both
alphas it switches between mixup and CutMix per batch, CutMix's lambda corrected to the box
actually pasted). Its soft one-hot targets would not do for plantkit's per-class losses
(LDAM's margin and the class weights belong to a label, not to a probability vector), so the
labels travel as rows (label, partner's label, lambda) and every loss in
plantkit.training.losses charges lambda * l(label) + (1 - lambda) * l(partner) (Zhang et
al. 2018's formulation). timm is asked for the pairing and lambda in its public API: mixed
with the batch positions as "classes", its target row i is lambda_i at i and 1 - lambda_i
at i's partner.

timm draws lambda and the CutMix box from NumPy's global generator; plantkit draws them from
a generator seeded by (seed, epoch), so a run and its resumption mix the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.data import Mixup

from plantkit.training.callbacks import epoch_seed


def mixing_active(mixup: float | None, cutmix: float | None) -> bool:
    return bool(mixup) or bool(cutmix)


class BatchMixer:
    """Mixes one training batch at a time; `start_epoch` before each epoch."""

    def __init__(self, mixup: float | None, cutmix: float | None, batch_size: int, seed: int):
        if not mixing_active(mixup, cutmix):
            raise ValueError("BatchMixer needs --mixup or --cutmix above 0")
        # num_classes: the batch positions, whose mixed one-hot rows give pairs and lambdas.
        self._timm = Mixup(mixup_alpha=float(mixup or 0.0), cutmix_alpha=float(cutmix or 0.0),
                           label_smoothing=0.0, num_classes=int(batch_size))
        self.seed = int(seed)
        self._random = np.random.RandomState(epoch_seed(self.seed, 0))

    def start_epoch(self, epoch: int) -> None:
        self._random = np.random.RandomState(epoch_seed(self.seed, epoch))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor):
        """(mixed images, N x 3 float rows: label, partner's label, lambda). An odd batch's
        last image stays as it is (timm pairs an even number)."""
        n = len(labels) - len(labels) % 2
        rows = torch.stack([labels.float(), labels.float(), torch.ones_like(labels,
                                                                            dtype=torch.float)], 1)
        if n < 2:
            return images, rows
        positions = torch.arange(n, device=images.device)
        saved = np.random.get_state()
        np.random.set_state(self._random.get_state())
        try:
            # timm mixes its argument in place; a slice of `images` is a view of it.
            _mixed, target = self._timm(images[:n], positions)
        finally:
            self._random.set_state(np.random.get_state())
            np.random.set_state(saved)
        target = target[:, :n]
        lam = target.diagonal().clone()
        target.fill_diagonal_(0.0)  # what is left of a row is its partner's share
        partner = target.argmax(dim=1)
        rows[:n, 1] = labels[partner].float()
        rows[:n, 2] = lam
        return images, rows
