"""The learning rate per epoch: torch's MultiStepLR as a Keras callback."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from plantkit.backend import keras


def multistep_lr(
    base_lr: float, milestones: Sequence[int], gamma: float = 0.1
) -> Callable[[int], float]:
    """lr(epoch) as torch.optim.lr_scheduler.MultiStepLR gives it after `epoch` steps.

    Epochs count from 0: with milestones (20, 25) the 21st and 26th epochs start with the
    reduced rate. The rate is multiplied milestone by milestone, as torch does, so the
    values are bit-identical to torch's (not base * gamma**k).
    """
    passed = sorted(Counter(int(m) for m in milestones).items())

    def lr_at(epoch: int) -> float:
        lr = float(base_lr)
        for milestone, times in passed:
            if epoch >= milestone:
                lr = lr * gamma**times
        return lr

    return lr_at


def multistep_lr_callback(
    base_lr: float, milestones: Sequence[int], gamma: float = 0.1
) -> keras.callbacks.LearningRateScheduler:
    """Sets the optimizer's rate at the start of every epoch (resumed runs included)."""
    lr_at = multistep_lr(base_lr, milestones, gamma)
    return keras.callbacks.LearningRateScheduler(lambda epoch, _lr: lr_at(epoch))
