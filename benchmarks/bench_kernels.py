"""plantkit's own small kernels against the plain library call each replaces, in one run.

Each line prints the median time of plantkit's code and of the library call on the same
input, and their ratio (library / plantkit: above 1 means plantkit's is faster):

- `_axpy` (combine's weighted sum, BLAS saxpy in place) vs NumPy's `y += a * x`;
- `ToNormalizedFloat` (one fused pass) vs torchvision's `v2.ToDtype(scale=True)` +
  `v2.Normalize`, on channels-last uint8 crops as the loader hands them over;
- `seeded_cpu_rng` (seed, then restore the generator) vs `torch.random.fork_rng` +
  `torch.manual_seed`, the library's way to seed and restore;
- (synth's hand-written os.open/os.write loop for the stand-in's JPEGs measured 0.14-0.41x
  `open(path, "xb")` here, 2 cores, 2026-12-02: synth now uses the plain call;)
- `fit_temperature` (safeguarded Newton) vs scipy's bounded `minimize_scalar` on the same
  NLL, with the temperatures both find.

    .venv/bin/python benchmarks/bench_kernels.py [--rows 4096] [--classes 1081] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def timed(function, rounds: int) -> float:
    """Median seconds of `function()` over `rounds` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(what: str, ours: float, library: float, unit: str = "ms") -> None:
    scale = 1e3 if unit == "ms" else 1e6
    print(f"{what:<48} plantkit {ours * scale:9.3f} {unit}   library {library * scale:9.3f} "
          f"{unit}   ratio {library / ours:5.2f}")


def bench_axpy(rows: int, classes: int, rounds: int) -> None:
    from plantkit.combine.mixers import _axpy

    rng = np.random.default_rng(0)
    x = rng.random((rows, classes), dtype=np.float32)
    y = rng.random((rows, classes), dtype=np.float32)
    ours = timed(lambda: _axpy(x, y, 0.3), rounds)
    library = timed(lambda: np.add(y, np.float32(0.3) * x, out=y), rounds)
    report(f"weighted sum, {rows} x {classes} float32", ours, library)


def bench_normalize(rounds: int) -> None:
    import torch
    from torchvision.transforms import v2

    from plantkit.choices import IMAGENET_MEAN, IMAGENET_STD
    from plantkit.data.transforms import ToNormalizedFloat

    # The loader's crops: a view into an H x W x 3 decoded image, so channels-last strides.
    crops = [torch.randint(0, 256, (256, 256, 3), dtype=torch.uint8)[:224, :224].permute(2, 0, 1)
             for _ in range(64)]
    ours_transform = ToNormalizedFloat(IMAGENET_MEAN, IMAGENET_STD)
    library_transform = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                                    v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    difference = max(float((ours_transform(c) - library_transform(c)).abs().max()) for c in crops)
    ours = timed(lambda: [ours_transform(c) for c in crops], rounds) / len(crops)
    library = timed(lambda: [library_transform(c) for c in crops], rounds) / len(crops)
    report(f"uint8 -> normalised float, 3x224x224 (max diff {difference:.1e})", ours, library,
           unit="us")


def bench_seed(rounds: int) -> None:
    import torch

    from plantkit.data.transforms import seeded_cpu_rng

    def ours():
        for seed in range(200):
            with seeded_cpu_rng(seed):
                torch.rand(1)

    def library():
        for seed in range(200):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                torch.rand(1)

    report("seed and restore torch's CPU generator", timed(ours, rounds) / 200,
           timed(library, rounds) / 200, unit="us")


def bench_temperature(rows: int, classes: int, rounds: int) -> None:
    from scipy.optimize import minimize_scalar

    from plantkit.combine.temperature import (
        TEMPERATURE_RANGE,
        fit_temperature,
        nll_derivatives,
    )

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, rows)
    logits = rng.normal(size=(rows, classes)).astype(np.float32) * 2
    logits[np.arange(rows), labels] += 3  # an overconfident, mostly right model
    shifted = logits - logits.max(axis=1, keepdims=True)
    found = {}

    def ours():
        found["plantkit"] = fit_temperature(shifted, labels)

    def library():
        result = minimize_scalar(lambda t: nll_derivatives(shifted, labels, 1.0 / t)[0],
                                 bounds=TEMPERATURE_RANGE, method="bounded",
                                 options={"xatol": 1e-5})
        found["scipy"] = float(result.x)

    ours_s, library_s = timed(ours, rounds), timed(library, rounds)
    report(f"temperature fit, {rows} x {classes} (T {found['plantkit']:.4f} vs "
           f"{found['scipy']:.4f})", ours_s, library_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=1081)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; medians of {args.rounds} rounds")
    bench_axpy(args.rows, args.classes, args.rounds)
    bench_normalize(args.rounds)
    bench_seed(args.rounds)
    bench_temperature(args.rows // 2, args.classes, args.rounds)


if __name__ == "__main__":
    main()
