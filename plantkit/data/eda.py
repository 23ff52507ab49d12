"""Dataset analysis (EDA) of `plantkit data inspect`: the numbers of the reference study.

`summarize` takes a counts frame (a profile from `plantkit.data.profiles` or
`Dataset.counts()`: indexed by class id, columns `species_name`, `train`, `val`, `test`,
rows in class-index order) and returns a plain, JSON-serialisable dict:

- `images_per_split`: images per split and `total`; `classes_per_split`: classes with
  > 0 images per split, and `total` (all classes);
- `split_check`: the per-class split check (train/val/test share of every class, flagged
  deviations from Pl@ntNet-300K's own 80/10/10 rule, see `split_check`);
- `classes_per_decile`: classes per 10 % of the images (see `classes_per_decile`);
- `class_sizes`: min / median / max images per class, the largest and smallest class,
  classes with <= 10 images;
- `shots`: many/medium/few-shot classes by train images (> 100, 20..100, < 20);
- `per_class`: the per-class table (class_id, species_name, train, val, test, total), in
  the order given;
- `source`, and `dataset` (root, layout, fingerprint, skipped non-image files per split,
  bytes) when a dataset is given.

Pure pandas/numpy; nothing is printed (see `plantkit.report.eda_tables` for that).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from plantkit.choices import FEW_SHOT_BELOW, MANY_SHOT_ABOVE
from plantkit.data.profiles import SPLITS, split_counts

# Largest allowed gap, in images, between a split's count and the rule's expected count.
SPLIT_TOLERANCE = 1
# Classes with at most this many images (all splits) count as tiny.
TINY_CLASS = 10
# Shot buckets by train images, as in the Pl@ntNet-300K paper's analysis.
DECILES = tuple(range(1, 11))


def _split_frame(counts: pd.DataFrame) -> pd.DataFrame:
    """The train/val/test columns as int64; a missing split column reads as zeros."""
    cols = {}
    for split in SPLITS:
        if split in counts.columns:
            cols[split] = pd.to_numeric(counts[split]).fillna(0).astype(np.int64).to_numpy()
        else:
            cols[split] = np.zeros(len(counts), dtype=np.int64)
    return pd.DataFrame(cols, index=counts.index)


def _names(counts: pd.DataFrame) -> list[str]:
    if "species_name" in counts.columns:
        return [str(n) for n in counts["species_name"].tolist()]
    return [str(i) for i in counts.index]


def _number(value: float) -> int | float:
    """A plain int when the value is whole, else a plain float."""
    value = float(value)
    return int(value) if value.is_integer() else value


def classes_per_decile(totals: np.ndarray) -> list[int]:
    """For d = 1..10: how many classes, largest first, hold at most d/10 of the images.

    A class counts for decile d when the cumulative share of the largest classes up to
    and including it is at or below d/10, i.e. `10 * cum <= d * total` in exact integers.
    Ties between equal-sized classes do not matter: the cumulative sums are the same
    whichever of them comes first. The last entry is the number of classes.
    """
    totals = np.asarray(totals, dtype=np.int64)
    if totals.size == 0:
        return [0 for _ in DECILES]
    cum = np.cumsum(np.sort(totals)[::-1])
    total = int(cum[-1])
    # cum is non-decreasing, so the classes that fit form a prefix.
    return [int(np.searchsorted(10 * cum, d * total, side="right")) for d in DECILES]


def split_check(counts: pd.DataFrame) -> dict[str, Any]:
    """Flag classes whose train/val/test split deviates from 80/10/10 beyond rounding.

    Rule (Pl@ntNet-300K's own, `plantkit.data.profiles.split_counts`): for a class of
    `total` images, expected val = expected test = max(1, ceil(0.1 * total)) and expected
    train = the rest (classes under 4 images are treated as 4: 2/1/1). A class is flagged
    when any split's count differs from its expected count by more than
    `SPLIT_TOLERANCE` (1) image. The tolerance absorbs rounding and the published test
    counts that differ by one image from the ceil rule.

    Minimum split: the rule gives every class at least 2 train, 1 val and 1 test image, so
    a class is also flagged when one of its checked splits holds none of its images (a
    3/0/0 class is within one image of 2/1/1, yet cannot be validated or tested). Each
    flagged row says why in `reasons` ("off by more than 1", "empty <split>").

    A split that holds no image at all in the whole dataset (no such folder) is not
    checked: its expected count is added to train's, as when it was never carved out.
    Classes with no image at all are not flagged.
    """
    splits = _split_frame(counts)
    totals = splits.sum(axis=1).to_numpy()
    expected = split_counts(totals)
    present = [s for s in SPLITS if int(splits[s].sum()) > 0]
    for split in SPLITS:
        if split not in present and split != "train":
            expected["train"] = expected["train"] + expected[split]
            expected[split] = 0
    diff = np.abs(splits.to_numpy() - expected[list(SPLITS)].to_numpy())
    off = (diff > SPLIT_TOLERANCE).any(axis=1)
    empty = (splits.to_numpy() == 0) & (expected[list(SPLITS)].to_numpy() > 0)
    flagged_mask = (off | empty.any(axis=1)) & (totals > 0)

    names = _names(counts)
    ids = [str(i) for i in counts.index]
    safe_totals = np.where(totals > 0, totals, 1)
    shares = splits.to_numpy() / safe_totals[:, None]
    flagged = []
    for i in np.flatnonzero(flagged_mask):
        flagged.append(
            {
                "class_id": ids[i],
                "species_name": names[i],
                "total": int(totals[i]),
                "reasons": ([f"off by more than {SPLIT_TOLERANCE}"] if off[i] else [])
                + [f"empty {s}" for j, s in enumerate(SPLITS) if empty[i, j]],
                **{s: int(splits[s].iat[i]) for s in SPLITS},
                "expected": {s: int(expected[s].iat[i]) for s in SPLITS},
                "shares": {s: round(float(shares[i, j]), 4) for j, s in enumerate(SPLITS)},
            }
        )
    overall = splits.to_numpy().sum(axis=0)
    grand = int(overall.sum())
    return {
        "rule": (
            "expected val = test = max(1, ceil(10 % of the class)), train = the rest; "
            f"flagged when any split is off by more than {SPLIT_TOLERANCE} image "
            "or holds none of the class's images"
        ),
        "tolerance": SPLIT_TOLERANCE,
        "checked_splits": present,
        "overall_shares": {
            s: round(float(overall[j]) / grand, 4) if grand else 0.0 for j, s in enumerate(SPLITS)
        },
        "share_ranges": _share_ranges(shares[totals > 0]),
        "n_flagged": len(flagged),
        "flagged": flagged,
    }


def _share_ranges(shares: np.ndarray) -> dict[str, list[float]]:
    """[min, max] share of each split over the classes (rows of `shares`)."""
    if not len(shares):
        return {s: [0.0, 0.0] for s in SPLITS}
    return {
        s: [round(float(shares[:, j].min()), 4), round(float(shares[:, j].max()), 4)]
        for j, s in enumerate(SPLITS)
    }


def shot_buckets(train: np.ndarray) -> dict[str, int]:
    """Many (> 100 train images), medium (20..100 inclusive) and few-shot (< 20) classes."""
    train = np.asarray(train, dtype=np.int64)
    many = int((train > MANY_SHOT_ABOVE).sum())
    few = int((train < FEW_SHOT_BELOW).sum())
    return {"many": many, "medium": int(len(train) - many - few), "few": few}


def _dataset_info(dataset) -> dict[str, Any]:
    skipped = {str(k): int(v) for k, v in (getattr(dataset, "skipped", None) or {}).items()}
    info: dict[str, Any] = {
        "root": str(getattr(dataset, "root", "")),
        "images_dir": str(getattr(dataset, "images_dir", "")),
        "layout": str(getattr(dataset, "layout", "")),
        "fingerprint": str(getattr(dataset, "fingerprint", "")),
        "val_source": str(getattr(dataset, "val_source", "folder")),
        "skipped_non_images": skipped,
        "skipped_non_images_total": int(sum(skipped.values())),
    }
    n_images = getattr(dataset, "n_images", None)
    if n_images is not None:
        info["n_images"] = int(n_images)
    splits = getattr(dataset, "splits", None) or {}
    sizes = {}
    for name, split in splits.items():
        arr = getattr(split, "sizes", None)
        if arr is not None and len(arr):
            sizes[str(name)] = int(np.asarray(arr, dtype=np.int64).sum())
    if sizes:
        info["bytes_per_split"] = sizes
        info["bytes_total"] = int(sum(sizes.values()))
    return info


def summarize(counts: pd.DataFrame, *, source: str, dataset=None) -> dict[str, Any]:
    """The EDA numbers of a counts frame as a JSON-serialisable dict (see the module doc)."""
    splits = _split_frame(counts)
    totals = splits.sum(axis=1).to_numpy()
    names = _names(counts)
    ids = [str(i) for i in counts.index]
    n_classes = len(counts)

    images = {s: int(splits[s].sum()) for s in SPLITS}
    images["total"] = int(totals.sum())
    classes = {"total": n_classes, **{s: int((splits[s] > 0).sum()) for s in SPLITS}}

    if n_classes:
        i_max = int(np.argmax(totals))  # first of the largest, in class-index order
        i_min = int(np.argmin(totals))
        sizes: dict[str, dict[str, str] | int | float | None] = {
            "min": int(totals.min()),
            "median": _number(np.median(totals)),
            "mean": round(float(totals.mean()), 2),
            "max": int(totals.max()),
            "max_class": {"class_id": ids[i_max], "species_name": names[i_max]},
            "min_class": {"class_id": ids[i_min], "species_name": names[i_min]},
            "classes_at_most_10": int((totals <= TINY_CLASS).sum()),
            "imbalance_ratio": round(float(totals.max()) / max(int(totals.min()), 1), 2),
        }
    else:
        sizes = {
            "min": 0,
            "median": 0,
            "mean": 0.0,
            "max": 0,
            "max_class": None,
            "min_class": None,
            "classes_at_most_10": 0,
            "imbalance_ratio": 0.0,
        }

    deciles = classes_per_decile(totals)
    table = [
        {
            "class_id": ids[i],
            "species_name": names[i],
            "train": int(splits["train"].iat[i]),
            "val": int(splits["val"].iat[i]),
            "test": int(splits["test"].iat[i]),
            "total": int(totals[i]),
        }
        for i in range(n_classes)
    ]
    summary: dict[str, Any] = {
        "source": str(source),
        "images_per_split": images,
        "classes_per_split": classes,
        "split_check": split_check(counts),
        "classes_per_decile": {
            "deciles": [d * 10 for d in DECILES],
            "classes": deciles,
            "rule": (
                "a class counts for a decile when the cumulative share of the largest "
                "classes up to and including it is at or below that decile"
            ),
        },
        "class_sizes": sizes,
        "shots": {
            **shot_buckets(splits["train"].to_numpy()),
            "rule": f"by train images: many > {MANY_SHOT_ABOVE}, medium "
                    f"{FEW_SHOT_BELOW}..{MANY_SHOT_ABOVE}, few < {FEW_SHOT_BELOW}",
        },
        "per_class": table,
    }
    if dataset is not None:
        summary["dataset"] = _dataset_info(dataset)
    return summary


__all__ = ["classes_per_decile", "shot_buckets", "split_check", "summarize"]
