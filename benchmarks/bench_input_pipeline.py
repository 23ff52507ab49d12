"""Input pipeline images/s: plantkit's loader vs torchvision ImageFolder, same JPEGs and workers.

Contenders: plantkit reading the JPEGs, and plantkit reading its decoded image cache
(plantkit.data.cache; one per format, built first and timed apart) of the same images.

The baseline is the dataset authors' pipeline: ImageFolder (PIL decoding) with the v1
transforms Resize(256), RandomCrop(224) (CenterCrop with --eval), ToTensor, Normalize.
plantkit reads the same files with the same transforms, its own decoding (JPEG draft
mode) and its loader. Both DataLoaders get the same batch size, workers, persistent
workers and pinning; each gets an untimed warm-up pass (worker start, page cache), then
timed passes alternate between them. Printed per pass and as medians: images/s (wall
clock) and CPU ms per image (this process and its workers, from /proc: Linux only), with
the ratios to the baseline. On a machine that others share, the CPU ratio is the steadier
one; on an idle machine with enough workers the two agree.

    .venv/bin/python benchmarks/bench_input_pipeline.py                 # 400 generated JPEGs
    .venv/bin/python benchmarks/bench_input_pipeline.py --images-dir DIR  # DIR/<class>/*.jpg
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import datasets
from torchvision import transforms as T

from plantkit.data.cache import FORMATS, DecodedCache, build_cache
from plantkit.data.layout import Dataset, Split
from plantkit.data.loading import make_loader
from plantkit.data.photos import plant_like_jpeg
from plantkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TransformSpec


def generate_images(root: Path, n_images: int, n_classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        plant_like_jpeg(root / f"class{i % n_classes:02d}" / f"{i:05d}.jpg", rng)


def as_plantkit_dataset(folder: datasets.ImageFolder) -> Dataset:
    """The ImageFolder's files, labels and order as a plantkit Dataset (same split thrice)."""
    root = Path(folder.root)
    paths = [Path(p).relative_to(root).as_posix() for p, _ in folder.samples]
    split = Split(
        paths=paths,
        labels=np.array([label for _, label in folder.samples], dtype=np.int64),
        sizes=np.array([(root / p).stat().st_size for p in paths], dtype=np.int64),
    )
    return Dataset(
        root=root, images_dir=root, layout="imagefolder", class_ids=list(folder.classes),
        splits={"train": split, "val": split, "test": split},
    )


