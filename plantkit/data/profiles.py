"""Per-class image counts: the real Pl@ntNet-300K profile and synthetic long tails.

A profile is a DataFrame indexed by class id (str) with columns `species_name`,
`train`, `val`, `test` (ints), in class-index order. The same frame describes a dataset
read from disk (`Dataset.counts()`), so analysis code takes either.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from plantkit.choices import PROFILES, SPLITS
from plantkit.errors import PlantkitInputError

# Every species keeps at least this many images per split, as in Pl@ntNet-300K.
MIN_PER_SPLIT = {"train": 2, "val": 1, "test": 1}
MIN_TOTAL = sum(MIN_PER_SPLIT.values())


def plantnet300k_table() -> pd.DataFrame:
    """The shipped Pl@ntNet-300K v1.1 table: species_id, species_name, count_total, count_test."""
    with resources.files("plantkit.data").joinpath("plantnet300k_counts.csv").open("rb") as f:
        table = pd.read_csv(f, dtype={"species_id": str})
    return table


def split_counts(totals: np.ndarray, test: np.ndarray | None = None) -> pd.DataFrame:
    """Split per-class totals 80/10/10: val and test get ceil(10 %), train the rest.

    ceil(10 %) is Pl@ntNet-300K's own rule: it reproduces 1,058 of its 1,081 published
    per-species test counts. `test` overrides the test counts where they are known.
    Every class keeps at least 2 train, 1 val and 1 test image.
    """
    totals = np.maximum(np.asarray(totals, dtype=np.int64), MIN_TOTAL)
    tenth = np.maximum(np.ceil(totals * 0.1 - 1e-9).astype(np.int64), 1)
    test_counts = tenth if test is None else np.maximum(np.asarray(test, dtype=np.int64), 1)
    val_counts = tenth
    train_counts = totals - val_counts - test_counts
    # Very small classes: give train its minimum back from val/test's ceil.
    short = train_counts < MIN_PER_SPLIT["train"]
    if short.any():
        val_counts = np.where(short, 1, val_counts)
        test_counts = np.where(short, 1, test_counts)
        train_counts = totals - val_counts - test_counts
    return pd.DataFrame({"train": train_counts, "val": val_counts, "test": test_counts})


def _pick_spread(order_by_size: np.ndarray, k: int) -> np.ndarray:
    """k positions spread evenly over a list sorted by size (keeps head and tail)."""
    n = len(order_by_size)
    return order_by_size[np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))]


def pick_species(totals: np.ndarray, genera: list[str], k: int) -> np.ndarray:
    """Row indices of k species spread over the frequency range, half of them in genus pairs.

    A plain spread almost never picks two species of one genus, and congeners are where
    Pl@ntNet-300K's labels are ambiguous; so half the picks are spread anchors and each
    anchor brings its congener closest in size, when it has one.
    """
    totals = np.asarray(totals)
    by_size = np.argsort(-totals, kind="stable")
    anchors = _pick_spread(by_size, (k + 1) // 2)
    chosen = list(anchors)
    taken = set(chosen)
    genus_of = np.asarray(genera)
    for anchor in anchors:
        if len(chosen) == k:
            break
        siblings = [i for i in np.flatnonzero(genus_of == genus_of[anchor]) if i not in taken]
        if siblings:
            nearest = min(siblings, key=lambda i: (abs(int(totals[i]) - int(totals[anchor])), i))
            chosen.append(nearest)
            taken.add(nearest)
    if len(chosen) < k:
        rest = np.array([i for i in by_size if i not in taken])
        chosen.extend(_pick_spread(rest, k - len(chosen)))
    return np.sort(np.array(chosen[:k]))


def make_profile(
    name: str = "plantnet300k",
    *,
    scale: float = 1.0,
    classes: int | None = None,
    alpha: float = 1.0,
    max_count: int = 9012,
) -> pd.DataFrame:
    """Class counts for a named profile.

    - `plantnet300k`: the real per-species totals, times `scale`; `classes=K` keeps K
      species spread over the whole frequency range (the long tail stays), about half of
      them in pairs of one genus (see `pick_species`).
    - `uniform`: `classes` species of `max_count * scale` images each.
    - `zipf`: `classes` species, the i-th largest with `max_count * scale / i**alpha` images.
    """
    if name not in PROFILES:
        raise PlantkitInputError(f"unknown profile '{name}'; choose one of {', '.join(PROFILES)}")
    if scale <= 0:
        raise PlantkitInputError(f"--scale must be positive, got {scale}")
    if classes is not None and classes < 1:
        raise PlantkitInputError(f"--classes must be at least 1, got {classes}")

    if name == "plantnet300k":
        table = plantnet300k_table()
        if classes is not None:
            if classes > len(table):
                raise PlantkitInputError(
                    f"--classes {classes} exceeds the {len(table)} species of Pl@ntNet-300K"
                )
            genera = [name.split()[0] for name in table["species_name"]]
            table = table.iloc[pick_species(table["count_total"].to_numpy(), genera, classes)]
        totals = np.round(table["count_total"].to_numpy() * scale).astype(np.int64)
        # The published test counts hold only for the real sizes.
        test = table["count_test"].to_numpy() if scale == 1.0 else None
        counts = split_counts(totals, test)
        counts.index = pd.Index(table["species_id"].to_list(), name="class_id")
        counts.insert(0, "species_name", table["species_name"].to_list())
        return counts

    k = classes or 100
    if name == "uniform":
        totals = np.full(k, max_count * scale)
    else:
        totals = max_count * scale / np.arange(1, k + 1) ** alpha
    counts = split_counts(np.round(totals).astype(np.int64))
    width = len(str(k))
    ids = [f"{i:0{width}d}" for i in range(k)]
    counts.index = pd.Index(ids, name="class_id")
    counts.insert(0, "species_name", [f"Species {i}" for i in ids])
    return counts


def total_counts(counts: pd.DataFrame) -> pd.Series:
    """Images per class over all splits present in `counts`."""
    return counts[[s for s in SPLITS if s in counts.columns]].sum(axis=1)


__all__ = [
    "PROFILES",
    "SPLITS",
    "make_profile",
    "plantnet300k_table",
    "split_counts",
    "total_counts",
]
