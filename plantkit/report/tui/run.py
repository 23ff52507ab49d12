"""Starting the TUI from `plantkit report --tui`: the option checks (before anything heavy
is imported) and the app over build_report run in its loading worker."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from multiprocessing import resource_tracker

from plantkit.errors import PlantkitInputError


def check_tui_options(*, as_json: bool, per_class: bool) -> None:
    """Refuse what --tui cannot honour, in one line."""
    if as_json:
        raise PlantkitInputError("--tui and --json: choose one (--json prints what the TUI "
                                 "shows, for scripts)")
    if per_class:
        raise PlantkitInputError(
            "--tui shows every species of a model (Enter on its row, / to search): drop "
            "--per-class, --species, --worst, --best and --expert")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise PlantkitInputError(
            "--tui needs an interactive terminal on stdin and stdout; when piping, use "
            "`plantkit report` or `plantkit report --json`")


def start_resource_tracker() -> None:
    """Call before a ReportApp runs a loader that evaluates in processes.

    The evaluating processes are spawned from the app's worker thread while Textual holds
    stdout and stderr: multiprocessing's resource tracker, started on first need, would then
    hand the child Textual's stderr stand-in (no file descriptor) and fail with "bad value(s)
    in fds_to_keep". Started before the app, it keeps the real stderr."""
    resource_tracker.ensure_running()


def run_tui(store_paths: Sequence[str | os.PathLike], *, splits: Sequence[str] | None,
            ks: Sequence[int], bootstrap: int, seed: int, data_root, workers: int | None,
            html=None) -> None:
    """Open the app; the report is built (and the --html page written) in its worker."""
    from plantkit.report.inputs import rows_to_read
    from plantkit.report.leaderboard import build_report
    from plantkit.report.tui.app import ReportApp

    start_resource_tracker()
    total = rows_to_read(store_paths, splits, avg_ks=ks)

    def load(advance) -> dict:
        report = build_report(store_paths, splits=splits, ks=ks, bootstrap=bootstrap,
                              seed=seed, data_root=data_root, workers=workers,
                              advance=advance)
        if html is not None:
            from plantkit.report.html import write_report_html

            write_report_html(html, report)
        return report

    app = ReportApp(load=load, total=total, split=splits[-1] if splits else None)
    app.run()
    if app.error is not None:
        raise app.error
