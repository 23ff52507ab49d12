"""The interactive HTML report of `plantkit data inspect --html`: one self-contained page.

plotly.js is embedded inline once (no network needed to open the page), sample images are
embedded as base64 thumbnails. The page is written atomically.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from plantkit.artifacts import write_text
from plantkit.choices import SPLITS
from plantkit.report.html_page import escape as _e
from plantkit.report.html_page import figure_html, log_axis, page_html

SAMPLE_CLASSES = 8
SAMPLES_PER_CLASS = 3
THUMB_SIDE = 160
SPLIT_COLORS = {"train": "#2e7d32", "val": "#f9a825", "test": "#1565c0"}

# The shared sheet (html_page.CSS) plus the sample-image grid of this page.
EDA_CSS = """
.samples td { vertical-align: top; text-align: left; }
.samples img { width: 120px; height: 120px; object-fit: cover; border-radius: 4px;
               margin: 0 4px 4px 0; }
.samples .name { font-size: 0.85rem; max-width: 14rem; }
"""


# The look both figures of the page share.
_PAGE_LAYOUT = {"height": 460, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
                "template": "plotly_white"}

def _fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _e(value)


def _counts_figure(summary: dict[str, Any]):
    import plotly.graph_objects as go

    rows = sorted(summary["per_class"], key=lambda r: -r["total"])
    rank = list(range(1, len(rows) + 1))
    custom = [
        [r["class_id"], r["species_name"], r["train"], r["val"], r["test"], r["total"]]
        for r in rows
    ]
    totals = [max(r["total"], 0) for r in rows]
    fig = go.Figure(
        go.Bar(
            x=rank,
            y=totals,
            customdata=custom,
            marker_color=SPLIT_COLORS["train"],
            hovertemplate=(
                "rank %{x}<br><b>%{customdata[1]}</b> (id %{customdata[0]})<br>"
                "total %{customdata[5]:,}<br>train %{customdata[2]:,} · "
                "val %{customdata[3]:,} · test %{customdata[4]:,}<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        title="Images per class, largest first",
        xaxis_title="class rank (1 = largest)",
        yaxis=log_axis(totals, title="images (log scale)"),
        bargap=0,
        **_PAGE_LAYOUT,
    )
    return fig


def _cumulative_figure(summary: dict[str, Any]):
    import plotly.graph_objects as go

    totals = np.array(sorted((r["total"] for r in summary["per_class"]), reverse=True))
    grand = int(totals.sum()) or 1
    cum = np.cumsum(totals) / grand
    rank = np.arange(1, len(totals) + 1)
    dec = summary["classes_per_decile"]
    px, py, text = [], [], []
    for decile, k in zip(dec["deciles"], dec["classes"], strict=True):
        if k > 0:
            px.append(k)
            py.append(float(cum[k - 1]))
            text.append(f"{decile} % of images: {k:,} classes")
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=rank.tolist(),
            y=cum.tolist(),
            mode="lines",
            name="cumulative share",
            line={"color": SPLIT_COLORS["test"]},
            hovertemplate="top %{x} classes hold %{y:.1%} of the images<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=px,
            y=py,
            mode="markers+text",
            name="deciles",
            text=[str(x) for x in px],
            textposition="bottom right",
            customdata=text,
            marker={"size": 9, "color": "#c62828"},
            hovertemplate="%{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Cumulative share of the images, classes ranked largest first",
        xaxis_title="classes (ranked, largest first)",
        yaxis_title="cumulative share of images",
        yaxis_tickformat=".0%",
        **_PAGE_LAYOUT,
        showlegend=False,
    )
    return fig


def _cards(summary: dict[str, Any]) -> str:
    images, classes, sizes = (
        summary["images_per_split"],
        summary["classes_per_split"],
        summary["class_sizes"],
    )
    items = [
        ("images", images["total"]),
        ("classes", classes["total"]),
        ("min / class", sizes["min"]),
        ("median / class", sizes["median"]),
        ("max / class", sizes["max"]),
        ("classes with ≤ 10 images", sizes["classes_at_most_10"]),
        ("split-check flags", summary["split_check"]["n_flagged"]),
    ]
    cards = "".join(
        f'<div class="card"><div class="v">{_fmt(v)}</div><div class="k">{_e(k)}</div></div>'
        for k, v in items
    )
    return f'<div class="cards">{cards}</div>'


def _splits_section(summary: dict[str, Any]) -> str:
    images, classes = summary["images_per_split"], summary["classes_per_split"]
    rows = "".join(
        f'<tr><td class="l">{s}</td><td>{images[s]:,}</td>'
        f"<td>{100 * images[s] / (images['total'] or 1):.1f} %</td><td>{classes[s]:,}</td></tr>"
        for s in SPLITS
    )
    rows += (
        f'<tr><th class="l">total</th><th>{images["total"]:,}</th><th>100 %</th>'
        f"<th>{classes['total']:,}</th></tr>"
    )
    shots = summary["shots"]
    sizes = summary["class_sizes"]
    largest = sizes.get("max_class") or {}
    dec = summary["classes_per_decile"]
    dec_head = "".join(f"<th>{d} %</th>" for d in dec["deciles"])
    dec_row = "".join(f"<td>{k:,}</td>" for k in dec["classes"])
    check = summary["split_check"]
    flagged_rows = "".join(
        f'<tr><td class="l">{_e(r["class_id"])}</td><td class="l">{_e(r["species_name"])}</td>'
        f"<td>{r['total']:,}</td>"
        + "".join(f"<td>{r[s]:,} ({r['expected'][s]:,})</td>" for s in SPLITS)
        + f'<td class="l">{_e(", ".join(r.get("reasons", [])))}</td></tr>'
        for r in check["flagged"][:50]
    )
    flagged_table = (
        '<table><tr><th class="l">class id</th><th class="l">species</th><th>total</th>'
        "<th>train</th><th>val</th><th>test</th><th class='l'>why</th></tr>"
        + flagged_rows
        + "</table>"
        if flagged_rows
        else "<p>No class deviates from the rule beyond rounding.</p>"
    )
    more = (
        f'<p class="muted">First 50 of {check["n_flagged"]:,} shown.</p>'
        if check["n_flagged"] > 50
        else ""
    )
    return f"""
