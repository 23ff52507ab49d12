"""The image loaders' options, checked without torch (the CLI checks them before importing it)."""

from __future__ import annotations

from plantkit.errors import PlantkitInputError


def check_loader_options(batch_size: int, workers: int | None) -> None:
    """--batch-size at least 1, --workers 0 or more (None: the default rule)."""
    if batch_size < 1:
        raise PlantkitInputError(f"--batch-size must be at least 1, got {batch_size}")
    check_workers(workers)


def check_workers(workers: int | None) -> None:
    """--workers 0 or more (None: the default rule)."""
    if workers is not None and workers < 0:
        raise PlantkitInputError(f"--workers must be 0 or more, got {workers}")
