"""`plantkit report --tui`: a Textual app over the report dict (plantkit.report.tui.view).

Screens: the leaderboard (plantkit.report.tui.leaderboard), a model (.model), the
comparison of two models (.compare), the keys (`?`). The report is built in a worker thread
while a progress bar runs, so the app answers keys (q quits) while stores are read.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widget import AwaitMount
from textual.widgets import Label, ProgressBar, Static

from plantkit.errors import PlantkitInputError
from plantkit.report.tui import view
from plantkit.report.tui.compare import CompareScreen
from plantkit.report.tui.leaderboard import LeaderboardScreen
from plantkit.report.tui.model import ModelScreen, SpeciesTables, species_tables
from plantkit.report.tui.widgets import COMPARE_SCREEN, MODEL_SCREEN, KeyBar

__all__ = ["CompareScreen", "HelpScreen", "LeaderboardScreen", "LoadCancelled", "Loader",
           "LoadingScreen", "ModelScreen", "ReportApp"]

# load(advance) -> the report dict; advance(n) is called as rows are read and raises
# LoadCancelled once the user has quit.
Loader = Callable[[Callable[[int], None]], dict]


PROGRESS_INTERVAL_S = 0.25  # the loading bar's moves, at most one per this many seconds


class LoadCancelled(Exception):
    """Raised inside the loading thread once the user quit the app."""


# ------------------------------------------------------------------------- help, loading

HELP = """\
[b]plantkit report --tui[/b]: every number is `plantkit report --json`'s.

[b]Leaderboard[/b]
  ↑ ↓ / mouse   move          Enter   open the model
  s             next sort column (click a header: sort by it; again: reverse)
  r             reverse the order      v   next split (val, test ...)
  /             filter by name or kind (Esc clears)
  m or space    mark a model (the last two)      c   compare the two marked
  n             show or hide the notes
  p             show or hide the chart: macro top-1 against top-1 of the models listed

[b]Model[/b]  tabs Species · Summary · History (t: next tab, or click its name)
  /             search species by name or id     b   bucket: all, many, medium, few
  s / r / v     sort column / reverse / split    Esc back

[b]Compare[/b]  per-species top-1 gain of the second model over the first
  r reverse     x swap the two     v split     Esc back

?  this help      q or ctrl+c  quit"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(HELP)


class LoadingScreen(Screen):
    def __init__(self, total: int):
        super().__init__()
        self.total = total

    def compose(self) -> ComposeResult:
        with Vertical(id="loading"):
            yield Label("evaluating the stores (q quits) ...")
            yield ProgressBar(total=self.total or None, id="progress")
        yield KeyBar()


