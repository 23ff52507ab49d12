"""Terminal tables of `plantkit report`, drawn from the dict of `leaderboard.build_report`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from plantkit.report.columns import AVERAGE_K, BUCKET_RULES, COLUMNS, grouped_notes

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
        return f"{value / 1e6:.1f} M"
    if how == "lr":
        return f"{value:.3g}"
    if how == "seconds":
        return f"{value:,.0f}"
    return f"{value:.2f}" if how == "float" else str(value)


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
        caption=_leaderboard_caption(section) if caption else None,
        caption_justify="left",
    )
    table.add_column("name", overflow="fold")
    show_kind = columns is None or "kind" in keys
    if show_kind:
        table.add_column("kind")
    shown = [c for c in COLUMNS if c[0] in keys]
    for key, header, *_ in shown:
        if key == f"avg{AVERAGE_K}":
            header += " (set)"
        if compact:
            header = header.replace(" ", "\n", 1)
        table.add_column(header, justify="right", no_wrap=not compact)
    best = section["best"]
    for row in section["leaderboard"]:
        cells = [row["name"]] + ([row["kind"]] if show_kind else [])
        for key, _, _, how in shown:
            value = row[key]
            cells.append(_styled(leaderboard_cell(row, key, how),
                                 value is not None and value == best.get(key)))
        table.add_row(*cells, style=None if row["available"] else "dim")
    return table


# The leaderboard in two halves when one table does not fit the terminal.
NARROW_HALVES = (
    (": accuracy",
     ("top1", "top5", "macro_top1", "macro_top5", f"avg{AVERAGE_K}", "species_above_90")),
    (": long tail, calibration, cost",
     ("kind", "params", "gflops", "measured_gflops", "many", "medium", "few", "ece")),
)


def leaderboard_tables(report: dict, split: str, width: int) -> list[Table]:
    """The leaderboard as one table, or as two narrower ones when it is wider than `width`."""
    whole = leaderboard_table(report, split)
    if _min_width(whole) <= width:
        return [whole]
    return [
        leaderboard_table(report, split, keys, compact=True, part=part,
                          caption=i == len(NARROW_HALVES) - 1)
        for i, (part, keys) in enumerate(NARROW_HALVES)
    ]


def _min_width(table: Table) -> int:
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).minimum


def _leaderboard_caption(section: dict) -> str:
    parts = [
        "accuracies and ECE in %; macro = mean over the species present; "
        f"avg-{AVERAGE_K}: average-{AVERAGE_K} accuracy with val's threshold (mean set size); "
        + "; ".join(f"{k}: {v}" for k, v in BUCKET_RULES.items())
        + "; ECE: 15 bins, lower is better; GFLOPs per image: expected (a combination: "
        "what `combine` expected on test), meas.: measured by the last `plantkit classify`; "
        "'-': input missing (see notes)"
    ]
    if section["missing"]:
        parts.append("not in this split: " + ", ".join(section["missing"]))
    return "\n".join(parts)


def topk_tables(report: dict, split: str) -> list[Table]:
    """Top-k, then average-k, of every model for each k of `--k` (micro / macro, in %; the
    mean average-k set size in brackets); the best micro value of each column in bold
    green. The average-k table is left out when no average k was asked for."""
    section = report["splits"][split]
    best = section["best"]

    def table(title: str, caption: str, ks, cell) -> Table:
        out = Table(title=f"{title} · {split}", caption=caption, caption_justify="left")
        out.add_column("name", no_wrap=True)
        for k in ks:
            out.add_column(cell(None, k)[0], justify="right", no_wrap=True)
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
        table.add_column("images per species\n(species)", overflow="fold")
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


def print_report(report: dict, console: Console, *, per_class: dict | None = None,
                 history_rows: int | None = HISTORY_ROWS) -> None:
    """Every terminal table of the report, then the notes."""
    for split in report["splits"]:
        for table in leaderboard_tables(report, split, console.width):
            console.print(table)
        if report.get("ks"):
            for table in topk_tables(report, split):
                console.print(table)
        buckets: Table | None = bucket_table(report, split)
        if buckets is not None and _min_width(buckets) > console.width:
            buckets = bucket_table(report, split, by_model=True)
        if buckets is not None:
            console.print(buckets)
    for model in report["models"]:
        history = history_table(model, history_rows)
        if history is not None:
            console.print(history)
    if per_class is not None:
        console.print(per_class_table(per_class))
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
]
