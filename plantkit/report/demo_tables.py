"""The terminal summary of `plantkit demo`: wall time per stage, the verdicts, where things are."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from plantkit.artifacts import reports_dir
from plantkit.demo import EDA_PAGE, REPORT_PAGE


def print_demo(result: dict, out: Path, console: Console) -> None:
    """`result`: what plantkit.demo.run_demo returned for the demo written under `out`."""
    table = Table(title="plantkit demo: wall time per stage")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("this run")
    for stage, seconds in result["seconds"].items():
        table.add_row(stage, f"{seconds:.1f}", "ran" if stage in result["ran"] else "skipped")
    table.add_row("total", f"{sum(result['seconds'].values()):.1f}", "")
    console.print(table)
    for line in result["verdicts"]:
        console.print(line, highlight=False)
    reports = reports_dir(out)
    console.print(
        f"artifacts in {out}; HTML: {reports / REPORT_PAGE} and {reports / EDA_PAGE}",
        highlight=False,
    )