<h2>Splits</h2>
<p class="explain">Images per split and the classes that have at least one image there.</p>
<table><tr><th class="l">split</th><th>images</th><th>share</th><th>classes</th></tr>{rows}</table>
<h2>Classes per 10 % of the images</h2>
<p class="explain">{_e(dec["rule"]).capitalize()}. In a long-tailed dataset the first
deciles need few classes and the last one most of them.</p>
<table><tr><th class="l">images</th>{dec_head}</tr>
<tr><th class="l">classes</th>{dec_row}</tr></table>
<h2>Class sizes and shot buckets</h2>
<table>
<tr><td class="l">min images per class</td><td>{_fmt(sizes["min"])}</td></tr>
<tr><td class="l">median</td><td>{_fmt(sizes["median"])}</td></tr>
<tr><td class="l">max</td><td>{_fmt(sizes["max"])}</td></tr>
<tr><td class="l">largest class</td><td class="l">{_e(largest.get("species_name", ""))}
 ({_e(largest.get("class_id", ""))})</td></tr>
<tr><td class="l">classes with ≤ 10 images</td><td>{_fmt(sizes["classes_at_most_10"])}</td></tr>
<tr><td class="l">many-shot (&gt; 100 train images)</td><td>{shots["many"]:,}</td></tr>
<tr><td class="l">medium-shot (20..100)</td><td>{shots["medium"]:,}</td></tr>
<tr><td class="l">few-shot (&lt; 20)</td><td>{shots["few"]:,}</td></tr>
</table>
<h2>Per-class split check</h2>
<p class="explain">Rule: {_e(check["rule"])}. Counts with the expected count in brackets.
{check["n_flagged"]:,} class(es) flagged.</p>
{flagged_table}{more}
"""


def _thumbnail(image, side: int = THUMB_SIDE) -> str:
    """A data: URI of a JPEG thumbnail of a PIL image."""
    img = image.convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _sample_picks(summary: dict[str, Any], dataset) -> list[int]:
    """Class indices spread over the frequency range (largest to smallest)."""
    totals = np.array([r["total"] for r in summary["per_class"]], dtype=np.int64)
    order = np.argsort(-totals, kind="stable")
    order = order[totals[order] > 0]
    if not len(order):
        return []
    k = min(SAMPLE_CLASSES, len(order))
    pos = np.unique(np.round(np.linspace(0, len(order) - 1, k)).astype(int))
    return [int(i) for i in order[pos]]


def _sample_grid(
    summary: dict[str, Any], dataset, transform: Callable | None, title: str, explain: str
) -> str:
    from PIL import Image

    picks = _sample_picks(summary, dataset)
    names = getattr(dataset, "class_names", {}) or {}
    class_ids = list(dataset.class_ids)
    parts = [f"<h2>{_e(title)}</h2>", f'<p class="explain">{explain}</p>']
    for split_name in SPLITS:
        split = dataset.splits.get(split_name)
        if split is None or not len(split.paths):
            continue
        labels = np.asarray(split.labels)
        rows = []
        for c in picks:
            idx = np.flatnonzero(labels == c)[:SAMPLES_PER_CLASS]
            cells = []
            for i in idx:
                try:
                    with Image.open(dataset.image_path(split_name, int(i))) as img:
                        img.load()
                        shown = transform(img) if transform is not None else img
                        src = _thumbnail(shown)
                    cells.append(f'<img src="{src}" alt="{_e(split.paths[int(i)])}">')
                except Exception as exc:  # noqa: BLE001 - a broken image must not stop the report
                    cells.append(f'<span class="muted">unreadable: {_e(type(exc).__name__)}</span>')
            cid = class_ids[c] if c < len(class_ids) else str(c)
            name = names.get(cid, summary["per_class"][c]["species_name"])
            content = "".join(cells) or '<span class="muted">no image in this split</span>'
            rows.append(
                f'<tr><td class="name"><b>{_e(name)}</b><br><span class="muted">{_e(cid)} · '
                f"{summary['per_class'][c]['total']:,} images</span></td><td>{content}</td></tr>"
            )
        parts.append(f"<h3>{split_name}</h3><table class='samples'>{''.join(rows)}</table>")
    return "\n".join(parts)


def build_eda_html(
    summary: dict[str, Any], dataset=None, *, augment: Callable | None = None
) -> str:
    """The report page as a string (see `write_eda_html`)."""
    figs = [_counts_figure(summary), _cumulative_figure(summary)]
    fig_html = [figure_html(f, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    info = summary.get("dataset") or {}
    dataset_line = ""
    if info:
        skipped = info.get("skipped_non_images") or {}
        skipped_text = ", ".join(f"{_e(k)} {v:,}" for k, v in skipped.items()) or "none"
        dataset_line = (
            f'<p class="sub">layout {_e(info.get("layout", ""))} · fingerprint '
            f"<code>{_e(info.get('fingerprint', ''))}</code> · skipped non-image files: "
            f"{skipped_text}</p>"
        )
    samples = ""
    if dataset is not None:
        samples = _sample_grid(
            summary,
            dataset,
            None,
            "Sample images per split",
            f"Up to {SAMPLE_CLASSES} classes spread from the largest to the smallest, "
            f"{SAMPLES_PER_CLASS} images of each per split.",
        )
        # Hook: the same samples through the training augmentation, when one is given.
        if augment is not None:
            samples += "\n" + _sample_grid(
                summary,
                dataset,
                augment,
                "The same samples augmented",
                "The images above after the training augmentation (one random draw each).",
            )
    body = f"""<h1>Dataset analysis</h1>
