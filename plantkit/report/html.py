"""The interactive HTML page of `plantkit report --html`: one self-contained file.

Everything is drawn from the dict of `leaderboard.build_report`. plotly.js is inlined once
(no CDN); figures with a choice of model or split carry a plotly dropdown (updatemenus)
that switches trace visibility, so the page needs no server and no script of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plantkit.artifacts import write_text
from plantkit.report import train_options
from plantkit.report.columns import (
    ACCURACY_BIN_WIDTH,
    AVERAGE_K,
    BUCKET_RULES,
    COLUMNS,
    grouped_notes,
)
from plantkit.report.html_page import (
    FIGURE_MARGIN,
    FigureEmbedder,
    escape,
    log_axis,
    page_html,
)
from plantkit.report.tables import fmt, leaderboard_cell

RELIABILITY_LINES = 5  # models drawn at first in the reliability diagram
EPOCH_TICKS = 12  # at most this many epoch ticks on the training curves
# GFLOPs in the cost figure's hover: significant digits, since a small model costs 0.005
# GFLOPs, which a fixed two decimals shows as 0.00. (The tables' cells: tables.fmt.)
GFLOPS_DIGITS = 3
GFLOPS_HOVER = f"%{{x:.{GFLOPS_DIGITS}g}}"
KIND_SYMBOLS = {"expert": "circle", "combination": "diamond"}
KIND_COLORS = {"expert": "#1565c0", "combination": "#c62828"}
# A combination often costs what one of its experts does: its smaller diamond drawn on the
# expert's circle leaves a ring of the circle in sight.
KIND_SIZES = {"expert": 14, "combination": 9}
EXTRA_CSS = """
td.best { font-weight: 700; color: #2e7d32; }
tr.missing td { color: #999; }
"""


def _entries(report: dict) -> list[tuple[str, dict, str]]:
    """(label, model, split) for every model result, the first split's results first."""
    return [
        (f"{m['name']} · {split}" if len(report["splits"]) > 1 else m["name"], m, split)
        for split in report["splits"]
        for m in report["models"]
        if split in m["results"]
    ]


def _default_entry(entries: list[tuple[str, dict, str]], split: str | None) -> int:
    """The best entry by top-1 on the last split (test when there is one)."""
    ranked = [
        (i, e[1]["results"][e[2]]["top1"] or 0.0)
        for i, e in enumerate(entries)
        if e[2] == split
    ]
    return max(ranked, key=lambda p: p[1])[0] if ranked else 0


def _dropdown(fig, labels: list[str], traces_per_choice: list[int], active: int,
              legend_only: frozenset[int] = frozenset()) -> None:
    """Show one choice's traces at a time, chosen from a dropdown above the figure.

    Traces in `legend_only` are listed in the legend but drawn only once clicked there.
    """
    total = sum(traces_per_choice)

    def state(t: int, start: int, n: int):
        if not start <= t < start + n:
            return False
        return "legendonly" if t in legend_only else True

    buttons, starts, start = [], [], 0
    for label, n in zip(labels, traces_per_choice):
        buttons.append({"label": label, "method": "update",
                        "args": [{"visible": [state(t, start, n) for t in range(total)]}]})
        starts.append(start)
        start += n
    for t, trace in enumerate(fig.data):
        trace.visible = state(t, starts[active], traces_per_choice[active])
    fig.update_layout(updatemenus=[{
        "buttons": buttons, "active": active, "direction": "down", "showactive": True,
        "x": 1.0, "xanchor": "right", "y": 1.02, "yanchor": "bottom",
    }])


def _layout(fig, title: str, **axes) -> None:
    fig.update_layout(title={"text": title, "y": 0.97}, height=500, template="plotly_white",
                      margin={**FIGURE_MARGIN, "t": 100}, **axes)


def accuracy_by_count_figure(report: dict):
    """Per-species top-1 against images per species (log x), one model or combination at
    a time; hover names the species."""
    import plotly.graph_objects as go

    entries = _entries(report)
    # NumPy arrays, not lists: plotly validates a list element by element (seconds for
    # 52 traces of 1,081 species), an array at once.
    species = np.array([report["classes"]["ids"], report["classes"]["names"]], dtype=object).T
    counts = np.array(report["image_counts"])
    fig = go.Figure()
    for label, model, split in entries:
        accuracy = np.array(model["results"][split]["per_class_accuracy"], dtype=float)
        shown = ~np.isnan(accuracy) & (counts > 0)
        fig.add_trace(go.Scatter(
            x=counts[shown],
            y=np.round(100 * accuracy[shown], 2),
            customdata=species[shown],
            mode="markers", name=label,
            marker={"size": 6, "opacity": 0.6, "color": KIND_COLORS.get(model["kind"])},
            hovertemplate="<b>%{customdata[1]}</b><br>id %{customdata[0]}<br>"
            "%{x:,} images<br>top-1 %{y:.1f} %<extra>" + escape(label) + "</extra>",
        ))
    _dropdown(fig, [e[0] for e in entries], [1] * len(entries),
              _default_entry(entries, list(report["splits"])[-1]))
    _layout(fig, "Per-species top-1 against images per species",
            xaxis=log_axis(counts[counts > 0], title="images per species (log)"),
            yaxis={"title": "top-1 accuracy (%)", "range": [-3, 103]}, showlegend=False)
    return fig


def count_by_accuracy_figure(report: dict):
    """Mean images per species in each 1 %-accuracy bin, one model at a time."""
    import plotly.graph_objects as go

    entries = _entries(report)
    fig = go.Figure()
    bin_labels = None
    means: list[float] = []
    for label, model, split in entries:
        view = model["results"][split]["count_by_accuracy"]
        if bin_labels is None:
            bin_labels = [f"{100 * low:.0f}-{100 * (low + ACCURACY_BIN_WIDTH):.0f}"
                          for low in view["lower"]]
        lower = np.array(view["lower"])
        means += [v for v in view["mean_count"] if v is not None]
        fig.add_trace(go.Bar(
            x=np.round(100 * lower, 2),
            y=np.array(view["mean_count"], dtype=float),
            customdata=np.array([view["classes"], bin_labels], dtype=object).T,
            name=label,
            marker_color=KIND_COLORS.get(model["kind"]),
            hovertemplate="top-1 %{customdata[1]} %<br>mean %{y:,.1f} images per species"
            "<br>%{customdata[0]} species<extra>" + escape(label) + "</extra>",
        ))
    _dropdown(fig, [e[0] for e in entries], [1] * len(entries),
              _default_entry(entries, list(report["splits"])[-1]))
    _layout(fig, "Mean images per species in each 1 % accuracy bin",
            xaxis={"title": "per-species top-1 accuracy bin (%)", "range": [-1, 101]},
            yaxis=log_axis(means, title="mean images per species (log)"),
            bargap=0.05, showlegend=False)
    return fig


def reliability_figure(report: dict):
    """Accuracy against confidence per 15 confidence bins, a line per model (the best
    RELIABILITY_LINES drawn, the others a click away in the legend), a split at a time; the
    diagonal is perfect calibration."""
    import plotly.graph_objects as go

    fig = go.Figure()
    splits, per_split, legend_only = [], [], set()
    for split in report["splits"]:
        models = [m for m in report["models"] if split in m["results"]]
        if not models:
            continue
        splits.append(split)
        fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", name="perfect",
                                 line={"color": "#999", "dash": "dot"}, hoverinfo="skip"))
        # Many lines hide each other: the best few by top-1 are drawn, the rest wait in
        # the legend.
        ranked = sorted(models, key=lambda m: m["results"][split]["top1"] or 0.0, reverse=True)
        drawn = {m["name"] for m in ranked[:RELIABILITY_LINES]}
        for model in models:
            if model["name"] not in drawn:
                legend_only.add(len(fig.data))
            bins = model["results"][split]["reliability"]
            kept = [i for i, n in enumerate(bins["count"]) if n]
            ece = model["results"][split]["ece"]
            fig.add_trace(go.Scatter(
                x=[round(100 * bins["confidence"][i], 2) for i in kept],
                y=[round(100 * bins["accuracy"][i], 2) for i in kept],
                customdata=[bins["count"][i] for i in kept],
                mode="lines+markers",
                name=f"{model['name']} (ECE {fmt(ece, 'pct')} %)",
                hovertemplate="confidence %{x:.1f} %<br>accuracy %{y:.1f} %<br>"
                "%{customdata:,} images<extra>" + escape(model["name"]) + "</extra>",
            ))
        per_split.append(1 + len(models))
    if per_split:
        _dropdown(fig, splits, per_split, len(splits) - 1, frozenset(legend_only))
    _layout(fig, "Reliability: accuracy against top-1 confidence (15 bins)",
            xaxis={"title": "mean top-1 confidence in the bin (%)", "range": [0, 100]},
            yaxis={"title": "accuracy in the bin (%)", "range": [0, 100]})
    return fig


