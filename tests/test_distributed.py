"""Data-parallel training (plantkit.training.distributed): the global batch order, the
2-process gloo run against one process of the doubled batch, --devices end to end with a
kill and --resume, and the refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import cli, one_torch_thread  # noqa: F401 (an autouse fixture)

from plantkit.data.loading import EpochSampler
from plantkit.data.synth import generate_dataset
from plantkit.errors import PlantkitInputError
from plantkit.training.config import TrainConfig
from plantkit.training.fit import train_expert
from plantkit.training.launch import launch

# 4 species x 40 train images, global batch 16: 10 steps an epoch, 20 in two epochs.
CLASSES, TRAIN, PER_PROCESS, EPOCHS = 4, 40, 8, 2
# test_convnext normalises with LayerNorm: no BatchNorm statistics of a process's own share.
RECIPE = ("--arch", "test_convnext", "--epochs", str(EPOCHS), "--crop", "32", "--resize", "32",
          "--workers", "0", "--quiet")


@pytest.mark.parametrize("order", ["none", "inverse", "sqrt", "balanced", "progressive"])
@pytest.mark.parametrize(("n", "batch", "world"), [(17, 3, 2), (40, 4, 3), (9, 2, 2), (5, 1, 2)])
def test_processes_read_the_one_process_order_of_the_global_batch(order, n, batch, world):
    labels = np.arange(n) % 3
    alone = list(EpochSampler(labels, order=order, seed=4, epoch=2, batch_size=batch * world))
    shares = [list(EpochSampler(labels, order=order, seed=4, epoch=2, batch_size=batch,
                                rank=r, world=world)) for r in range(world)]
    steps = [len(range(0, len(share), batch)) for share in shares]
    assert len(set(steps)) == 1, steps  # every process takes as many steps
    # Step k of the one process = the k-th batch of each process, rank after rank (the last,
    # shorter global batch is shared out in order too).
    rebuilt = []
    for k in range(steps[0]):
        for share in shares:
            rebuilt += share[k * batch:(k + 1) * batch]
    # A last global batch of under 2 images a process is left out (the one process keeps
    # it from 2 images on): that tail at most.
    assert rebuilt == alone[:len(rebuilt)]
    assert 0 <= len(alone) - len(rebuilt) < 2 * world
    assert all(min(len(s[k * batch:(k + 1) * batch]) for s in shares) >= 2 or batch == 1
               for k in range(steps[0]))


def test_a_last_global_batch_of_under_two_images_a_process_is_left_out():
    labels = np.zeros(2 * 8 + 3, dtype=np.int64)  # two global batches of 8, then 3 < 2 x 2
    shares = [EpochSampler(labels, order="none", seed=0, epoch=0, batch_size=4, rank=r,
                           world=2) for r in range(2)]
    assert [len(s) for s in shares] == [8, 8]
    # One process: only a final batch of exactly one image goes (the recipe's rule).
    assert len(EpochSampler(labels, order="none", seed=0, epoch=0, batch_size=6)) == 18
    assert len(EpochSampler(labels[:-1], order="none", seed=0, epoch=0, batch_size=6)) == 18


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    counts = pd.DataFrame(
        {"species_name": [f"Genus{i} species{i}" for i in range(CLASSES)],
         "train": TRAIN, "val": 4, "test": 4},
        index=pd.Index([str(10 + i) for i in range(CLASSES)], name="class_id"),
    )
    return generate_dataset(tmp_path_factory.mktemp("ddp") / "ds", counts, image_size=40,
                            seed=1)


def _weights_after(run: Path, epoch: int) -> dict[str, torch.Tensor]:
    folder = run / "checkpoints" / f"epoch-{epoch:04d}"
    return torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _train(artifacts: Path, root: Path, *extra: str) -> None:
    code, out, err = cli("--artifacts", artifacts, "train", "--data", root, *RECIPE, *extra)
    assert code == 0, err


def test_two_gloo_processes_train_the_weights_of_one_process_and_resume_exactly(tiny_root,
                                                                             tmp_path):
    artifacts = tmp_path / "art"
    _train(artifacts, tiny_root, "--batch-size", str(2 * PER_PROCESS), "--expert", "one")
    _train(artifacts, tiny_root, "--batch-size", str(PER_PROCESS), "--devices", "2",
           "--expert", "two")
    one, two = artifacts / "experts" / "one", artifacts / "experts" / "two"
    last = EPOCHS - 1  # after 20 steps of the global batch
    difference = _max_difference(_weights_after(one, last), _weights_after(two, last))
    print(f"max |one process - two processes| after {EPOCHS * 10} steps: {difference:.3g}")
    assert difference < 1e-5
    recorded = json.loads((two / "train_config.json").read_text())["config"]
    assert recorded["devices"] == 2 and recorded["batch_size"] == PER_PROCESS
    # Only rank 0 wrote: one history row an epoch, one store.
    history = (two / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + EPOCHS
    assert (two / "predictions.h5").is_file()

    # Killed (kill -9 of the launcher) after its first epoch, then resumed: the same weights.
    command = [sys.executable, "-m", "plantkit", "--artifacts", str(artifacts), "train",
               "--data", str(tiny_root), *RECIPE, "--batch-size", str(PER_PROCESS),
               "--devices", "2", "--expert", "killed"]
    killed = artifacts / "experts" / "killed"
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = killed / "checkpoints" / "state.json"
    deadline = time.monotonic() + 300
    while not state.is_file() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    assert json.loads(state.read_text())["next_epoch"] == 1
    assert not (killed / "predictions.h5").exists()
    _train(artifacts, tiny_root, "--resume", "--devices", "2", "--expert", "killed")
    assert _max_difference(_weights_after(two, last), _weights_after(killed, last)) < 1e-6
    rows = (killed / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + EPOCHS


def test_sync_bn_without_gpus_is_refused_before_any_process_starts(tiny_root, tmp_path):
    code, out, err = cli("--artifacts", tmp_path, "train", "--data", tiny_root, *RECIPE,
                         "--devices", "2", "--sync-bn")
    assert code == 2
    assert err.count("--sync-bn needs GPUs") == 1
    assert not (tmp_path / "experts").exists()


def test_the_launch_exits_with_the_first_failing_process_s_status(tmp_path, capfd):
    # Every process refuses the missing dataset itself (as a torchrun launch would).
    code = launch(2, ["--artifacts", str(tmp_path), "train", "--data", str(tmp_path / "none"),
                      "--devices", "2"])
    assert code == 2
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_devices_must_be_a_positive_number(value, tmp_path):
    code, _, err = cli("--artifacts", tmp_path, "train", "--devices", value)
    assert code == 2
    assert "--devices" in err


def test_the_library_refuses_several_devices_in_one_process(tiny_root, tmp_path):
    with pytest.raises(PlantkitInputError, match="--devices 2 trains in 2 processes"):
        train_expert(TrainConfig(data=str(tiny_root), devices=2, epochs=1), artifacts=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="GPUs: --devices counts GPUs there")
def test_more_cpu_processes_than_cores_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    code, _, err = cli("--artifacts", tmp_path, "train", "--devices", "3")
    assert code == 2 and "start at most 2 processes" in err


def test_training_batches_of_one_image_are_refused_up_front(tmp_path):
    code, _, err = cli("--artifacts", tmp_path, "train", "--batch-size", "1")
    assert code == 2 and "--batch-size must be at least 2" in err


def test_the_long_tail_options_train_alike_in_two_processes(tiny_root, tmp_path):
    # LDAM-DRW (its class weights from epoch 1) over the progressive sampler: the loss and
    # the draws of two processes of batch P are one process's of batch 2P.
    artifacts = tmp_path / "art"
    options = ("--loss", "ldam", "--defer-epoch", "1", "--sampler", "progressive")
    _train(artifacts, tiny_root, *options, "--batch-size", str(2 * PER_PROCESS),
           "--expert", "one")
    _train(artifacts, tiny_root, *options, "--batch-size", str(PER_PROCESS), "--devices", "2",
           "--expert", "two")
    one, two = artifacts / "experts" / "one", artifacts / "experts" / "two"
    last = EPOCHS - 1
    assert _max_difference(_weights_after(one, last), _weights_after(two, last)) < 1e-5
    # Mixup and CutMix mix each process's share (partners within it): trained and recorded.
    _train(artifacts, tiny_root, "--mixup", "0.4", "--cutmix", "1.0", "--batch-size",
           str(PER_PROCESS), "--devices", "2", "--expert", "mixed")
    recorded = json.loads((artifacts / "experts" / "mixed" / "train_config.json")
                          .read_text())["config"]
    assert (recorded["mixup"], recorded["cutmix"], recorded["devices"]) == (0.4, 1.0, 2)
