"""The float16 -> float32 block read of the store (`plantkit.store.reader.read_float32`)
against the plain library calls, in one run.

Writes one float16 logits dataset (chunked and fletcher32-checked as a store writes it,
through `plantkit.store.chunks.create_checked`) into a temporary file, then reads it whole,
alternately (--repeats times each, the file in the page cache after a first untimed read),
with:

- read_float32: plantkit's block-by-block upcast into one preallocated float32 array,
- numpy astype: `dataset[rows].astype(np.float32)`,
- h5py astype: `dataset.astype(np.float32)[rows]` (HDF5 converts while reading),

and prints each one's median throughput (MB/s of float16 read, and rows/s) and the ratio
read_float32 / each library call (> 1: read_float32 is faster). On a shared machine the
times follow the load (printed).

    .venv/bin/python benchmarks/bench_store.py [--rows 31118] [--classes 1081] [--repeats 7]
        [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from plantkit.store.chunks import create_checked
from plantkit.store.reader import read_float32


def write_logits(path: Path, rows: int, classes: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        dataset = create_checked(f, "logits", (rows, classes), np.dtype(np.float16))
        for start in range(0, rows, 4096):
            stop = min(rows, start + 4096)
            dataset[start:stop] = rng.standard_normal((stop - start, classes), np.float32)


def numpy_astype(dataset: h5py.Dataset) -> np.ndarray:
    return dataset[:].astype(np.float32)


def h5py_astype(dataset: h5py.Dataset) -> np.ndarray:
    return dataset.astype(np.float32)[:]


READS = {
    "read_float32": lambda dataset: read_float32(dataset, None),
    "numpy astype": numpy_astype,
    "h5py astype": h5py_astype,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=31_118, help="rows (Pl@ntNet-300K val)")
    parser.add_argument("--classes", type=int, default=1_081)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", default=None, help="where the temporary file goes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "logits.h5"
        write_logits(path, args.rows, args.classes)
        megabytes = args.rows * args.classes * 2 / 1e6
        times: dict[str, list[float]] = {name: [] for name in READS}
        load_before = os.getloadavg()
        with h5py.File(path, "r") as f:
            dataset = f["logits"]
            reference = READS["numpy astype"](dataset)  # warms the page cache, untimed
            for name, read in READS.items():
                assert np.array_equal(read(dataset), reference), name
            for _ in range(args.repeats):
                for name, read in READS.items():
                    began = time.perf_counter()
                    read(dataset)
                    times[name].append(time.perf_counter() - began)
        load_after = os.getloadavg()

    print(f"float16 logits {args.rows} x {args.classes} ({megabytes:.0f} MB), chunks as a "
          f"store writes them, {args.repeats} alternating repeats")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} cores")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:>13}: median {median * 1e3:8.1f} ms  {megabytes / median:8.0f} MB/s  "
              f"{args.rows / median:10.0f} rows/s  (min {min(times[name]) * 1e3:.1f} ms)")
    for name in ("numpy astype", "h5py astype"):
        print(f"ratio read_float32 / {name} (throughput): "
              f"{medians[name] / medians['read_float32']:.2f}")


if __name__ == "__main__":
    main()