def _epoch_step(epochs: int) -> int:
    """The smallest step of 1, 2, 5, 10, 20, ... that puts at most EPOCH_TICKS ticks on
    `epochs` epochs: whole epochs only, never plotly's automatic 0.5 or 0.2 steps."""
    step, factors = 1, (2, 2.5, 2)  # 1 -> 2 -> 5 -> 10 -> 20 -> 50 ...
    i = 0
    while epochs / step > EPOCH_TICKS:
        step = round(step * factors[i % 3])
        i += 1
    return step


def history_figure(report: dict):
    """Train and val curves per epoch (accuracy left, loss right), an expert at a time;
    None when no expert has a history.csv."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    experts = [m for m in report["models"] if m.get("history")]
    if not experts:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy (%)", "loss"))
    per_expert, last_epoch = [], 1
    curves = (("top1", "train top-1", 1, "solid"), ("val_top1", "val top-1", 1, "dash"),
              ("val_macro_top1", "val macro top-1", 1, "dot"),
              ("loss", "train loss", 2, "solid"), ("val_loss", "val loss", 2, "dash"))
    for model in experts:
        rows = model["history"]["rows"]
        added = 0
        for key, label, col, dash in curves:
            points = [(r["epoch"], r[key]) for r in rows
                      if r.get(key) is not None and r.get("epoch") is not None]
            if not points:
                continue
            scale = 100 if col == 1 else 1
            last_epoch = max(last_epoch, *(int(e) + 1 for e, _ in points))
            fig.add_trace(go.Scatter(
                x=[e + 1 for e, _ in points], y=[scale * v for _, v in points],
                mode="lines+markers", name=label, line={"dash": dash},
                hovertemplate=f"epoch %{{x}}<br>{label} %{{y:.4g}}<extra></extra>",
            ), row=1, col=col)
            added += 1
        per_expert.append(added)
    _dropdown(fig, [m["name"] for m in experts], per_expert, 0)
    _layout(fig, "Training curves per epoch (from history.csv)")
    # Epochs count from 1 (history.csv from 0); ticks on whole epochs from the first.
    fig.update_xaxes(title_text="epoch", tick0=1, dtick=_epoch_step(last_epoch),
                     tickformat="d")
    return fig


def _cost_points(rows: list[dict]) -> list[tuple[float, float, str, str]]:
    """(GFLOPs, top-1 %, names, macro top-1 text) per marker of the cost figure: rows that
    would draw the same point (the same GFLOPs and top-1 % in the hover) share one marker
    whose hover names them all, since plotly's hover shows one of stacked markers only."""
    points: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        key = (f"{r['gflops']:.{GFLOPS_DIGITS}g}", f"{100 * r['top1']:.1f}")
        points.setdefault(key, []).append(r)
    return [(same[0]["gflops"], round(100 * same[0]["top1"], 2),
             ", ".join(escape(r["name"]) for r in same),
             " / ".join(fmt(r["macro_top1"], "pct") for r in same))
            for same in points.values()]


