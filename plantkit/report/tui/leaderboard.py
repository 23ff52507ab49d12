"""The leaderboard screen: sort, filter, switch split, mark two models, open one."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from plantkit.report.columns import grouped_notes
from plantkit.report.tui import view
from plantkit.report.tui.compare import CompareScreen
from plantkit.report.tui.line_table import LineTable
from plantkit.report.tui.model import ModelScreen
from plantkit.report.tui.widgets import (
    COMPARE_SCREEN,
    MODEL_SCREEN,
    KeyBar,
    ReportScreen,
    cell,
    split_after,
)


class LeaderboardScreen(ReportScreen):
    BINDINGS = [
        Binding("enter", "open", "Open", show=True, priority=False),
        Binding("v", "next_split", "Split"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("slash", "filter", "Filter"),
        Binding("m,space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("n", "toggle_notes", "Notes"),
        Binding("p", "toggle_plot", "Plot"),
        Binding("escape", "clear_filter", "Clear", show=False),
    ]

    def __init__(self, report: dict, split: str):
        super().__init__(report, split)
        self.order: view.Order | None = None  # None: the report's ranking by top-1
        self.text = ""
        self.marked: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Input(placeholder="filter by name or kind (Enter: back to the table)",
                    id="filter")
        yield LineTable(id="board")
        yield Static(id="tradeoff")
        yield Static(self._notes_text(), id="notes")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#tradeoff", Static).display = False
        self.refresh_rows()
        self.query_one("#board", LineTable).focus()

    def _notes_text(self) -> str:
        notes = grouped_notes(self.report)
        return "notes: " + (" · ".join(notes) if notes else "none")

    def rows(self) -> list[dict]:
        return view.leaderboard_rows(self.report, self.split, order=self.order,
                                     text=self.text)

    def refresh_rows(self) -> None:
        table = self.query_one("#board", LineTable)
        keep = self.current_name()
        table.clear(columns=True)
        table.add_column(" ", key="mark")
        table.add_column("name", key="name")
        table.fixed_columns = 2  # the mark and the name stay while the metrics scroll
        for key, header, _, _ in view.LEADERBOARD_COLUMNS:
            arrow = ""
            if self.order is not None and self.order.key == key:
                arrow = " ▼" if self.order.descending else " ▲"
            table.add_column(header + arrow, key=key)
        for row in self.rows():
            cells = view.leaderboard_cells(self.report, self.split, row)
            hows = [c[3] for c in view.LEADERBOARD_COLUMNS]
            table.add_row(
                "*" if row["name"] in self.marked else " ", row["name"],
                *[cell(text, how, best) for (text, best), how in zip(cells, hows)],
                key=row["name"], style=None if row["available"] else "dim")
        if keep is not None and keep in {r["name"] for r in self.rows()}:
            table.move_cursor(row=table.get_row_index(keep))
        section = self.report["splits"][self.split]
        headers = {"name": "name", **{c[0]: c[1] for c in view.LEADERBOARD_COLUMNS}}
        sort = view.order_label(self.order or view.default_order("top1"), headers)
        shown = table.row_count
        # The models shown, in the table's order (its filter and sort): the chart's marks.
        self.query_one("#tradeoff", Static).update(
            Text("\n".join(view.tradeoff_chart(self.rows()))))  # Text: names are no markup
        self.query_one("#title", Static).update(
            f"[b]Leaderboard · {self.split}[/b] · {section['images']:,} images, "
            f"{section['species_present']:,} species · {shown} models · by {sort}"
            + (f" · filter '{self.text}'" if self.text else "")
            + (f" · marked {', '.join(self.marked)}" if self.marked else ""))

    def current_name(self) -> str | None:
        table = self.query_one("#board", LineTable)
        if not table.row_count:
            return None
        return table.cursor_key

    def sort_by(self, key: str) -> None:
        if key in ("mark",):
            return
        if self.order is not None and self.order.key == key:
            self.order = view.Order(key, not self.order.descending)
        else:
            self.order = view.default_order(key)
        self.refresh_rows()

    @on(LineTable.HeaderSelected)
    def _header(self, event: LineTable.HeaderSelected) -> None:
        self.sort_by(event.column_key)

    @on(LineTable.RowSelected)
    def _selected(self, event: LineTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        name = self.current_name()
        split = None if name is None else self._split_held_by([name])
        if name is not None and split is not None:
            screen = self.app.get_screen(MODEL_SCREEN, ModelScreen)
            screen.show(self.report, name, split)
            self.app.push_screen(screen)

    def _split_held_by(self, names: list[str]) -> str | None:
        """The split shown if every model named holds it, else the first of the report's
        that they all hold (with a note saying so); None, with a warning, if there is none."""
        held = [s for s in self.splits
                if all(s in view.model_entry(self.report, n)["results"] for n in names)]
        if self.split in held:
            return self.split
        who = " and ".join(names)
        if not held:
            self.notify(f"{who}: no split in common to show", severity="warning")
            return None
        self.notify(f"{who}: no {self.split} split in the store, showing {held[0]}")
        return held[0]

    def action_next_split(self) -> None:
        self.split = split_after(self.splits, self.split)
        self.refresh_rows()

    def action_next_sort(self) -> None:
        keys = ["name", *[c[0] for c in view.LEADERBOARD_COLUMNS]]
        current = "top1" if self.order is None else self.order.key
        self.order = view.default_order(keys[(keys.index(current) + 1) % len(keys)])
        self.refresh_rows()

    def action_reverse(self) -> None:
        order = self.order or view.default_order("top1")
        self.order = view.Order(order.key, not order.descending)
        self.refresh_rows()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.value != self.text:
            self.text = event.value
            self.refresh_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#board", LineTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        self.text = ""  # first: the Changed that `value` posts is then a no-op
        box.value, box.display = "", False
        self.refresh_rows()
        self.query_one("#board", LineTable).focus()

    def action_mark(self) -> None:
        name = self.current_name()
        if name is None:
            return
        if name in self.marked:
            self.marked.remove(name)
        else:
            self.marked = [*self.marked, name][-2:]  # the last two marked
        self.refresh_rows()

    def action_compare(self) -> None:
        if len(self.marked) != 2:
            self.notify("mark two models first (m or space on a row), then press c",
                        severity="warning")
            return
        first, second = self.marked
        split = self._split_held_by([first, second])
        if split is None:
            return
        screen = self.app.get_screen(COMPARE_SCREEN, CompareScreen)
        screen.show(self.report, first, second, split)
        self.app.push_screen(screen)

    def action_toggle_plot(self) -> None:
        plot = self.query_one("#tradeoff", Static)
        plot.display = not plot.display

    def action_toggle_notes(self) -> None:
        notes = self.query_one("#notes", Static)
        notes.display = not notes.display
