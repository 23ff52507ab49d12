"""`plantkit report --tui`, driven headless by Textual's Pilot at 80x24 and 160x48: every
number on screen is `plantkit report --json`'s; sorting, filtering, the model screen's
search and bucket filter, the comparison of two models, loading in a worker (and quitting
while it runs), refusals.

Four synthetic expert stores (tests/combine_helpers) with a training history for one, and
three combinations of them: well under a minute.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time

import numpy as np
import pytest
from cli_helpers import cli, refused
from combine_helpers import make_experts

from plantkit.artifacts import HISTORY_FILE, history_csv_text
from plantkit.report.tables import fmt, leaderboard_cell
from plantkit.report.tui import view
from plantkit.report.tui.app import (
    CompareScreen,
    HelpScreen,
    LeaderboardScreen,
    ModelScreen,
    ReportApp,
)

SIZES = [(80, 24), (160, 48)]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """(artifacts root, the report as `plantkit report --json` prints it)."""
    from plantkit.combine.options import CombineOptions
    from plantkit.combine.run import run_combine

    art = tmp_path_factory.mktemp("tui") / "art"
    make_experts(art)
    history = [{"epoch": e, "loss": 2.0 - 0.3 * e, "top1": 0.3 + 0.1 * e, "val_loss": 2.1 - e / 4,
                "val_top1": 0.25 + 0.1 * e, "val_top5": 0.6 + 0.05 * e, "lr": 0.01,
                "seconds": 10.0} for e in range(4)]
    (art / "experts" / "large" / HISTORY_FILE).write_text(history_csv_text(history))
    run_combine(art, CombineOptions(average=True, weighted=True, cascade=True))
    code, out, err = cli("--artifacts", art, "report", "--json", "--workers", "1")
    assert code == 0, err
    return art, json.loads(out)


def run(app: ReportApp, size, steps):
    """Run `steps(pilot)` (a coroutine function) against the app at `size`."""

    async def main():
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await steps(pilot)

    asyncio.run(main())


def table_rows(screen, selector: str) -> list[list[str]]:
    table = screen.query_one(selector)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def expected_board(report: dict, split: str, rows: list[dict]) -> list[list[str]]:
    return [[row["name"], row["kind"],
             *[leaderboard_cell(row, key, how) for key, _, _, how in view.COLUMNS]]
            for row in rows]


@pytest.mark.parametrize("size", SIZES)
def test_leaderboard_numbers_sorting_filter_and_split(artifacts, size):
    art, report = artifacts
    app = ReportApp(report=report)

    async def steps(pilot):
        screen = app.screen
        assert isinstance(screen, LeaderboardScreen) and screen.split == "test"
        board = report["splits"]["test"]["leaderboard"]
        # As the report ranks them (top-1), every cell the report's number as formatted.
        assert [r[1:] for r in table_rows(screen, "#board")] == expected_board(
            report, "test", board)
        await pilot.press("s")  # the next column after top-1: top-5, best first
        await pilot.pause()
        by_top5 = sorted(board, key=lambda r: -r["top5"])
        assert [r[1] for r in table_rows(screen, "#board")] == [r["name"] for r in by_top5]
        await pilot.press("r")
        await pilot.pause()
        assert [r[1] for r in table_rows(screen, "#board")] == [
            r["name"] for r in sorted(board, key=lambda r: r["top5"])]
        await pilot.press("slash", "a", "v", "e")  # filter: the names holding "ave"
        await pilot.pause()
        assert [r[1] for r in table_rows(screen, "#board")] == ["average"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(table_rows(screen, "#board")) == len(board)
        await pilot.press("v")  # the other split: val's numbers
        await pilot.pause()
        assert screen.split == "val"
        shown = {r[1]: r[1:] for r in table_rows(screen, "#board")}
        val = report["splits"]["val"]["leaderboard"]
        assert shown == {row[0]: row for row in expected_board(report, "val", val)}

    run(app, size, steps)


def test_a_header_click_sorts_by_that_column(artifacts):
    art, report = artifacts
    app = ReportApp(report=report)

    async def steps(pilot):
        table = app.screen.query_one("#board")
        await pilot.click("#board", offset=(table.column_x("ece"), 0))
        await pilot.pause()
        board = report["splits"]["test"]["leaderboard"]
        assert app.screen.order == view.Order("ece", False)  # lower ECE is better
        assert [r[1] for r in table_rows(app.screen, "#board")] == [
            r["name"] for r in sorted(board, key=lambda r: r["ece"])]

    run(app, (160, 48), steps)


def summary_lines(screen) -> dict[str, str]:
    """The model screen's summary as {label: text}."""
    details = str(screen.query_one("#details").render())
    return dict(line.split(None, 1) if "  " not in line else
                [part.strip() for part in line.split("  ", 1)]
                for line in details.splitlines())


