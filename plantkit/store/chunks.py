"""How a store's datasets lie on disk: the chunking rules, the fletcher32 checksum, and
the in-place compaction of a split whose unwritten rows are dropped."""

from __future__ import annotations

import h5py
import numpy as np

from plantkit.store.schema import verifying

# At most 1 MiB per chunk: a chunk fits HDF5's default 1 MiB chunk cache while a split is
# filled batch by batch (a larger cache measured no faster), and a reader of a few rows
# does not read megabytes.
CHUNK_BYTES = 1 << 20
MAX_CHUNK_ROWS = 1024
# labels and train_counts: 64k int64 (512 KiB) per chunk.
MAX_VECTOR_CHUNK = 1 << 16


def matrix_chunks(n_rows: int, width: int, dtype: np.dtype) -> tuple[int, int] | None:
    """Chunks of whole rows, at most CHUNK_BYTES and MAX_CHUNK_ROWS; None when empty."""
    if n_rows == 0 or width == 0:
        return None
    rows = CHUNK_BYTES // max(1, width * dtype.itemsize)
    return (max(1, min(n_rows, MAX_CHUNK_ROWS, rows)), width)


def create_checked(group: h5py.Group, name: str, shape: tuple, dtype: np.dtype,
                   data=None, resizable: bool = False) -> h5py.Dataset:
    """A dataset chunked with HDF5's fletcher32 checksum (empty ones stay contiguous: they
    hold nothing to check); without checksums, as before, when verification is off.
    `resizable`: its rows may be cut (SplitWriter.skip_unwritten), so it is chunked."""
    chunks: tuple[int, ...] | None
    if len(shape) == 2:
        chunks = matrix_chunks(shape[0], shape[1], dtype)
    else:
        chunks = (min(shape[0], MAX_VECTOR_CHUNK),) if shape[0] else None
    resizable = resizable and chunks is not None
    verify = verifying()
    if not verify and not resizable:
        chunks = chunks if len(shape) == 2 else None
    checked = verify and chunks is not None
    maxshape = (None, *shape[1:]) if resizable else None
    return group.create_dataset(name, shape=shape, dtype=dtype, data=data, chunks=chunks,
                                fletcher32=checked, maxshape=maxshape)


def compact(dataset: h5py.Dataset, keep: np.ndarray, first: int, n_kept: int) -> None:
    """Move the rows where `keep` (from row `first` on) up to close the gaps, in blocks of
    whole chunks, then cut the dataset to `n_kept` rows. Every write lands below the block
    being read, so no row is overwritten before it is moved."""
    row_bytes = dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64))
    chunk = dataset.chunks[0]
    block = max(1, 4 * CHUNK_BYTES // max(1, row_bytes) // chunk) * chunk  # about 4 MiB
    dest = first
    for start in range(first, len(keep), block):
        stop = min(len(keep), start + block)
        mask = keep[start:stop]
        if mask.any():
            values = dataset[start:stop][mask]
            dataset[dest:dest + len(values)] = values
            dest += len(values)
    dataset.resize(n_kept, axis=0)
