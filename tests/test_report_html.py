"""The plots of the HTML pages read as numbers: no overprinted labels in the cost figure,
labelled log ticks, whole epochs, GFLOPs with significant digits, the best cell green only
where the shown value is the best.

The figures are checked as plotly objects and the page as text (no browser); the stores
come from tests/test_report.py, whose numbers are known by construction.
"""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import test_report
from combine_helpers import DEFAULT_SPECS, make_experts
from test_report import _row

from plantkit.combine.options import CombineOptions
from plantkit.combine.run import run_combine
from plantkit.report import html
from plantkit.report.eda_html import _counts_figure
from plantkit.report.html_page import LOG_TICK_FORMAT, log_axis
from plantkit.report.inputs import collect_store_paths
from plantkit.report.leaderboard import build_report
from plantkit.report.tables import fmt

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


# --- micro vs macro top-1 ---------------------------------------------------------------------


def _points(fig) -> dict[str, tuple[float, float, str]]:
    """name -> (x, y, shot text) of the figure's markers."""
    return {c[0]: (x, y, c[1]) for t in fig.data if t.mode == "markers"
            for x, y, c in zip(t.x, t.y, t.customdata)}


def test_micro_macro_points_are_the_leaderboards_numbers(report):
    fig = html.micro_macro_figure(report)
    points = _points(fig)
    rows = report["splits"]["test"]["leaderboard"]  # test, since the report has it
    assert set(points) == {r["name"] for r in rows}
    for row in rows:
        x, y, shots = points[row["name"]]
        assert x == pytest.approx(100 * row["top1"], abs=0.005)
        assert y == pytest.approx(100 * row["macro_top1"], abs=0.005)
        assert shots == "<br>" + " / ".join(
            f"{b} {fmt(row[b], 'pct')}" for b in ("many", "medium", "few")) + " %"
    assert {t.name for t in fig.data} == {"experts (test)", "combinations (test)"}
    # no logit adjustment: no curve, nor a word of one
    assert not [t for t in fig.data if "lines" in t.mode]
    assert "dotted line" not in html.build_report_html(report)


def test_micro_macro_falls_back_to_val_and_says_who_is_left_out(report):
    only_val = copy.deepcopy(report)
    del only_val["splits"]["test"]
    assert html.tradeoff_split(only_val) == "val"
    points = _points(html.micro_macro_figure(only_val))
    assert set(points) == {"alpha", "beta", "mix"}  # gamma has no val split
    assert points["alpha"][0] == pytest.approx(100 * _row(report, "val", "alpha")["top1"],
                                               abs=0.005)
    assert "on val (not in it: gamma)" in html.build_report_html(only_val)


def test_micro_macro_hover_has_no_buckets_without_train_counts(report):
    no_counts = copy.deepcopy(report)
    no_counts["train_counts"] = None
    assert {p[2] for p in _points(html.micro_macro_figure(no_counts)).values()} == {""}


def test_no_micro_macro_figure_when_nothing_is_scored(report):
    unscored = copy.deepcopy(report)
    for row in unscored["splits"]["test"]["leaderboard"]:
        row["top1"] = None
    assert html.micro_macro_figure(unscored) is None
    assert "No model has top-1 and macro top-1 on test." in html.build_report_html(unscored)


def test_a_logit_adjustment_draws_its_saved_val_curve(tmp_path):
    """combine saves the curve over tau in combination.json; the report draws it as is (a
    cascade's curve, over thresholds, is no tau curve)."""
    make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=60, n_test=40)
    run_combine(tmp_path, CombineOptions(average=True, cascade=True, logit_adjust="auto",
                                         target="macro"))
    built = build_report(collect_store_paths([], tmp_path), workers=1)
    params = json.loads((tmp_path / "combos" / "logit-adjust" / "combination.json")
                        .read_text())["params"]
    curve = params["curve"]
    lines = [t for t in html.micro_macro_figure(built).data if "lines" in t.mode]
    assert [t.name for t in lines] == ["logit-adjust (val, tau)"]
    assert list(lines[0].customdata) == curve["tau"]
    np.testing.assert_allclose(lines[0].x, 100 * np.array(curve["val_top1"]), atol=0.005)
    np.testing.assert_allclose(lines[0].y, 100 * np.array(curve["val_macro_top1"]), atol=0.005)
    # the curve at the tau picked is the logit adjustment's own val numbers in the report
    chosen = curve["tau"].index(params["tau"])
    val = _row(built, "val", "logit-adjust")
    assert val["macro_top1"] == pytest.approx(curve["val_macro_top1"][chosen])
    assert val["top1"] == pytest.approx(curve["val_top1"][chosen])
    assert "A dotted line is a logit adjustment's or a tau-normalisation's curve" in \
        html.build_report_html(built)