@pytest.mark.parametrize("size", SIZES)
def test_model_screen_species_search_bucket_and_summary(artifacts, size):
    art, report = artifacts
    app = ReportApp(report=report)
    model = next(m for m in report["models"] if m["name"] == "large")
    result = model["results"]["test"]

    async def steps(pilot):
        screen = app.screen
        row = [r[1] for r in table_rows(screen, "#board")].index("large")
        for _ in range(row):
            await pilot.press("down")
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ModelScreen)
        rows = table_rows(screen, "#species-table")
        assert len(rows) == report["num_classes"]
        ids = report["classes"]["ids"]
        headers = [header for _, header, _ in view.species_columns(report)]
        top1, top5 = headers.index("top-1"), headers.index("top-5")
        for cells in rows:  # sorted by train images, each species' numbers the report's
            i = ids.index(cells[0])
            assert cells[top1] == fmt(result["per_class_accuracy"][i], "pct")
            assert cells[top5] == fmt(result["per_class_top5"][i], "pct")
            assert cells[headers.index("train")] == fmt(report["train_counts"][i], "count")
        trains = [report["train_counts"][ids.index(c[0])] for c in rows]
        assert trains == sorted(trains, reverse=True)
        await pilot.press("slash", "c", "0", "3")
        await pilot.pause()
        assert [c[0] for c in table_rows(screen, "#species-table")] == ["c03"]
        await pilot.press("escape")  # clears the search
        await pilot.pause()
        await pilot.press("b")  # many-shot species only: more than 100 train images
        await pilot.pause()
        many = [c[0] for c in table_rows(screen, "#species-table")]
        assert many == [ids[i] for i, n in enumerate(report["train_counts"]) if n > 100]
        await pilot.press("t")  # the summary tab, filled when first shown
        await pilot.pause()
        assert screen.tab == "summary" and screen.query_one("#summary").display
        lines = summary_lines(screen)
        assert lines["GFLOPs expected"] == fmt(model["gflops"], "float")
        assert lines["NLL"] == fmt(result["nll"], "float")
        assert lines["ECE %"] == fmt(result["ece"], "pct")
        assert screen.query_one("#histogram").data == view.accuracy_histogram(
            report, "large", "test")
        assert sum(screen.query_one("#histogram").data) == result["classes_present"]
        await pilot.press("t")
        await pilot.pause()
        assert screen.tab == "history"
        assert screen.query_one("#curve").data == pytest.approx(
            [0.25 + 0.1 * e for e in range(4)])
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LeaderboardScreen)
        # The one model screen, shown again for another model: nothing of the first stays.
        names = [r[1] for r in table_rows(app.screen, "#board")]
        other = next(name for name in names if name != "large")
        await pilot.press("home", *["down"] * names.index(other), "enter")
        await pilot.pause()
        assert app.screen is screen and screen.tab == "species"
        assert screen.name_ == other and not screen.query_one("#search").display
        assert len(table_rows(screen, "#species-table")) == report["num_classes"]
        await pilot.click("#tabs", offset=(len("Species   ") + 2, 0))  # on "Summary"
        await pilot.pause()
        assert screen.tab == "summary"
        other_result = next(m for m in report["models"] if m["name"] == other)[
            "results"]["test"]
        assert summary_lines(screen)["NLL"] == fmt(other_result["nll"], "float")
        await pilot.press("escape")

    run(app, size, steps)


