"""The training losses (`plantkit train --loss`): cross-entropy as torch computes it, optionally
weighted per class (`weighted`, the reference study's), and the long-tail literature's:
balanced softmax, logit adjustment, class-balanced (optionally focal), focal, LDAM."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from plantkit.backend import keras
from plantkit.choices import LOSS_OPTIONS, LOSSES


def balanced_class_weights(train_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's 'balanced' weights, n / (C * n_c): 1/n per class up to a constant.

    Every class must have at least one training image (the dataset layout guarantees it).
    """
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"train labels must be class indices in 0-{num_classes - 1}")
    empty = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
    if len(empty):
        raise ValueError(
            f"balanced class weights need every class in the train labels; {len(empty)} "
            f"class(es) have none (first: index {empty[0]})"
        )
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return weights.astype(np.float32)


def _check_counts(train_counts) -> np.ndarray:
    counts = np.asarray(train_counts, dtype=np.float64)
    empty = np.flatnonzero(counts < 1)
    if len(empty):
        raise ValueError(f"every class needs a train image for this loss; class index "
                         f"{empty[0]} has none")
    return counts


def class_balanced_weights(train_counts, beta: float) -> np.ndarray:
    """Cui et al. 2019's weights: (1 - beta) / (1 - beta**n_c), scaled to sum to C
    (beta = 0: all 1; beta -> 1: proportional to 1 / n_c)."""
    counts = _check_counts(train_counts)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return (weights * len(counts) / weights.sum()).astype(np.float32)


# --- The losses (`plantkit train --loss`) ------------------------------------------------------
#
# Every loss takes the logits (N x C) and either integer labels (N) or, from mixup / CutMix
# (plantkit.training.mixing), rows (label, partner's label, lambda): the loss of such a row is
# lambda * l(label) + (1 - lambda) * l(partner's label) (Zhang et al. 2018), so each loss keeps
# its own per-class formula (LDAM's margin, the class weights) for both labels.
# `class_weights` (where a loss has them) can be switched off and on during training
# (`weights_active`, set by DeferredReweighting for `--defer-epoch`: DRW, Cao et al. 2019).


def label_shares(y_true) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(labels, share per row) pairs: one pair with share None for plain labels, two for
    mixed rows (label, partner, lambda)."""
    if y_true.ndim == 2 and y_true.shape[1] == 3:
        lam = y_true[:, 2].float()
        return [(y_true[:, 0].long(), lam), (y_true[:, 1].long(), 1.0 - lam)]
    return [(y_true.reshape(-1).long(), None)]


class _PerClassLoss(keras.losses.Loss):
    """Base: per-class constants kept as plain lists (serialisable), put on a device once.

    A subclass gives `_terms(logits, labels)`: per row a numerator and a denominator (None:
    1 per row); the batch loss is sum(numerators) / sum(denominators), each row's terms
    shared between its two labels after mixup.
    """

    def __init__(self, name: str, class_weights=None, **kwargs):
        kwargs.setdefault("reduction", None)  # the formulas reduce themselves
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.weights_active = True  # --defer-epoch: off until the deferred epoch
        self._on_device: dict[tuple[str, str], torch.Tensor] = {}

    def _constant(self, key: str, values, device) -> torch.Tensor:
        if (key, str(device)) not in self._on_device:
            self._on_device[key, str(device)] = torch.tensor(values, dtype=torch.float32,
                                                             device=device)
        return self._on_device[key, str(device)]

    def _weight(self, device) -> torch.Tensor | None:
        if self.class_weights is None or not self.weights_active:
            return None
        return self._constant("weights", self.class_weights, device)

    def _terms(self, logits, labels) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def call(self, y_true, y_pred):
        logits = y_pred.float()
        numerator, denominator = logits.new_zeros(()), logits.new_zeros(())
        for labels, share in label_shares(y_true):
            num, den = self._terms(logits, labels)
            if den is None:
                den = torch.ones_like(num)
            if share is not None:
                num, den = num * share, den * share
            numerator, denominator = numerator + num.sum(), denominator + den.sum()
        return numerator / denominator

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


def _weighted_cross_entropy(logits, labels, weight) -> tuple[torch.Tensor, torch.Tensor | None]:
    """torch's weighted mean as terms: w_y * CE_i over w_y (None without weights)."""
    loss = F.cross_entropy(logits, labels, reduction="none")
    if weight is None:
        return loss, None
    return loss * weight[labels], weight[labels]


@keras.saving.register_keras_serializable(package="plantkit")
class CrossEntropy(_PerClassLoss):
    """torch.nn.functional.cross_entropy on logits and integer labels, as a Keras loss.

    With `class_weights` w the batch loss is sum_i w[y_i] * l_i / sum_i w[y_i], torch's
    normalisation (not Keras's division by the batch size). On plain labels computed by
    torch itself, so plantkit's loss is bit-for-bit the reference script's.
    """

    def __init__(self, class_weights=None, name: str = "cross_entropy", **kwargs):
        super().__init__(name=name, class_weights=class_weights, **kwargs)

    def _terms(self, logits, labels):
        return _weighted_cross_entropy(logits, labels, self._weight(logits.device))

    def call(self, y_true, y_pred):
        pairs = label_shares(y_true)
        if len(pairs) > 1:  # mixed rows
            return super().call(y_true, y_pred)
        return F.cross_entropy(y_pred.float(), pairs[0][0], weight=self._weight(y_pred.device))


