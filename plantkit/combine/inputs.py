"""Open the expert stores to combine, check they describe the same rows, read them in chunks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plantkit.artifacts import EXPERTS_DIR, STORE_FILE, find_stores, store_path
from plantkit.combine.cost import expert_gflops
from plantkit.errors import PlantkitInputError
from plantkit.store import Store, check_compatible, open_store

# Combiners fit on val and are scored on test: every store must hold both.
COMBINE_SPLITS = ("val", "test")


@dataclass
class ExpertSet:
    """The open stores of the experts being combined, with what every combiner shares.

    Experts keep the order they were given in (`--experts`) or found in (sorted by name).
    """

    stores: list[Store]
    gflops: list[float | None]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        # Store.name reads an HDF5 attribute at every call; the names are asked for often.
        self.names = [store.name for store in self.stores]

    @property
    def size(self) -> int:
        return len(self.stores)

    @property
    def class_ids(self) -> list[str]:
        return self.stores[0].class_ids

    @property
    def num_classes(self) -> int:
        return self.stores[0].num_classes

    @property
    def fingerprint(self) -> str:
        return self.stores[0].fingerprint

    @property
    def train_counts(self) -> np.ndarray | None:
        """The first store's train counts that exist (all stores of a dataset share them)."""
        return next((s.train_counts for s in self.stores if s.train_counts is not None), None)

    @property
    def params(self) -> list[int | None]:
        values = [store.attrs.get("params") for store in self.stores]
        return [int(v) if isinstance(v, (int, float)) else None for v in values]

    def num_rows(self, split: str) -> int:
        return len(self.labels[split])

    def cost_order(self) -> list[int]:
        """Expert indices from cheapest to dearest (unknown cost last, ties by name)."""
        return sorted(range(self.size), key=lambda m: (
            self.gflops[m] is None, self.gflops[m] or 0.0, self.names[m]))

    def chunk_rows(self, target: int = 2048) -> int:
        """Rows per read near `target`, a multiple of the stores' HDF5 chunk rows.

        docs/store.md: logits are chunked by whole rows, about 1 MiB per chunk, at most 1,024
        rows. A read that ends mid-chunk decodes that chunk again for the next read.
        """
        itemsize = np.dtype(self.stores[0].logits_dtype(COMBINE_SPLITS[0])).itemsize
        stored = max(1, min(1024, (1 << 20) // (self.num_classes * itemsize)))
        return max(1, round(target / stored)) * stored

    def check_finite(self, m: int, split: str, row_max: np.ndarray, first_row: int) -> None:
        """PlantkitInputError naming the store if a row maximum is NaN or infinite.

        Row maxima catch NaN and +inf at no extra pass (every softmax computes them); -inf
        is a probability of zero and harmless.
        """
        bad = ~np.isfinite(row_max)
        if bad.any():
            store = self.stores[m]
            raise PlantkitInputError(
                f"{store.path} ({store.name}) holds NaN or infinite logits in split {split!r} "
                f"(first at row {first_row + int(np.argmax(bad))}): predict or import it again"
            )

    def close(self) -> None:
        for store in self.stores:
            store.close()


def resolve_store_paths(artifacts_root: str | os.PathLike,
                        experts: Sequence[str] | None) -> list[Path]:
    """Store files of the named experts (names under ARTIFACTS/experts, or store/folder paths),
    or of every expert under ARTIFACTS/experts."""
    if experts is None:
        return find_stores(artifacts_root, kind="expert")
    names = [e.strip() for e in experts if e.strip()]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise PlantkitInputError(f"--experts names {duplicated[0]} twice: give each once")
    paths = []
    for name in names:
        given = Path(name)
        if given.suffix == ".h5" or os.sep in name or "/" in name:
            path = given / STORE_FILE if given.is_dir() else given
        else:
            path = store_path(artifacts_root, name, kind="expert")
        if not path.is_file():
            raise PlantkitInputError(
                f"--experts {name}: no prediction store at {path} (predict or import it first)"
            )
        paths.append(path)
    return paths


@contextlib.contextmanager
def open_experts(artifacts_root: str | os.PathLike, experts: Sequence[str] | None = None,
                 cost_overrides: Mapping[str, float] | None = None,
                 splits: Sequence[str] = COMBINE_SPLITS, *,
                 min_stores: int = 2) -> Iterator[ExpertSet]:
    """The checked ExpertSet of `min_stores` or more stores (one: tau-normalisation alone);
    closed when the with-block ends.

    Refused with PlantkitInputError (naming the store): fewer stores, stores of other
    datasets or class ids, a split missing, rows in another order (labels or paths).
    """
    paths = resolve_store_paths(artifacts_root, experts)
    if len(paths) < min_stores:
        where = Path(artifacts_root) / EXPERTS_DIR
        needs = ("combining needs two or more expert stores" if min_stores == 2 else
                 f"this needs at least {min_stores} expert store(s)")
        raise PlantkitInputError(
            f"{needs}, found {len(paths)} "
            f"({'given by --experts' if experts is not None else f'under {where}'}): "
            "predict or import more experts, or name them with --experts a,b"
        )
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(open_store(p)) for p in paths]
        _check_same_rows(stores, splits)
        gflops = expert_gflops([s.name for s in stores], [s.attrs for s in stores],
                               cost_overrides)
        names = [s.name for s in stores]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise PlantkitInputError(f"two expert stores are both named {twice!r}: rename one")
        yield ExpertSet(stores, gflops,
                        labels={s: stores[0].labels(s) for s in splits},
                        paths={s: stores[0].paths(s) for s in splits})


def _check_same_rows(stores: Sequence[Store], splits: Sequence[str]) -> None:
    check_compatible(stores)
    for split in splits:
        for store in stores:
            if split not in store.splits:
                raise PlantkitInputError(
                    f"{store.path} ({store.name}) has no {split!r} split: combining fits on val "
                    f"and scores on test, so every store needs both (it has: "
                    f"{', '.join(store.splits) or 'none'})"
                )
    check_compatible(stores, splits=splits)
    for split in splits:
        reference = stores[0].paths(split)
        for store in stores[1:]:
            if store.paths(split) != reference:
                raise PlantkitInputError(
                    f"{store.path} ({store.name}) lists the {split} images in another order "
                    f"than {stores[0].name} (same labels, different paths): predict both on "
                    "the same dataset"
                )


def row_chunks(n_rows: int, chunk_rows: int) -> Iterator[slice]:
    """Consecutive row slices covering 0 .. n_rows-1."""
    for start in range(0, n_rows, chunk_rows):
        yield slice(start, min(n_rows, start + chunk_rows))
