"""The `plantkit` command: global options and the command groups."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer

from plantkit import __version__
from plantkit.commands import combine, data, demo, imports, predict, report, train
from plantkit.commands._cli import err_console, settings
from plantkit.errors import PlantkitInputError

app = typer.Typer(
    name="plantkit",
    help="Train, evaluate and combine image classifiers on long-tailed plant data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data.app, name="data")
app.add_typer(imports.app, name="import")
app.command("train")(train.train)
app.command("predict")(predict.predict)
app.command("report")(report.report)
app.command("combine")(combine.combine)
app.command("demo")(demo.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"plantkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    artifacts: Path | None = typer.Option(
        None,
        "--artifacts",
        envvar="PLANTKIT_ARTIFACTS",
        help="Output root for datasets, experts, combinations and reports (default: ./artifacts).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of unexpected errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Train, evaluate and combine image classifiers on long-tailed plant data."""
    settings.artifacts = artifacts
    settings.debug = debug


def run() -> None:
    """Console-script entry point: map library errors to exit codes."""
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except PlantkitInputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted; finished work is kept, unfinished work was not written")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        # Usage errors (unknown option, bad value) know how to show themselves; Typer
        # vendors its own click, so recognise them by shape rather than by class.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if settings.debug:
            traceback.print_exc()
        err_console.print(
            f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc} (rerun with --debug)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    run()
