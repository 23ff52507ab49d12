"""What the TUI's screens share: the table cell, a screen over one split of the report."""

from __future__ import annotations

from rich.console import JustifyMethod
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from plantkit.report.tables import BEST_STYLE

# The names under which the app installs its one model screen and one compare screen.
MODEL_SCREEN, COMPARE_SCREEN = "model", "compare"
NUMERIC = frozenset({"pct", "count", "float", "params", "gain"})
# A long scientific name is cut in the tables (the search still finds it whole): the numbers
# stay on an 80-column screen.
SPECIES_NAME_WIDTH = 30


def justify(how: str) -> JustifyMethod:
    """Numbers right-aligned, words left."""
    return "right" if how in NUMERIC else "left"


def cell(text: str, how: str, best: bool = False) -> Text:
    """A table cell in the column's justify, the column's best in the report's best style."""
    return Text(text, style=BEST_STYLE if best else "", justify=justify(how))


def split_after(splits: list[str], split: str) -> str:
    return splits[(splits.index(split) + 1) % len(splits)]


class ReportScreen(Screen):
    """A screen over the report dict and one of its splits ({} and "" for a screen made
    before the report exists, filled when shown)."""

    def __init__(self, report: dict | None = None, split: str = ""):
        super().__init__()
        self.report: dict = report or {}
        self.split = split

    @property
    def splits(self) -> list[str]:
        return list(self.report["splits"])


class FilledScreen(ReportScreen):
    """A screen the app composes once and fills again at each `show` (the model and the
    compare screens): `_filled()` puts what is shown on the widgets, at once where they
    exist, else as soon as they are mounted."""

    def __init__(self) -> None:
        super().__init__()
        self._composed = self._shown = False

    def _filled(self) -> None:
        """Called by a subclass's `show` once its state is set."""
        self._shown = True
        if self._composed:
            self._reset_widgets()

    def on_mount(self) -> None:
        self._composed = True
        if self._shown:  # shown before it was composed
            self._reset_widgets()

    def _reset_widgets(self) -> None:
        raise NotImplementedError


class KeyBar(Static):
    """The keys of the screen and the app, one line at the bottom.

    Not Textual's Footer: it builds a widget per key and restyles each on every screen
    change, 150-300 ms of CPU per screen opened or left (benchmarks/bench_tui.py); one line
    of text says the same."""

    DEFAULT_CSS = "KeyBar { dock: bottom; height: 1; background: $panel; padding: 0 1; }"

    def on_mount(self) -> None:
        shown: dict[str, Binding] = {}  # action -> its first shown key
        for owner in (self.screen, self.app):
            for binding in Binding.make_bindings(type(owner).BINDINGS):
                if binding.show:
                    shown.setdefault(binding.action, binding)
        text = Text()
        for binding in shown.values():
            text.append(self.app.get_key_display(binding), style="bold")
            text.append(f" {binding.description}  ")
        self.update(text)


class TabBar(Static):
    """One line of tab names, the shown one highlighted; a click on a name chooses it.

    Not Textual's TabbedContent: its tabs, underline and panes made opening a model 30-45 ms
    slower (benchmarks/bench_tui.py); the screen switches its panes with a ContentSwitcher."""

    DEFAULT_CSS = "TabBar { height: 1; padding: 0 1; background: $boost; }"
    GAP = "   "

    class Chosen(Message):
        """A click on a tab's name."""

        def __init__(self, tab: str):
            super().__init__()
            self.tab = tab

    def __init__(self, tabs: list[tuple[str, str]], **kwargs):
        super().__init__(**kwargs)
        self.tabs = tabs  # (id, label)
        self.active = tabs[0][0]

    def on_mount(self) -> None:
        self.show(self.active)

    def show(self, tab: str) -> None:
        self.active = tab
        text = Text()
        for i, (key, label) in enumerate(self.tabs):
            text.append(self.GAP if i else "")
            text.append(label, style="bold reverse" if key == tab else "")
        self.update(text)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        left = 0
        for key, label in self.tabs:
            if left <= offset.x < left + len(label):
                self.post_message(self.Chosen(key))
                return
            left += len(label) + len(self.GAP)
