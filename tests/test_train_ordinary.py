"""`plantkit train` on ordinary data: no val split, awkward sizes, corrupt images, failed runs.

Tiny datasets (3 classes, 40 px images) and timm's `test_resnet` at 32 px keep every run to
seconds on two CPU cores.
"""

from __future__ import annotations

import json
import shutil

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)

import keras  # isort: skip
import numpy as np
import pytest
import torch
from cli_helpers import cli, one_torch_thread, refused  # noqa: F401 (an autouse fixture)

from plantkit.artifacts import read_history_rows
from plantkit.data.layout import open_dataset
from plantkit.data.loading import make_loader, verify_command
from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.data.transforms import TransformSpec
from plantkit.store import open_store
from plantkit.training.batches import EpochBatches
from plantkit.training.config import TrainConfig
from plantkit.training.fit import train_expert

TINY = ["--arch", "test_resnet", "--resize", "40", "--crop", "32", "--workers", "0",
        "--milestones", "1", "--lr", "0.05", "--quiet"]
RUN = ("experts", "test_resnet")


def three_classes(root, per_class_total: int):
    """3 classes of `per_class_total` images, split 80/10/10 (synth's rule)."""
    counts = make_profile("uniform", classes=3, scale=per_class_total / 9012)
    return generate_dataset(root, counts, image_size=40, seed=0)


