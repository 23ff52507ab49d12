"""A row-cursor table drawn with Textual's line API: the TUI's sortable tables.

Why not Textual's DataTable: it measures every cell of every row it is given and renders
cells one by one, which on a model's 1,081 species costs 0.3-2 s of CPU per sort, search
or screen (benchmarks/bench_tui.py measured it). Here rows are plain lists of rich Text;
a row is turned into a line only when it is first drawn, and a new sort or filter only
replaces the list. The subset of DataTable's interface the screens use is kept (clear,
add_column, add_row, row_count, get_row_at, cursor_row, move_cursor, get_row_index,
HeaderSelected and RowSelected on a header click, Enter or a row click).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.console import JustifyMethod
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

PADDING = 1  # blank cells on each side of a column, as DataTable draws them


@dataclass
class Column:
    key: str
    label: str
    max_width: int | None
    justify: JustifyMethod  # of the cells given as plain strings
    width: int = 0  # the widest of the label and the cells, at most max_width


def column_widths(rows: Iterable[Sequence[Text | str]]) -> list[int]:
    """The widest cell of each column, in terminal cells (what `add_rows(widths=)` takes)."""
    widths: list[int] = []
    for cells in rows:
        for i, cell in enumerate(cells):
            width = cell_len(cell) if isinstance(cell, str) else cell.cell_len
            if i == len(widths):
                widths.append(width)
            elif width > widths[i]:
                widths[i] = width
    return widths


class TableMessage(Message):
    """A message from a LineTable, which `@on(..., selector)` matches by the table."""

    def __init__(self, table: LineTable):
        super().__init__()
        self.table = table

    @property
    def control(self) -> LineTable:
        return self.table


class LineTable(ScrollView, can_focus=True):
    """Rows of Text cells under a header that stays on top; the first `fixed_columns`
    columns stay on the left while the others scroll sideways."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES = {"line-table--header", "line-table--cursor", "line-table--even-row"}
    DEFAULT_CSS = """
    LineTable { background: $surface; }
    LineTable > .line-table--header { text-style: bold; background: $panel; }
    LineTable > .line-table--cursor { background: $block-cursor-background;
                                      color: $block-cursor-foreground; text-style: bold; }
    LineTable:blur > .line-table--cursor { background: $block-cursor-blurred-background; }
    LineTable > .line-table--even-row { background: $surface-lighten-1 20%; }
    """

    class HeaderSelected(TableMessage):
        """A click on a column's header."""

        def __init__(self, table: LineTable, column_key: str):
            super().__init__(table)
            self.column_key = column_key

    class RowSelected(TableMessage):
        """Enter or a click on a row."""

        def __init__(self, table: LineTable, row_key: str, cursor_row: int):
            super().__init__(table)
            self.row_key, self.cursor_row = row_key, cursor_row

    def __init__(self, *, fixed_columns: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.columns: list[Column] = []
        self.fixed_columns = fixed_columns
        self._rows: list[tuple[str, Sequence[Text | str], str | None]] = []
        self._index: dict[str, int] = {}
        self._lines: dict[int, Strip] = {}  # row -> its line without cursor or stripes
        # row -> its line as drawn (stripes, scroll, width; not the cursor's) for _drawn_view
        self._drawn: dict[int, Strip] = {}
        self._drawn_view: tuple[int, int] = (0, 0)
        self._styles: tuple[Style, Style, Style, Style] | None = None
        self.cursor_row = 0

    # ------------------------------------------------------------------ filling

    def clear(self, columns: bool = False) -> None:
        self._rows, self._index, self._lines, self._drawn = [], {}, {}, {}
        if columns:
            self.columns = []
        self.cursor_row = 0
        self._resized()

    def add_column(self, label: str, *, key: str | None = None, width: int | None = None,
                   justify: JustifyMethod = "left") -> None:
        self.columns.append(Column(key or label, label, width, justify, cell_len(label)))

    def add_row(self, *cells: Text | str, key: str | None = None,
                style: str | None = None) -> None:
        self.add_rows([(cells, key, style)])

    def add_rows(self, rows: Iterable[tuple[Sequence[Text | str], str | None, str | None]],
                 *, widths: Sequence[int] | None = None) -> None:
        """(cells, key, style) per row: the table is resized and redrawn once. A cell is
        rich Text (its own style and justify) or a plain string (the column's justify),
        which is cheaper: it becomes Text only if its row is drawn. `widths`: each
        column's widest cell, known to the caller, so no cell is measured here."""
        first = len(self._rows)
        for cells, key, style in rows:
            key = str(len(self._rows)) if key is None else key
            self._index[key] = len(self._rows)
            self._rows.append((key, cells, style))
        if widths is None:
            widths = column_widths(cells for _, cells, _ in self._rows[first:])
        for column, width in zip(self.columns, widths):
            column.width = max(column.width, width)
        self._resized()

    def _resized(self) -> None:
        for column in self.columns:
            if column.max_width is not None:
                column.width = min(column.width, column.max_width)
        self._lines, self._drawn = {}, {}
        self.virtual_size = Size(self._total_width(), len(self._rows) + 1)
        self.refresh()

    def _total_width(self, columns: list[Column] | None = None) -> int:
        return sum(c.width + 2 * PADDING for c in (self.columns if columns is None
                                                  else columns))

    # ------------------------------------------------------------------ reading

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def get_row_at(self, index: int) -> Sequence[Text | str]:
        return self._rows[index][1]

    def get_row_index(self, key: str) -> int:
        return self._index[key]

    @property
    def cursor_key(self) -> str | None:
        return self._rows[self.cursor_row][0] if self._rows else None

    def column_x(self, key: str) -> int:
        """The x of a column's first cell, unscrolled (for a click on its header)."""
        keys = [c.key for c in self.columns]
        return self._total_width(self.columns[:keys.index(key)]) + PADDING

    # ------------------------------------------------------------------ moving

    def move_cursor(self, *, row: int) -> None:
        if not self._rows:
            return
        self.cursor_row = max(0, min(row, len(self._rows) - 1))
        visible = max(1, self.scrollable_content_region.height - 1)  # the header's line
        top = int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)
        self.refresh()

    def action_cursor(self, step: int) -> None:
        self.move_cursor(row=self.cursor_row + step)

    def action_page(self, pages: int) -> None:
        self.move_cursor(row=self.cursor_row
                         + pages * max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=len(self._rows) - 1)

    def action_select(self) -> None:
        if self._rows:
            self.post_message(self.RowSelected(self, self._rows[self.cursor_row][0],
                                               self.cursor_row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            key = self._column_at(offset.x)
            if key is not None:
                self.post_message(self.HeaderSelected(self, key))
            return
        row = int(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self._rows):
            self.move_cursor(row=row)
            self.action_select()

    def _column_at(self, x: int) -> str | None:
        fixed = self._total_width(self.columns[:self.fixed_columns])
        if x >= fixed:
            x += int(self.scroll_x)
        left = 0
        for column in self.columns:
            right = left + column.width + 2 * PADDING
            if left <= x < right:
                return column.key
            left = right
        return None

    # ------------------------------------------------------------------ drawing

    def _line(self, cells: Sequence[Text | str], style: str | None = None) -> Strip:
        """A row (or the header) as one strip: a few segments a cell, built directly (3-4x
        faster than composing a rich Text and rendering it, which a full screen of rows
        paid on every sort, search and screen). A cell holding styled spans is left to rich."""
        console = self.app.console
        row_style = console.get_style(style) if style else Style.null()
        pad = " " * PADDING
        segments: list[Segment] = []
        for column, cell in zip(self.columns, cells):
            if isinstance(cell, str):
                text, cell_style, justify = cell, row_style, column.justify
            elif cell.spans:
                segments.extend(self._rich_cell(cell, column, row_style))
                continue
            else:
                text, justify = cell.plain, cell.justify or "left"  # its own, as add_rows says
                cell_style = row_style + (console.get_style(cell.style) if cell.style
                                          else Style.null())
            width = cell_len(text)
            if width > column.width:
                text = set_cell_size(text, max(0, column.width - 1)) + "…"
                width = cell_len(text)
            gap = " " * max(0, column.width - width)
            left, right = (pad + gap, pad) if justify == "right" else (pad, gap + pad)
            segments += [Segment(left, row_style), Segment(text, cell_style),
                         Segment(right, row_style)]
        return Strip(segments, self._total_width())

    def _rich_cell(self, cell: Text, column: Column, row_style: Style) -> list[Segment]:
        text = cell.copy()
        text.truncate(column.width, overflow="ellipsis", pad=True)
        line = Text(" " * PADDING, style=row_style)
        line.append_text(text)
        line.append(" " * PADDING)
        return list(line.render(self.app.console))

    def notify_style_update(self) -> None:
        super().notify_style_update()  # a theme, focus or blur: other styles for every row
        self._drawn = {}
        self._styles = None

    def _view_styles(self) -> tuple[Style, Style, Style, Style]:
        """(the table's, the header's, the cursor's, an even row's) style, looked up once."""
        if self._styles is None:
            get = self.get_component_rich_style
            self._styles = (self.rich_style, get("line-table--header"),
                            get("line-table--cursor"), get("line-table--even-row"))
        return self._styles

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        view = (int(self.scroll_x), width)
        if view != self._drawn_view:  # each drawn row is cut for one scroll and width
            self._drawn, self._drawn_view = {}, view
        base, header, cursor, even = self._view_styles()
        if y == 0:
            line = self._line([Text(c.label, justify="left") for c in self.columns])
            return self._scrolled(line.apply_style(header), width).apply_style(base)
        row = int(self.scroll_y) + y - 1
        if row >= len(self._rows):
            return Strip.blank(width, base)
        if row == self.cursor_row:
            return self._scrolled(self._row_line(row).apply_style(cursor), width
                                  ).apply_style(base)
        if row not in self._drawn:
            line = self._row_line(row)
            if row % 2:
                line = line.apply_style(even)
            self._drawn[row] = self._scrolled(line, width).apply_style(base)
        return self._drawn[row]

    def _row_line(self, row: int) -> Strip:
        if row not in self._lines:
            _, cells, style = self._rows[row]
            self._lines[row] = self._line(cells, style)
        return self._lines[row]

    def _scrolled(self, strip: Strip, width: int) -> Strip:
        """The fixed columns, then the rest from scroll_x, cut or padded to `width`."""
        scroll = int(self.scroll_x)
        if scroll:
            fixed = self._total_width(self.columns[:self.fixed_columns])
            start = fixed + scroll
            strip = Strip.join([strip.crop(0, fixed),
                                strip.crop(start, start + max(0, width - fixed))])
        return strip.extend_cell_length(width, Style()).crop(0, width)