<p class="sub">{_e(summary["source"])}</p>
{dataset_line}
{_cards(summary)}
<h2>Images per class</h2>
<p class="explain">Every bar is a class, sorted from the largest to the smallest; the y axis is
logarithmic. Hover a bar for the species, its id and its train / val / test counts.</p>
<div class="figure">{fig_html[0]}</div>
<h2>Cumulative share</h2>
<p class="explain">Share of all images held by the k largest classes. The red points mark the
deciles: the number of classes whose cumulative share is still at or below 10 %, 20 %, … 100 %.
</p>
<div class="figure">{fig_html[1]}</div>
{_splits_section(summary)}
{samples}
"""
    return page_html(
        f"plantkit dataset analysis: {summary['source']}", body, extra_css=EDA_CSS
    )


def write_eda_html(
    path: str | Path,
    summary: dict[str, Any],
    dataset=None,
    *,
    augment: Callable | None = None,
) -> Path:
    """Write the EDA report of `summary` to `path` (atomically) and return the path.

    With a `dataset`, the page shows sample thumbnails per split. `augment` (a callable
    PIL image -> PIL image) adds a section with the same samples augmented; without it
    that section is left out entirely.
    """
    return write_text(path, build_eda_html(summary, dataset, augment=augment))


__all__ = ["build_eda_html", "write_eda_html"]