def cost_figure(report: dict):
    """Top-1 against GFLOPs per image (log x), experts and combinations, a split at a
    time; None when no model has a GFLOPs attribute."""
    import plotly.graph_objects as go

    fig = go.Figure()
    splits: list[str] = []
    per_split: list[int] = []
    gflops: list[float] = []
    for split in report["splits"]:
        added = 0
        for kind in ("expert", "combination"):
            rows = [r for r in report["splits"][split]["leaderboard"]
                    if r["kind"] == kind and r["gflops"] is not None and r["top1"] is not None]
            if not rows:
                continue
            points = _cost_points(rows)
            gflops.extend(p[0] for p in points)
            # Markers only: models of about the same cost and accuracy sit on top of each
            # other, and always-on names overprinted into blobs; the hover names them.
            fig.add_trace(go.Scatter(
                x=[p[0] for p in points], y=[p[1] for p in points],
                customdata=[[p[2], p[3]] for p in points],
                mode="markers", name=f"{kind}s",
                marker={"size": KIND_SIZES[kind], "symbol": KIND_SYMBOLS[kind],
                        "color": KIND_COLORS[kind]},
                hovertemplate=f"<b>%{{customdata[0]}}</b><br>{GFLOPS_HOVER} GFLOPs per image"
                "<br>top-1 %{y:.1f} %<br>macro top-1 %{customdata[1]} %<extra>" + kind
                + "</extra>",
            ))
            added += 1
        if added:
            splits.append(split)
            per_split.append(added)
    if not per_split:
        return None
    _dropdown(fig, splits, per_split, len(splits) - 1)
    _layout(fig, "Top-1 against cost: GFLOPs per image",
            xaxis=log_axis(gflops, title="GFLOPs per image (log)"),
            yaxis={"title": "top-1 accuracy (%)"})
    return fig


