"""`plantkit classify` on new images: the dense average of three experts of very different
costs against the cascade and the top-1 router of the same experts, in one run.

Trains test_resnet, mobilenetv3_small_050 and resnet18 (about 30x test_resnet's GFLOPs) for
a few epochs on a synthetic dataset (the cheapest with penultimate features, the router's
input), combines them (average, weighted, cascade, router --top-k 1), then classifies the
test split's image files with each, as `plantkit classify` does, and prints per model:
test top-1 (from the image folders' classes), images/s, measured and expected GFLOPs per
image, and images/s against the dense average. Two cascades: one within --within of the
average's val top-1 (the accuracy-first operating point), one under a GFLOPs budget of
--budget-share times the average's (the compute-first one). Every model classifies the images
once as a warm-up first (the first forward passes of a model are slower), then once measured.

At 128 px the experts' forward passes, not decoding, dominate the time per image, so images/s
follow GFLOPs; at 64 px decoding and per-batch overhead cap any ratio near 3x.

    .venv/bin/python benchmarks/bench_classify.py [--classes 6] [--scale 0.04] [--epochs 3]
        [--image-size 128] [--within 0.02] [--budget-share 0.25] [--workers 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)

import torch  # isort: skip

from plantkit.classify import classify_images, find_images, resolve_model
from plantkit.combine.options import CombineOptions
from plantkit.combine.run import run_combine
from plantkit.data.layout import open_dataset
from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.training.config import TrainConfig
from plantkit.training.fit import train_expert

EXPERTS = {"tiny": "test_resnet", "mobile": "mobilenetv3_small_050", "r18": "resnet18"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--scale", type=float, default=0.04)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--within", type=float, default=0.02,
                        help="the cascade's val top-1 margin below the average")
    parser.add_argument("--budget-share", type=float, default=0.25,
                        help="the budget cascade's GFLOPs as a share of the average's")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "art"
        root = generate_dataset(Path(tmp) / "data",
                                make_profile("uniform", classes=args.classes, scale=args.scale),
                                image_size=args.image_size)
        crop = args.image_size - args.image_size // 8
        for name, arch in EXPERTS.items():
            train_expert(TrainConfig(data=str(root), arch=arch, name=name, epochs=args.epochs,
                                     milestones=(), resize=args.image_size, crop=crop,
                                     workers=args.workers, lr=0.05, features=True),
                         artifacts=art, quiet=True)
        results = run_combine(art, CombineOptions(average=True, weighted=True, cascade=True,
                                                  within=args.within))
        dense_gflops = next(c["expected_gflops"] for c in results["combinations"]
                            if c["name"] == "average")
        run_combine(art, CombineOptions(cascade=True, budget=args.budget_share * dense_gflops,
                                        prefix="budget"))
        run_combine(art, CombineOptions(router=True, top_k=1, prefix="top1"))
        dataset = open_dataset(root)
        test = dataset.splits["test"]
        truth = {str(dataset.images_dir / p): dataset.class_ids[y]
                 for p, y in zip(test.paths, test.labels)}
        images = find_images([dataset.images_dir / p for p in test.paths])
        print(f"{os.cpu_count()} cores; {len(images)} test images of {args.classes} classes, "
              f"{args.image_size} px")
        rows = {}
        for name in ("average", "weighted", "cascade", "budget-cascade", "top1-router",
                     *EXPERTS):
            model = resolve_model(art, name)
            classify_images(model, images, top=1, workers=args.workers)  # warm-up
            result = classify_images(model, images, top=1, workers=args.workers)
            hits = [image["top"][0]["species_id"] == truth[image["path"]]
                    for image in result["images"]]
            rows[name] = (sum(hits) / len(hits), result["cost"])
        dense = rows["average"][1]["images_per_s"]
        print(f"{'model':<14} {'top-1':>7} {'images/s':>9} {'GFLOPs meas.':>13} "
              f"{'expected':>9} {'meas./exp.':>10} {'x dense':>8}")
        for name, (top1, cost) in rows.items():
            measured, expected = (cost["measured_gflops_per_image"],
                                  cost["expected_gflops_per_image"])
            agreement = "-" if not expected else f"{measured / expected:.4f}"
            print(f"{name:<14} {top1:7.3f} {cost['images_per_s']:9.1f} {measured:13.5f} "
                  f"{'-' if expected is None else f'{expected:.5f}':>9} {agreement:>10} "
                  f"{cost['images_per_s'] / dense:8.2f}")


if __name__ == "__main__":
    main()
