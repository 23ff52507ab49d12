"""The long-tail losses against their papers' formulas on small cases worked out in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from plantkit.backend import keras
from plantkit.training.losses import (
    DRW_BETA,
    LDAM,
    CrossEntropy,
    DeferredReweighting,
    Focal,
    LogitAdjusted,
    class_balanced_weights,
    make_loss,
)

COUNTS = np.array([90.0, 9.0, 1.0])  # a long tail of three classes
LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, -2.0, 0.5]])
LABELS = np.array([0, 2, 1, 2])


def _value(loss, logits=LOGITS, labels=LABELS) -> float:
    return float(loss(torch.tensor(labels), torch.tensor(logits, dtype=torch.float32)))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _nll(z: np.ndarray, labels=LABELS) -> np.ndarray:
    return -_log_softmax(z)[np.arange(len(labels)), labels]


def test_logit_adjusted_adds_tau_log_prior_to_the_logits():
    prior = COUNTS / COUNTS.sum()
    expected = _nll(LOGITS + 0.5 * np.log(prior)).mean()
    assert _value(LogitAdjusted(COUNTS, tau=0.5)) == pytest.approx(expected, rel=1e-6)
    # A worked entry: row 1 (label 2), tau 1: -log(0.01 e^0.3 / sum_c prior_c e^z_c).
    row = LOGITS[1]
    by_hand = -math.log(0.01 * math.exp(0.3) / sum(p * math.exp(z) for p, z in zip(prior, row)))
    assert _nll(LOGITS + np.log(prior))[1] == pytest.approx(by_hand)


def test_tau_zero_is_cross_entropy_and_balanced_softmax_is_tau_one():
    ce = _value(CrossEntropy())
    assert ce == pytest.approx(_nll(LOGITS).mean(), rel=1e-6)
    assert _value(LogitAdjusted(COUNTS, tau=0.0)) == pytest.approx(ce, rel=1e-6)
    # Ren et al.'s balanced softmax: softmax over n_c * exp(z_c), counts not normalised.
    weighted_softmax = np.exp(LOGITS) * COUNTS
    balanced = -np.log(weighted_softmax[np.arange(4), LABELS] / weighted_softmax.sum(1)).mean()
    assert _value(make_loss("balanced-softmax", COUNTS)) == pytest.approx(balanced, rel=1e-6)
    # ... and it raises the rare classes' loss: the tail gets larger gradients.
    assert balanced > ce


def test_class_balanced_weights_follow_the_effective_number():
    beta = 0.9
    effective = (1 - beta ** COUNTS) / (1 - beta)  # Cui et al.: E_n = (1 - beta^n) / (1 - beta)
    expected = (1 / effective) / (1 / effective).sum() * 3
    np.testing.assert_allclose(class_balanced_weights(COUNTS, beta), expected, rtol=1e-6)
    # beta 0: every class counts 1 image, all weights 1; beta near 1: inverse frequency.
    np.testing.assert_allclose(class_balanced_weights(COUNTS, 0.0), [1, 1, 1])
    near_one = class_balanced_weights(COUNTS, 0.999999)
    np.testing.assert_allclose(near_one / near_one[0], COUNTS[0] / COUNTS, rtol=1e-3)
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights(COUNTS, 1.0)


def test_focal_loss_down_weights_easy_rows():
    p = np.exp(_log_softmax(LOGITS))[np.arange(4), LABELS]
    expected = ((1 - p) ** 2 * -np.log(p)).mean()
    assert _value(Focal(2.0)) == pytest.approx(expected, rel=1e-6)
    assert _value(Focal(0.0)) == pytest.approx(_nll(LOGITS).mean(), rel=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        Focal(-1.0)


def test_class_balanced_loss_is_the_plain_mean_of_weighted_rows():
    weights = class_balanced_weights(COUNTS, 0.99)
    p = np.exp(_log_softmax(LOGITS))[np.arange(4), LABELS]
    expected = (weights[LABELS] * -np.log(p)).mean()
    assert _value(make_loss("class-balanced", COUNTS, beta=0.99)) == pytest.approx(expected,
                                                                                  rel=1e-6)
    focal = (weights[LABELS] * (1 - p) ** 0.5 * -np.log(p)).mean()
    assert _value(make_loss("class-balanced", COUNTS, beta=0.99, focal_gamma=0.5)) == \
        pytest.approx(focal, rel=1e-6)


def test_ldam_margins_shrink_as_n_to_the_minus_quarter():
    loss = LDAM(COUNTS, max_margin=0.5, scale=30.0)
    # n = 1 gets the largest margin, 0.5; n = 90 gets 0.5 * (1/90)^(1/4).
    np.testing.assert_allclose(loss.margins, [0.5 * 90 ** -0.25, 0.5 * 9 ** -0.25, 0.5],
                               rtol=1e-6)
    margins = np.array(loss.margins)
    shifted = LOGITS.copy()
    shifted[np.arange(4), LABELS] -= margins[LABELS]
    assert _value(loss) == pytest.approx(_nll(30.0 * shifted).mean(), rel=1e-5)


def test_weighted_losses_use_torchs_weighted_mean():
    weights = class_balanced_weights(COUNTS, DRW_BETA)
    nll = _nll(_ldam_shifted(LOGITS))  # scale 1: the default on unnormalised logits
    expected = (weights[LABELS] * nll).sum() / weights[LABELS].sum()
    loss = make_loss("ldam", COUNTS, deferred=True)
    loss.weights_active = True
    assert _value(loss) == pytest.approx(expected, rel=1e-5)


def _ldam_shifted(logits):
    margins = np.array(LDAM(COUNTS).margins)
    shifted = logits.copy()
    shifted[np.arange(len(LABELS)), LABELS] -= margins[LABELS]
    return shifted


def test_deferred_reweighting_turns_the_weights_on_at_the_epoch():
    loss = make_loss("weighted", COUNTS.astype(int), deferred=True)
    plain = _value(CrossEntropy())
    assert _value(loss) == pytest.approx(plain)  # weights off before the deferred epoch
    callback = DeferredReweighting(loss, defer_epoch=2)
    callback.on_epoch_begin(1)
    assert not loss.weights_active
    callback.on_epoch_begin(2)
    assert loss.weights_active and _value(loss) != pytest.approx(plain)
    # Resuming at a later epoch: the weights are on from its first batch.
    fresh = make_loss("weighted", COUNTS.astype(int), deferred=True)
    DeferredReweighting(fresh, defer_epoch=2).on_epoch_begin(5)
    assert _value(fresh) == pytest.approx(_value(loss))


def test_mixed_rows_share_the_loss_between_both_labels():
    partner = np.array([1, 0, 2, 0])
    lam = np.array([0.7, 0.5, 1.0, 0.2])
    mixed = np.stack([LABELS, partner, lam], axis=1).astype(np.float32)
    for name in ("ce", "weighted", "balanced-softmax", "class-balanced", "focal", "ldam"):
        loss = make_loss(name, COUNTS.astype(int))
        rows = [_value(loss, LOGITS[i:i + 1], LABELS[i:i + 1]) for i in range(4)]
        partners = [_value(loss, LOGITS[i:i + 1], partner[i:i + 1]) for i in range(4)]
        got = _value(loss, LOGITS, mixed)
        if loss.class_weights and not isinstance(loss, Focal):  # torch's weighted mean
            w = np.array(loss.class_weights)
            num = (lam * w[LABELS] * rows + (1 - lam) * w[partner] * partners).sum()
            expected = num / (lam * w[LABELS] + (1 - lam) * w[partner]).sum()
        else:
            expected = (lam * np.array(rows) + (1 - lam) * np.array(partners)).mean()
        assert got == pytest.approx(expected, rel=1e-5), name


@pytest.mark.parametrize("name", ["weighted", "balanced-softmax", "logit-adjusted",
                                  "class-balanced", "focal", "ldam"])
def test_every_loss_round_trips_through_keras_config(name):
    loss = make_loss(name, COUNTS.astype(int), tau=0.7, beta=0.99, focal_gamma=1.5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss)
    assert _value(again) == pytest.approx(_value(loss), rel=1e-6)


def test_losses_need_a_train_image_in_every_class():
    for name in ("balanced-softmax", "class-balanced", "ldam"):
        with pytest.raises(ValueError, match="class index 1 has none"):
            make_loss(name, np.array([5, 0, 2]))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        make_loss("hinge", COUNTS)