def tradeoff_split(report: dict) -> str:
    """The split of the micro/macro figure: test when reported, else val, else the last."""
    return next((s for s in ("test", "val") if s in report["splits"]), list(report["splits"])[-1])


def _shots_text(report: dict, row: dict) -> str:
    """"<br>many 90.0 / medium 80.0 / few 70.0 %" for the hover; empty without buckets."""
    if report["train_counts"] is None:
        return ""
    return "<br>" + " / ".join(f"{b} {fmt(row[b], 'pct')}" for b in BUCKET_RULES) + " %"


def _tau_curves(report: dict) -> list[tuple[str, dict]]:
    """(name, val curve over tau) of every logit adjustment and tau-normalisation: the curve
    `plantkit combine` traced (combine.logit_adjust.TauCurve), saved in its
    combination.json's params."""
    curves = []
    for model in report["models"]:
        curve = ((model.get("combination") or {}).get("params") or {}).get("curve")
        # a cascade's curve is a list of thresholds; logit adjustment's a dict of lists
        if isinstance(curve, dict) and "tau" in curve:
            curves.append((model["name"], curve))
    return curves


def _tau_trace(name: str, curve: dict):
    import plotly.graph_objects as go

    points = [(t, m, a) for t, m, a in zip(curve["tau"], curve["val_top1"],
                                           curve["val_macro_top1"])
              if m is not None and a is not None]
    return go.Scatter(
        x=[round(100 * m, 2) for _, m, _ in points], y=[round(100 * a, 2) for *_, a in points],
        customdata=[t for t, _, _ in points], mode="lines+markers", name=f"{name} (val, tau)",
        line={"dash": "dot"}, marker={"size": 5},
        hovertemplate="tau %{customdata:g}<br>top-1 %{x:.1f} %<br>macro top-1 %{y:.1f} %"
        "<extra>" + escape(name) + " on val</extra>")


