"""Sessions: tests, lint, demo, bench. `nox -s tests` runs what CI runs."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# This machine's local wheels; a CUDA machine may install newer ones.
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _install(session: nox.Session) -> None:
    session.install(*TORCH)
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the command .ci/run and the README use)."""
    _install(session)
    session.run("pytest", "-n", "2", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree, mypy over plantkit/ and commands/ (pyproject's [tool.mypy])."""
    _install(session)  # mypy reads the installed packages' types (torch, numpy, typer ...)
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """`plantkit demo` (the README's first command); `nox -s demo -- --quick` for the short one."""
    _install(session)
    session.run("plantkit", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script in benchmarks/ (they print throughputs and ratios)."""
    _install(session)
    for script in sorted(p for p in __import__("pathlib").Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
