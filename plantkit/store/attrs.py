"""The attribute codec: callers' extra attributes to HDF5 attributes and back.

Plain values (str, bool, int64, float64) are stored as they are, so h5py alone reads them;
anything else (dicts, lists, None ...) is stored as JSON, its name listed in the root
attribute `json_attrs`.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from plantkit.errors import PlantkitInputError
from plantkit.store.schema import CORE_ATTRS


def encode_attrs(attrs: dict) -> tuple[dict, list[str]]:
    """HDF5-storable values and the keys that were JSON-encoded (dicts, lists, None ...)."""
    encoded, json_keys = {}, []
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise PlantkitInputError(f"store attribute names must be strings, got {key!r}")
        if key in CORE_ATTRS:
            raise PlantkitInputError(
                f"store attribute {key!r} is set by the store itself; rename it"
            )
        plain = _plain(value)
        if plain is not None:
            encoded[key] = plain
            continue
        try:
            encoded[key] = json.dumps(value, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise PlantkitInputError(
                f"store attribute {key!r}: {type(value).__name__} is not JSON-serialisable"
            ) from exc
        json_keys.append(key)
    return encoded, json_keys


def _plain(value):
    """`value` as an HDF5 scalar attribute, or None when it is stored as JSON."""
    if isinstance(value, (str, bool, np.bool_)):
        return value
    if isinstance(value, (int, np.integer)) and -(2**63) <= int(value) < 2**63:
        return np.int64(value)
    if isinstance(value, (float, np.floating)):
        return np.float64(value)
    return None


def decode_attrs(raw: h5py.AttributeManager) -> dict:
    """The callers' attributes of a store's root (the store's own left out), decoded."""
    json_keys = set(json.loads(raw.get("json_attrs", "[]")))
    decoded = {}
    for key, value in raw.items():
        if key in CORE_ATTRS:
            continue
        if key in json_keys:
            decoded[key] = json.loads(value)
        elif isinstance(value, np.ndarray):
            decoded[key] = value.tolist()
        elif isinstance(value, (np.generic, bytes)):
            decoded[key] = value.decode() if isinstance(value, bytes) else value.item()
        else:
            decoded[key] = value
    return decoded
