"""The training samplers (plantkit.data.sampling): class probabilities against the papers'
formulas written out, the rows they draw, and the deferred schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plantkit.data.loading import EpochSampler
from plantkit.data.sampling import class_probabilities, draw_rows, sampler_at

COUNTS = np.array([100, 25, 4])
LABELS = np.repeat(np.arange(3), COUNTS)


@pytest.mark.parametrize(("sampler", "epoch", "expected"), [
    ("none", 0, [100 / 129, 25 / 129, 4 / 129]),
    ("inverse", 0, [1 / 3, 1 / 3, 1 / 3]),
    ("balanced", 3, [1 / 3, 1 / 3, 1 / 3]),
    ("sqrt", 0, [10 / 17, 5 / 17, 2 / 17]),          # sqrt(100), sqrt(25), sqrt(4)
    ("progressive", 0, [100 / 129, 25 / 129, 4 / 129]),
    # Kang et al. eq. 2 at t/T = 2/4: half instance-balanced, half class-balanced.
    ("progressive", 2, [0.5 * 100 / 129 + 0.5 / 3, 0.5 * 25 / 129 + 0.5 / 3,
                        0.5 * 4 / 129 + 0.5 / 3]),
])
def test_class_probabilities_follow_the_formulas(sampler, epoch, expected):
    p = class_probabilities(sampler, COUNTS, epoch=epoch, epochs=4)
    assert p == pytest.approx(expected, abs=1e-12)
    assert p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("sampler", ["inverse", "sqrt", "balanced", "progressive"])
def test_drawn_rows_have_the_class_shares_of_the_sampler(sampler):
    drawn = np.concatenate([
        LABELS[draw_rows(LABELS, sampler, torch.Generator().manual_seed(s), epoch=3, epochs=4)]
        for s in range(60)
    ])
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    expected = class_probabilities(sampler, COUNTS, epoch=3, epochs=4)
    assert shares == pytest.approx(expected, abs=0.02)
    assert len(drawn) == 60 * len(LABELS)  # an epoch draws as many rows as the split has


def test_none_is_a_permutation_and_balanced_cycles_each_class_before_repeating():
    generator = torch.Generator().manual_seed(0)
    assert sorted(draw_rows(LABELS, "none", generator)) == list(range(len(LABELS)))
    rows = np.array(draw_rows(LABELS, "balanced", generator))
    rare = np.bincount(rows[LABELS[rows] == 2], minlength=len(LABELS))[LABELS == 2]
    # ~43 draws of class 2's 4 images: each image 10 or 11 times, never 9 and 12.
    assert rare.max() - rare.min() <= 1
    common = np.bincount(rows[LABELS[rows] == 0], minlength=len(LABELS))[LABELS == 0]
    assert common.max() <= 1  # ~43 of 100 images: none twice


def test_deferred_resampling_draws_instance_balanced_epochs_first():
    assert [sampler_at("sqrt", e, 2) for e in range(4)] == ["none", "none", "sqrt", "sqrt"]
    assert sampler_at("sqrt", 0, None) == "sqrt"
    early = list(EpochSampler(LABELS, order="inverse", seed=3, epoch=1, defer_epoch=2))
    assert sorted(row for row, _ in early) == list(range(len(LABELS)))  # each image once
    late = [row for row, _ in EpochSampler(LABELS, order="inverse", seed=3, epoch=2,
                                           defer_epoch=2)]
    assert len(set(late)) < len(LABELS)  # with replacement: some images twice


def test_the_same_seed_and_epoch_draw_the_same_rows():
    def rows(seed, epoch):
        return list(EpochSampler(LABELS, order="progressive", seed=seed, epoch=epoch, epochs=5))

    assert rows(1, 2) == rows(1, 2)
    assert rows(1, 2) != rows(1, 3) and rows(1, 2) != rows(2, 2)