def test_a_combination_shows_its_fitted_parameters(artifacts):
    art, report = artifacts
    weighted = json.loads((art / "combos" / "weighted" / "combination.json").read_text())
    lines = dict(view.model_details(report, "weighted", "test"))
    assert lines["method"] == "weighted"
    assert lines["weights"] == ", ".join(
        f"{name} {weight:.3g}" for name, weight in weighted["params"]["weights"].items())
    cascade = dict(view.model_details(report, "cascade", "test"))
    assert cascade["order"] == ", ".join(
        json.loads((art / "combos" / "cascade" / "combination.json").read_text())
        ["params"]["order"])


def test_an_expert_shows_its_long_tail_training_options(artifacts):
    _, report = artifacts
    # the synthetic stores have no train_config.json: --json says so, the summary too
    assert view.model_entry(report, "large")["training_options"] is None
    assert not [k for k, _ in view.model_details(report, "large", "test") if "trained" in k]
    trained = copy.deepcopy(report)
    view.model_entry(trained, "large")["training_options"] = {
        "loss": "focal", "sampler": "none", "beta": 0.999, "focal_gamma": 1.0}
    lines = dict(view.model_details(trained, "large", "test"))
    # the loss, and what is on and off its default: not sampler none, nor beta's 0.999
    assert {k: v for k, v in lines.items() if k.startswith("trained")} == {
        "trained: loss": "focal", "trained: focal gamma": "1"}


@pytest.mark.parametrize("size", SIZES)
def test_compare_two_marked_models(artifacts, size):
    art, report = artifacts
    app = ReportApp(report=report)
    names = [m["name"] for m in report["models"]]

    async def steps(pilot):
        order = [r[1] for r in table_rows(app.screen, "#board")]
        first, second = order[0], order[1]
        await pilot.press("m", "down", "m", "c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert (screen.first, screen.second) == (first, second)
        a = next(m for m in report["models"] if m["name"] == first)["results"]["test"]
        b = next(m for m in report["models"] if m["name"] == second)["results"]["test"]
        gains = [(y - x) for x, y in zip(a["per_class_accuracy"], b["per_class_accuracy"])
                 if x is not None and y is not None]
        title = str(screen.query_one("#title").render())
        assert (f"wins {sum(g > 0 for g in gains)}, loses {sum(g < 0 for g in gains)}, "
                f"ties {sum(g == 0 for g in gains)}") in title
        shown = [float(r[-1]) for r in table_rows(screen, "#compare-table")]
        assert shown == sorted(shown, reverse=True)
        assert shown == pytest.approx(sorted((100 * g for g in gains), reverse=True), abs=0.051)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LeaderboardScreen) and len(names) >= 2

    run(app, size, steps)


def test_compare_needs_two_marks_and_help_opens_and_closes(artifacts):
    art, report = artifacts
    app = ReportApp(report=report)

    async def steps(pilot):
        await pilot.press("c")  # nothing marked: a notice, no screen
        await pilot.pause()
        assert isinstance(app.screen, LeaderboardScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, LeaderboardScreen)
        await pilot.press("q")
        await pilot.pause()

    run(app, (80, 24), steps)
    assert app.return_code == 0


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
def test_loading_runs_in_a_worker_and_q_quits_while_it_runs(key):
    started, calls = threading.Event(), []

    def load(advance):  # a report that never finishes unless the user quits
        started.set()
        while True:
            advance(1)
            calls.append(1)
            time.sleep(0.01)

    app = ReportApp(load=load, total=10_000)

    async def steps(pilot):
        for _ in range(100):  # the bar moves a few times a second (PROGRESS_INTERVAL_S)
            if started.is_set() and app.screen.query_one("#progress").progress > 0:
                break
            await pilot.pause(0.05)
        assert app.screen.query_one("#progress").progress > 0  # the bar moves
        await pilot.press(key)
        await pilot.pause()

    begin = time.perf_counter()
    run(app, (80, 24), steps)
    assert time.perf_counter() - begin < 30
    assert app.error is None and app.return_code == 0
    stopped = len(calls)
    time.sleep(0.1)
    assert len(calls) == stopped  # the loading thread stopped at its next advance