def micro_macro_figure(report: dict):
    """Macro top-1 against micro top-1, a marker per expert and combination on
    `tradeoff_split`, and a line per logit adjustment's val curve over tau; None when there
    is nothing to plot."""
    import plotly.graph_objects as go

    split = tradeoff_split(report)
    fig = go.Figure()
    for kind in ("expert", "combination"):
        rows = [r for r in report["splits"][split]["leaderboard"]
                if r["kind"] == kind and r["top1"] is not None and r["macro_top1"] is not None]
        if not rows:
            continue
        fig.add_trace(go.Scatter(
            x=[round(100 * r["top1"], 2) for r in rows],
            y=[round(100 * r["macro_top1"], 2) for r in rows],
            customdata=[[escape(r["name"]), _shots_text(report, r)] for r in rows],
            mode="markers", name=f"{kind}s ({split})",
            marker={"size": KIND_SIZES[kind], "symbol": KIND_SYMBOLS[kind],
                    "color": KIND_COLORS[kind]},
            # "%" + "%{": the unit, then the shots (one literal "%%{" would read as an escape)
            hovertemplate="<b>%{customdata[0]}</b><br>top-1 %{x:.1f} %<br>macro top-1 "
            "%{y:.1f} %" + "%{customdata[1]}<extra>" + kind + "</extra>",
        ))
    for name, curve in _tau_curves(report):
        fig.add_trace(_tau_trace(name, curve))
    if not fig.data:
        return None
    _layout(fig, "Macro top-1 against micro top-1",
            xaxis={"title": "top-1, every image alike (micro, %)"},
            yaxis={"title": "macro top-1, every species alike (%)"})
    return fig


def _training_options_html(report: dict) -> str:
    keys, rows = train_options.options_table(report)
    title = "<h2>Training options</h2>"
    if not rows:
        return title + ('<p class="note">No expert has a train_config.json beside its store '
                        "(imported, or trained elsewhere): its options are unknown.</p>")
    head = "".join(f'<th class="l">{escape(train_options.header(k))}</th>' for k in keys)
    body = "".join(
        f'<tr><td class="l">{escape(name)}</td>'
        + "".join(f'<td class="l">{escape(shown.get(k, ""))}</td>' for k in keys) + "</tr>"
        for name, shown in rows)
    return (f'{title}<p class="explain">The long-tail options each expert was trained with '
            f"(its train_config.json); {escape(train_options.left_out_text())}.</p>"
            f'<table><tr><th class="l">expert</th>{head}</tr>{body}</table>')


def _shows_best(row: dict, key: str, how: str, best) -> bool:
    """Whether the row's cell shows the column's best value: compared as shown, so that
    values that print alike are all green or none is (0.0046 and 0.0089 GFLOPs both shown
    as 0.00 with one of them green read as an error)."""
    if row[key] is None or best is None:
        return False
    # The average-k set size in brackets is no part of the compared value.
    bare = {**row, f"avg{AVERAGE_K}_set_size": None}
    return leaderboard_cell(bare, key, how) == leaderboard_cell({**bare, key: best}, key, how)


def _leaderboard_html(report: dict, split: str) -> str:
    section = report["splits"][split]
    head = "".join(
        f"<th>{escape(header)}{' (set)' if key == f'avg{AVERAGE_K}' else ''}</th>"
        for key, header, *_ in COLUMNS
    )
    body = []
    for row in section["leaderboard"]:
        cells = []
        for key, _, _, how in COLUMNS:
            best = _shows_best(row, key, how, section["best"].get(key))
            cells.append(f'<td{" class=best" if best else ""}>'
                         f"{escape(leaderboard_cell(row, key, how))}</td>")
        missing = "" if row["available"] else ' class="missing"'
        body.append(f'<tr{missing}><td class="l">{escape(row["name"])}</td>'
                    f'<td class="l">{escape(row["kind"])}</td>{"".join(cells)}</tr>')
    return (
        f"<h3>{escape(split)}: {section['images']:,} images, "
        f"{section['species_present']:,} species</h3>"
        f'<table><tr><th class="l">name</th><th class="l">kind</th>{head}</tr>'
        f"{''.join(body)}</table>"
    )


def _notes_html(report: dict) -> str:
    notes = grouped_notes(report)
    if not notes:
        return ""
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return f'<div class="note"><b>Notes</b><ul>{items}</ul></div>'


