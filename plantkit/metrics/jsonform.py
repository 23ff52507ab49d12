"""The JSON form of results: one rule for every document plantkit prints or stores (report,
combine, combination.json, train --json)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def to_plain(value):
    """Plain JSON types: NumPy scalars and arrays unwrapped, NaN and infinities as None,
    tuples as lists, paths as strings, dict keys as strings."""
    # The common leaves first, by exact type: a report is ~10^5 of them (lists of per-class
    # numbers), and this order makes it about 4x faster on them.
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int or kind is str or value is None or kind is bool:
        return value
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