def test_a_load_error_ends_the_app_with_it(artifacts):
    from plantkit.errors import PlantkitInputError

    def load(advance):
        raise PlantkitInputError("the stores disagree")

    app = ReportApp(load=load)

    async def steps(pilot):
        for _ in range(50):
            if app.error is not None:
                break
            await pilot.pause(0.05)

    run(app, (80, 24), steps)
    assert str(app.error) == "the stores disagree" and app.return_code == 2


def test_the_worker_loads_the_report_build_report_gives(artifacts):
    """The app over the real loader shows the same leaderboard as report --json."""
    from plantkit.report.inputs import collect_store_paths
    from plantkit.report.leaderboard import build_report

    art, report = artifacts
    paths = collect_store_paths([], art)
    app = ReportApp(load=lambda advance: build_report(paths, workers=1, advance=advance))

    async def steps(pilot):
        for _ in range(200):
            if isinstance(app.screen, LeaderboardScreen):
                break
            await pilot.pause(0.05)
        assert [r[1:] for r in table_rows(app.screen, "#board")] == expected_board(
            report, "test", report["splits"]["test"]["leaderboard"])
        name = table_rows(app.screen, "#board")[0][1]
        # the model screen was laid out, unseen, for the model under the cursor
        await pilot.pause()  # (once the leaderboard was drawn)
        model_screen = app.get_screen("model")
        assert model_screen.name_ == name
        assert model_screen.query_one("#species-table").size.height > 0
        # the species tables the loading thread made are the ones a model screen shows
        await pilot.press("enter")
        await pilot.pause()
        result = next(m for m in report["models"] if m["name"] == name)["results"]["test"]
        ids = report["classes"]["ids"]
        top1 = [h for _, h, _ in view.species_columns(report)].index("top-1")
        rows = table_rows(app.screen, "#species-table")
        assert len(rows) == report["num_classes"]
        for cells in rows:
            assert cells[top1] == fmt(result["per_class_accuracy"][ids.index(cells[0])], "pct")

    run(app, (160, 48), steps)


def test_view_sorting_keeps_missing_values_last():
    rows = [{"name": "a", "x": None}, {"name": "b", "x": 0.5}, {"name": "c", "x": float("nan")},
            {"name": "d", "x": 0.9}]
    assert [r["name"] for r in view.sorted_rows(rows, view.Order("x", True))] == \
        ["d", "b", "a", "c"]
    assert [r["name"] for r in view.sorted_rows(rows, view.Order("x", False))] == \
        ["b", "d", "a", "c"]


def test_filter_species_by_id_prefix_name_and_bucket():
    rows = [{"id": "1355868", "name": "Lactuca serriola", "bucket": "many"},
            {"id": "1355920", "name": "Lactuca virosa", "bucket": "few"},
            {"id": "1390793", "name": "Cirsium vulgare", "bucket": "many"}]
    assert [r["id"] for r in view.filter_species(rows, "13559")] == ["1355920"]
    assert [r["id"] for r in view.filter_species(rows, "lactuca")] == ["1355868", "1355920"]
    assert [r["id"] for r in view.filter_species(rows, "lactuca", "many")] == ["1355868"]
    assert view.filter_species(rows, "zzz") == []
    assert np.array_equal(view.accuracy_histogram(
        {"models": [{"name": "m", "results": {"test": {"per_class_accuracy":
                                                        [0.0, 0.05, 1.0, None, 0.95]}}}]},
        "m", "test"), [2, 0, 0, 0, 0, 0, 0, 0, 0, 2])


def test_cli_refusals():
    assert "--tui and --json" in refused("report", "--tui", "--json")
    assert "--tui shows every species" in refused("report", "--tui", "--per-class")
    # CliRunner's stdin and stdout are not terminals
    assert "--tui needs an interactive terminal" in refused("report", "--tui")


