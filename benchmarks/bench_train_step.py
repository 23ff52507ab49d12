"""Training-step throughput: plantkit's Keras training vs a plain PyTorch loop.

Both train the same timm model from the same initial weights on the same in-memory
batches with the same optimiser (SGD, momentum 0.9, Nesterov, coupled weight decay
1e-4, lr 0.01) and loss. plantkit runs its own code path: an Expert compiled by
`compile_expert` (TorchSGD, CrossEntropy, the top-1/top-5/macro metrics) and trained with
Keras `fit` over `EpochBatches` with the per-batch callbacks of `train_expert`. Rounds
alternate between the two so that machine load affects both alike; the median round
counts (the best round is printed too: on a shared machine it is the least disturbed).
Target on CPU: ratio >= 0.95.

    .venv/bin/python benchmarks/bench_train_step.py [--arch resnet18 --size 64 --batch 32]

plantkit's fixed cost per step (Keras's step machinery, the metrics) shows on a model
that costs nearly nothing: `--arch test_resnet --size 16 --batch 2 --steps 200 --clock cpu`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=64, help="image side, pixels")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=1081)
    parser.add_argument("--steps", type=int, default=15, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contender")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time, less disturbed on a shared machine")
    return parser.parse_args()


def make_batches(args, n: int = 8):
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(args.batch, 3, args.size, args.size, generator=g),
         torch.randint(0, args.classes, (args.batch,), generator=g))
        for _ in range(n)
    ]


def plantkit_trainer(args, batches):
    from plantkit.models.expert import create_expert
    from plantkit.training import callbacks as cb
    from plantkit.training.batches import EpochBatches, keras_input
    from plantkit.training.build import compile_expert
    from plantkit.training.config import TrainConfig

    torch.manual_seed(0)
    expert = create_expert(args.arch, args.classes, input_size=args.size)
    compile_expert(expert, TrainConfig(), args.classes)

    def loader_for_epoch(_epoch):
        for step in range(args.steps):
            images, labels = batches[step % len(batches)]
            yield images, labels, torch.arange(len(labels))

    train = EpochBatches(loader_for_epoch, args.steps)
    callbacks = [cb.StopOnNaN(),
                 cb.RichProgress(1, args.steps * args.batch, 0, args.batch, disable=True)]

    def run_round():
        expert.fit(keras_input(train), epochs=1, verbose=0, shuffle=False, callbacks=callbacks)

    return expert.backbone, run_round


def torch_trainer(args, batches):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(args.arch, num_classes=args.classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)

    def run_round():
        model.train()
        for step in range(args.steps):
            images, labels = batches[step % len(batches)]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
        loss.item()

    return model, run_round


def timed(run_round, clock) -> float:
    start = clock()
    run_round()
    return clock() - start


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = make_batches(args)
    contenders = {"torch": torch_trainer(args, batches),
                  "plantkit": plantkit_trainer(args, batches)}
    same_init = all(
        torch.equal(a, b) for a, b in zip(contenders["torch"][0].state_dict().values(),
                                          contenders["plantkit"][0].state_dict().values())
    )
    print(f"{args.arch} at {args.size} px, batch {args.batch}, {args.classes} classes, "
          f"{args.steps} steps x {args.rounds} rounds, {torch.get_num_threads()} threads, "
          f"{args.clock} clock, same initial weights: {same_init}")
    for _, run_round in contenders.values():
        run_round()  # warm-up: allocations, Keras's first build
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    seconds = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (_, run_round) in contenders.items():
            seconds[name].append(timed(run_round, clock))
    median_rate, best_rate = {}, {}
    for name, times in seconds.items():
        median_rate[name] = args.steps / statistics.median(times)
        best_rate[name] = args.steps / min(times)
        print(f"{name:>9}: {median_rate[name]:6.2f} steps/s  "
              f"{median_rate[name] * args.batch:8.1f} images/s  (median round; best round "
              f"{best_rate[name]:.2f} steps/s, rounds {min(times):.2f}-{max(times):.2f} s)")
    # On a shared machine the best round is the least disturbed one: report both.
    print(f"    ratio: {median_rate['plantkit'] / median_rate['torch']:.3f} median, "
          f"{best_rate['plantkit'] / best_rate['torch']:.3f} best (plantkit / torch; "
          "target >= 0.95)")


if __name__ == "__main__":
    main()