@keras.saving.register_keras_serializable(package="plantkit")
class LogitAdjusted(_PerClassLoss):
    """Menon et al. 2021's logit-adjusted loss: cross-entropy of logits + tau * log(prior_c),
    prior_c = n_c / n. tau = 1 is Ren et al. 2020's balanced softmax (softmax over
    n_c * exp(logit_c): the same loss); tau = 0 is plain cross-entropy."""

    def __init__(self, train_counts=None, tau: float = 1.0, name: str = "logit_adjusted",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        counts = _check_counts(train_counts)
        self.train_counts = [float(c) for c in counts]
        self.tau = float(tau)
        self._offset = (self.tau * np.log(counts / counts.sum())).tolist()

    def _terms(self, logits, labels):
        adjusted = logits + self._constant("offset", self._offset, logits.device)
        return F.cross_entropy(adjusted, labels, reduction="none"), None

    def get_config(self):
        return {**super().get_config(), "train_counts": self.train_counts, "tau": self.tau}


@keras.saving.register_keras_serializable(package="plantkit")
class Focal(_PerClassLoss):
    """Lin et al. 2017's focal loss, softmax form: mean over the batch of
    w_y (1 - p_y)**gamma * -log p_y (w_y = 1 without class weights). gamma = 0: cross-entropy
    (with weights: their plain mean, as Cui et al.'s class-balanced loss, not torch's
    weighted mean)."""

    def __init__(self, gamma: float = 2.0, class_weights=None, name: str = "focal", **kwargs):
        super().__init__(name=name, class_weights=class_weights, **kwargs)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def _terms(self, logits, labels):
        log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None])[:, 0]
        loss = -log_p
        if self.gamma:
            loss = loss * (1.0 - log_p.exp()).clamp(min=0.0) ** self.gamma
        weight = self._weight(logits.device)
        return (loss if weight is None else loss * weight[labels]), None

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="plantkit")
class LDAM(_PerClassLoss):
    """Cao et al. 2019's label-distribution-aware margin loss: the true class's logit minus
    m_y, m_c proportional to n_c**-1/4 with max m = `max_margin`, all logits times `scale`,
    then cross-entropy (torch's weighted mean with class weights: the DRW stage).

    The authors' code puts the margin on a cosine classifier (normalised features and
    weights, logits in [-1, 1]) and multiplies by s = 30. plantkit keeps the backbone's own
    linear classifier, whose logits are unbounded: there s = 30 multiplies the gradients
    thirty-fold and the run diverges (benchmarks/bench_longtail.py: -39 points of micro
    top-1), so the default scale is 1 and the margins are in logit units."""

    def __init__(self, train_counts=None, max_margin: float = 0.5, scale: float = 1.0,
                 class_weights=None, name: str = "ldam", **kwargs):
        super().__init__(name=name, class_weights=class_weights, **kwargs)
        counts = _check_counts(train_counts)
        self.train_counts = [float(c) for c in counts]
        self.max_margin, self.scale = float(max_margin), float(scale)
        margins = counts ** -0.25
        self.margins = (margins * self.max_margin / margins.max()).tolist()

    def _terms(self, logits, labels):
        margins = self._constant("margins", self.margins, logits.device)
        shifted = logits - F.one_hot(labels, logits.shape[1]) * margins[labels][:, None]
        return _weighted_cross_entropy(self.scale * shifted, labels,
                                       self._weight(logits.device))

    def get_config(self):
        return {**super().get_config(), "train_counts": self.train_counts,
                "max_margin": self.max_margin, "scale": self.scale}


# The class-balanced weights the DRW stage of LDAM switches on (Cao et al. 2019: beta 0.9999).
DRW_BETA = 0.9999


def make_loss(name: str, train_counts, *, tau: float | None = None, beta: float | None = None,
              focal_gamma: float | None = None, deferred: bool = False) -> keras.losses.Loss:
    """The `--loss` of a run from the train counts per class; an option left None takes the
    loss's default (plantkit.choices.LOSS_OPTIONS). `deferred` (--defer-epoch): a
    re-weighting loss starts with its weights off (DeferredReweighting turns them on); ldam
    then gets DRW's class-balanced weights."""
    counts = np.asarray(train_counts)
    given = {"tau": tau, "beta": beta, "focal_gamma": focal_gamma}

    def option(key: str) -> float:  # the loss's own option: as given, else its default
        value = given[key]
        return float(LOSS_OPTIONS[name][key] if value is None else value)

    loss: keras.losses.Loss
    if name == "ce":
        return CrossEntropy()
    if name == "weighted":
        loss = CrossEntropy(balanced_class_weights(np.repeat(np.arange(len(counts)), counts),
                                                   len(counts)))
    elif name == "balanced-softmax":
        return LogitAdjusted(counts, tau=1.0, name="balanced_softmax")
    elif name == "logit-adjusted":
        return LogitAdjusted(counts, tau=option("tau"))
    elif name == "class-balanced":
        loss = Focal(option("focal_gamma"), class_balanced_weights(counts, option("beta")),
                     name="class_balanced")
    elif name == "focal":
        return Focal(option("focal_gamma"))
    elif name == "ldam":
        loss = LDAM(counts, class_weights=class_balanced_weights(counts, DRW_BETA)
                    if deferred else None)
    else:
        raise ValueError(f"unknown loss {name!r}: use {', '.join(LOSSES)}")
    if deferred:
        loss.weights_active = False  # type: ignore[attr-defined]
    return loss


class DeferredReweighting(keras.callbacks.Callback):
    """--defer-epoch E with a re-weighting loss: its class weights apply from epoch E on."""

    def __init__(self, loss, defer_epoch: int):
        super().__init__()
        self.loss, self.defer_epoch = loss, int(defer_epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.loss.weights_active = epoch >= self.defer_epoch
