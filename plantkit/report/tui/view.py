"""What the TUI shows, as plain rows computed from the report dict of
plantkit.report.leaderboard.build_report: every number on screen is one of the report's
(`plantkit report --json`), formatted as the terminal tables format it
(plantkit.report.tables.fmt / leaderboard_cell). No Textual here: the screens
(plantkit.report.tui.app) only lay these rows out, and the tests check them directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from plantkit.metrics import PER_CLASS_TOP_K, shot_buckets
from plantkit.report import train_options
from plantkit.report.columns import COLUMNS
from plantkit.report.tables import fmt, leaderboard_cell

# The leaderboard's columns after the name: key, header, which way is better, format.
LEADERBOARD_COLUMNS = (("kind", "kind", None, "text"), *COLUMNS)
TOP_K_KEY = f"top{PER_CLASS_TOP_K}"
BUCKETS = ("many", "medium", "few")
HISTOGRAM_BINS = 10  # per-species accuracy in 10 % bins
# combination.json params not shown in the model screen: long curves and fitted internals.
HIDDEN_PARAMS = ("curve", "router", "stage_gflops", "chosen", "temperature_fit_rows")


@dataclass(frozen=True)
class Order:
    """A sort: the column key and its direction."""

    key: str
    descending: bool


def default_order(key: str) -> Order:
    """Best first for a metric column (largest for "max", smallest for "min"), A-Z for text."""
    better = next((c[2] for c in LEADERBOARD_COLUMNS if c[0] == key), None)
    return Order(key, better == "max")


def order_label(order: Order, headers: dict[str, str]) -> str:
    """"top-5 ▼": the column's header and the direction (▼ largest first)."""
    return f"{headers.get(order.key, order.key)} {'▼' if order.descending else '▲'}"


def sorted_rows(rows: Sequence[dict], order: Order | None) -> list[dict]:
    """Rows by `order.key` (stable: ties keep their order); a missing value (None, NaN)
    always last, whatever the direction."""
    if order is None:
        return list(rows)
    present = [r for r in rows if _present(r.get(order.key))]
    absent = [r for r in rows if not _present(r.get(order.key))]
    present.sort(key=lambda r: _sort_value(r[order.key]), reverse=order.descending)
    return present + absent


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _sort_value(value):
    return value.lower() if isinstance(value, str) else value


# ------------------------------------------------------------------------- leaderboard


def leaderboard_rows(report: dict, split: str, *, order: Order | None = None,
                     text: str = "") -> list[dict]:
    """The split's leaderboard rows (the report's, ranked by top-1), those whose name or
    kind contains `text` (any case), in `order`."""
    needle = text.strip().lower()
    rows = [r for r in report["splits"][split]["leaderboard"]
            if not needle or needle in r["name"].lower() or needle in r["kind"].lower()]
    return sorted_rows(rows, order)


def leaderboard_cells(report: dict, split: str, row: dict) -> list[tuple[str, bool]]:
    """(text, is the column's best) per LEADERBOARD_COLUMNS for one row."""
    best = report["splits"][split]["best"]
    cells = []
    for key, _, _, how in LEADERBOARD_COLUMNS:
        if how == "text":
            cells.append((str(row[key]), False))
            continue
        value = row[key]
        cells.append((leaderboard_cell(row, key, how),
                      value is not None and value == best.get(key)))
    return cells


def model_entry(report: dict, name: str) -> dict:
    return next(m for m in report["models"] if m["name"] == name)


# ----------------------------------------------------------------------------- species


def species_columns(report: dict) -> list[tuple[str, str, str]]:
    """(key, header, format) of the per-species table: id, name, train images, the images
    of each reported split, top-1 and top-k on the chosen split."""
    split_columns = [(f"images_{s}", s, "count") for s in report["splits"]]
    return [("id", "id", "text"), ("name", "species", "text"), ("train", "train", "count"),
            *split_columns, ("top1", "top-1", "pct"), (TOP_K_KEY, f"top-{PER_CLASS_TOP_K}",
                                                        "pct")]


def species_rows(report: dict, name: str, split: str) -> list[dict]:
    """One row per species of the model `name` on `split` (absent species: accuracies
    None), sorted by train images, largest first (the report's --per-class order)."""
    result = model_entry(report, name)["results"][split]
    train = report.get("train_counts")
    bucket_of = _buckets(train, report["num_classes"])
    top1 = result["per_class_accuracy"]
    topk = result.get(f"per_class_{TOP_K_KEY}") or [None] * len(top1)
    rows = []
    for i, (class_id, species) in enumerate(zip(report["classes"]["ids"],
                                                report["classes"]["names"])):
        row = {"index": i, "id": str(class_id), "name": species,
               "train": None if train is None else int(train[i]),
               "top1": top1[i], TOP_K_KEY: topk[i], "bucket": bucket_of[i]}
        for other, section in report["splits"].items():
            row[f"images_{other}"] = int(section["class_images"][i])
        rows.append(row)
    return sorted_rows(rows, Order("train", True))


