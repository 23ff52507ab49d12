"""`plantkit report`: leaderboard, long-tail views and per-species accuracy of predictions."""

from __future__ import annotations

from pathlib import Path

import typer

from plantkit.commands._cli import console, err_console, print_json, settings


def report(
    paths: list[Path] | None = typer.Argument(
        None, help="Store files, expert/combination folders or artifacts roots "
        "(default: every store under ARTIFACTS/experts and ARTIFACTS/combos)."
    ),
    split: list[str] | None = typer.Option(
        None, "--split", help="Split to report; repeat for several (default: every split the "
        "stores hold except train)."
    ),
    per_class: bool = typer.Option(
        False, "--per-class", help="Add the per-species table of the last split reported "
        "(test unless --split says otherwise), sorted by train images."
    ),
    expert: str | None = typer.Option(
        None, "--expert", help="Expert or combination of the per-species table and its "
        "--worst/--best (default: the best by top-1)."
    ),
    species: list[str] | None = typer.Option(
        None, "--species", help="Only this species (class id or name) in the per-species "
        "table; repeat for several. Implies --per-class."
    ),
    worst: int | None = typer.Option(
        None, "--worst", min=1, help="Only the N species of lowest accuracy. Implies --per-class."
    ),
    best: int | None = typer.Option(
        None, "--best", min=1, help="Only the N species of highest accuracy. Implies --per-class."
    ),
    all_epochs: bool = typer.Option(
        False, "--all-epochs", help="Show every epoch of the training histories, not the last 10."
    ),
    k: str = typer.Option(
        "1,3,5,10", "--k", help="The k of top-k and average-k, comma-separated (the dataset "
        "authors' recipe: 1,3,5,10)."
    ),
    bootstrap: int = typer.Option(
        0, "--bootstrap", min=0, help="Bootstrap resamples for 95 % intervals of top-1 and "
        "macro top-1 (0: none)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset root: species names, and train counts for stores "
        "without them."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print every number as one JSON document on stdout."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write one self-contained interactive HTML page here."
    ),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Processes evaluating stores (0: one per core, at most 4)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Evaluate every expert and combination store: leaderboard, buckets, history, per species."""
    from plantkit.artifacts import check_output_file
    from plantkit.metrics import parse_ks
    from plantkit.progress import progress_bar
    from plantkit.report.leaderboard import (
        build_report,
        check_per_class,
        collect_store_paths,
        per_class_table,
        rows_to_read,
    )
    from plantkit.report.tables import HISTORY_ROWS, print_report

    ks = parse_ks(k)
    if html is not None:
        check_output_file(html, "--html")
    store_paths = collect_store_paths(paths or [], settings.artifacts_root)
    wants_per_class = bool(per_class or species or worst or best or expert)
    total = 0 if quiet else rows_to_read(store_paths, split, avg_ks=ks)
    with progress_bar("evaluating stores", total=total, disable=quiet, unit="row") as advance:
        result = build_report(
            store_paths, splits=split, ks=ks, bootstrap=bootstrap, seed=seed, data_root=data,
            workers=workers or None, advance=advance,
            before_evaluation=lambda outline: check_per_class(
                outline, expert=expert, species=species or ()),
        )
    rows = None
    if wants_per_class:
        rows = per_class_table(result, list(result["splits"])[-1], expert=expert,
                               species=species or (), worst=worst, best=best)
    if html is not None:
        from plantkit.report.html import write_report_html

        write_report_html(html, result)
    if as_json:
        print_json({**result, "per_class_table": rows})
        if html is not None and not quiet:
            err_console.print(f"HTML report: {html}", highlight=False)
        return
    print_report(result, console, per_class=rows,
                 history_rows=None if all_epochs else HISTORY_ROWS)
    if html is not None:
        console.print(f"HTML report: {html}", highlight=False)
