"""The comparison of two models species by species (top-1 gain of the second)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from plantkit.report.tui import view
from plantkit.report.tui.line_table import LineTable, column_widths
from plantkit.report.tui.widgets import (
    SPECIES_NAME_WIDTH,
    FilledScreen,
    KeyBar,
    cell,
    justify,
    split_after,
)


class CompareScreen(FilledScreen):
    """One screen for every comparison, composed once by the app and filled by `show`."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reverse", "Reverse"),
        Binding("v", "next_split", "Split"),
        Binding("x", "swap", "Swap"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = "", ""
        self.descending = True
        self._made: dict[tuple[str, str, str], tuple[dict, list[list[Text | str]],
                                                     list[int]]] = {}

    def show(self, report: dict, first: str, second: str, split: str) -> None:
        """Fill the screen with `second`'s gain over `first` on `split`, largest first."""
        if report is not self.report:
            self._made = {}
        self.report, self.split = report, split
        self.first, self.second = first, second
        self.descending = True
        self._filled()

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield LineTable(id="compare-table")
        yield KeyBar()

    def _reset_widgets(self) -> None:
        self.refresh_rows()
        self.query_one("#compare-table", LineTable).focus()

    def comparison(self) -> tuple[dict, list[list[Text | str]], list[int]]:
        """view.compare's result, its rows' cells and the columns' widths, made once for
        each pair and split: reverse and a return to the pair only reorder them."""
        key = (self.first, self.second, self.split)
        if key not in self._made:
            result = view.compare(self.report, self.first, self.second, self.split)
            hows = [how for _, _, how in view.COMPARE_COLUMNS]
            # plain strings but the gains, green where the second model wins
            cells: list[list[Text | str]] = [
                [cell(text, how, row["gain"] > 0) if how == "gain" else text
                 for text, how in zip(view.compare_cells(row), hows)]
                for row in result["rows"]]
            self._made[key] = result, cells, column_widths(cells)
        return self._made[key]

    def refresh_rows(self) -> None:
        result, cells, widths = self.comparison()
        order = range(len(cells)) if self.descending else range(len(cells) - 1, -1, -1)
        table = self.query_one("#compare-table", LineTable)
        table.clear(columns=True)
        for key, header, how in view.COMPARE_COLUMNS:
            label = {"first": self.first, "second": self.second}.get(key, header)
            table.add_column(label, key=key, justify=justify(how),
                             width=SPECIES_NAME_WIDTH if key == "name" else None)
        table.add_rows(((cells[i], str(result["rows"][i]["index"]), None) for i in order),
                       widths=widths)
        self.query_one("#title", Static).update(
            f"[b]{self.second} vs {self.first}[/b] · {self.split} · top-1 per species: "
            f"{self.second} wins {result['won']:,}, loses {result['lost']:,}, ties "
            f"{result['tied']:,} · sorted by gain, "
            f"{'largest' if self.descending else 'smallest'} first")

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.refresh_rows()

    def action_swap(self) -> None:
        self.first, self.second = self.second, self.first
        self.refresh_rows()

    def action_next_split(self) -> None:
        both = [s for s in self.splits if all(
            s in view.model_entry(self.report, n)["results"] for n in (self.first, self.second))]
        if self.split in both:
            self.split = split_after(both, self.split)
        self.refresh_rows()
