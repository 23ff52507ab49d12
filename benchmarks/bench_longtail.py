"""The long-tail methods side by side: one architecture, recipe and seed, one table.

On a fixed stand-in whose shot buckets match Pl@ntNet-300K's (by species: about 27 % many
(> 100 train images), 25 % medium, 48 % few (< 20)): the real per-species counts of 40
species spread over the whole frequency range (`make_profile("plantnet300k", classes=40)`),
each species' total capped at CAP images so the run fits on 2 CPU cores (the head still
outnumbers the tail ~100 to 1, and the buckets are unchanged: every capped species stays
many-shot). Every method trains the same test-sized timm network from the same seed; cRT
retrains the classifier of the `ce` expert (through the frozen backbone over the images, and
again on its stored train features); tau-normalisation and post-hoc logit adjustment
(`plantkit combine`, tau picked on val for macro top-1) rescale its stored predictions.
Scored once on test: micro and macro top-1,
many / medium / few top-1, ECE, wall time. The table goes to docs/longtail.md.

    .venv/bin/python benchmarks/bench_longtail.py            # about 15 minutes on 2 cores
    .venv/bin/python benchmarks/bench_longtail.py --quick    # CI-sized: a minute or two
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from plantkit.combine.options import CombineOptions
from plantkit.combine.run import run_combine
from plantkit.data.profiles import make_profile, split_counts
from plantkit.data.synth import generate_dataset
from plantkit.metrics.accuracy import shot_class_counts
from plantkit.metrics.evaluate import evaluate_store
from plantkit.predict import predict_expert
from plantkit.store import open_store
from plantkit.training.config import TrainConfig
from plantkit.training.fit import train_expert

CAP = 400  # images per species at most (train gets 80 %)

# (row name, TrainConfig changes, what it is). "crt" starts from the ce expert.
METHODS = [
    ("ce", {}, "cross-entropy, instance-balanced"),
    ("ref: augment-below", {"augment_below": 100}, "reference study: rare-class augmentation"),
    ("ref: inverse sampler", {"sampler": "inverse"}, "reference study: weight 1/n per image"),
    ("ref: weighted loss", {"loss": "weighted"}, "reference study: class weights n/(C n_c)"),
    ("balanced-softmax", {"loss": "balanced-softmax"}, "Ren et al. 2020"),
    ("logit-adjusted tau 2", {"loss": "logit-adjusted", "tau": 2.0}, "Menon et al. 2021"),
    ("class-balanced", {"loss": "class-balanced", "beta": 0.999}, "Cui et al. 2019"),
    ("focal", {"loss": "focal"}, "Lin et al. 2017, gamma 2"),
    ("ldam-drw", {"loss": "ldam", "defer_epoch": "late"}, "Cao et al. 2019"),
    ("sqrt sampler", {"sampler": "sqrt"}, "Kang et al. 2020"),
    ("balanced sampler", {"sampler": "balanced"}, "class-uniform"),
    ("progressive sampler", {"sampler": "progressive"}, "Kang et al. 2020"),
    ("mixup 0.2 + balanced-softmax", {"mixup": 0.2, "loss": "balanced-softmax"},
     "Zhang et al. 2018"),
    ("cRT (ce expert)", {"retrain_head": True, "sampler": "balanced"}, "Kang et al. 2020"),
    # The same on the ce expert's stored train features (predicted once, in the wall time).
    ("cRT on stored features", {"retrain_head": True, "sampler": "balanced",
                                "stored_features": True}, "Kang et al. 2020"),
]
QUICK = ("ce", "ref: inverse sampler", "balanced-softmax", "ldam-drw", "cRT (ce expert)")
# Post-hoc on the ce expert's stored predictions (plantkit combine; tau on val for macro
# top-1): (row name, combination name, CombineOptions changes).
POST_HOC = [
    ("tau-norm (ce expert)", "tau-norm-ce", {"tau_norm": ["ce"]}),
    ("logit adjustment (ce expert)", "logit-adjust", {"logit_adjust": "auto", "adjust_on": "ce"}),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: 12 species, 2 epochs, "
                        "five methods")
    parser.add_argument("--arch", default="test_resnet")
    parser.add_argument("--epochs", type=int, default=None, help="default 12 (--quick: 2)")
    parser.add_argument("--crt-epochs", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument("--classes", type=int, default=None, help="default 40 (--quick: 12)")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds (each its own stand-in draw and training, "
                        "under WORKDIR/seed-N): every seed's table, then mean ± sd over them")
    parser.add_argument("--workdir", default=None, help="keep the dataset and experts here")
    parser.add_argument("--only", default=None,
                        help="comma-separated method names (the first row is ce always)")
    return parser.parse_args()


def bench_counts(classes: int):
    counts = make_profile("plantnet300k", classes=classes)
    totals = np.minimum(counts[["train", "val", "test"]].sum(axis=1).to_numpy(), CAP)
    capped = split_counts(totals)
    capped.index = counts.index
    capped.insert(0, "species_name", counts["species_name"].to_list())
    return capped


def recipe(args, epochs: int, seed: int) -> dict:
    late = max(1, round(epochs * 2 / 3))
    return dict(arch=args.arch, epochs=epochs, batch_size=32, lr=0.05, workers=0,
                resize=args.image_size, crop=args.image_size - 8, seed=seed,
                milestones=(late, max(late + 1, epochs - 1)))


def run_method(name: str, changes: dict, args, data: Path, artifacts: Path, epochs: int,
               crt_epochs: int, seed: int) -> dict:
    values = {**recipe(args, epochs, seed), **changes}
    stored_features = values.pop("stored_features", False)
    if values.get("defer_epoch") == "late":  # DRW at the first learning-rate drop
        values["defer_epoch"] = values["milestones"][0]
    if values.get("retrain_head"):
        values.update(init_from=str(artifacts / "experts" / "ce"), epochs=crt_epochs,
                      milestones=(crt_epochs,), arch=None)
    expert = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    config = TrainConfig(data=str(data), name=expert, overwrite=True, **values)
    timings = artifacts / "wall_s.json"  # a rerun with the same --workdir reuses finished runs
    walls = json.loads(timings.read_text()) if timings.is_file() else {}
    folder = artifacts / "experts" / expert
    if expert not in walls or not (folder / "predictions.h5").is_file():
        started = time.perf_counter()
        if stored_features:  # what `plantkit predict --split train --features` stores
            predict_expert(artifacts / "experts" / "ce", ("train", "val", "test"),
                           artifacts=artifacts, features=True, workers=0)
        folder = train_expert(config, artifacts=artifacts, quiet=True).folder
        walls[expert] = time.perf_counter() - started
        timings.write_text(json.dumps(walls))
    wall = walls[expert]
    return scored(name, folder / "predictions.h5", wall)


def scored(name: str, store_path: Path, wall: float) -> dict:
    with open_store(store_path) as store:
        test = evaluate_store(store, splits=("test",))["splits"]["test"]
    return {"method": name, "micro": test["top1"], "macro": test["macro_top1"],
            "many": test["many"], "medium": test["medium"], "few": test["few"],
            "ece": test["ece"], "wall_s": wall}


def run_post_hoc(artifacts: Path) -> list[dict]:
    """Tau-normalisation and logit adjustment of the ce expert (its val and test features
    predicted first: tau-norm needs them), each with tau picked on val for macro top-1."""
    started = time.perf_counter()
    predict_expert(artifacts / "experts" / "ce", ("val", "test"), artifacts=artifacts,
                   features=True, workers=0)
    predicted = time.perf_counter() - started
    rows = []
    for name, combination, changes in POST_HOC:
        started = time.perf_counter()
        # every expert is opened (logit adjustment wants two or more); only ce is read
        run_combine(artifacts, CombineOptions(target="macro", **changes))
        rows.append(scored(name, artifacts / "combos" / combination / "predictions.h5",
                           time.perf_counter() - started + (predicted if "tau" in name else 0)))
    return rows


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def print_table(rows: list[dict], args, counts, started: float, seed: int) -> None:
    buckets = shot_class_counts(counts["train"].to_numpy())
    print(f"\n## bench_longtail: {args.arch}, {len(counts)} species ({buckets['many']} many, "
          f"{buckets['medium']} medium, {buckets['few']} few), {int(counts['train'].sum())} "
          f"train / {int(counts['test'].sum())} test images, seed {seed}")
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"{platform.python_version()}, torch {torch.__version__}; total "
          f"{time.perf_counter() - started:.0f} s\n")
    base = rows[0]
    print("| method | micro top-1 | macro top-1 | Δ micro | Δ macro | many | medium | few "
          "| ECE | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['method']} | {pct(row['micro'])} | {pct(row['macro'])} | "
              f"{100 * (row['micro'] - base['micro']):+.1f} | "
              f"{100 * (row['macro'] - base['macro']):+.1f} | {pct(row['many'])} | "
              f"{pct(row['medium'])} | {pct(row['few'])} | {row['ece']:.3f} | "
              f"{row['wall_s']:.0f} |")


def _spread(rows: list[dict], key: str) -> str:
    values = 100 * np.array([r[key] for r in rows], dtype=float)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.1f} ± {sd:.1f}"


def _gain(rows: list[dict], bases: list[dict], key: str) -> str:
    values = 100 * np.array([r[key] - b[key] for r, b in zip(rows, bases)], dtype=float)
    return f"{values.mean():+.1f} ({values.min():+.1f} to {values.max():+.1f})"


def print_summary(by_seed: dict[int, list[dict]]) -> None:
    """Mean ± sd over the seeds of each row's micro and macro top-1 and of its gains over
    ce in the same seed (the range of the gains in brackets)."""
    seeds = sorted(by_seed)
    bases = [by_seed[s][0] for s in seeds]
    print(f"\n## bench_longtail over seeds {', '.join(map(str, seeds))}: mean ± sd "
          "(gains over ce of the same seed: mean, min to max)\n")
    print("| method | micro top-1 | macro top-1 | Δ micro | Δ macro | few |")
    print("|---|---:|---:|---:|---:|---:|")
    for i, first in enumerate(by_seed[seeds[0]]):
        rows = [by_seed[s][i] for s in seeds]
        few = [r["few"] for r in rows if r["few"] is not None]
        print(f"| {first['method']} | {_spread(rows, 'micro')} | {_spread(rows, 'macro')} | "
              f"{_gain(rows, bases, 'micro')} | {_gain(rows, bases, 'macro')} | "
              f"{pct(float(np.mean(few))) if few else '-'} |")


def run_seed(args, seed: int, workdir: Path, methods, classes: int, epochs: int,
             crt_epochs: int) -> list[dict]:
    started = time.perf_counter()
    counts = bench_counts(classes)
    data = workdir / "data"
    if not (data / "images").is_dir():
        generate_dataset(data, counts, image_size=args.image_size, seed=seed,
                         overwrite=data.exists(), workers=None)
    print(f"stand-in: {data} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    rows = []
    for name, changes, _about in methods:
        rows.append(run_method(name, changes, args, data, workdir / "artifacts", epochs,
                               crt_epochs, seed))
        print(f"seed {seed}, {name}: micro {pct(rows[-1]['micro'])} macro "
              f"{pct(rows[-1]['macro'])} ({rows[-1]['wall_s']:.0f} s)", file=sys.stderr)
    if methods[0][0] == "ce":
        rows += run_post_hoc(workdir / "artifacts")
    print_table(rows, args, counts, started, seed)
    return rows


def main() -> int:
    args = parse_args()
    classes = args.classes or (12 if args.quick else 40)
    epochs = args.epochs or (2 if args.quick else 12)
    crt_epochs = args.crt_epochs or (1 if args.quick else 3)
    methods = [m for m in METHODS if not args.quick or m[0] in QUICK]
    if args.only:
        wanted = {"ce", *(name.strip() for name in args.only.split(","))}
        methods = [m for m in methods if m[0] in wanted]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_longtail_"))
    by_seed = {seed: run_seed(args, seed, workdir / f"seed-{seed}" if len(seeds) > 1
                              else workdir, methods, classes, epochs, crt_epochs)
               for seed in seeds}
    if len(seeds) > 1:
        print_summary(by_seed)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