def _buckets(train_counts, num_classes: int) -> list[str | None]:
    if train_counts is None:
        return [None] * num_classes
    masks = shot_buckets(train_counts)
    return [next(b for b in BUCKETS if masks[b][i]) for i in range(num_classes)]


def filter_species(rows: Sequence[dict], query: str = "", bucket: str | None = None
                   ) -> list[dict]:
    """The rows whose class id starts with `query` or whose name contains it (any case),
    in `bucket` when given."""
    needle = query.strip().lower()
    return [r for r in rows
            if (bucket is None or r["bucket"] == bucket)
            and (not needle or r["id"].lower().startswith(needle)
                 or needle in r["name"].lower())]


def species_cells(columns: Sequence[tuple[str, str, str]], row: dict) -> list[str]:
    return [str(row[key]) if how == "text" else fmt(row[key], how)
            for key, _, how in columns]


@dataclass(frozen=True)
class SpeciesTable:
    """A model's species on one split, formatted once: the rows of `species_rows` and each
    row's cells by its index."""

    rows: list[dict]
    cells: dict[int, list[str]]

    @classmethod
    def of(cls, report: dict, name: str, split: str,
           columns: Sequence[tuple[str, str, str]]) -> SpeciesTable:
        rows = species_rows(report, name, split)
        return cls(rows, {row["index"]: species_cells(columns, row) for row in rows})


