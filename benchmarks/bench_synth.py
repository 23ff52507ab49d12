"""Speed of the synthetic dataset generator (draw + JPEG encode + write), one process and N.

    python benchmarks/bench_synth.py --images 2000 --size 64 --workers 4

Generates a dataset of about N images over K real Pl@ntNet species into a temporary
folder with `generate_dataset` (JSON files included), first in this process pinned to
one CPU, then with `--workers` processes on every CPU, and prints images/s for each
(wall clock and per CPU second, the pool's processes included: on a shared machine the
CPU figure is the steadier one), the one-process rate against the 300 images/s target,
the N-to-1 speed-up, then the draw+encode rate per organ.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

TARGET = 300.0  # images/s at 64 px on one core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="about this many images")
    parser.add_argument("--size", type=int, default=64, help="image side, pixels")
    parser.add_argument("--classes", type=int, default=100, help="real species to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs; the best one counts")
    parser.add_argument("--dir", default=None, help="write under this folder [default: temp]")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes of the second run [default: plantkit's rule]")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the one-process run to one CPU")
    args = parser.parse_args()

    import pandas as pd

    from plantkit.choices import default_workers
    from plantkit.data.profiles import make_profile
    from plantkit.data.species import make_species_table
    from plantkit.data.synth import class_order, draw_image, generate_dataset

    base = make_profile("plantnet300k", classes=args.classes)
    per_class = max(4, args.images // len(base))
    counts = pd.DataFrame(
        {"species_name": base["species_name"], "train": per_class - 2, "val": 1, "test": 1},
        index=base.index,
    )
    n_images = per_class * len(counts)
    workers = default_workers() if args.workers is None else args.workers
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

    def timed(n_workers: int) -> tuple[float, float]:
        """Best wall and CPU seconds (this process and its pool's) of --repeat runs."""
        best_wall = best_cpu = float("inf")
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                wall, cpu = time.perf_counter(), _cpu_seconds()
                generate_dataset(Path(tmp) / "ds", counts, image_size=args.size,
                                 seed=args.seed, workers=n_workers)
                wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        return best_wall, best_cpu

    print(f"{n_images:,} images of {len(counts)} species at {args.size} px, "
          f"best of {args.repeat}:")
    if cpus is not None and not args.no_pin:
        os.sched_setaffinity(0, {min(cpus)})
    one_wall, one_cpu = timed(1)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    rate, cpu_rate = n_images / one_wall, n_images / one_cpu
    print(
        f"  workers=1: {one_wall:.2f} s wall, {one_cpu:.2f} s CPU: {rate:,.0f} images/s wall "
        f"({rate / TARGET:.2f}x the {TARGET:.0f}/s target), {cpu_rate:,.0f} images/s per "
        f"CPU second ({cpu_rate / TARGET:.2f}x)"
    )
    pool_wall, pool_cpu = timed(workers)
    pool_rate = n_images / pool_wall
    print(
        f"  workers={workers} on {len(cpus) if cpus is not None else os.cpu_count()} CPUs: "
        f"{pool_wall:.2f} s wall, {pool_cpu:.2f} s CPU: {pool_rate:,.0f} images/s wall, "
        f"{n_images / pool_cpu:,.0f} images/s per CPU second"
    )
    print(f"  speed-up workers={workers} / workers=1: {pool_rate / rate:.2f}x wall")

    ids = class_order(counts.index)
    species = make_species_table(ids, counts.loc[ids, "species_name"].to_list())
    by_organ: dict[str, list] = {}
    for sp in species:
        by_organ.setdefault(sp.organ, []).append(sp)
    for organ, group in sorted(by_organ.items()):
        n = 200
        start = time.process_time()
        for i in range(n):
            draw_image(group[i % len(group)], args.seed, "train", i, args.size)
        organ_rate = n / (time.process_time() - start)
        print(
            f"  {organ:<7} {len(group):>3} species  {organ_rate:,.0f} images/s per CPU second "
            "(draw + encode, no file)"
        )


def _cpu_seconds() -> float:
    """User+system seconds of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    main()
