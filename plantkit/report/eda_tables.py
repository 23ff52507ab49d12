"""Terminal tables of `plantkit data inspect`: the summary from `plantkit.data.eda`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from plantkit.choices import FEW_SHOT_BELOW, MANY_SHOT_ABOVE, SHOT_RULES, SPLITS

MAX_FLAGGED_ROWS = 10


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _table(title: str, caption: str, first: str, *numbers: str) -> Table:
    """A table with a caption under it: a text column, then right-aligned number columns."""
    table = Table(title=title, caption=caption, caption_justify="left")
    table.add_column(first)
    for column in numbers:
        table.add_column(column, justify="right")
    return table


def _splits_table(summary: dict[str, Any]) -> Table:
    images, classes = summary["images_per_split"], summary["classes_per_split"]
    table = _table("Images and classes per split",
                   "classes = classes with at least one image in that split",
                   "split", "images", "share", "classes")
    for split in SPLITS:
        table.add_row(
            split,
            f"{images[split]:,}",
            _pct(images[split], images["total"]),
            f"{classes[split]:,}",
        )
    table.add_section()
    table.add_row("total", f"{images['total']:,}", "100 %", f"{classes['total']:,}", style="bold")
    return table


def _split_check_tables(check: dict[str, Any], n_classes: int) -> list[Table]:
    """The split check: one overview table, plus the first flagged classes if any."""
    n = check["n_flagged"]
    overview = Table(
        title=f"Per-class split check: {n:,} of {n_classes:,} classes flagged",
        caption=(
            f"Rule: {check['rule']}. "
            f"Checked splits: {', '.join(check['checked_splits']) or 'none'}."
        ),
        caption_justify="left",
    )
    overview.add_column("split")
    overview.add_column("share of all images", justify="right")
    overview.add_column("per-class share, min..max", justify="right")
    for split in SPLITS:
        low, high = check["share_ranges"][split]
        overview.add_row(
            split,
            f"{100 * check['overall_shares'][split]:.1f} %",
            f"{100 * low:.1f} .. {100 * high:.1f} %",
        )
    tables = [overview]
    shown = check["flagged"][:MAX_FLAGGED_ROWS]
    if not shown:
        return tables
    more = f"; first {len(shown)} shown" if n > len(shown) else ""
    flagged = Table(
        title=f"Flagged classes: {n:,}{more}",
        caption="counts per split, the rule's expected count in brackets",
        caption_justify="left",
    )
    flagged.add_column("class id")
    flagged.add_column("species")
    flagged.add_column("total", justify="right")
    for split in SPLITS:
        flagged.add_column(split, justify="right")
    flagged.add_column("shares train/val/test", justify="right")
    flagged.add_column("why")
    for row in shown:
        shares = "/".join(f"{100 * row['shares'][s]:.0f}" for s in SPLITS)
        flagged.add_row(
            row["class_id"],
            row["species_name"],
            f"{row['total']:,}",
            *[f"{row[s]:,} ({row['expected'][s]:,})" for s in SPLITS],
            f"{shares} %",
            ", ".join(row.get("reasons", [])),
        )
    tables.append(flagged)
    return tables


def _deciles_table(summary: dict[str, Any]) -> Table:
    dec = summary["classes_per_decile"]
    n_classes = summary["classes_per_split"]["total"]
    table = Table(
        title="Classes per 10 % of the images (largest classes first)",
        caption=(
            "A class counts for a decile when the cumulative share of the largest classes "
            "up to and including it is at or below that decile."
        ),
        caption_justify="left",
    )
    table.add_column("images", justify="right")
    table.add_column("classes", justify="right")
    table.add_column("of all classes", justify="right")
    for decile, k in zip(dec["deciles"], dec["classes"], strict=True):
        table.add_row(f"{decile} %", str(k), _pct(k, n_classes))
    return table


def _sizes_table(summary: dict[str, Any]) -> Table:
    sizes = summary["class_sizes"]
    table = Table(
        title="Images per class (all splits)",
        caption="the long tail: the largest class over the smallest is the imbalance ratio",
        caption_justify="left",
    )
    table.add_column("statistic")
    table.add_column("value", justify="right")
    table.add_column("class")
    largest = sizes.get("max_class") or {}
    smallest = sizes.get("min_class") or {}

    def _who(c: dict) -> str:
        return f"{c['species_name']} ({c['class_id']})" if c else ""

    table.add_row("min", f"{sizes['min']:,}", _who(smallest))
    table.add_row("median", f"{sizes['median']:,}", "")
    table.add_row("mean", f"{sizes['mean']:,}", "")
    table.add_row("max", f"{sizes['max']:,}", _who(largest))
    table.add_row("classes with <= 10 images", f"{sizes['classes_at_most_10']:,}", "")
    table.add_row("imbalance ratio (max / min)", f"{sizes['imbalance_ratio']:,}", "")
    return table


def _shots_table(summary: dict[str, Any]) -> Table:
    shots = summary["shots"]
    n_classes = summary["classes_per_split"]["total"]
    table = _table("Many / medium / few-shot classes (by train images)",
                   f"many: > {MANY_SHOT_ABOVE} train images; medium: {FEW_SHOT_BELOW} to "
                   f"{MANY_SHOT_ABOVE}; few: < {FEW_SHOT_BELOW}",
                   "bucket", "train images", "classes", "share")
    for bucket, rule in SHOT_RULES.items():
        rule = rule.removesuffix(" train images")
        table.add_row(bucket, rule, f"{shots[bucket]:,}", _pct(shots[bucket], n_classes))
    return table


def _dataset_table(info: dict[str, Any]) -> Table:
    table = Table(title="Dataset folder", show_header=False)
    table.add_column("field")
    table.add_column("value")
    table.add_row("root", info.get("root", ""))
    table.add_row("layout", info.get("layout", ""))
    table.add_row("fingerprint", info.get("fingerprint", ""))
    table.add_row("val split", info.get("val_source", "folder"))
    skipped = info.get("skipped_non_images") or {}
    skipped_text = ", ".join(f"{k} {v:,}" for k, v in skipped.items()) or "none"
    table.add_row("skipped non-image files", skipped_text)
    if "bytes_total" in info:
        table.add_row("bytes on disk", f"{info['bytes_total']:,}")
    return table


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Print the EDA summary of `plantkit.data.eda.summarize` as rich tables."""
    console.print(Text.assemble(("Dataset analysis", "bold"), f" of {summary['source']}"),
                  highlight=False)
    if "dataset" in summary:
        console.print(_dataset_table(summary["dataset"]))
    console.print(_splits_table(summary))
    for table in _split_check_tables(summary["split_check"], summary["classes_per_split"]["total"]):
        console.print(table)
    console.print(_deciles_table(summary))
    console.print(_sizes_table(summary))
    console.print(_shots_table(summary))
    corrupt = summary.get("corrupt_images")
    if corrupt is not None:
        n = len(corrupt)
        console.print(f"corrupt images: {n:,}", highlight=False)
        for item in list(corrupt)[:MAX_FLAGGED_ROWS]:
            console.print(f"  {item}", highlight=False)


__all__ = ["print_summary"]
