"""One progress bar style for all long work: rate and ETA, silent with --quiet."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _advance_nothing(n: int = 1) -> None:
    """The `advance` of a disabled bar."""


@contextlib.contextmanager
def progress_bar(
    description: str, total: int | None, *, disable: bool = False, unit: str = "img"
) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n=1)`; the bar goes to stderr so stdout stays clean for --json."""
    if disable:
        yield _advance_nothing
        return
    columns = (
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            if speed:
                progress.update(task, rate=f"{speed:,.0f} {unit}/s")

        yield advance