class ReportApp(App):
    """The TUI over a report dict, or over `load` run in a worker thread."""

    TITLE = "plantkit report"
    CSS = """
    #title { height: auto; padding: 0 1; background: $boost; }
    #notes { height: auto; max-height: 6; padding: 0 1; color: $text-muted; }
    #board, #species-table, #compare-table { height: 1fr; }
    #panes, #panes > * { height: 1fr; }
    #loading { align: center middle; height: 1fr; }
    #help { width: auto; max-width: 90; height: auto; padding: 1 2; border: round $accent;
            background: $surface; }
    HelpScreen { align: center middle; }
    Sparkline { height: 3; margin: 0 1; }
    #details, #by-count-table { padding: 0 1; }
    """
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "help", "Help"),
                # a command-line user's way out, where Textual would only say "press ctrl+q"
                Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]

    def __init__(self, *, report: dict | None = None, load: Loader | None = None,
                 total: int = 0, split: str | None = None):
        super().__init__()
        if (report is None) == (load is None):
            raise ValueError("give the report or the function that loads it")
        self.report, self.load, self.total, self.split = report, load, total, split
        self.error: BaseException | None = None
        self._composing: list[AwaitMount] = []
        self._quit = threading.Event()

    def on_mount(self) -> None:
        self._compose_reused_screens()
        if self.report is not None:
            self._show(self.report, species_tables(self.report))
            return
        self.push_screen(LoadingScreen(self.total))
        self.run_worker(self._load_report, thread=True, exclusive=True)

    def _compose_reused_screens(self) -> None:
        """Install the one model screen and the one compare screen, and compose them now,
        unseen (pushed and popped at once): while the report loads, not when a key first
        opens one (composing the model screen cost that key 150-250 ms of CPU)."""
        for name, screen in ((MODEL_SCREEN, ModelScreen()), (COMPARE_SCREEN, CompareScreen())):
            self.install_screen(screen, name)
            self._composing.append(self.push_screen(name))
            self.pop_screen()

    async def _exit_when_composed(self, return_code: int = 0) -> None:
        # Exiting while a screen is still being composed would stop it half-mounted (with
        # Textual's TabbedContent that raised "No Tab with id ..."): a load error or a q
        # right at the start waits for that first.
        for mounted in self._composing:
            await mounted
        self.exit(None, return_code)

    def _load_report(self) -> None:
        unshown, shown_at = 0, time.monotonic()

        def advance(n: int = 1) -> None:
            nonlocal unshown, shown_at
            if self._quit.is_set():
                raise LoadCancelled
            # The bar moves a few times a second, not at every chunk: each move redraws
            # it on the UI thread, CPU the evaluating processes want.
            unshown += n
            if time.monotonic() - shown_at >= PROGRESS_INTERVAL_S:
                self.call_from_thread(self._advance, unshown)
                unshown, shown_at = 0, time.monotonic()

        try:
            report = self.load(advance) if self.load is not None else None
        except LoadCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - shown by the CLI once the app is closed
            self.error = exc
            # (mypy cannot tell the awaited type of call_from_thread's union)
            self.call_from_thread(self._exit_when_composed, 2)  # type: ignore[arg-type]
            return
        if report is not None:
            self.call_from_thread(self._show, report, species_tables(report))

    def _advance(self, n: int) -> None:
        if isinstance(self.screen, LoadingScreen):
            self.screen.query_one("#progress", ProgressBar).advance(n)

    def _first_split(self, report: dict) -> str:
        """The split the leaderboard opens on: --split's last, else the report's last."""
        splits = list(report["splits"])
        return self.split if self.split is not None and self.split in splits else splits[-1]

    def _show(self, report: dict, tables: SpeciesTables) -> None:
        self.report = report
        self.get_screen(MODEL_SCREEN, ModelScreen).adopt(report, tables)
        # The report of 26 experts x 1,081 species is millions of objects that live as long
        # as the app: left to the cyclic collector, each of its full passes over them cost a
        # key 100-400 ms (benchmarks/bench_tui.py). Frozen, they are never traversed again.
        gc.collect()
        gc.freeze()
        if not report["splits"]:
            self.error = PlantkitInputError(
                "the stores hold none of the splits asked for: see `plantkit report` "
                "for what they hold, or choose one with --split")
            self.call_next(self._exit_when_composed, 2)
            return
        split = self._first_split(report)
        board = LeaderboardScreen(report, split)
        if isinstance(self.screen, LoadingScreen):
            self.switch_screen(board)
        else:
            self.push_screen(board)
        self.call_after_refresh(self._lay_out_model_screen, board)

    def _lay_out_model_screen(self, board: LeaderboardScreen) -> None:
        """Lay the model screen out and draw it once, unseen, for the model under the cursor:
        the first Enter of a session then costs what a later one does (50-80 ms, not 90-115
        at 160x48, benchmarks/bench_tui.py). Textual has no public call for laying out a
        screen that is not shown; where its private ones are missing, nothing is done."""
        name = board.current_name() if self.screen is board else None
        if name is None or board.split not in view.model_entry(board.report, name)["results"]:
            return
        screen = self.get_screen(MODEL_SCREEN, ModelScreen)
        screen.show(board.report, name, board.split)
        try:
            screen._refresh_layout(self.size)
            screen._compositor.render_update(full=True)
        except AttributeError:  # a Textual without them
            pass

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self._quit.set()
        await self._exit_when_composed()
