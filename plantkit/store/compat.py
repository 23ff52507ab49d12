"""Compatibility of stores: same dataset, same class ids, and for given splits the same rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from plantkit.errors import PlantkitInputError

if TYPE_CHECKING:
    from plantkit.store.reader import Store


class Described:
    """What compatibility checks need of a store not yet written: a label, a fingerprint,
    class ids."""

    def __init__(self, label: str, fingerprint: str, class_ids: Sequence[str]):
        self.label, self.fingerprint, self.class_ids = label, fingerprint, list(class_ids)


def _label(store) -> str:
    return store.label if isinstance(store, Described) else f"{store.name} ({store.path})"


def check_pair_compatible(first, other) -> None:
    """Refuse two stores (or Described) of different datasets or class ids, naming both."""
    if first.fingerprint != other.fingerprint:
        raise PlantkitInputError(
            f"{_label(first)} and {_label(other)} were made for different datasets "
            f"(fingerprints {first.fingerprint} and {other.fingerprint})"
        )
    if first.class_ids != other.class_ids:
        a, b = first.class_ids, other.class_ids
        pairs = enumerate(zip(a, b, strict=False))
        i = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
        shown_a = a[i] if i < len(a) else "nothing"
        shown_b = b[i] if i < len(b) else "nothing"
        raise PlantkitInputError(
            f"{_label(first)} and {_label(other)} have different class ids ({len(a)} vs "
            f"{len(b)} classes; first difference at index {i}: {shown_a} vs {shown_b})"
        )


def check_compatible(stores: Sequence[Store], splits: Iterable[str] = ()) -> None:
    """Refuse stores of different datasets or class ids, naming the first pair that differs.

    For each of `splits`, every store must hold it with the same labels row by row (the
    guard for imported predictions, whose fingerprint covers the classes alone).
    """
    stores = list(stores)
    if not stores:
        return
    for other in stores[1:]:
        check_pair_compatible(stores[0], other)
    for split in splits:
        reference = stores[0].labels(split)
        for other in stores[1:]:
            labels = other.labels(split)
            if labels.shape != reference.shape or not np.array_equal(labels, reference):
                raise PlantkitInputError(
                    f"{_label(stores[0])} and {_label(other)} disagree on the rows of split "
                    f"{split!r} ({len(reference)} vs {len(labels)} rows, or labels in another "
                    "order)"
                )