def accuracy_histogram(report: dict, name: str, split: str) -> list[int]:
    """Species per 10 % bin of top-1 accuracy (the last bin holds 100 %), species present."""
    accuracy = np.array([a for a in model_entry(report, name)["results"][split]
                         ["per_class_accuracy"] if a is not None], dtype=np.float64)
    counts, _ = np.histogram(accuracy, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return counts.tolist()


def accuracy_by_count(report: dict, name: str, split: str
                      ) -> list[tuple[str, float | None, int]]:
    """(images-per-species bin, mean top-1 accuracy, species) of the report's
    accuracy_by_count view (bins of the report's image counts)."""
    view = model_entry(report, name)["results"][split].get("accuracy_by_count")
    if not view:
        return []
    return list(zip(view["bins"], view["mean_accuracy"], view["classes"]))


# ------------------------------------------------------------------------------ details


def model_details(report: dict, name: str, split: str) -> list[tuple[str, str]]:
    """(label, text) lines of the model screen's summary: cost, scores, calibration, an
    expert's long-tail training options and a combination's fitted parameters."""
    model = model_entry(report, name)
    result = model["results"].get(split) or {}
    lines = [("kind", model["kind"]), ("architecture", str(model.get("architecture") or "-")),
             ("params", fmt(model.get("params"), "params")),
             ("GFLOPs expected", fmt(model.get("gflops"), "float")),
             ("GFLOPs measured", fmt(model.get("measured_gflops"), "float")),
             (f"top-1 ({split})", fmt(result.get("top1"), "pct")),
             (f"macro top-1 ({split})", fmt(result.get("macro_top1"), "pct")),
             ("ECE %", fmt(result.get("ece"), "pct")),
             ("NLL", fmt(result.get("nll"), "float")),
             ("species present", fmt(result.get("classes_present"), "count"))]
    lines += [(f"trained: {train_options.header(key)}", text) for key, text
              in train_options.shown_options(model.get("training_options")).items()]
    combination = model.get("combination")
    if combination:
        lines.append(("method", str(combination.get("method"))))
        lines.append(("experts", ", ".join(combination.get("experts") or [])))
        lines += [(key, param_text(value))
                  for key, value in (combination.get("params") or {}).items()
                  if not any(hidden in key for hidden in HIDDEN_PARAMS)]
    return lines


def param_text(value) -> str:
    """A fitted parameter in one line: numbers to 3 significant digits, lists and dicts of
    them joined."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {param_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(param_text(v) for v in value)
    return str(value)


def history_points(report: dict, name: str) -> tuple[list[str], list[list[str]], list[float]]:
    """(headers, rows of text, val top-1 per epoch) of an expert's training history."""
    from plantkit.report.tables import HISTORY_COLUMNS

    history = model_entry(report, name).get("history")
    if not history:
        return [], [], []
    present = [c for c in HISTORY_COLUMNS if c[0] in history["columns"]]
    rows = [[str(int(r["epoch"]) + 1) if r.get("epoch") is not None else "-"]
            + [fmt(r.get(key), how) for key, _, how in present] for r in history["rows"]]
    curve = [float(r["val_top1"]) for r in history["rows"] if r.get("val_top1") is not None]
    return ["epoch", *[header for _, header, _ in present]], rows, curve


# ------------------------------------------------------------------------------ compare


def compare(report: dict, first: str, second: str, split: str) -> dict:
    """Per-species top-1 of `second` minus `first` on `split`: rows sorted by the gain
    (largest first; ties by train images), and the species won, lost and tied."""
    a = model_entry(report, first)["results"][split]["per_class_accuracy"]
    b = model_entry(report, second)["results"][split]["per_class_accuracy"]
    train = report.get("train_counts")
    bucket_of = _buckets(train, report["num_classes"])
    rows = [{"index": i, "id": str(class_id), "name": species,
             "train": None if train is None else int(train[i]), "bucket": bucket_of[i],
             "first": a[i], "second": b[i], "gain": b[i] - a[i]}
            for i, (class_id, species) in enumerate(zip(report["classes"]["ids"],
                                                        report["classes"]["names"]))
            if a[i] is not None and b[i] is not None]
    rows.sort(key=lambda r: (-r["gain"], -(r["train"] or 0), r["index"]))
    return {"first": first, "second": second, "split": split, "rows": rows,
            "won": sum(r["gain"] > 0 for r in rows), "lost": sum(r["gain"] < 0 for r in rows),
            "tied": sum(r["gain"] == 0 for r in rows)}


COMPARE_COLUMNS = (("id", "id", "text"), ("name", "species", "text"),
                   ("train", "train", "count"), ("first", "first", "pct"),
                   ("second", "second", "pct"), ("gain", "gain", "gain"))


def compare_cells(row: dict) -> list[str]:
    return [str(row[key]) if how == "text" else
            (f"{100 * row[key]:+.1f}" if how == "gain" else fmt(row[key], how))
            for key, _, how in COMPARE_COLUMNS]


# The micro/macro chart of the leaderboard screen (`p`): one mark per model.
TRADEOFF_MARKS = "123456789abcdefghijklmnopqrstuvwxyz"
TRADEOFF_STEP = 0.05  # the axes run between multiples of 5 %


def _axis(values: list[float]) -> tuple[float, float]:
    # The epsilon keeps 0.70 / 0.05 (13.999...) on 14: a value on a step is the axis's end.
    low = math.floor(min(values) / TRADEOFF_STEP + 1e-9) * TRADEOFF_STEP
    high = math.ceil(max(values) / TRADEOFF_STEP - 1e-9) * TRADEOFF_STEP
    return (low, high) if high > low else (low, low + TRADEOFF_STEP)


def tradeoff_chart(rows: list[dict], *, width: int = 56, height: int = 12) -> list[str]:
    """Macro top-1 (up) against micro top-1 (right) of `rows` (leaderboard rows), as text:
    the plot's lines, then a legend line per model (its mark, name, top-1 and macro top-1
    in %). Models without both numbers are left out; several in one cell show as '+'. The
    terminal's stand-in for the HTML report's "Micro vs macro top-1" chart."""
    points = [r for r in rows if r.get("top1") is not None and r.get("macro_top1") is not None]
    if not points:
        return ["no model has top-1 and macro top-1 on this split"]
    points = points[:len(TRADEOFF_MARKS)]
    x0, x1 = _axis([r["top1"] for r in points])
    y0, y1 = _axis([r["macro_top1"] for r in points])
    grid = [[" "] * width for _ in range(height)]
    for mark, row in zip(TRADEOFF_MARKS, points):
        col = round((row["top1"] - x0) / (x1 - x0) * (width - 1))
        line = round((y1 - row["macro_top1"]) / (y1 - y0) * (height - 1))
        grid[line][col] = mark if grid[line][col] == " " else "+"
    labels = {0: f"{100 * y1:4.0f}", height - 1: f"{100 * y0:4.0f}"}
    lines = [f"{labels.get(i, '    ')} │{''.join(cells)}" for i, cells in enumerate(grid)]
    lines.append("     └" + "─" * width)
    left, right = f"{100 * x0:.0f}", f"{100 * x1:.0f}"
    lines.append("      " + left + " " * (width - len(left) - len(right)) + right)
    shared = any("+" in cells for cells in grid)
    lines.append("      macro top-1 % (up) against top-1 % (right)"
                 + ("; +: several models in one cell" if shared else ""))
    lines += [f"  {mark} {row['name']}  {100 * row['top1']:.1f} / {100 * row['macro_top1']:.1f}"
              for mark, row in zip(TRADEOFF_MARKS, points)]
    return lines