def reference_loader(folder_root: Path, args) -> torch.utils.data.DataLoader:
    crop = T.CenterCrop(args.crop) if args.eval else T.RandomCrop(args.crop)
    transform = T.Compose(
        [T.Resize(args.resize), crop, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    folder = datasets.ImageFolder(str(folder_root), transform=transform)
    return torch.utils.data.DataLoader(
        folder,
        batch_size=args.batch_size,
        shuffle=not args.eval,
        num_workers=args.workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def cpu_seconds() -> float:
    """CPU time of this process and its live children (the loader workers); Linux /proc."""
    total = time.process_time()
    children: set[str] = set()
    try:
        for task in Path("/proc/self/task").iterdir():
            children.update((task / "children").read_text().split())
    except OSError:  # not Linux: the workers' CPU time is missing from the figure
        pass
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the child ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def timed_pass(loader) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, images) for one full pass, touching every batch."""
    n = 0
    cpu_start, start = cpu_seconds(), time.perf_counter()
    for batch in loader:
        n += len(batch[0])
    return time.perf_counter() - start, cpu_seconds() - cpu_start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-dir", type=Path, help="ImageFolder root (<class>/<image>); "
                        "generated there when missing, else in a temporary folder")
    parser.add_argument("--n-images", type=int, default=400)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes of each loader")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--eval", action="store_true", help="CenterCrop, row order (prediction)")
    parser.add_argument("--no-draft-too", action="store_true",
                        help="also time plantkit without JPEG draft decoding")
    parser.add_argument("--rare-too", action="store_true",
                        help="also time plantkit with every class given the rare-species "
                        "augmentation (--augment-below above every class's count)")
    parser.add_argument("--cache-formats", nargs="*", default=list(FORMATS),
                        choices=FORMATS, help="also time plantkit from a decoded image cache "
                        "of each format (built here, timed apart)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="plantkit-bench-") as tmp:
        root = args.images_dir or Path(tmp) / "images"
        if not root.exists():
            print(f"generating {args.n_images} JPEGs in {root} ...", flush=True)
            generate_images(root, args.n_images, args.classes, args.seed)
        reference = reference_loader(root, args)
        dataset = as_plantkit_dataset(reference.dataset)
        sizes = dataset.splits["train"].sizes
        shorter_sides = []
        for path in dataset.splits["train"].paths:
            with Image.open(dataset.images_dir / path) as image:
                shorter_sides.append(min(image.size))
        reducible = sum(side >= 2 * args.resize for side in shorter_sides)
        print(f"{len(sizes)} images, {sizes.mean() / 1024:.0f} KB on average, shorter side "
              f"{min(shorter_sides)}-{max(shorter_sides)} px ({reducible} with a shorter side "
              f">= 2 x {args.resize}: draft mode decodes them at 1/2 scale or less); "
              f"batch {args.batch_size}, workers {args.workers}, "
              f"{'eval (centre crop)' if args.eval else 'train (random crop, shuffled)'}, "
              f"torch threads {torch.get_num_threads()}")

        spec = TransformSpec(resize=args.resize, crop=args.crop)
        contenders = {"torchvision ImageFolder": reference}
        if args.no_draft_too:
            contenders["plantkit, no draft"] = make_loader(
                dataset, "train", spec=spec, train=not args.eval, batch_size=args.batch_size,
                workers=args.workers, seed=args.seed, draft=False)
        contenders["plantkit"] = make_loader(
            dataset, "train", spec=spec, train=not args.eval, batch_size=args.batch_size,
            workers=args.workers, seed=args.seed)
        for fmt in args.cache_formats:
            start = time.perf_counter()
            folder = build_cache(dataset, Path(tmp) / f"artifacts-{fmt}", resize=args.resize,
                                 fmt=fmt, workers=args.workers)
            size = sum(f.stat().st_size for f in folder.iterdir())
            print(f"cache ({fmt}): built in {time.perf_counter() - start:.1f} s with "
                  f"{args.workers} workers, {size / len(sizes) / 1024:.1f} KB an image",
                  flush=True)
            contenders[f"plantkit, {fmt} cache"] = make_loader(
                dataset, "train", spec=spec, train=not args.eval, batch_size=args.batch_size,
                workers=args.workers, seed=args.seed, cache=DecodedCache(folder))
        if args.rare_too and not args.eval:
            contenders["plantkit, all rare"] = make_loader(
                dataset, "train", spec=spec, train=True, batch_size=args.batch_size,
                workers=args.workers, seed=args.seed, augment_below=len(sizes) + 1)

        for loader in contenders.values():
            timed_pass(loader)  # warm-up: worker start, page cache
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        cpu_ms: dict[str, list[float]] = {name: [] for name in contenders}
        for round_ in range(args.rounds):
            for name, loader in contenders.items():
                seconds, cpu, n = timed_pass(loader)
                rates[name].append(n / seconds)
                cpu_ms[name].append(1000 * cpu / n)
                print(f"round {round_ + 1}  {name:24s} {n / seconds:8.1f} images/s  "
                      f"{1000 * cpu / n:6.2f} CPU ms/image", flush=True)

        base = "torchvision ImageFolder"
        base_rate, base_cpu = statistics.median(rates[base]), statistics.median(cpu_ms[base])
        print(f"\nmedians, ratio vs {base} (CPU ratio: baseline CPU time / this one's; "
              "steadier than wall time on a shared machine):")
        for name in contenders:
            rate, cpu = statistics.median(rates[name]), statistics.median(cpu_ms[name])
            print(f"  {name:24s} {rate:8.1f} images/s ({rate / base_rate:.2f}x)   "
                  f"{cpu:6.2f} CPU ms/image ({base_cpu / cpu:.2f}x)")


if __name__ == "__main__":
    main()
