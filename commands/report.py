"""`plantkit report`: leaderboard, long-tail views and per-species accuracy of predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plantkit.choices import Split
from plantkit.commands._cli import (
    Panel,
    QuietFlag,
    console,
    err_console,
    print_json,
    settings,
    value_of,
)


def report(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="PATH",
            help="Store files, expert/combination folders or artifacts roots "
            "\\[default: every store under ARTIFACTS/experts and ARTIFACTS/combos].",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    split: Annotated[
        list[Split] | None,
        typer.Option(
            "--split",
            metavar="<train|val|test>",
            help="Split to report; repeat for several \\[default: every split the "
            "stores hold except train].",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    per_class: Annotated[
        bool,
        typer.Option(
            "--per-class",
            help="Add the per-species table of the last split reported "
            "(test unless --split says otherwise), sorted by train images.",
            rich_help_panel=Panel.SPECIES,
        ),
    ] = False,
    expert: Annotated[
        str | None,
        typer.Option(
            "--expert",
            help="Expert or combination of the per-species table and its "
            "--worst/--best \\[default: the best by top-1].",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    species: Annotated[
        list[str] | None,
        typer.Option(
            "--species",
            metavar="<id|name>",
            help="Only this species (class id or name) in the per-species "
            "table; repeat for several. Implies --per-class.",
            rich_help_panel=Panel.SPECIES,
        ),
    ] = None,
    worst: Annotated[
        int | None,
        typer.Option(
            "--worst",
            metavar="<int>",
            min=1,
            help="Only the N species of lowest accuracy. Implies --per-class.",
            rich_help_panel=Panel.SPECIES,
        ),
    ] = None,
    best: Annotated[
        int | None,
        typer.Option(
            "--best",
            metavar="<int>",
            min=1,
            help="Only the N species of highest accuracy. Implies --per-class.",
            rich_help_panel=Panel.SPECIES,
        ),
    ] = None,
    all_epochs: Annotated[
        bool,
        typer.Option(
            "--all-epochs",
            help="Show every epoch of the training histories, not the last 10.",
            rich_help_panel=Panel.METRICS,
        ),
    ] = False,
    k: Annotated[
        str,
        typer.Option(
            "--k",
            help="The k of top-k and average-k, comma-separated (the dataset "
            "authors' recipe: 1,3,5,10).",
            rich_help_panel=Panel.METRICS,
        ),
    ] = "1,3,5,10",
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap",
            metavar="<int>",
            min=0,
            help="Bootstrap resamples for 95 % intervals of top-1 and macro top-1 (0: none).",
            rich_help_panel=Panel.METRICS,
        ),
    ] = 0,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the bootstrap.", rich_help_panel=Panel.METRICS)
    ] = 0,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Dataset root: species names, and train counts for stores without them.",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print every number as one JSON document on stdout.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write one self-contained interactive HTML page here.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = None,
    tui: Annotated[
        bool,
        typer.Option(
            "--tui",
            help="Browse the report interactively in the terminal: sort, filter, open a "
            "model's species, compare two models (? for the keys).",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            metavar="<int>",
            min=1,
            help="Processes evaluating stores (1: this one) \\[default: one per core, at most 4].",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = None,
    quiet: QuietFlag = False,
) -> None:
    """Evaluate every expert and combination store: leaderboard, buckets, history, per species.

    Examples:

      plantkit report

      plantkit report --split test --per-class --worst 20

      plantkit report --tui
    """
    from plantkit.artifacts import check_output_file
    from plantkit.metrics import parse_ks
    from plantkit.progress import progress_bar
    from plantkit.report.inputs import collect_store_paths, rows_to_read
    from plantkit.report.leaderboard import build_report
    from plantkit.report.per_class import check_per_class, per_class_table
    from plantkit.report.tables import HISTORY_ROWS, print_report
    from plantkit.report.tui.run import check_tui_options, run_tui

    ks = parse_ks(k)
    split = None if split is None else [value_of(s) for s in split]
    if html is not None:
        check_output_file(html, "--html")
    wants_per_class = bool(per_class or species or worst or best or expert)
    if tui:
        check_tui_options(as_json=as_json, per_class=wants_per_class)
    store_paths = collect_store_paths(paths or [], settings.artifacts_root)
    if tui:
        run_tui(store_paths, splits=split, ks=ks, bootstrap=bootstrap, seed=seed,
                data_root=data, workers=workers, html=html)
        return
    total = 0 if quiet else rows_to_read(store_paths, split, avg_ks=ks)
    with progress_bar("evaluating stores", total=total, disable=quiet, unit="row") as advance:
        result = build_report(
            store_paths,
            splits=split,
            ks=ks,
            bootstrap=bootstrap,
            seed=seed,
            data_root=data,
            workers=workers,
            advance=advance,
            before_evaluation=lambda outline: check_per_class(
                outline, expert=expert, species=species or ()
            ),
        )
    rows = None
    if wants_per_class:
        rows = per_class_table(
            result,
            list(result["splits"])[-1],
            expert=expert,
            species=species or (),
            worst=worst,
            best=best,
        )
    if html is not None:
        from plantkit.report.html import write_report_html

        write_report_html(html, result)
    if as_json:
        print_json({**result, "per_class_table": rows})
        if html is not None and not quiet:
            err_console.print(f"HTML report: {html}", highlight=False)
        return
    print_report(result, console, per_class=rows, history_rows=None if all_epochs else HISTORY_ROWS)
    if html is not None:
        console.print(f"HTML report: {html}", highlight=False)
