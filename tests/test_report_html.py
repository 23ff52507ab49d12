"""The plots of the HTML pages read as numbers: no overprinted labels in the cost figure,
labelled log ticks, whole epochs, GFLOPs with significant digits, the best cell green only
where the shown value is the best.

The figures are checked as plotly objects and the page as text (no browser); the stores
come from tests/test_report.py, whose numbers are known by construction.
"""

from __future__ import annotations

import copy
import re

import pytest
import test_report
from test_report import _row

from plantkit.report import html
from plantkit.report.eda_html import _counts_figure
from plantkit.report.html_page import LOG_TICK_FORMAT, log_axis

# test_report's stores and their report, as fixtures of this module too.
artifacts = test_report.artifacts
report = test_report.report


def _cost_rows(report: dict, split: str) -> list[dict]:
    return [r for r in report["splits"][split]["leaderboard"] if r["gflops"] is not None]


def _with_gflops(report: dict, gflops: dict[str, float]) -> dict:
    """A copy of the report whose leaderboard rows carry these GFLOPs."""
    changed = copy.deepcopy(report)
    for section in changed["splits"].values():
        for row in section["leaderboard"]:
            if row["name"] in gflops:
                row["gflops"] = gflops[row["name"]]
    return changed


def test_cost_figure_names_models_in_the_hover_not_on_the_plot(report):
    fig = html.cost_figure(report)
    assert fig.data
    for trace in fig.data:
        # always-on names overprint each other where models cost about the same
        assert "text" not in trace.mode
        assert trace.text is None
        assert "%{customdata[0]}" in trace.hovertemplate
    test = [t for t, v in zip(fig.data, fig.layout.updatemenus[0].buttons[-1].args[0]["visible"])
            if v]
    names = {n for t in test for n in ", ".join(c[0] for c in t.customdata).split(", ")}
    assert names == {r["name"] for r in _cost_rows(report, "test")}


def test_cost_markers_at_one_point_share_one_hover(report):
    # alpha's GFLOPs as beta's and the same top-1: one marker naming both
    same = copy.deepcopy(report)
    for split in same["splits"]:
        alpha, beta = _row(same, split, "alpha"), _row(same, split, "beta")
        alpha["gflops"], alpha["top1"] = beta["gflops"], beta["top1"]
    for experts in (t for t in html.cost_figure(same).data if t.name == "experts"):
        assert [c[0] for c in experts.customdata] == ["alpha, beta"]
        assert len(experts.x) == 1


def test_gflops_in_the_hover_have_significant_digits(report):
    gflops = {"alpha": 0.00465, "beta": 0.00887, "mix": 0.0123}
    fig = html.cost_figure(_with_gflops(report, gflops))
    for trace in fig.data:
        formats = re.findall(r"%\{x:([^}]*)\}", trace.hovertemplate)
        assert formats, trace.hovertemplate
        # d3's format spec as Python reads it: ".2f" would show both experts as 0.00
        shown = {format(x, formats[0]) for x in trace.x}
        assert len(shown) == len(trace.x)
        assert {format(v, formats[0]) for v in gflops.values()} == {"0.00465", "0.00887",
                                                                  "0.0123"}


@pytest.mark.parametrize(("values", "dtick"), [
    ([0.0046, 0.0089], "D1"),  # under a decade: every digit, labelled
    ([0.0015, 0.03], "D2"),  # a decade or two: 1, 2, 5
    ([1, 20_000], "D2"),
    ([1, 5_000_000], 1),  # many decades: one tick a decade
])
def test_log_axes_label_every_tick(values, dtick):
    axis = log_axis([0, None, float("nan"), *values], title="t")  # non-positive: ignored
    assert axis == {"type": "log", "dtick": dtick, "tickformat": LOG_TICK_FORMAT, "title": "t"}


def test_every_log_axis_of_both_pages_has_labelled_ticks(report):
    summary = {"per_class": [{"class_id": str(i), "species_name": f"s{i}", "train": n,
                              "val": 1, "test": 1, "total": n + 2}
                             for i, n in enumerate((900, 40, 3))]}
    figures = [html.accuracy_by_count_figure(report), html.count_by_accuracy_figure(report),
               html.cost_figure(report), _counts_figure(summary)]
    log_axes = [axis for fig in figures for name in ("xaxis", "yaxis")
                if (axis := fig.layout[name]).type == "log"]
    assert len(log_axes) == len(figures)
    for axis in log_axes:
        # plotly's default labels only the decades and prints bare digits between them
        assert axis.tickformat == LOG_TICK_FORMAT
        assert axis.dtick in ("D1", "D2", 1)


def test_training_curves_tick_whole_epochs(report):
    fig = html.history_figure(report)
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        # three epochs: plotly's own ticks would be 1, 1.5, 2, 2.5, 3
        assert (axis.tick0, axis.dtick, axis.tickformat) == (1, 1, "d")
    assert sorted({x for t in fig.data for x in t.x}) == [1, 2, 3]


@pytest.mark.parametrize(("epochs", "step"), [(1, 1), (12, 1), (13, 2), (30, 5), (100, 10),
                                              (200, 20), (1000, 100)])
def test_epoch_steps_are_whole_and_few(epochs, step):
    assert html._epoch_step(epochs) == step
    assert epochs / step <= html.EPOCH_TICKS


def _green_cells(page: str, header: str) -> dict[str, str]:
    """name -> text of the green cells of one column in the first leaderboard table."""
    table = re.search(r"<table>.*?</table>", page, flags=re.S).group(0)
    headers = re.findall(r"<th[^>]*>(.*?)</th>", table)
    column = headers.index(header)
    green = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]:
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", row)
        if "best" in cells[column][0]:
            green[cells[0][1]] = cells[column][1]
    return green


def test_best_cells_are_the_ones_that_show_the_best_value(report):
    # 1e-9 apart: the same number on the page, so both or neither are green
    tied = _with_gflops(report, {"alpha": 0.03 + 1e-9})
    page = html.build_report_html(tied)
    shown = _green_cells(page, "GFLOPs")
    assert set(shown) == {"alpha", "beta"}
    assert len(set(shown.values())) == 1
    # a column whose values print differently keeps one best
    assert set(_green_cells(html.build_report_html(report), "GFLOPs")) == {"beta"}


def test_page_embeds_plotly_and_draws_the_fixed_axes(report):
    page = html.build_report_html(report)
    assert not re.search(r"<script[^>]*\bsrc=", page)  # plotly inline, no CDN
    assert '"mode":"markers+text"' not in page
    assert page.count(f'"tickformat":"{LOG_TICK_FORMAT}"') == 3  # species, bins, cost