def test_line_table_cursor_scrolling_clicks_and_fixed_columns():
    """The species tables' widget: the cursor stays on screen, a click on a row selects it,
    a click on a header names its column (also scrolled sideways), fixed columns stay."""
    from textual.app import App

    from plantkit.report.tui.line_table import LineTable

    events = []

    class One(App):
        def compose(self):
            yield LineTable(id="t", fixed_columns=1)

        def on_mount(self):
            table = self.query_one(LineTable)
            table.add_column("id", key="id")
            table.add_column("wide", key="wide")
            table.add_column("n", key="n", justify="right")
            table.add_rows(([f"r{i}", "w" * 60, str(i)], f"k{i}", None) for i in range(100))
            table.focus()

        def on_line_table_row_selected(self, event):
            events.append(("row", event.row_key))

        def on_line_table_header_selected(self, event):
            events.append(("header", event.column_key))

    app = One()

    def plain(table, y):
        return table.render_line(y).text

    async def steps(pilot):
        table = app.query_one(LineTable)
        visible = table.scrollable_content_region.height - 1  # below the header
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == 99 and table.cursor_key == "k99"
        assert int(table.scroll_y) == 100 - visible  # the last row is the bottom line
        assert plain(table, visible).startswith(" r99 ")
        await pilot.press("home", "down", "down")
        await pilot.pause()
        assert table.cursor_row == 2 and int(table.scroll_y) == 0
        await pilot.click("#t", offset=(2, 4))  # the 4th row on screen
        await pilot.pause()
        assert table.cursor_row == 3 and events[-1] == ("row", "k3")
        await pilot.press("enter")
        await pilot.pause()
        assert events[-1] == ("row", "k3")
        assert len(plain(table, 1)) == table.scrollable_content_region.width
        table.scroll_to(x=200, animate=False)  # the right end: 'n' beside the fixed 'id'
        await pilot.pause()
        assert plain(table, 0).startswith(" id ") and plain(table, 0).rstrip().endswith(" n")
        assert plain(table, 1).startswith(" r0 ") and plain(table, 1).rstrip().endswith(" 0")
        n_x = plain(table, 0).rstrip().rindex("n")
        await pilot.click("#t", offset=(n_x, 0))
        await pilot.pause()
        assert events[-1] == ("header", "n")
        await pilot.click("#t", offset=(1, 0))
        await pilot.pause()
        assert events[-1] == ("header", "id")

    run(app, (60, 20), steps)


def test_line_table_draws_cells_as_rich_text_would():
    """The table builds its lines from segments directly: each character and its style
    must be what rendering the same cells as one rich Text gives (truncation with an
    ellipsis, right-justified numbers, a styled cell, double-width names) and a row's
    style ("dim": a model without the split) must reach every cell."""
    from rich.segment import Segment
    from rich.style import Style
    from rich.text import Text
    from textual.app import App

    from plantkit.report.tui.line_table import PADDING, LineTable

    cells = ["Quercus robur × petraea, a long hybrid name", Text("91.2", style="bold green",
                                                                 justify="right"),
             "7", "種の名前"]

    def reference(table, cells, style):
        line = Text(style=style or "")
        for column, cell in zip(table.columns, cells):
            text = Text(cell, justify=column.justify) if isinstance(cell, str) else cell.copy()
            text.truncate(column.width, overflow="ellipsis")
            gap = " " * (column.width - text.cell_len)
            line.append(" " * PADDING)
            if text.justify == "right":
                line.append(gap)
                line.append_text(text)
            else:
                line.append_text(text)
                line.append(gap)
            line.append(" " * PADDING)
        console = table.app.console
        # the row's style under every cell's, as a console renders a Text's base style
        return list(Segment.apply_style(line.render(console),
                                        console.get_style(style) if style else None))

    def styled_chars(segments):
        return [(ch, Style.combine([s.style or Style.null()])) for s in segments
                for ch in s.text]

    class One(App):
        def compose(self):
            yield LineTable(id="t")

        def on_mount(self):
            table = self.query_one(LineTable)
            table.add_column("name", key="name", width=20)
            table.add_column("top-1", key="top1", justify="right")
            table.add_column("n", key="n", justify="right")
            table.add_column("ja", key="ja")
            table.add_rows([(cells, "a", None), (["x", Text("1"), "12345", "a"], "b", "dim")])

    app = One()

    async def steps(pilot):
        table = app.query_one(LineTable)
        for row, style in ((0, None), (1, "dim")):
            drawn = table._line(table.get_row_at(row), style)
            assert drawn.cell_length == sum(c.width + 2 * PADDING for c in table.columns)
            ours = styled_chars(list(drawn))
            theirs = styled_chars(reference(table, table.get_row_at(row), style))
            assert "".join(c for c, _ in ours) == "".join(c for c, _ in theirs)
            assert ours == theirs
        assert "…" in table.render_line(1).text and "91.2" in table.render_line(1).text

    run(app, (80, 10), steps)


