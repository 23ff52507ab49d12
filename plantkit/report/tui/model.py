"""A model's screen: its species (search, sort, bucket filter), a summary (cost, scores,
calibration, a combination's fitted parameters, histograms) and an expert's training history."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, DataTable, Input, Label, Sparkline, Static

from plantkit.report.tui import view
from plantkit.report.tui.line_table import LineTable, column_widths
from plantkit.report.tui.widgets import (
    SPECIES_NAME_WIDTH,
    FilledScreen,
    KeyBar,
    TabBar,
    justify,
    split_after,
)

# The model screen's tabs: (id, label).
TABS = (("species", "Species"), ("summary", "Summary"), ("history", "History"))

SpeciesTables = dict[tuple[str, str], tuple[view.SpeciesTable, list[int]]]


def species_table(report: dict, name: str, split: str
                  ) -> tuple[view.SpeciesTable, list[int]]:
    """Model `name`'s species on `split`, formatted, and the width of each column."""
    table = view.SpeciesTable.of(report, name, split, view.species_columns(report))
    return table, column_widths(table.cells.values())


def species_tables(report: dict) -> SpeciesTables:
    """The species table of every model on every split it holds (26 x 2 at Pl@ntNet scale:
    0.3-0.6 s): made by the loading thread, so that opening a model only lays it out."""
    return {(m["name"], split): species_table(report, m["name"], split)
            for m in report["models"] for split in report["splits"]
            if split in m["results"]}


