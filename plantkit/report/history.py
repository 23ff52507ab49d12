"""Training histories beside the stores: history.csv read into numbers for the report."""

from __future__ import annotations

import os
from pathlib import Path

from plantkit.artifacts import read_history_rows


def read_history(path: str | os.PathLike) -> dict | None:
    """A training history.csv as {"path", "columns", "rows"} (numbers; blanks None), or None."""
    path = Path(path)
    text_rows = read_history_rows(path)
    if not text_rows:
        return None
    columns = list(text_rows[0])
    rows = [{c: _cell(row.get(c)) for c in columns} for row in text_rows]
    return {"path": str(path), "columns": columns, "rows": rows}


def _cell(text: str | None):
    """A CSV cell: None when blank, an int when written as one ("3", not "3.0" or "1e3"),
    else a float, else the stripped text."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return text.strip()
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() \
        else value


__all__ = ["read_history"]