def test_a_model_without_the_split_shown_opens_and_compares_on_one_it_has(artifacts,
                                                                           tmp_path):
    """A store without the test split is on the test leaderboard (dim, '-'); Enter on it and
    a comparison with it show a split it holds, saying so, instead of failing."""
    import shutil

    import h5py

    art, _ = artifacts
    root = tmp_path / "art"
    shutil.copytree(art / "experts", root / "experts")
    with h5py.File(root / "experts" / "small" / "predictions.h5", "a") as store:
        del store["splits"]["test"]
    code, out, err = cli("--artifacts", root, "report", "--json", "--workers", "1")
    assert code == 0, err
    report = json.loads(out)
    app = ReportApp(report=report, split="test")
    small_val = next(m for m in report["models"] if m["name"] == "small")["results"]["val"]

    async def steps(pilot):
        names = [r[1] for r in table_rows(app.screen, "#board")]
        assert names[-1] == "small"  # no test top-1: ranked last
        await pilot.press("end", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ModelScreen) and (screen.name_, screen.split) == (
            "small", "val")
        ids = report["classes"]["ids"]
        top1 = [h for _, h, _ in view.species_columns(report)].index("top-1")
        for cells in table_rows(screen, "#species-table"):
            assert cells[top1] == fmt(small_val["per_class_accuracy"][ids.index(cells[0])],
                                      "pct")
        await pilot.press("escape", "m", "home", "m", "c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen) and app.screen.split == "val"
        await pilot.press("escape")

    run(app, (100, 30), steps)


def test_tradeoff_chart_places_each_model_by_its_numbers():
    rows = [{"name": "a", "top1": 0.80, "macro_top1": 0.40},
            {"name": "b", "top1": 0.70, "macro_top1": 0.60},
            {"name": "c", "top1": 0.75, "macro_top1": None},  # left out
            {"name": "d", "top1": 0.80, "macro_top1": 0.40}]  # a's cell
    lines = view.tradeoff_chart(rows, width=11, height=5)
    plot = [line.split("│", 1)[1] for line in lines[:5]]
    # Axes 70-80 % right, 40-60 % up: b top left, a (and d) bottom right.
    assert plot[0] == "2" + " " * 10 and plot[4] == " " * 10 + "+"
    assert lines[0].startswith("  60 │") and lines[4].startswith("  40 │")
    assert lines[6].split() == ["70", "80"]
    assert lines[7].endswith("; +: several models in one cell")
    assert lines[-3:] == ["  1 a  80.0 / 40.0", "  2 b  70.0 / 60.0", "  3 d  80.0 / 40.0"]
    assert view.tradeoff_chart([{"name": "x", "top1": None, "macro_top1": None}]) == [
        "no model has top-1 and macro top-1 on this split"]


def test_p_shows_the_chart_of_the_models_in_the_table(artifacts):
    _art, report = artifacts
    app = ReportApp(report=report)

    async def steps(pilot):
        screen = app.screen
        chart = screen.query_one("#tradeoff")
        assert not chart.display
        await pilot.press("p")
        await pilot.pause()
        assert chart.display
        board = report["splits"]["test"]["leaderboard"]
        text = str(chart.render())
        for mark, row in zip(view.TRADEOFF_MARKS, board):
            assert (f"{mark} {row['name']}  {100 * row['top1']:.1f} / "
                    f"{100 * row['macro_top1']:.1f}") in text
        await pilot.press("slash", "a", "v", "e", "enter")  # the filter narrows the chart
        await pilot.pause()
        assert "1 average" in str(chart.render()) and "2 " not in str(chart.render())

    run(app, (160, 48), steps)
