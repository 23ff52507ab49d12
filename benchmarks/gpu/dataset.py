"""Generate the suite's dataset: Pl@ntNet-sized JPEGs in the ImageFolder layout plantkit reads.

    python benchmarks/gpu/dataset.py ROOT --unique 4000 --train 40000 --classes 100

`--unique` distinct JPEGs (500-800 px longer side, benchmarks/bench_input_pipeline.py's
generator) are drawn by a process pool, each from its own seed, into ROOT/unique/, for at
most `--max-seconds` (then it goes on with those finished). ROOT/data/{train,val,test}/
<class>/*.jpg are hard links to them (copies where links fail): `--train` train images,
`--val-per-class` and `--test-per-class` per class. Each file is decoded, resized and
cached on its own, as in a dataset of distinct photos; the repetition only means that the
page cache holds fewer distinct bytes. A dataset already there with the same parameters is
reused. Prints one JSON line: what was made, how long it took.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
from common import add_paths

add_paths()
# Imported before the pool forks, so that no worker pays for torch's import again.
from plantkit.data.photos import plant_like_jpeg  # noqa: E402

SPLITS = ("train", "val", "test")


def _draw(task: tuple[str, int, int]) -> int:
    """Draw unique image `i` (its own seed) to its final name via a temporary file."""
    folder, i, seed = task
    final = Path(folder) / f"u{i:06d}.jpg"
    partial = Path(folder) / f".u{i:06d}.part.jpg"
    plant_like_jpeg(partial, np.random.default_rng([seed, i]))
    os.replace(partial, final)  # a drawing cut short leaves no half file under a used name
    return i


def draw_unique(folder: Path, n: int, *, seed: int, processes: int,
                max_seconds: float) -> list[int]:
    """Indices of the unique images drawn (all of `n`, or those finished in `max_seconds`)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = sorted(int(p.stem[1:]) for p in folder.glob("u*.jpg") if int(p.stem[1:]) < n)
    have = set(done)
    todo = [(str(folder), i, seed) for i in range(n) if i not in have]
    if not todo:
        return done
    start = time.perf_counter()
    if processes <= 1:
        for task in todo:
            done.append(_draw(task))
            if time.perf_counter() - start > max_seconds:
                break
        return sorted(done)
    pool = multiprocessing.get_context("fork").Pool(processes)
    try:
        for i in pool.imap_unordered(_draw, todo, chunksize=4):
            done.append(i)
            if time.perf_counter() - start > max_seconds:
                break
    finally:
        pool.terminate()
        pool.join()
    return sorted(done)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build_layout(data: Path, unique: Path, drawn: list[int], *, train: int, classes: int,
                 val_per_class: int, test_per_class: int) -> dict[str, int]:
    """ROOT/data/{train,val,test}/classNNN/*.jpg as links to the drawn images."""
    if data.exists():
        shutil.rmtree(data)
    counts = {"train": train, "val": val_per_class * classes, "test": test_per_class * classes}
    for split in SPLITS:
        for j in range(counts[split]):
            if split == "train":
                klass, source = j % classes, drawn[j % len(drawn)]
            else:  # per class, cycling through the drawn images
                klass, source = j % classes, drawn[(j * 7919 + (split == "test")) % len(drawn)]
            _link(unique / f"u{source:06d}.jpg",
                  data / split / f"class{klass:03d}" / f"{split[:2]}{j:06d}.jpg")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--unique", type=int, default=4000)
    parser.add_argument("--train", type=int, default=40000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=2)
    parser.add_argument("--test-per-class", type=int, default=1)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    wanted = {k: getattr(args, k) for k in
              ("unique", "train", "classes", "val_per_class", "test_per_class", "seed")}
    marker = args.root / "dataset.json"
    if marker.is_file() and json.loads(marker.read_text()).get("wanted") == wanted:
        info = json.loads(marker.read_text())
        info.update(reused=True, seconds=round(time.perf_counter() - start, 2))
        print(json.dumps(info), flush=True)
        return
    drawn = draw_unique(args.root / "unique", args.unique, seed=args.seed,
                        processes=args.processes, max_seconds=args.max_seconds)
    draw_seconds = time.perf_counter() - start
    if len(drawn) < min(args.unique, 2 * args.classes):
        raise SystemExit(f"only {len(drawn)} images drawn in {args.max_seconds} s")
    counts = build_layout(args.root / "data", args.root / "unique", drawn, train=args.train,
                          classes=args.classes, val_per_class=args.val_per_class,
                          test_per_class=args.test_per_class)
    sizes = [(args.root / "unique" / f"u{i:06d}.jpg").stat().st_size for i in drawn]
    info = {
        "wanted": wanted, "root": str(args.root / "data"), "unique_drawn": len(drawn),
        "splits": counts, "classes": args.classes, "processes": args.processes,
        "mean_kb": round(sum(sizes) / len(sizes) / 1024, 1),
        "draw_seconds": round(draw_seconds, 2),
        "draw_images_per_s": round(len(drawn) / max(draw_seconds, 1e-9), 1),
    }
    marker.write_text(json.dumps(info) + "\n")
    info.update(reused=False, seconds=round(time.perf_counter() - start, 2))
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
