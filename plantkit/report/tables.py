"""Terminal tables of `plantkit report`, drawn from the dict of `leaderboard.build_report`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from plantkit.report import train_options
from plantkit.report.columns import AVERAGE_K, BUCKET_RULES, COLUMNS, column_k, grouped_notes

DASH = "-"
BEST_STYLE = "bold green"
HISTORY_ROWS = 10  # the last epochs shown per expert; --json has them all
# history.csv columns worth a terminal column, in this order; accuracies are fractions.
HISTORY_COLUMNS = (
    ("loss", "loss", "float"),
    ("val_loss", "val loss", "float"),
    ("top1", "top-1", "pct"),
    ("val_top1", "val top-1", "pct"),
    ("val_top5", "val top-5", "pct"),
    ("val_macro_top1", "val macro top-1", "pct"),
    ("lr", "lr", "lr"),
    ("seconds", "s", "seconds"),
)


def fmt(value, how: str) -> str:
    """A number as the tables show it; None (missing input) as a dash."""
    if value is None:
        return DASH
    if how == "pct":
        return f"{100 * value:.1f}"
    if how == "count":
        return f"{value:,}"
    if how == "params":
        return f"{_significant(value / 1e6)} M"
    if how == "lr":
        return f"{value:.3g}"
    if how == "seconds":
        return f"{value:,.0f}"
    return _significant(value) if how == "float" else str(value)


def _significant(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits without an exponent (0.00458, 0.03, 1.82,
    12.3, 1,234): a fixed count of decimals shows a tiny model's cost as 0.00, which then
    reads as free and ties with any other tiny one."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    # trailing zeros carry no digit here (0.0300 -> 0.03), as with the "g" format
    return text.rstrip("0").rstrip(".") if "." in text else text


def leaderboard_cell(row: dict, key: str, how: str) -> str:
    """A leaderboard value as text; average-k carries its mean set size in brackets."""
    value = row[key]
    text = fmt(value, "params" if key == "params" else how)
    size = row[f"avg{AVERAGE_K}_set_size"]
    if key == f"avg{AVERAGE_K}" and value is not None and size is not None:
        text += f" ({size:.1f})"
    return text


def _styled(text: str, best: bool) -> Text:
    return Text(text, style=BEST_STYLE if best else "")


# A name is what the reader looks a row up by: never broken over two lines, whole up to
# this many characters, ellipsised beyond (the HTML page and --json have it whole).
NAME_WIDTH = 24
MIN_NAME_WIDTH = 8  # the least a name is cut to when a table must shrink to fit the terminal


def leaderboard_table(report: dict, split: str, columns: Sequence[str] | None = None,
                      *, compact: bool = False, part: str = "", caption: bool = True) -> Table:
    """One row per expert and combination; the best value of each column in bold green.

    `columns`: the COLUMNS keys to show (default all, with the model's kind); `compact`
    breaks the headers over two lines to fit narrow terminals; `part` ends the title.
    """
    section = report["splits"][split]
    keys = [c[0] for c in COLUMNS] if columns is None else list(columns)
    table = Table(
        title=f"Leaderboard · {split} ({section['images']:,} images, "
        f"{section['species_present']:,} species){part}",
        caption=_leaderboard_caption(report, section) if caption else None,
        caption_justify="left",
    )
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH)
    show_kind = columns is None or "kind" in keys
    if show_kind:
        table.add_column("kind", no_wrap=True)
    shown = [c for c in COLUMNS if c[0] in keys]
    for key, header, *_ in shown:
        if key == f"avg{AVERAGE_K}":
            header += " (set)"
        if compact:
            header = header.replace(" ", "\n", 1)
        table.add_column(header, justify="right", no_wrap=True)
    best = section["best"]
    for row in section["leaderboard"]:
        cells = [row["name"]] + ([row["kind"]] if show_kind else [])
        for key, _, _, how in shown:
            value = row[key]
            cells.append(_styled(leaderboard_cell(row, key, how),
                                 value is not None and value == best.get(key)))
        table.add_row(*cells, style=None if row["available"] else "dim")
    return table


# The leaderboard in parts when one table is wider than the terminal, each part with the
# name column: two halves, or three parts where two would still not fit (80 columns with
# names of 20 characters). Together the parts of a layout show every column once.
NARROW_HALVES = (
    (": accuracy",
     ("top1", "top5", "macro_top1", "macro_top5", f"avg{AVERAGE_K}", "species_above_90")),
    (": long tail, calibration, cost",
     ("kind", "params", "gflops", "measured_gflops", "many", "medium", "few", "ece")),
)
NARROW_THIRDS = (
    (": accuracy", ("top1", "top5", "macro_top1", "macro_top5", f"avg{AVERAGE_K}")),
    (": long tail, ECE", ("many", "medium", "few", "species_above_90", "ece")),
    (": cost", ("kind", "params", "gflops", "measured_gflops")),
)


def leaderboard_tables(report: dict, split: str, width: int) -> list[Table]:
    """The leaderboard as one table when it fits `width` unsqueezed (headers on one line,
    else on two), else in the fewest parts that fit (three when none does)."""
    layouts = [[leaderboard_table(report, split)],
               [leaderboard_table(report, split, compact=True)]]
    for parts in (NARROW_HALVES, NARROW_THIRDS):
        layouts.append([leaderboard_table(report, split, keys, compact=True, part=part,
                                          caption=i == len(parts) - 1)
                        for i, (part, keys) in enumerate(parts)])
    # the natural width, not the minimum: a table drawn narrower than it wraps or cuts cells
    fitting = next((tables for tables in layouts
                    if all(_natural_width(t) <= width for t in tables)), None)
    return fitting if fitting is not None else [_fit_names(t, width) for t in layouts[-1]]


def _fit_names(table: Table, width: int) -> Table:
    """`table` with its first (name) column narrowed, down to MIN_NAME_WIDTH, so that the
    table fits `width`: rich would otherwise narrow every column alike and cut the numbers."""
    excess = _natural_width(table) - width
    name = table.columns[0]
    if excess > 0:
        console = Console(width=10_000)
        natural = max(Measurement.get(console, console.options, cell).maximum
                      for cell in [name.header, *name.cells])
        name.max_width = max(MIN_NAME_WIDTH, min(natural, name.max_width or natural) - excess)
    return table


def _min_width(table: Table) -> int:
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).minimum


def _natural_width(table: Table) -> int:
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum


def _leaderboard_caption(report: dict, section: dict) -> str:
    parts = [
        "accuracies and ECE in %; macro = mean over the species present; "
        f"avg-{AVERAGE_K}: average-{AVERAGE_K} accuracy with val's threshold (mean set size); "
        + "; ".join(f"{k}: {v}" for k, v in BUCKET_RULES.items())
        + "; ECE: 15 bins, lower is better; GFLOPs per image: expected (a combination: "
        "what `combine` expected on test), meas.: measured by the last `plantkit classify`"
    ]
    parts += _dash_reasons(report, section)
    if section["missing"]:
        parts.append("dimmed, all '-': not in this split: " + ", ".join(section["missing"]))
    return "\n".join(parts)


# Why a leaderboard column shows '-' for a model that holds the split, where the reason
# depends on the column alone; the others are worked out in `_dash_reason`.
DASH_REASONS = {
    "params": "no params attribute in the store",
    "gflops": "no gflops attribute in the store (see notes)",
    "measured_gflops": "not yet measured by `plantkit classify` (or the model changed since)",
}


def _dash_reasons(report: dict, section: dict) -> list[str]:
    """One line per reason for the dashes of the models that hold the split, naming the
    columns it explains: every '-' on the leaderboard is accounted for where it is read."""
    by_reason: dict[str, list[str]] = {}
    for key, header, *_ in COLUMNS:
        if any(row[key] is None for row in section["leaderboard"] if row["available"]):
            by_reason.setdefault(_dash_reason(report, key), []).append(header)
    return [f"{', '.join(headers)} '-': {reason}" for reason, headers in by_reason.items()]


def _dash_reason(report: dict, key: str) -> str:
    k = column_k(key)
    if k is not None and k not in report["avg_ks" if key.startswith("avg") else "ks"]:
        return f"--k leaves {k} out (the top-k table has every k asked for)"
    if key.startswith("avg"):
        return "no val split to fit its threshold on (see notes)"
    if key in BUCKET_RULES:
        if report["train_counts"] is None:
            return "no train counts (see notes)"
        return "no species of this split in that bucket"
    return DASH_REASONS.get(key, "input missing (see notes)")


def topk_tables(report: dict, split: str) -> list[Table]:
    """Top-k, then average-k, of every model for each k of `--k` (micro / macro, in %; the
    mean average-k set size in brackets); the best micro value of each column in bold
    green. The average-k table is left out when no average k was asked for."""
    section = report["splits"][split]
    best = section["best"]

    def table(title: str, caption: str, ks, cell) -> Table:
        out = Table(title=f"{title} · {split}", caption=caption, caption_justify="left")
        out.add_column("name", no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH)
        for k in ks:
            # narrow terminals break "90.0 / 92.3" at its spaces rather than cut digits off
            out.add_column(cell(None, k)[0], justify="right")
        for row in section["leaderboard"]:
            out.add_row(row["name"], *[cell(row, k)[1] for k in ks],
                        style=None if row["available"] else "dim")
        return out

    def both(row, key: str, k: int) -> Text:
        micro = row.get(f"{key}{k}")
        text = f"{fmt(micro, 'pct')} / {fmt(row.get(f'macro_{key}{k}'), 'pct')}"
        size = row.get(f"{key}{k}_set_size") if key == "avg" else None
        if size is not None:
            text += f" ({size:.1f})"
        return _styled(text, micro is not None and micro == best.get(f"{key}{k}"))

    tables = [table("Top-k (micro / macro, %)",
                    "the true class among the k highest scores, a tie counted as a miss; "
                    "macro: mean over the species present", report.get("ks", []),
                    lambda row, k: (f"top-{k}", None if row is None else both(row, "top", k)))]
    if report.get("avg_ks"):
        tables.append(table(
            "Average-k (micro / macro, %; mean set size)",
            "the true class in {c : p_c >= lambda_k}, lambda_k fitted on val",
            report["avg_ks"],
            lambda row, k: (f"avg-{k}", None if row is None else both(row, "avg", k))))
    return tables


def bucket_table(report: dict, split: str, *, by_model: bool = False) -> Table | None:
    """Mean per-species top-1 by image count (the reference study's view); None when no
    model holds the split.

    A row per count bin and a column per model, or with `by_model` (many models) a row per
    model and a column per bin. The best model of each bin is in bold green.
    """
    models = [m for m in report["models"] if split in m["results"]]
    if not models:
        return None
    bins = models[0]["results"][split]["accuracy_by_count"]
    values = [m["results"][split]["accuracy_by_count"]["mean_accuracy"] for m in models]
    best = [max((v[i] for v in values if v[i] is not None), default=None)
            for i in range(len(bins["bins"]))]

    def cell(m: int, i: int) -> Text:
        value = values[m][i]
        return _styled(fmt(value, "pct"), len(models) > 1 and value is not None
                       and value == best[i])

    table = Table(
        title=f"Mean per-species top-1 by images per species · {split}",
        caption=f"images per species counted over {' + '.join(report['image_counts_from'])}"
        f"; species absent from {split} left out",
        caption_justify="left",
    )
    if by_model:
        # the header on three short lines: a narrow terminal cuts the names, not it
        table.add_column("images\nper species\n(species)", no_wrap=True, overflow="ellipsis",
                         max_width=NAME_WIDTH)
        for label, n in zip(bins["bins"], bins["classes"]):
            wrapped = label.replace("-", "-\n", 1)
            table.add_column(f"{wrapped}\n({n:,})", justify="right")
        for m, model in enumerate(models):
            table.add_row(model["name"], *[cell(m, i) for i in range(len(bins["bins"]))])
        return table
    table.add_column("images per species", no_wrap=True)
    table.add_column("species", justify="right")
    for model in models:
        table.add_column(model["name"], justify="right")
    for i, label in enumerate(bins["bins"]):
        table.add_row(label, f"{bins['classes'][i]:,}", *[cell(m, i) for m in range(len(models))])
    return table


def history_table(model: dict, rows: int | None = HISTORY_ROWS) -> Table | None:
    """The last `rows` epochs of an expert's history.csv (None: all); None without one."""
    history = model.get("history")
    if not history:
        return None
    present = [c for c in HISTORY_COLUMNS if c[0] in history["columns"]]
    all_rows = history["rows"]
    shown = all_rows if rows is None or len(all_rows) <= rows else all_rows[-rows:]
    scored = [r for r in all_rows if r.get("val_top1") is not None]
    best_epoch = max(scored, key=lambda r: r["val_top1"])["epoch"] if scored else None
    what = f"all {len(all_rows)} epochs" if len(shown) == len(all_rows) else (
        f"last {len(shown)} of {len(all_rows)} epochs; --json has all")
    table = Table(
        title=f"Training history · {model['name']} ({what})",
        caption=Text(f"from {history['path']}")
        + ("; best val top-1 epoch in bold green" if best_epoch is not None else ""),
        caption_justify="left",
    )
    table.add_column("epoch", justify="right")
    for _, header, _ in present:
        table.add_column(header, justify="right")
    for row in shown:
        epoch = row.get("epoch")
        cells = [DASH if epoch is None else str(int(epoch) + 1)]
        cells += [fmt(row.get(key), how) for key, _, how in present]
        table.add_row(*cells, style=BEST_STYLE if epoch is not None and epoch == best_epoch
                      else None)
    return table


def training_options_table(report: dict) -> Table | None:
    """The long-tail options of every expert with a train_config.json (the loss, then the
    others as "key value" pairs, which wrap: nine option columns would not fit 80 columns);
    None when none has one."""
    _keys, rows = train_options.options_table(report)
    if not rows:
        return None
    table = Table(title="Training options (long tail)",
                  caption="from each expert's train_config.json; "
                  + train_options.left_out_text(), caption_justify="left")
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH)
    table.add_column("loss", no_wrap=True)
    table.add_column("options")
    for name, shown in rows:
        others = [f"{train_options.header(key)} {text}" for key, text in shown.items()
                  if key != "loss"]
        table.add_row(name, shown.get("loss", ""), ", ".join(others))
    return table


def per_class_table(rows: dict) -> Table:
    """The rows of `per_class.per_class_table`."""
    table = Table(
        title=f"Per-species accuracy · {rows['model']} ({rows['kind']}) on {rows['split']}",
        caption=f"sorted by {rows['sorted_by']}, largest first; {len(rows['rows']):,} species",
        caption_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("class id")
    table.add_column("species")
    table.add_column("train", justify="right")
    table.add_column(rows["split"], justify="right")
    table.add_column("top-1 %", justify="right")
    for r in rows["rows"]:
        cells: list[str | Text] = [str(r["class_index"]), Text(str(r["class_id"])),
                                   Text(str(r["name"])), fmt(r["train_images"], "count"),
                                   fmt(r["split_images"], "count"), fmt(r["accuracy"], "pct")]
        table.add_row(*cells)
    return table


def _split_tables(report: dict, split: str, width: int) -> list[Table]:
    """The leaderboard, top-k and bucket tables of one split, fitted to `width`."""
    tables = leaderboard_tables(report, split, width)
    if report.get("ks"):
        tables += topk_tables(report, split)
    buckets = bucket_table(report, split)
    if buckets is not None and _min_width(buckets) > width:
        buckets = bucket_table(report, split, by_model=True)
        buckets = None if buckets is None else _fit_names(buckets, width)
    return tables + ([buckets] if buckets is not None else [])


def print_report(report: dict, console: Console, *, per_class: dict | None = None,
                 history_rows: int | None = HISTORY_ROWS) -> None:
    """Every terminal table of the report, then the notes."""
    tables: list[Table | None] = [table for split in report["splits"]
                                  for table in _split_tables(report, split, console.width)]
    tables.append(training_options_table(report))
    tables += [history_table(model, history_rows) for model in report["models"]]
    if per_class is not None:
        tables.append(per_class_table(per_class))
    for table in tables:
        if table is not None:
            console.print(table)
    notes = grouped_notes(report)
    if notes:
        console.print(Text("notes", style="bold"))
        for note in notes:
            console.print(Text(f"  - {note}"), highlight=False, soft_wrap=True)


__all__ = [
    "bucket_table",
    "fmt",
    "history_table",
    "leaderboard_cell",
    "leaderboard_table",
    "leaderboard_tables",
    "per_class_table",
    "print_report",
    "topk_tables",
    "training_options_table",
]
