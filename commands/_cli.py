"""What every command shares: the console, the artifacts root, error handling."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from plantkit.artifacts import artifacts_root
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
    quiet: bool = False

    @property
    def artifacts_root(self) -> Path:
        return artifacts_root(self.artifacts)


settings = Settings()


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


__all__ = ["PlantkitInputError", "console", "err_console", "fail", "print_json", "settings"]