def corrupt(files, n: int) -> list:
    """Truncate n of `files`, spread over them; returns the victims."""
    victims = files[:: max(1, len(files) // n)][:n]
    for path in victims:
        path.write_bytes(path.read_bytes()[:40])
    return victims


@pytest.fixture(scope="module")
def forty_five(tmp_path_factory):
    """3 x (15 train, 2 val, 2 test): 45 train images."""
    root = three_classes(tmp_path_factory.mktemp("data") / "forty-five", 19)
    assert len(open_dataset(root).splits["train"]) == 45
    return root


# --- a dataset without val ------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_val(tmp_path_factory):
    """3 x (34 train, 5 test): the val folder removed."""
    root = three_classes(tmp_path_factory.mktemp("data") / "no-val", 44)
    shutil.rmtree(root / "images" / "val")
    return root


def test_no_val_split_is_refused_naming_the_option(no_val, tmp_path):
    line = refused("--artifacts", tmp_path, "train", "--data", no_val, "--epochs", 1, *TINY)
    assert "no val split" in line and "--val-from-train" in line
    assert "--seed" not in line.replace("--val-seed", "")  # train's --seed is not the carve's
    assert not (tmp_path / "experts").exists()


def test_val_carved_from_train_is_recorded_resumed_and_predicted_on(no_val, tmp_path):
    carve = ["--val-from-train", "0.2", "--val-seed", "3"]
    code, _, err = cli("--artifacts", tmp_path, "train", "--data", no_val, "--epochs", 1,
                       "--batch-size", 16, *carve, *TINY)
    assert code == 0, err
    run_dir = tmp_path.joinpath(*RUN)
    expected = open_dataset(no_val, val_from_train=0.2, seed=3)
    assert len(expected.splits["val"]) == 3 * 7 and len(expected.splits["train"]) == 3 * 27
    saved = json.loads((run_dir / "train_config.json").read_text())
    assert saved["config"]["val_from_train"] == 0.2 and saved["config"]["val_seed"] == 3
    assert saved["dataset"]["val_from_train"] == {"fraction": 0.2, "seed": 3}
    assert saved["dataset"]["fingerprint"] == expected.fingerprint
    with open_store(run_dir / "predictions.h5") as store:
        assert store.fingerprint == expected.fingerprint
        assert store.paths("val") == expected.splits["val"].paths  # carved: train/... images
        assert all(p.startswith("train/") for p in store.paths("val"))

    # --resume reopens the same split (a resume on other splits is refused by fingerprint).
    line = refused("--artifacts", tmp_path, "train", "--resume", "--expert", "test_resnet",
                   "--val-seed", "4", "--quiet")
    assert "--val-seed 4 differs" in line
    code, _, err = cli("--artifacts", tmp_path, "train", "--resume", "--expert", "test_resnet",
                       "--epochs", 2, "--quiet")
    assert code == 0, err
    assert [int(r["epoch"]) for r in read_history_rows(run_dir / "history.csv")] == [0, 1]

    # predict finds the dataset through train_config.json, carved the same way.
    with open_store(run_dir / "predictions.h5") as store:
        val_before = store.logits("val")
    code, _, err = cli("--artifacts", tmp_path, "predict", "--expert", "test_resnet",
                       "--split", "val", "--workers", 0, "--quiet")
    assert code == 0, err
    with open_store(run_dir / "predictions.h5") as store:
        assert store.paths("val") == expected.splits["val"].paths
        np.testing.assert_allclose(store.logits("val"), val_before, rtol=2e-3, atol=2e-3)


def test_verify_command_reopens_a_carved_dataset(no_val, forty_five):
    carved = open_dataset(no_val, val_from_train=0.2, seed=3)
    assert verify_command(carved) == (
        f"plantkit data inspect --data {no_val} --val-from-train 0.2 --val-seed 3 --verify")
    assert verify_command(open_dataset(forty_five)) == (
        f"plantkit data inspect --data {forty_five} --verify")


# --- a final batch of one image ---------------------------------------------------------------


def test_a_final_batch_of_one_image_is_dropped_in_training_only(forty_five):
    dataset = open_dataset(forty_five)
    spec = TransformSpec(resize=8, crop=8)
    train = make_loader(dataset, "train", spec=spec, train=True, batch_size=44, workers=0)
    assert len(train) == 1 and train.num_images == 44
    left_out = set()
    for epoch in range(4):
        train.set_epoch(epoch)
        (images, _, rows), = list(train)
        assert len(images) == 44
        left_out |= set(range(45)) - set(rows.tolist())
    assert len(left_out) > 1  # shuffling leaves another image out in each epoch
    # 45 = 2 x 22 + 1 would also end on one image; 45 = 2 x 20 + 5 keeps every image.
    assert [len(b[0]) for b in make_loader(dataset, "train", spec=spec, train=True,
                                           batch_size=20, workers=0)] == [20, 20, 5]
    evaluation = make_loader(dataset, "train", spec=spec, train=False, batch_size=44, workers=0)
    assert [len(b[0]) for b in evaluation] == [44, 1]  # evaluation keeps every image


def test_training_45_images_with_batch_size_44_succeeds(forty_five, tmp_path):
    code, _, err = cli("--artifacts", tmp_path, "train", "--data", forty_five, "--epochs", 1,
                       "--batch-size", 44, *TINY)
    assert code == 0, err
    with open_store(tmp_path.joinpath(*RUN, "predictions.h5")) as store:
        assert store.num_rows("val") == 6 and store.num_rows("test") == 6


def test_epoch_batches_skip_single_images_and_finish_the_pass_before_the_last():
    finished = []

    def loader(epoch):
        for size in (3, 1, 2):
            yield torch.zeros(size, 1), torch.zeros(size, dtype=torch.int64), None
        finished.append(epoch)

    batches = EpochBatches(loader, 2, min_batch=2)
    iterator = iter(batches)
    assert len(next(iterator)[1]) == 3 and not finished
    assert len(next(iterator)[1]) == 2
    assert finished == [0]  # the pass ended before its last batch was handed over
    assert batches.images_seen == 5
    assert [len(y) for _, y in EpochBatches(loader, 3)] == [3, 1, 2]  # evaluation: all


# --- corrupt images --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_fifty(tmp_path_factory):
    """3 x (50 train, 7 val, 7 test): 150 train images."""
    return three_classes(tmp_path_factory.mktemp("data") / "one-fifty", 64)


def test_one_corrupt_image_in_150_warns_once_per_epoch(one_fifty, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(one_fifty, root)
    dataset = open_dataset(root)
    assert len(dataset.splits["train"]) == 150
    victim, = corrupt([dataset.images_dir / p for p in dataset.splits["train"].paths], 1)
    code, _, err = cli("--artifacts", tmp_path / "a", "train", "--data", root, "--epochs", 2,
                       "--batch-size", 32, *TINY)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, err  # one line per epoch
    for epoch, line in enumerate(warnings, 1):
        assert f"epoch {epoch}/2 skipped 1 corrupt image (1 of 150 train images)" in line
        assert str(victim) in line
        assert f"plantkit data inspect --data {root} --verify" in line
    rows = read_history_rows(tmp_path.joinpath("a", *RUN, "history.csv"))
    assert [int(r["corrupt_images"]) for r in rows] == [1, 1]


def test_the_limit_is_per_split(one_fifty, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(one_fifty, root)
    dataset = open_dataset(root)
    victim, = corrupt([dataset.images_dir / p for p in dataset.splits["val"].paths], 1)
    # 1 of 171 images read in an epoch, but 1 of the 21 val images: more than 1 % of val.
    line = refused("--artifacts", tmp_path / "a", "train", "--data", root, "--epochs", 2,
                   "--batch-size", 32, *TINY)
    assert line.startswith("error: 1 of 21 images read are corrupt, more than 1%: ")
    assert str(victim) in line


def test_31_percent_corrupt_stops_with_exit_2_and_a_rerun_is_not_blocked(forty_five, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(forty_five, bad)
    files = sorted((bad / "images" / "train").rglob("*.jpg"))
    corrupt(files, 14)  # 31 % of 45: fewer than 100 images, so judged at the end of the pass
    artifacts = tmp_path / "artifacts"
    line = refused("--artifacts", artifacts, "train", "--data", bad, "--epochs", 1,
                   "--batch-size", 16, *TINY)
    assert line.startswith("error: 14 of 45 images read are corrupt, more than 1%: ")
    assert f"`plantkit data inspect --data {bad} --verify`" in line
    # The failed run wrote train_config.json in epoch 0; it leaves nothing behind.
    assert not artifacts.joinpath(*RUN).exists()
    code, _, err = cli("--artifacts", artifacts, "train", "--data", forty_five, "--epochs", 1,
                       "--batch-size", 16, *TINY)
    assert code == 0, err
    assert artifacts.joinpath(*RUN, "expert.json").is_file()


class FailInFirstEpoch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise RuntimeError("a crash in epoch 0")


def test_a_crash_before_the_first_epoch_ends_leaves_no_folder(forty_five, tmp_path):
    config = TrainConfig(data=str(forty_five), arch="test_resnet", epochs=1, resize=40, crop=32,
                         batch_size=16, workers=0)
    seen = []

    class Witness(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(sorted(p.name for p in tmp_path.joinpath(*RUN).iterdir()))

    with pytest.raises(RuntimeError, match="a crash in epoch 0"):
        train_expert(config, artifacts=tmp_path, quiet=True,
                     callbacks=[Witness(), FailInFirstEpoch()])
    assert seen == [["train_config.json"]]  # the folder existed while training
    assert not tmp_path.joinpath(*RUN).exists()
    assert not (tmp_path / "experts").exists()


def killed_attempt(run_dir, *extra: str) -> None:
    """What a run killed (kill -9) during its first epoch leaves, plus `extra` files."""
    (run_dir / "checkpoints" / "epoch-0000").mkdir(parents=True)
    (run_dir / "checkpoints" / "epoch-0000" / "weights.pt").write_bytes(b"half an epoch")
    (run_dir / "train_config.json").write_text("{}\n")
    (run_dir / "history.csv").write_text("epoch,loss\n")
    (run_dir / ".history.csv.tmp-1a2b3c4d").write_text("")
    for name in extra:
        (run_dir / name).write_text("")


def test_a_killed_first_epoch_is_replaced_but_an_expert_is_protected(forty_five, tmp_path):
    run_dir = tmp_path.joinpath(*RUN)
    killed_attempt(run_dir)
    base = ["--artifacts", tmp_path, "train", "--data", forty_five, "--epochs", 1,
            "--batch-size", 16]
    line = refused(*base, "--resume", *TINY)
    assert "no resumable training" in line and "drop --resume" in line
    code, _, err = cli(*base, *TINY)  # no --overwrite needed
    assert code == 0, err
    assert (run_dir / "expert.json").is_file()
    assert not (run_dir / ".history.csv.tmp-1a2b3c4d").exists()

    # A finished expert, or anything else than a killed attempt's files, is protected.
    line = refused(*base, *TINY)
    assert "already exists" in line and "--overwrite" in line
    other = tmp_path.joinpath("experts", "other")
    killed_attempt(other, "notes.txt")
    line = refused(*base, "--expert", "other", *TINY)
    assert "already exists" in line
    assert (other / "notes.txt").is_file() and (other / "train_config.json").is_file()
    imported = tmp_path.joinpath("experts", "imported")
    imported.mkdir()
    (imported / "train_config.json").write_text("{}\n")
    (imported / "expert.json").write_text("{}\n")
    line = refused(*base, "--expert", "imported", *TINY)
    assert "already exists" in line and (imported / "expert.json").is_file()
