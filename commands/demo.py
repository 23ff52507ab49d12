"""`plantkit demo`: the whole workflow on the embedded stand-in, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from plantkit.commands._cli import Panel, console, err_console, print_json, settings


def demo(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output folder \\[default: ARTIFACTS/demo, or ARTIFACTS/demo-quick].",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A smaller variant (12 species, 32 px, 2 epochs) for tests and CI.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Delete earlier demo output and start over.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No tables or progress bars.", rich_help_panel=Panel.OUTPUT
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print stage times and verdicts as JSON.", rich_help_panel=Panel.OUTPUT
        ),
    ] = False,
) -> None:
    """The whole workflow on the stand-in: data, EDA, five experts, combinations, report.

    Run it again and it continues where it stopped.
    """
    from plantkit.demo import run_demo

    target = out or settings.artifacts_root / ("demo-quick" if quick else "demo")

    def on_stage(stage: str, status: str) -> None:
        if not quiet:
            err_console.print(
                Text.assemble((f"== {stage}", "bold"), f": {status}"), highlight=False
            )

    result = run_demo(
        target,
        quick=quick,
        overwrite=overwrite,
        quiet=quiet or as_json,
        console=console,
        on_stage=on_stage,
    )
    if as_json:
        print_json({**result, "out": str(target)})
        return
    if quiet:
        return
    from plantkit.report.demo_tables import print_demo

    print_demo(result, target, console)
