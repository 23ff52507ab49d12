"""Prediction throughput: Expert.predict_batch vs a plain torch eval loop over the same model.

Both loops stream the same pre-made batches through the same backbone object and copy
the logits to NumPy, as a prediction store would; they run alternately, several rounds,
and the ratio of their median images/s is printed (target >= 0.95).

    .venv/bin/python benchmarks/bench_predict.py [--arch resnet18] [--image-size 64]
        [--batch-size 32] [--batches 20] [--rounds 5] [--features]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from plantkit.models.expert import create_expert


def plain_torch_loop(model: torch.nn.Module, batches: list[torch.Tensor], num_classes: int):
    out = np.empty((sum(len(b) for b in batches), num_classes), dtype=np.float32)
    model.eval()
    start = 0
    with torch.inference_mode():
        for images in batches:
            logits = model(images).float()
            out[start:start + len(images)] = logits.cpu().numpy()
            start += len(images)
    return out


def plantkit_loop(expert, batches: list[torch.Tensor], num_classes: int, features: bool):
    out = np.empty((sum(len(b) for b in batches), num_classes), dtype=np.float32)
    start = 0
    for images in batches:
        logits, _ = expert.predict_batch(images, features=features)
        out[start:start + len(images)] = logits.cpu().numpy()
        start += len(images)
    return out


def images_per_second(run, n_images: int) -> float:
    begin = time.perf_counter()
    run()
    return n_images / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--classes", type=int, default=1081)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--features", action="store_true",
                        help="plantkit also returns penultimate features (one forward pass)")
    args = parser.parse_args()

    torch.manual_seed(0)
    expert = create_expert(args.arch, args.classes, input_size=args.image_size)
    batches = [torch.randn(args.batch_size, 3, args.image_size, args.image_size)
               for _ in range(args.batches)]
    n_images = args.batch_size * args.batches
    model = expert.backbone  # the very module the expert wraps

    plain = lambda: plain_torch_loop(model, batches, args.classes)  # noqa: E731
    ours = lambda: plantkit_loop(expert, batches, args.classes, args.features)  # noqa: E731
    np.testing.assert_allclose(ours(), plain(), atol=1e-5)  # same numbers; also a warm-up

    load_before = os.getloadavg()
    rates = {"torch": [], "plantkit": []}
    for round_ in range(args.rounds):
        order = [("torch", plain), ("plantkit", ours)]
        for name, run in order if round_ % 2 == 0 else reversed(order):
            rates[name].append(images_per_second(run, n_images))
    load_after = os.getloadavg()

    print(f"{args.arch} at {args.image_size} px, batch {args.batch_size}, {n_images} images x "
          f"{args.rounds} rounds, {torch.get_num_threads()} torch threads, device "
          f"{expert.device}{', with features' if args.features else ''}")
    print(f"load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    for name, values in rates.items():
        print(f"{name:>9}: median {statistics.median(values):8.1f} images/s  "
              f"(rounds: {', '.join(f'{v:.1f}' for v in values)})")
    ratio = statistics.median(rates["plantkit"]) / statistics.median(rates["torch"])
    print(f"ratio plantkit / torch: {ratio:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
