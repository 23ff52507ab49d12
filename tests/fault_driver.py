"""Kill a writing command at every step of the write protocol, then rerun or resume it.

Run as `python tests/fault_driver.py SCENARIO WORKDIR [--every K]` (K: see each scenario);
prints one JSON object (the test in tests/test_faults.py asserts on it). Each attempt runs in
a forked child that `PLANTKIT_FAULT_AT=N` kills with SIGKILL at the N-th step
(plantkit.artifacts.protocol), so what is left on disk is exactly what a kill -9 leaves.
The parent keeps torch on one thread, so forking is safe, and runs the scenario's command once
itself before forking: the children inherit its imports and lazy initialisation, so each
attempt takes under a second instead of five (the train scenario: 40 s, not 8 minutes).

Scenarios:
- train: a 2-epoch training killed at step N, then `--resume` (or, when it refuses, a
  fresh `--overwrite` run); the final expert must equal the uninterrupted one.
- combine: `combine --average --cascade` over two imported experts, killed at step N while a
  previous combination of the same names exists; every listed store must read and the
  rerun must equal the uninterrupted result.
- synth: `data synth --overwrite` over an existing generated dataset, killed at step N; the
  dataset must open as the old or the new one, and the rerun leaves the new one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

import torch

torch.set_num_threads(1)

import numpy as np  # noqa: E402

from plantkit.artifacts import protocol  # noqa: E402
from plantkit.errors import PlantkitInputError  # noqa: E402


def in_child(fn, *, fault_at: int | None = None, log: Path | None = None) -> dict:
    """Run fn() in a forked child; {'killed': bool, 'code': int, 'error': str|None}."""
    error_file = Path(os.environ["FAULT_WORK"]) / "child-error.txt"
    error_file.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            protocol.reset_fault_steps()
            os.environ.pop(protocol.FAULT_AT_ENV, None)
            os.environ.pop(protocol.FAULT_LOG_ENV, None)
            if fault_at is not None:
                os.environ[protocol.FAULT_AT_ENV] = str(fault_at)
            if log is not None:
                os.environ[protocol.FAULT_LOG_ENV] = str(log)
            fn()
        except PlantkitInputError as exc:
            error_file.write_text(f"input: {exc}")
            code = 2
        except BaseException:  # noqa: BLE001 - reported to the parent
            error_file.write_text(traceback.format_exc())
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return {"killed": killed, "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1,
            "error": error_file.read_text() if error_file.exists() else None}


def count_steps(fn, work: Path) -> list[str]:
    log = work / "steps.log"
    log.unlink(missing_ok=True)
    result = in_child(fn, log=log)
    if result["code"] != 0:
        raise RuntimeError(f"the uninterrupted run failed: {result['error']}")
    return [line.split("\t", 1)[1] for line in log.read_text().splitlines()] if log.exists() else []


def leftovers(root: Path) -> list[str]:
    """Hidden temporaries and old versions of the protocol anywhere under root."""
    found = []
    for path in root.rglob("*"):
        if path.name.startswith(".") and (protocol.TMP_MARK in path.name
                                          or protocol.OLD_MARK in path.name):
            found.append(str(path.relative_to(root)))
    return sorted(found)


# --- train ---------------------------------------------------------------------------------

def _train_setup(work: Path):
    from plantkit.data.profiles import make_profile
    from plantkit.data.synth import generate_dataset
    from plantkit.training.config import TrainConfig

    data = work / "data"
    if not data.exists():
        generate_dataset(data, make_profile("uniform", classes=3, scale=0.001), image_size=32,
                         seed=0)
    config = TrainConfig(data=str(data), arch="test_resnet", name="x", epochs=2, resize=32,
                         crop=24, batch_size=8, workers=0, milestones=(1,), lr=0.05, seed=0)
    return config


def _train(config, artifacts: Path, **changes):
    import dataclasses

    from plantkit.training.fit import train_expert

    train_expert(dataclasses.replace(config, **changes), artifacts=artifacts, quiet=True)


def _expert_summary(artifacts: Path) -> dict:
    import torch

    from plantkit.artifacts import HISTORY_TIMING_COLUMNS, read_history_rows, read_json
    from plantkit.store import open_store

    run = artifacts / "experts" / "x"
    weights = torch.load(run / "weights.pt", weights_only=True)
    with open_store(run / "predictions.h5") as store:
        logits = {s: store.logits(s).tolist() for s in store.splits}
    rows = [{k: v for k, v in row.items() if k not in HISTORY_TIMING_COLUMNS}
            for row in read_history_rows(run / "history.csv")]
    return {
        "weights": {k: v.flatten().tolist() for k, v in weights.items()},
        "logits": logits,
        "best_epoch": read_json(run / "expert.json")["origin"]["best_epoch"],
        "history": rows,
    }


def train_kill_points(steps: list[str], every: int) -> list[int]:
    """Every step from the second epoch's first write to the end (that epoch, then the final
    expert and its store), and every `every`-th step before (the first epoch's steps have
    the same shape, but no resume point before them)."""
    first = next(i for i, what in enumerate(steps, 1) if "epoch-0001" in what)
    return sorted({*range(1, first, every), *range(first, len(steps) + 1)})


def scenario_train(work: Path, every: int) -> dict:
    config = _train_setup(work)
    # One training in this process first: the forked children then inherit its imports and
    # torch/Keras lazy initialisation (about 5 s a child otherwise, 8 minutes in all).
    _train(config, work / "warm-up")
    reference = work / "reference"
    steps = count_steps(lambda: _train(config, reference), work)
    expected = _expert_summary(reference)
    outcomes = []
    for n in train_kill_points(steps, every):
        root = work / f"kill{n}"
        killed = in_child(lambda root=root: _train(config, root), fault_at=n)
        resumed = in_child(lambda root=root: _train(config, root, resume=True))
        how = "resume"
        if resumed["code"] == 2:  # refused, saying how to continue
            how = "refused: " + resumed["error"].splitlines()[0]
            resumed = in_child(lambda root=root: _train(config, root, overwrite=True))
        same = resumed["code"] == 0 and _expert_summary(root) == expected
        outcomes.append({"step": n, "what": steps[n - 1], "killed": killed["killed"],
                         "how": how, "code": resumed["code"], "error": resumed["error"],
                         "same": same, "leftovers": leftovers(root)})
    return {"steps": len(steps), "outcomes": outcomes}


# --- combine -------------------------------------------------------------------------------

def _combine(root: Path, seed: int = 0):
    from plantkit.combine.options import CombineOptions
    from plantkit.combine.run import run_combine

    run_combine(root, CombineOptions(average=True, cascade=True, seed=seed))


def _combine_setup(root: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from combine_helpers import DEFAULT_SPECS, make_experts

    make_experts(root, DEFAULT_SPECS[:2], n_val=60, n_test=60)


def _stores_summary(root: Path) -> dict:
    """Every listed store read completely (checksums verified): {name: test logits}."""
    from plantkit.artifacts import find_stores
    from plantkit.store import open_store

    out = {}
    for path in find_stores(root):
        with open_store(path) as store:
            out[f"{store.kind}/{store.name}"] = {s: store.logits(s).tolist() for s in store.splits}
    return out


def scenario_combine(work: Path, every: int) -> dict:
    reference = work / "reference"
    _combine_setup(reference)
    _combine_setup(work / "warm-up")  # forked children inherit the warm imports (see train)
    _combine(work / "warm-up")
    in_child(lambda: _combine(reference, seed=1))  # an older combination of the same names
    steps = count_steps(lambda: _combine(reference), work)
    expected = _stores_summary(reference)
    outcomes = []
    for n in range(1, len(steps) + 1, every):
        root = work / f"kill{n}"
        _combine_setup(root)
        in_child(lambda root=root: _combine(root, seed=1))
        before = _stores_summary(work / f"kill{n}")
        killed = in_child(lambda root=root: _combine(root), fault_at=n)
        after_kill = in_child(lambda root=root: _stores_summary(root))  # lists and reads
        listed = sorted(_stores_summary(root))
        rerun = in_child(lambda root=root: _combine(root))
        same = rerun["code"] == 0 and _stores_summary(root) == expected
        outcomes.append({"step": n, "what": steps[n - 1], "killed": killed["killed"],
                         "readable_after_kill": after_kill["code"] == 0,
                         "listed_after_kill": listed, "listed_before": sorted(before),
                         "code": rerun["code"], "error": rerun["error"] or after_kill["error"],
                         "same": same, "leftovers": leftovers(root)})
    return {"steps": len(steps), "outcomes": outcomes}


# --- synth --overwrite -------------------------------------------------------------------------

def _synth(target: Path, seed: int, overwrite: bool = True):
    from plantkit.data.profiles import make_profile
    from plantkit.data.synth import generate_dataset

    generate_dataset(target, make_profile("uniform", classes=2, scale=0.002), image_size=32,
                     seed=seed, overwrite=overwrite)


def _fingerprint(target: Path) -> str | None:
    from plantkit.data.layout import open_dataset

    try:
        return open_dataset(target).fingerprint
    except PlantkitInputError:
        return None


def scenario_synth(work: Path, every: int) -> dict:
    reference = work / "reference" / "ds"
    _synth(reference, seed=1, overwrite=False)
    old = _fingerprint(reference)
    steps = count_steps(lambda: _synth(reference, seed=2), work)
    new = _fingerprint(reference)
    outcomes = []
    for n in range(1, len(steps) + 1, every):
        target = work / f"kill{n}" / "ds"
        _synth(target, seed=1, overwrite=False)
        killed = in_child(lambda target=target: _synth(target, seed=2), fault_at=n)
        seen = _fingerprint(target)
        rerun = in_child(lambda target=target: _synth(target, seed=2))
        outcomes.append({"step": n, "what": steps[n - 1], "killed": killed["killed"],
                         "after_kill": "old" if seen == old else "new" if seen == new else "none",
                         "code": rerun["code"], "error": rerun["error"],
                         "same": _fingerprint(target) == new,
                         "leftovers": leftovers(target.parent)})
    return {"steps": len(steps), "old_differs": old != new, "outcomes": outcomes}


SCENARIOS = {"train": scenario_train, "combine": scenario_combine, "synth": scenario_synth}


def main(argv: list[str]) -> None:
    scenario, work = argv[0], Path(argv[1])
    every = int(argv[argv.index("--every") + 1]) if "--every" in argv else 1
    work.mkdir(parents=True, exist_ok=True)
    os.environ["FAULT_WORK"] = str(work)
    np.seterr(all="ignore")
    print(json.dumps(SCENARIOS[scenario](work, every)))


if __name__ == "__main__":
    main(sys.argv[1:])
