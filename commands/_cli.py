"""What every command shares: the console, the artifacts root, error handling."""

from __future__ import annotations

import enum
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console
from rich.text import Text

from plantkit.artifacts import artifacts_root
from plantkit.choices import MAX_DEFAULT_WORKERS
from plantkit.errors import PlantkitInputError

# Markup off: paths, names and messages are printed literally (`run[v2]/ds` stays as it is);
# styles come from rich Text objects.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def error_line(message: object, label: str = "error:") -> Text:
    """`label message` with the label in bold red and the message literal."""
    return Text.assemble((label, "bold red"), " ", str(message))


@dataclass
class Settings:
    """Global options given before the command group (`plantkit --artifacts DIR data ...`)."""

    artifacts: Path | None = None
    debug: bool = False

    @property
    def artifacts_root(self) -> Path:
        return artifacts_root(self.artifacts)


settings = Settings()


class Panel:
    """The help panels options are grouped into, the same names in every command."""

    DATA = "Data"
    MODEL = "Model"
    RECIPE = "Recipe"
    RARE = "Rare species"
    EXPERTS = "Experts"
    METHODS = "Methods"
    METHOD_OPTIONS = "Method options"
    CASCADE = "Cascade"
    ROUTER = "Router"
    INPUTS = "Inputs"
    SPECIES = "Per species"
    METRICS = "Metrics"
    OUTPUT = "Output"
    HARDWARE = "Hardware"


# Options that several commands take with one meaning, declared once (defaults stay with
# each command: `workers: WorkersOption = None`).
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Image-loading processes \\[default: one per core, at most "
        f"{MAX_DEFAULT_WORKERS}].",
        rich_help_panel=Panel.HARDWARE,
    ),
]
# The dataset of a command that trains on it or caches it: the embedded stand-in by default.
DataRootOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Dataset root \\[default: the embedded stand-in, made on first use].",
        rich_help_panel=Panel.DATA,
    ),
]
BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", help="Images per batch.", rich_help_panel=Panel.HARDWARE)
]
QuietFlag = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar.", rich_help_panel=Panel.OUTPUT)
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON.", rich_help_panel=Panel.OUTPUT)
]


def value_of(option: enum.Enum | None) -> str | None:
    """The plain string of a choice option (None stays None)."""
    return None if option is None else option.value


# Options renamed so that one concept has one name in every command (CHANGELOG.md): a usage
# error naming the old one says the new one.
RENAMED_OPTIONS = {
    "plantkit train": {"--name": "--expert"},
    "plantkit import plantnet": {"--name": "--expert"},
    "plantkit combine": {"--name": "--prefix", "--weights": "--weight-by"},
    "plantkit data synth": {"--force": "--overwrite"},
    "plantkit data inspect": {"--seed": "--val-seed"},
    "plantkit demo": {"--fresh": "--overwrite"},
}
# Positional arguments that became options.
RENAMED_ARGUMENTS = {"plantkit data inspect": "the dataset root is given as --data ROOT"}


class UsageErrorLike(Protocol):
    """A click usage error, of click's or of Typer's vendored copy (told apart by shape)."""

    def format_message(self) -> str: ...


def renamed_message(command: str, exc: UsageErrorLike) -> str | None:
    """The message of a usage error caused by a name of an earlier version (None: another)."""
    old = getattr(exc, "option_name", None)
    new = RENAMED_OPTIONS.get(command, {}).get(old) if isinstance(old, str) else None
    if new is not None:
        return f"No such option: {old}; it was renamed {new} (CHANGELOG.md)"
    if command in RENAMED_ARGUMENTS and "unexpected extra argument" in str(exc):
        return f"{exc.format_message()}; {RENAMED_ARGUMENTS[command]} (CHANGELOG.md)"
    return None


def examples(*lines: str) -> str:
    """A help epilog: real command lines, one per paragraph (rich folds single newlines).
    tests/test_cli_basics.py parses every one."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    err_console.print(error_line(message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def print_json(payload) -> None:
    """Machine-readable output on stdout, nothing else on that stream."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = [
    "BatchSizeOption",
    "JsonFlag",
    "Panel",
    "QuietFlag",
    "WorkersOption",
    "PlantkitInputError",
    "console",
    "err_console",
    "fail",
    "print_json",
    "settings",
    "value_of",
]
