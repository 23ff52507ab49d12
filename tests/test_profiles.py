"""Class-count profiles: the real Pl@ntNet-300K counts and the synthetic long tails."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from plantkit.data.profiles import make_profile, pick_species, split_counts
from plantkit.errors import PlantkitInputError


def test_real_profile_matches_the_published_totals():
    counts = make_profile("plantnet300k")
    assert len(counts) == 1081
    assert counts[["train", "val", "test"]].to_numpy().sum() == 306_146
    assert counts["test"].sum() == 31_112  # the published test split
    # val is estimated by the ceil(10 %) rule: within 10 images of the official 31,118.
    assert abs(counts["val"].sum() - 31_118) <= 10
    assert counts.loc["1363227", "species_name"].startswith("Daucus carota")
    assert (counts[["train", "val", "test"]].min() >= [2, 1, 1]).all()


def test_split_counts_rule_and_minimums():
    got = split_counts(np.array([9012, 4, 2, 10, 11]))
    assert got.values.tolist() == [[7208, 902, 902], [2, 1, 1], [2, 1, 1], [8, 1, 1], [7, 2, 2]]


def test_subset_keeps_the_range_and_pairs_congeners():
    full = make_profile("plantnet300k")
    subset = make_profile("plantnet300k", classes=60)
    totals = subset[["train", "val", "test"]].sum(axis=1)
    assert len(subset) == 60
    assert totals.max() == 9012 and totals.min() == 4  # head and tail both kept
    genera = Counter(name.split()[0] for name in subset["species_name"])
    assert sum(n >= 2 for n in genera.values()) >= 10  # confusable pairs present
    assert list(subset.index) == [c for c in full.index if c in set(subset.index)]  # order kept


def test_pick_species_without_congeners_is_a_plain_spread():
    totals = np.array([100, 50, 20, 10, 5, 1])
    # Two anchors (largest and smallest), no congeners, so the third comes from the rest.
    assert pick_species(totals, ["a", "b", "c", "d", "e", "f"], 3).tolist() == [0, 1, 5]
    # With a congener, the anchor brings it along.
    assert pick_species(totals, ["a", "b", "c", "d", "f", "f"], 3).tolist() == [0, 4, 5]


def test_synthetic_profiles():
    uniform = make_profile("uniform", classes=4, scale=0.01)
    assert uniform["train"].nunique() == 1 and len(uniform) == 4
    zipf = make_profile("zipf", classes=50, alpha=1.0, scale=0.1)
    totals = zipf[["train", "val", "test"]].sum(axis=1).to_numpy()
    assert totals[0] == 901 and totals[1] == 451 and (np.diff(totals) <= 0).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "nope"}, "unknown profile"),
        ({"scale": 0}, "--scale must be positive"),
        ({"classes": 0}, "--classes must be at least 1"),
        ({"classes": 5000}, "exceeds the 1081 species"),
    ],
)
def test_bad_profile_options(kwargs, message):
    with pytest.raises(PlantkitInputError, match=message):
        make_profile(**kwargs)
