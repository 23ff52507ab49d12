"""Single-core speed of the synthetic dataset generator (draw + JPEG encode + write).

    python benchmarks/bench_synth.py --images 2000 --size 64

Generates a dataset of about N images over K real Pl@ntNet species into a temporary
folder with `generate_dataset` (JSON files included), pinned to one CPU, and prints
images/s (wall clock and per CPU second: on a shared machine the CPU figure is the
steadier one) with the ratio to the 300 images/s target, then the draw+encode rate per
organ.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
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
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = parser.parse_args()

    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    import pandas as pd

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
    best_wall = best_cpu = float("inf")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            wall, cpu = time.perf_counter(), time.process_time()
            generate_dataset(Path(tmp) / "ds", counts, image_size=args.size, seed=args.seed)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    rate, cpu_rate = n_images / best_wall, n_images / best_cpu
    print(
        f"{n_images:,} images of {len(counts)} species at {args.size} px, best of {args.repeat}: "
        f"{best_wall:.2f} s wall, {best_cpu:.2f} s CPU (user+system)"
    )
    print(
        f"  {rate:,.0f} images/s wall on one core ({rate / TARGET:.2f}x the {TARGET:.0f}/s "
        f"target); {cpu_rate:,.0f} images/s per CPU second ({cpu_rate / TARGET:.2f}x)"
    )

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


if __name__ == "__main__":
    main()
