"""The terminal report of `plantkit report` at 80 and 160 columns: names are never broken
over lines, a wide terminal gets the leaderboard whole, small costs keep their digits and
every '-' on the leaderboard is explained in what is printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from test_report import _write_store

from plantkit.report.columns import COLUMNS
from plantkit.report.inputs import collect_store_paths
from plantkit.report.leaderboard import build_report
from plantkit.report.tables import (
    NAME_WIDTH,
    NARROW_HALVES,
    NARROW_THIRDS,
    fmt,
    leaderboard_tables,
    print_report,
)

LONG = "a-combination-named-far-too-long-to-show"  # longer than NAME_WIDTH: ellipsised
# name: kind, share of top-1 hits, attrs (no measured cost anywhere: GFLOPs meas. all '-')
MODELS = {
    "resnet-augment": ("expert", 0.8, {"params": 11_689_512, "gflops": 1.82}),
    "efficientnet": ("expert", 0.7, {"params": 4_010_000, "gflops": 0.39}),
    "tiny": ("expert", 0.4, {"params": 46_000, "gflops": 0.00458}),
    "on-expert-logit-adjust": ("combination", 0.85, {"gflops": 0.0253}),  # no params
    "top1-router": ("combination", 0.9, {"gflops": 1234.5}),
    LONG: ("combination", 0.6, {"gflops": 2.0}),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    root: Path = tmp_path_factory.mktemp("terminal")
    for seed, (name, (kind, share, attrs)) in enumerate(MODELS.items()):
        _write_store(root, name, kind, share, ("val", "test"), attrs, seed=seed)
    return build_report(collect_store_paths([], root), workers=1)


def _render(report: dict, width: int) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    print_report(report, console)
    return console.export_text()


def _leaderboard_lines(text: str) -> list[str]:
    """The lines of the leaderboard tables (titles, rows, captions), up to the top-k table."""
    return text.split("Top-k (micro")[0].splitlines()


def _name_cells(lines: list[str]) -> list[str]:
    """The first cell of every table row."""
    return [line.split("│")[1].strip() for line in lines if line.startswith("│")]


@pytest.mark.parametrize("width", [80, 160])
def test_names_are_never_broken_over_lines(report, width):
    text = _render(report, width)
    # the tables fit the terminal (the notes are soft-wrapped: the terminal folds them)
    assert all(len(line) <= width for line in text.split("\nnotes\n")[0].splitlines())
    shown = LONG[:NAME_WIDTH - 1] + "…"
    for name in MODELS:
        whole = name if len(name) <= NAME_WIDTH else shown
        # every leaderboard row starts with a whole name: no row continues a broken one
        assert f"│ {whole} " in "\n".join(_leaderboard_lines(text)), (width, name)
    cells = _name_cells(_leaderboard_lines(text))
    assert cells and set(cells) <= {n for n in MODELS if len(n) <= NAME_WIDTH} | {shown}
    # the top-k tables keep the names whole too (their numbers may break at a space)
    topk = text.split("Top-k (micro")[1].split("Mean per-species")[0]
    for name in MODELS:
        if len(name) <= NAME_WIDTH:
            assert f"│ {name} " in topk, (width, name)


def test_a_wide_terminal_gets_one_leaderboard_table_per_split(report):
    text = _render(report, 160)
    for split in ("val", "test"):
        assert text.count(f"Leaderboard · {split} (") == 1
        assert f"Leaderboard · {split} (" in text and ": accuracy" not in text
    # one table with every column: kind, params, ... species > 90 % on the header lines
    assert "species" in text and "GFLOPs" in text and "│ combination │" in text


def test_a_narrow_terminal_gets_parts_that_each_fit(report):
    tables = leaderboard_tables(report, "test", 80)
    assert len(tables) in (len(NARROW_HALVES), len(NARROW_THIRDS))
    text = _render(report, 80)
    assert text.count("Leaderboard · test (") == len(tables)


@pytest.mark.parametrize("parts", [NARROW_HALVES, NARROW_THIRDS])
def test_the_parts_show_every_column_once(parts):
    keys = [key for _, part in parts for key in part]
    assert sorted(keys) == sorted([c[0] for c in COLUMNS] + ["kind"])


def test_costs_keep_three_significant_digits(report):
    assert [fmt(v, "float") for v in (0.00458, 0.0253, 1.09, 12.34, 1234.5, 0.03, 0)] == [
        "0.00458", "0.0253", "1.09", "12.3", "1,234", "0.03", "0"]
    assert fmt(46_000, "params") == "0.046 M" and fmt(11_689_512, "params") == "11.7 M"
    for width in (80, 160):
        text = _render(report, width)
        tiny = next(line for line in text.splitlines() if line.startswith("│ tiny ")
                    and "0.0" in line and "M" in line)
        assert "0.00458" in tiny and " 0.00 " not in tiny
        assert "0.046 M" in tiny and "0.0 M" not in tiny


@pytest.mark.parametrize("width", [80, 160])
def test_every_dash_is_explained(report, width):
    text = _render(report, width)
    flat = " ".join(text.split())  # captions wrap at the table's width
    # no model was measured by `plantkit classify`; the combination lacks a params attribute
    assert "GFLOPs meas. '-': not yet measured by `plantkit classify`" in flat
    assert "params '-': no params attribute in the store" in flat
    assert "input missing (see notes)" not in flat  # no vague catch-all when reasons are known


def test_empty_bucket_and_missing_counts_are_told_apart(report):
    """A bucket without species of the split, and a report without train counts, give
    many/medium/few dashes for different reasons; each caption names the right one."""
    import copy

    no_medium = copy.deepcopy(report)
    for row in no_medium["splits"]["test"]["leaderboard"]:
        row["medium"] = None
    flat = " ".join(_render(no_medium, 160).split())
    assert "medium '-': no species of this split in that bucket" in flat
    no_counts = copy.deepcopy(no_medium)
    no_counts["train_counts"] = None
    for row in no_counts["splits"]["test"]["leaderboard"]:
        row["many"] = row["few"] = None
    flat = " ".join(_render(no_counts, 160).split())
    assert "many, medium, few '-': no train counts (see notes)" in flat