def _section(title: str, explain: str, fig, embed: FigureEmbedder, missing: str) -> str:
    shown = embed(fig) if fig is not None else f'<p class="note">{escape(missing)}</p>'
    return f'<h2>{escape(title)}</h2><p class="explain">{explain}</p>{shown}'


def build_report_html(report: dict) -> str:
    """The report page as a string (see `write_report_html`)."""
    embed = FigureEmbedder()
    counted = " + ".join(report["image_counts_from"])
    buckets = "; ".join(f"{k}: {v}" for k, v in BUCKET_RULES.items())
    tradeoff = tradeoff_split(report)
    left_out = report["splits"][tradeoff]["missing"]
    sections = [
        _section(
            "Micro vs macro top-1",
            "Micro top-1 counts every image alike, so the frequent species rule it; macro "
            "top-1 is the mean over the species, so a rare one weighs as much as a frequent "
            "one. Long-tail methods trade one for the other: further up is better for the rare "
            f"species, further right for most images. A marker per expert and combination on "
            f"{escape(tradeoff)}"
            + (f" (not in it: {escape(', '.join(left_out))})" if left_out else "")
            + "; hover for its many/medium/few-shot top-1."
            + (" A dotted line is a logit adjustment's or a tau-normalisation's curve on val "
               "over tau (tau 0: its base unchanged; for tau-normalisation, the expert without "
               "its bias)." if _tau_curves(report) else ""),
            micro_macro_figure(report), embed,
            f"No model has top-1 and macro top-1 on {tradeoff}."),
        _training_options_html(report),
        _section(
            "Per-species accuracy against image count",
            f"Every point is a species: its top-1 accuracy against its images ({counted}), "
            "log scale. Choose the expert or combination in the menu; hover a point for the "
            "species.", accuracy_by_count_figure(report), embed, "no results"),
        _section(
            "Images per accuracy bin",
            "The mean number of images of the species whose accuracy falls in each 1 % bin "
            "(the reference study's view): stable accuracy needs many images.",
            count_by_accuracy_figure(report), embed, "no results"),
        _section(
            "Reliability",
            "Images binned by their top-1 confidence; a calibrated model lies on the "
            "diagonal. Click a legend entry to hide a model; choose the split in the menu.",
            reliability_figure(report), embed, "no results"),
        _section(
            "Training curves",
            "Per-epoch train and val numbers from each expert's history.csv.",
            history_figure(report), embed,
            "No expert has a history.csv beside its store (trained elsewhere or imported)."),
        _section(
            "Accuracy against cost",
            "Top-1 against the GFLOPs one image costs (for a combination: its expected cost "
            "per image).", cost_figure(report), embed,
            "No store carries a gflops attribute: cost unknown."),
    ]
    leaderboards = "".join(_leaderboard_html(report, s) for s in report["splits"])
    names_from = report["classes"]["names_from"]
    body = f"""<h1>Model report</h1>
<p class="sub">{len(report['models'])} expert(s) and combination(s) · {report['num_classes']:,}
classes · fingerprint <code>{escape(report['fingerprint'])}</code> · species names from
{escape(names_from)}</p>
{_notes_html(report)}
<h2>Leaderboard</h2>
<p class="explain">Accuracies and ECE in %. Macro: the mean over the species present in the split.
avg-{AVERAGE_K}: average-{AVERAGE_K} accuracy, threshold fitted on val (mean set size in
brackets). Shot buckets by train images ({escape(buckets)}). ECE: 15 equal-width bins. The best
value of each column is in green (lowest for params, GFLOPs and ECE); '-': input missing.</p>
{leaderboards}
{''.join(sections)}
"""
    return page_html("plantkit model report", body, extra_css=EXTRA_CSS)


def write_report_html(path: str | Path, report: dict) -> Path:
    """Write the report page to `path` atomically and return the path."""
    return write_text(path, build_report_html(report))


__all__ = [
    "accuracy_by_count_figure",
    "build_report_html",
    "cost_figure",
    "count_by_accuracy_figure",
    "history_figure",
    "micro_macro_figure",
    "reliability_figure",
    "tradeoff_split",
    "write_report_html",
]
