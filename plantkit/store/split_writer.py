"""SplitWriter: the preallocated datasets of one split, filled batch by batch."""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np

from plantkit.errors import PlantkitInputError
from plantkit.labels import checked_labels
from plantkit.store.chunks import compact, create_checked
from plantkit.store.schema import (
    FEATURES_DTYPE,
    PATHS_SHA256,
    SKIPPED_PATHS,
    SKIPPED_PATHS_SHA256,
    STRINGS,
    strings_sha256,
    verifying,
)


class SplitWriter:
    """Preallocated datasets of one split, filled by `write` in any row order.

    Paths are held in memory (one string per row) and written when the store is completed.
    A split created `skippable` may end with `skip_unwritten`: its rows never written are
    dropped (the others keep their order) and recorded as skipped images.
    """

    def __init__(self, group: h5py.Group, name: str, n_rows: int, num_classes: int,
                 dtype: str, feature_dim: int | None, skippable: bool = False):
        self.name = name
        self.n_rows = n_rows
        self.num_classes = num_classes
        self.dtype = np.dtype(dtype)
        self.feature_dim = feature_dim
        self.skippable = skippable
        self.skipped: list[str] = []
        self._written = np.zeros(n_rows, dtype=bool)
        self._group = group
        self._logits = create_checked(group, "logits", (n_rows, num_classes), self.dtype,
                                      resizable=skippable)
        self._labels = create_checked(group, "labels", (n_rows,), np.dtype(np.int64),
                                      resizable=skippable)
        self._paths = np.full(n_rows, "", dtype=object)
        self._features = None
        if feature_dim is not None:
            self._features = create_checked(group, "features", (n_rows, feature_dim),
                                            np.dtype(FEATURES_DTYPE), resizable=skippable)

    def write(self, start: int, logits, labels, paths: Sequence[str] | None = None,
              features=None) -> None:
        """Fill rows start .. start+len(logits)-1; `paths` None stores empty strings.

        Bad values raise PlantkitInputError naming the split and the first bad row.
        """
        logits = self._checked_logits(logits)
        rows = logits.shape[0]
        start = int(start)
        stop = start + rows
        if start < 0 or stop > self.n_rows:
            raise PlantkitInputError(
                f"split {self.name!r}: rows {start}-{stop - 1} fall outside the split's "
                f"{self.n_rows} rows"
            )
        stored_logits = self._cast_finite(logits, self.dtype, "logits", start)
        labels = checked_labels(labels, rows, self.num_classes, where=f"split {self.name!r}: ",
                                row_offset=start)
        paths = [""] * rows if paths is None else list(paths)
        if len(paths) != rows:
            raise PlantkitInputError(
                f"split {self.name!r}: {len(paths)} paths for {rows} rows of logits"
            )
        stored_features = self._checked_features(features, rows, start)
        if rows == 0:
            return
        self._logits[start:stop] = stored_logits
        self._labels[start:stop] = labels
        self._paths[start:stop] = [str(p) for p in paths]
        if self._features is not None:  # then _checked_features returned this batch's
            self._features[start:stop] = stored_features
        self._written[start:stop] = True

    def _checked_logits(self, logits) -> np.ndarray:
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise PlantkitInputError(
                f"split {self.name!r}: logits must be rows x {self.num_classes} "
                f"(one column per class), got shape {logits.shape}"
            )
        if logits.dtype.kind != "f":
            raise PlantkitInputError(
                f"split {self.name!r}: logits must be floating point, got {logits.dtype}"
            )
        return logits

    def _checked_features(self, features, rows: int, start: int) -> np.ndarray | None:
        """The batch's features cast to the stored dtype (None for a split without any)."""
        if self._features is None:
            if features is not None:
                raise PlantkitInputError(
                    f"split {self.name!r} was created without features: pass feature_dim "
                    "to create_split to store them"
                )
            return None
        if features is None:
            raise PlantkitInputError(
                f"split {self.name!r} was created with features: pass `features`"
            )
        features = np.asarray(features)
        if features.shape != (rows, self.feature_dim):
            raise PlantkitInputError(
                f"split {self.name!r}: features must be {rows} x {self.feature_dim}, "
                f"got shape {features.shape}"
            )
        return self._cast_finite(features, np.dtype(FEATURES_DTYPE), "features", start)

    def _cast_finite(self, values: np.ndarray, dtype: np.dtype, what: str, start: int):
        # Checked before the cast: numpy's float16 arithmetic is several times slower.
        finite = np.isfinite(values)
        if not finite.all():
            raise PlantkitInputError(
                f"split {self.name!r}: {what} hold NaN or infinite values (first at row "
                f"{start + int(np.argwhere(~finite)[0][0])})"
            )
        limit = np.finfo(dtype).max
        if values.size and np.finfo(values.dtype).max > limit and (
            values.max() > limit or values.min() < -limit
        ):
            first = int(np.argwhere(np.abs(values) > limit)[0][0])
            raise PlantkitInputError(
                f"split {self.name!r}: {what} at row {start + first} exceed the {dtype} range "
                f"(|x| > {limit:g}); store float32 instead"
            )
        return values.astype(dtype, copy=False)

    def skip_unwritten(self, skipped_paths: Sequence[str]) -> None:
        """Drop the rows never written, keeping the others' order, and record
        `skipped_paths` (one per dropped row) as the split's skipped images.

        For images that could not be read: call it once, after the last `write`, on a split
        created with `skippable=True`. The kept rows move up in place, block by block, and
        the datasets shrink: memory stays at one block.
        """
        if not self.skippable:
            raise RuntimeError(f"split {self.name!r} was not created skippable")
        skipped = [str(p) for p in skipped_paths]
        kept = np.flatnonzero(self._written)
        if len(skipped) != self.n_rows - len(kept):
            raise RuntimeError(
                f"split {self.name!r}: {len(skipped)} skipped paths for "
                f"{self.n_rows - len(kept)} rows never written"
            )
        if len(kept) < self.n_rows:
            first = int(np.argmin(self._written))
            for dataset in (self._logits, self._labels, self._features):
                if dataset is not None:
                    compact(dataset, self._written, first, len(kept))
            self._paths = self._paths[kept]
            self.n_rows = len(kept)
            self._written = np.ones(len(kept), dtype=bool)
        self.skipped = skipped

    def check_complete(self) -> None:
        """Refuse a split with rows never written (RuntimeError naming the first)."""
        if self._written.all():
            return
        missing = ~self._written
        raise RuntimeError(
            f"split {self.name!r}: {int(missing.sum())} of {self.n_rows} rows were never "
            f"written (first: row {int(np.argmax(missing))}); the store was not saved"
        )

    def seal(self) -> None:
        """Write the paths (and any skipped paths) with their sha256 (the other datasets
        carry fletcher32); for the store writer, when the store is completed."""
        paths = self._group.create_dataset("paths", shape=(self.n_rows,), dtype=STRINGS)
        if self.n_rows:
            paths[:] = self._paths
        if verifying():
            self._group.attrs[PATHS_SHA256] = strings_sha256(self._paths.tolist())
        if self.skipped:
            self._group.create_dataset(SKIPPED_PATHS, data=np.array(self.skipped, dtype=object),
                                       dtype=STRINGS)
            if verifying():
                self._group.attrs[SKIPPED_PATHS_SHA256] = strings_sha256(self.skipped)