class ModelScreen(FilledScreen):
    """One screen for every model: the app composes it once and `show` fills it with the
    model asked for (composing its tabs, table and sparklines took 150-250 ms a time)."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("t", "next_tab", "Tab"),
        Binding("slash", "search", "Search"),
        Binding("b", "next_bucket", "Bucket"),
        Binding("s", "next_sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("v", "next_split", "Split"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.name_ = ""
        self.query_text = ""
        self.bucket: str | None = None
        self.order: view.Order | None = None  # None: by train images, largest first
        self.columns: list[tuple[str, str, str]] = []
        # (model, split) -> its species rows, their cells and the columns' widths, made once:
        # a search, a sort or a bucket only chooses and orders them
        self._tables: SpeciesTables = {}
        self._stale_tabs: set[str] = set()  # tabs not yet filled for the model shown

    def show(self, report: dict, name: str, split: str) -> None:
        """Fill the screen with model `name` on `split`, as a new screen would open: the
        species tab, no search, no bucket, the default order."""
        self._use(report)
        self.name_, self.split = name, split
        self.query_text, self.bucket, self.order = "", None, None
        self._filled()

    def _use(self, report: dict) -> None:
        if report is not self.report:
            self.report, self._tables = report, {}
            self.columns = view.species_columns(report)

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield TabBar(list(TABS), id="tabs")
        with ContentSwitcher(initial="species", id="panes"):
            with Vertical(id="species"):
                yield Input(placeholder="search species by name or id (Enter: table)",
                            id="search")
                yield LineTable(id="species-table")
            with VerticalScroll(id="summary"):
                yield Static(id="details")
                yield Label(id="histogram-label")
                yield Sparkline([], id="histogram")
                yield Label(id="by-count-label")
                yield Sparkline([], id="by-count")
                yield Static(id="by-count-table")
            with VerticalScroll(id="history"):
                yield Label(id="curve-label")
                yield Sparkline([], id="curve")
                yield DataTable(id="history-table", zebra_stripes=True)
        yield KeyBar()

    def _reset_widgets(self) -> None:
        box = self.query_one("#search", Input)
        box.value, box.display = "", False
        self.show_tab("species")  # and the species table focused
        self.refresh_all()

    def refresh_all(self) -> None:
        """The species now; the summary and the history when their tab is next shown (or
        now, if it is the one shown): a key pays only for what is on screen."""
        self._stale_tabs = {"summary", "history"}
        self.refresh_species()
        self._refresh_tab(self.tab)

    @property
    def tab(self) -> str:
        """The tab shown: species, summary or history."""
        return self.query_one("#panes", ContentSwitcher).current or "species"

    def show_tab(self, tab: str) -> None:
        self.query_one("#panes", ContentSwitcher).current = tab
        bar = self.query_one("#tabs", TabBar)
        if bar.active != tab:
            bar.show(tab)
        self._refresh_tab(tab)
        if tab == "species":
            self.query_one("#species-table", LineTable).focus()
        else:
            self.query_one(f"#{tab}", VerticalScroll).focus()  # its keys scroll it

    def action_next_tab(self) -> None:
        keys = [key for key, _ in TABS]
        self.show_tab(keys[(keys.index(self.tab) + 1) % len(keys)])

    @on(TabBar.Chosen)
    def _tab_chosen(self, event: TabBar.Chosen) -> None:
        self.show_tab(event.tab)

    def _refresh_tab(self, tab: str) -> None:
        if tab in self._stale_tabs:
            self._stale_tabs.discard(tab)
            (self.refresh_summary if tab == "summary" else self.refresh_history)()

    def _table(self, name: str | None = None, split: str | None = None
               ) -> tuple[view.SpeciesTable, list[int]]:
        """The species of `name` on `split` (default: the model and split shown)."""
        key = (name or self.name_, split or self.split)
        if key not in self._tables:
            self._tables[key] = species_table(self.report, *key)
        return self._tables[key]

    def adopt(self, report: dict, tables: dict) -> None:
        """Take the species tables `species_tables` made for `report` (off the UI thread)."""
        self._use(report)
        self._tables.update(tables)

    def species(self) -> list[dict]:
        rows = view.filter_species(self._table()[0].rows, self.query_text, self.bucket)
        return view.sorted_rows(rows, self.order)

    def refresh_species(self) -> None:
        table = self.query_one("#species-table", LineTable)
        table.clear(columns=True)
        for key, header, how in self.columns:
            arrow = ""
            if self.order is not None and self.order.key == key:
                arrow = " ▼" if self.order.descending else " ▲"
            # a long scientific name is cut (the search still finds it whole): the numbers
            # stay on an 80-column screen
            table.add_column(header + arrow, key=key, justify=justify(how),
                             width=SPECIES_NAME_WIDTH if key == "name" else None)
        table.fixed_columns = 2  # id and name stay while the numbers scroll
        rows = self.species()
        species, widths = self._table()
        # the widths of every species, not of those shown: a search keeps the columns put
        table.add_rows(((species.cells[row["index"]], str(row["index"]), None)
                        for row in rows), widths=widths)
        model = view.model_entry(self.report, self.name_)
        bucket = f" · bucket {self.bucket}" if self.bucket else ""
        search = f" · search '{self.query_text}'" if self.query_text else ""
        sort = view.order_label(self.order or view.Order("train", True),
                                {key: header for key, header, _ in self.columns})
        self.query_one("#title", Static).update(
            f"[b]{self.name_}[/b] ({model['kind']}) · {self.split} · {len(rows):,} of "
            f"{self.report['num_classes']:,} species{bucket}{search} · by {sort}")

    def refresh_summary(self) -> None:
        lines = view.model_details(self.report, self.name_, self.split)
        width = max(len(label) for label, _ in lines)
        self.query_one("#details", Static).update(
            "\n".join(f"{label:<{width}}  {text}" for label, text in lines))
        counts = view.accuracy_histogram(self.report, self.name_, self.split)
        self.query_one("#histogram-label", Label).update(
            "species per 10 % bin of top-1 accuracy, 0 % to 100 %: "
            + " ".join(str(c) for c in counts))
        self.query_one("#histogram", Sparkline).data = counts
        by_count = view.accuracy_by_count(self.report, self.name_, self.split)
        present = [(b, m, n) for b, m, n in by_count if m is not None]
        self.query_one("#by-count-label", Label).update(
            "mean top-1 by images per species (bins with species):")
        self.query_one("#by-count", Sparkline).data = [m for _, m, _ in present]
        self.query_one("#by-count-table", Static).update(
            "  ".join(f"{b}: {100 * m:.1f} % ({n})" for b, m, n in present) or "-")

    def refresh_history(self) -> None:
        headers, rows, curve = view.history_points(self.report, self.name_)
        table = self.query_one("#history-table", DataTable)
        table.clear(columns=True)
        if not headers:
            self.query_one("#curve-label", Label).update(
                "no training history (a combination, or an expert without history.csv)")
            return
        self.query_one("#curve-label", Label).update(
            "val top-1 per epoch: " + " ".join(f"{100 * v:.1f}" for v in curve))
        self.query_one("#curve", Sparkline).data = curve
        for header in headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*[Text(c, justify="right") for c in row])

    @on(LineTable.HeaderSelected, "#species-table")
    def _header(self, event: LineTable.HeaderSelected) -> None:
        key = event.column_key
        if self.order is not None and self.order.key == key:
            self.order = view.Order(key, not self.order.descending)
        else:
            self.order = view.Order(key, key not in ("id", "name"))
        self.refresh_species()

    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.has_focus:
            self.query_text = ""  # first: the Changed that `value` posts is then a no-op
            box.value, box.display = "", False
            self.refresh_species()
            self.query_one("#species-table", LineTable).focus()
            return
        self.app.pop_screen()

    def action_search(self) -> None:
        self.show_tab("species")
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        if event.value != self.query_text:
            self.query_text = event.value
            self.refresh_species()

    @on(Input.Submitted, "#search")
    def _search_done(self, event: Input.Submitted) -> None:
        self.query_one("#species-table", LineTable).focus()

    def action_next_bucket(self) -> None:
        if self.report.get("train_counts") is None:
            self.notify("no train counts in the report: no many/medium/few buckets",
                        severity="warning")
            return
        choices = [None, *view.BUCKETS]
        self.bucket = choices[(choices.index(self.bucket) + 1) % len(choices)]
        self.refresh_species()

    def action_next_sort(self) -> None:
        keys = [key for key, _, _ in self.columns]
        current = "train" if self.order is None else self.order.key
        key = keys[(keys.index(current) + 1) % len(keys)]
        self.order = view.Order(key, key not in ("id", "name"))
        self.refresh_species()

    def action_reverse(self) -> None:
        order = self.order or view.Order("train", True)
        self.order = view.Order(order.key, not order.descending)
        self.refresh_species()

    def action_next_split(self) -> None:
        available = [s for s in self.splits
                     if s in view.model_entry(self.report, self.name_)["results"]]
        if self.split in available:
            self.split = split_after(available, self.split)
        self.refresh_all()
