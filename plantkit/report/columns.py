"""What every reader of the report dict shares: the leaderboard's columns, the keys of the
top-k table and the notes grouped by model (`tables`, `html` and `leaderboard` use them)."""

from __future__ import annotations

from collections.abc import Sequence

from plantkit import metrics

AVERAGE_K = 3  # the leaderboard's average-k column
ACCURACY_BIN_WIDTH = 0.01  # the reference study's 1 % accuracy bins

# Leaderboard columns: key, header, which way is better ("max"/"min"), how to show it.
COLUMNS = (
    ("params", "params", "min", "count"),
    ("gflops", "GFLOPs", "min", "float"),
    ("measured_gflops", "GFLOPs meas.", "min", "float"),
    ("top1", "top-1", "max", "pct"),
    ("top5", "top-5", "max", "pct"),
    ("macro_top1", "macro top-1", "max", "pct"),
    ("macro_top5", "macro top-5", "max", "pct"),
    (f"avg{AVERAGE_K}", f"avg-{AVERAGE_K}", "max", "pct"),
    ("many", "many", "max", "pct"),
    ("medium", "medium", "max", "pct"),
    ("few", "few", "max", "pct"),
    ("ece", "ECE", "min", "pct"),
    ("species_above_90", "species > 90 %", "max", "count"),
)
# The columns read from the model entry (its store's attributes, the measured cost beside
# it); the others from its result on the split.
MODEL_COLUMNS = ("params", "gflops", "measured_gflops")
BUCKET_RULES = metrics.SHOT_RULES  # thresholds: plantkit.metrics


def column_k(key: str) -> int | None:
    """The k of a top-k / average-k leaderboard column (top5 -> 5), None for others."""
    for prefix in ("macro_top", "top", "avg"):
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            return int(key[len(prefix):])
    return None


def topk_keys(ks: Sequence[int], avg_ks: Sequence[int]) -> list[str]:
    """Result keys of the top-k table: top-k and macro top-k for each k, average-k, its macro
    and mean set size for each average k."""
    keys = [f"{prefix}{k}" for k in ks for prefix in ("top", "macro_top")]
    return keys + [key.format(k) for k in avg_ks
                   for key in ("avg{}", "macro_avg{}", "avg{}_set_size")]


def grouped_notes(report: dict) -> list[str]:
    """The report's notes, then each model note once, naming the models it applies to."""
    by_note: dict[str, list[str]] = {}
    for model in report["models"]:
        for note in model["notes"]:
            by_note.setdefault(note, []).append(model["name"])
    return list(report["notes"]) + [f"{note}: {', '.join(names)}"
                                    for note, names in by_note.items()]


__all__ = ["ACCURACY_BIN_WIDTH", "AVERAGE_K", "BUCKET_RULES", "COLUMNS", "MODEL_COLUMNS",
           "column_k",
           "grouped_notes", "topk_keys"]
