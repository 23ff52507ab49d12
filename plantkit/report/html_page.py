"""What every plantkit HTML page shares: the style sheet, escaping, plotly figures, the frame.

A page is self-contained: plotly.js goes inline into its first figure only (no CDN, the
page opens offline), every later figure reuses it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
.explain { color: #444; max-width: 60rem; }
table { border-collapse: collapse; margin: 0.8rem 0; background: #fff; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1rem 0; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 0.7rem 1rem;
        min-width: 9rem; }
.card .v { font-size: 1.5rem; font-weight: 600; } .card .k { color: #666; font-size: 0.85rem; }
.figure { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem; }
.muted { color: #888; font-size: 0.85rem; }
.note { color: #8a5a00; background: #fff8e1; border-left: 3px solid #f9a825;
        padding: 0.3rem 0.7rem; max-width: 60rem; }
"""

FIGURE_MARGIN = {"l": 60, "r": 20, "t": 50, "b": 50}
# Every tick of a log axis labelled as a whole number (0.002, 50, 1,000): without a tick
# format plotly labels only the decades and prints the ticks between as bare small digits
# ("2 3 4 5"), which read as values. "~" drops trailing zeros.
LOG_TICK_FORMAT = ",~g"
# Ticks 1-9 per decade below this many decades, 1-2-5 up to LOG_DECADES_125, then one a
# decade: full labels need room that the short 1-9 steps of a wide axis do not have.
LOG_DECADES_ALL_DIGITS = 0.8
LOG_DECADES_125 = 5.0


def escape(value: Any) -> str:
    """Text made safe for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def log_axis(values: Iterable[float], **axis: Any) -> dict[str, Any]:
    """A plotly log axis for `values` (the positive finite ones count) whose ticks are all
    labelled numbers, spaced by the decades the values span; `axis` adds or overrides keys."""
    shown = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    span = math.log10(max(shown) / min(shown)) if shown else 0.0
    dtick: str | int = ("D1" if span < LOG_DECADES_ALL_DIGITS
                        else "D2" if span <= LOG_DECADES_125 else 1)
    return {"type": "log", "dtick": dtick, "tickformat": LOG_TICK_FORMAT, **axis}


def figure_html(fig, *, include_plotlyjs: bool) -> str:
    """A plotly figure as a <div>; the page's first figure carries plotly.js inline."""
    return fig.to_html(
        full_html=False,
        include_plotlyjs=True if include_plotlyjs else False,
        config={"displaylogo": False, "responsive": True},
    )


class FigureEmbedder:
    """Turns figures into <div>s, embedding plotly.js into the first one only."""

    def __init__(self) -> None:
        self._js_included = False

    def __call__(self, fig) -> str:
        div = figure_html(fig, include_plotlyjs=not self._js_included)
        self._js_included = True
        return f'<div class="figure">{div}</div>'


def page_html(title: str, body: str, *, extra_css: str = "") -> str:
    """A whole HTML document around `body` (already HTML) with the shared style sheet."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}{extra_css}</style></head>
<body><main>
{body}
</main></body></html>
"""


__all__ = ["CSS", "FIGURE_MARGIN", "LOG_TICK_FORMAT", "FigureEmbedder", "escape", "figure_html",
           "log_axis", "page_html"]
