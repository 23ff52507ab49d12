"""`plantkit train` and `plantkit predict` end to end on a tiny generated dataset.

One uninterrupted 2-epoch CLI run (module fixture) is the reference for the other tests:
learning, history, store, resume after an interruption, prediction, bad input.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import cli, one_torch_thread, refused  # noqa: F401 (an autouse fixture)
from train_helpers import InterruptAfterFirstEpoch

from plantkit.artifacts import HISTORY_COLUMNS
from plantkit.artifacts import read_history_rows as read_history
from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.store import open_store
from plantkit.training import fit
from plantkit.training.config import TrainConfig
from plantkit.training.fit import train_expert
from plantkit.training.losses import balanced_class_weights
from plantkit.training.resume import read_state

CLASSES = 5
TINY = ["--arch", "test_resnet", "--resize", "40", "--crop", "32", "--batch-size", "16",
        "--workers", "0", "--milestones", "1", "--lr", "0.05", "--quiet"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "five"
    return generate_dataset(root, make_profile("uniform", classes=CLASSES, scale=0.005),
                            image_size=40, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    """ARTIFACTS after `plantkit train` of 2 epochs (lr x0.1 from the second)."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    code, out, err = cli("--artifacts", artifacts, "train", "--data", data_root, "--epochs", 2,
                         "--json", *TINY)
    assert code == 0, err
    return artifacts


def test_train_writes_expert_history_and_store(trained, data_root):
    run_dir = trained / "experts" / "test_resnet"
    state = read_state(run_dir / "checkpoints")
    assert state["next_epoch"] == 2 and state["last"] == "epoch-0001"
    for name in ("expert.json", "weights.pt", "history.csv", "train_config.json",
                 "predictions.h5", f"checkpoints/{state['best']}/weights.pt",
                 "checkpoints/epoch-0001/state.weights.h5", "checkpoints/state.json"):
        assert (run_dir / name).is_file(), name
    rows = read_history(run_dir / "history.csv")
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    # MultiStepLR(milestones=[1], gamma=0.1): the second epoch runs at a tenth of the rate.
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.005], rel=1e-6)
    assert all(float(r["images_per_s"]) > 0 and int(r["corrupt_images"]) == 0 for r in rows)

    with open_store(run_dir / "predictions.h5") as store:
        assert store.splits == ["val", "test"]
        assert store.num_rows("val") == 5 * CLASSES and store.num_rows("test") == 5 * CLASSES
        assert store.attrs["architecture"] == "test_resnet"
        assert store.attrs["params"] > 0 and store.attrs["gflops"] > 0
        assert store.class_ids == [str(i) for i in range(CLASSES)]
        assert store.train_counts.tolist() == [35] * CLASSES


def test_two_epochs_lower_the_loss_and_beat_chance(trained):
    rows = read_history(trained / "experts" / "test_resnet" / "history.csv")
    losses = [float(r["loss"]) for r in rows]
    assert losses[0] == pytest.approx(math.log(CLASSES), rel=0.15)  # starts near chance
    assert losses[1] < losses[0]
    assert float(rows[1]["top1"]) > 1 / CLASSES
    assert max(float(r["val_top1"]) for r in rows) > 1.5 / CLASSES
    with open_store(trained / "experts" / "test_resnet" / "predictions.h5") as store:
        hits = store.logits("val").argmax(1) == store.labels("val")
    assert hits.mean() > 1.5 / CLASSES


def test_resume_after_interruption_equals_the_uninterrupted_run(trained, data_root, tmp_path):
    config = TrainConfig(data=str(data_root), arch="test_resnet", epochs=2, resize=40, crop=32,
                         batch_size=16, workers=0, milestones=(1,), lr=0.05)
    with pytest.raises(KeyboardInterrupt):
        train_expert(config, artifacts=tmp_path, quiet=True, callbacks=[InterruptAfterFirstEpoch()])
    run_dir = tmp_path / "experts" / "test_resnet"
    assert not (run_dir / "expert.json").exists()  # not an expert until training finishes
    assert [int(r["epoch"]) for r in read_history(run_dir / "history.csv")] == [0]

    # Without --resume the interrupted run is protected; with it, training goes on.
    code, _, err = cli("--artifacts", tmp_path, "train", "--data", data_root, "--epochs", 2,
                       *TINY)
    assert code == 2 and "--resume" in err
    code, _, err = cli("--artifacts", tmp_path, "train", "--resume", "--expert", "test_resnet",
                       "--quiet")
    assert code == 0, err

    reference = trained / "experts" / "test_resnet"
    for name in ("checkpoints/epoch-0001/weights.pt", "weights.pt"):
        ours = torch.load(run_dir / name, weights_only=True)
        theirs = torch.load(reference / name, weights_only=True)
        assert ours.keys() == theirs.keys()
        for key in theirs:
            assert torch.equal(ours[key], theirs[key]), (name, key)
    ours_rows = read_history(run_dir / "history.csv")
    theirs_rows = read_history(reference / "history.csv")
    for column in ("epoch", "loss", "top1", "val_loss", "val_top1", "lr"):
        assert [r[column] for r in ours_rows] == [r[column] for r in theirs_rows], column


def test_resume_refuses_a_changed_option(trained, data_root):
    code, _, err = cli("--artifacts", trained, "train", "--resume", "--expert", "test_resnet",
                       "--lr", "0.1", "--quiet")
    assert code == 2
    assert "--lr 0.1 differs from the interrupted run's 0.05" in err


def test_predict_recomputes_the_stored_predictions(trained, data_root):
    store_path = trained / "experts" / "test_resnet" / "predictions.h5"
    with open_store(store_path) as store:
        val_before = store.logits("val")
        test_before = store.logits("test")
    code, out, err = cli("--artifacts", trained, "predict", "--expert", "test_resnet",
                         "--split", "val", "--workers", 0, "--features", "--dtype", "float16",
                         "--quiet")
    assert code == 0, err
    with open_store(store_path) as store:
        assert store.splits == ["val", "test"]  # test kept from training
        np.testing.assert_array_equal(store.logits("test"), test_before)
        np.testing.assert_allclose(store.logits("val"), val_before, rtol=2e-3, atol=2e-3)
        assert store.logits_dtype("val") == "float16"
        assert store.has_features("val") and store.features("val").shape[0] == 5 * CLASSES


def test_predict_refuses_another_dataset(trained, tmp_path):
    other = generate_dataset(tmp_path / "other", make_profile("uniform", classes=CLASSES,
                                                              scale=0.004), image_size=40)
    code, _, err = cli("--artifacts", trained, "predict", "--expert", "test_resnet",
                       "--data", other, "--workers", 0, "--quiet")
    assert code == 2
    assert "fingerprint" in err and len(err.strip().splitlines()) == 1


def test_bad_inputs_exit_2_with_one_line(trained, data_root, tmp_path):
    base = ["--artifacts", tmp_path, "train", "--epochs", 1, "--quiet"]
    line = refused(*base, "--data", data_root, "--arch", "resnet181")
    assert "resnet18" in line  # a close-name suggestion

    line = refused(*base, "--data", tmp_path / "missing", "--arch", "test_resnet")
    assert "missing" in line and "does not exist" in line

    import timm

    seven = timm.create_model("test_resnet", num_classes=7)
    checkpoint = tmp_path / "released.tar"
    torch.save({"model": seven.state_dict(), "optimizer": {}, "epoch": 3}, checkpoint)
    line = refused(*base, "--data", data_root, "--arch", "test_resnet", "--init-from", checkpoint)
    assert "7 classes" in line and "5" in line

    line = refused("--artifacts", trained, "train", "--data", data_root, *TINY)
    assert "already exists" in line and "--overwrite" in line

    line = refused(*base, "--data", data_root, "--expert", "never-trained", "--resume")
    assert "no run to resume" in line
    assert not (tmp_path / "experts").exists()  # the refused runs started nothing


def backbone_parameters(state: dict) -> dict:
    """Learnt tensors only: BatchNorm statistics move in train mode whatever the rate."""
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                               "num_batches_tracked"))}


@pytest.mark.parametrize("source", ["expert folder", "released checkpoint", "weights file"])
def test_training_starts_at_the_given_weights(trained, data_root, tmp_path, source):
    import timm

    option = "--init-from"
    if source == "expert folder":
        init = trained / "experts" / "test_resnet"
        start = torch.load(init / "weights.pt", weights_only=True)
    elif source == "released checkpoint":
        torch.manual_seed(123)
        start = timm.create_model("test_resnet", num_classes=CLASSES).state_dict()
        init = tmp_path / "released.tar"
        torch.save({"model": {f"module.{k}": v for k, v in start.items()}, "optimizer": {},
                    "epoch": 9}, init)
    else:  # ImageNet-like weights: another head, which --weights replaces
        torch.manual_seed(321)
        start = timm.create_model("test_resnet", num_classes=1000).state_dict()
        start = {k: v for k, v in start.items() if not k.startswith("fc.")}
        init, option = tmp_path / "imagenet.pth", "--weights"
        torch.save(start, init)
    # A vanishing rate: after one epoch the weights are still the ones we started from.
    code, _, err = cli("--artifacts", tmp_path, "train", "--data", data_root, option, init,
                       "--expert", "continued", "--arch", "test_resnet", "--epochs", 1, "--lr",
                       "1e-12", "--resize", 40,
                       "--crop", 32, "--workers", 0, "--quiet")
    assert code == 0, err
    after = torch.load(tmp_path / "experts" / "continued" / "weights.pt", weights_only=True)
    for key, value in backbone_parameters(start).items():
        torch.testing.assert_close(after[key], value, rtol=1e-6, atol=1e-6)
    expert = json.loads((tmp_path / "experts" / "continued" / "expert.json").read_text())
    if source != "expert folder":  # imported weights are normalised like ImageNet
        assert expert["config"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
        assert after["fc.weight"].shape[0] == CLASSES
    else:  # the expert keeps its own normalisation (here: the dataset's)
        trained_config = json.loads((init / "expert.json").read_text())["config"]
        assert expert["config"]["mean"] == trained_config["mean"]
        assert expert["config"]["mean"] != pytest.approx([0.485, 0.456, 0.406])


@pytest.fixture(scope="module")
def tail_root(tmp_path_factory):
    """A long tail: 35, 12, 7, 4 and 2 train images."""
    root = tmp_path_factory.mktemp("data") / "tail"
    counts = make_profile("zipf", classes=CLASSES, scale=0.005, alpha=1.5)
    assert counts["train"].tolist() == [35, 12, 7, 4, 2]
    return generate_dataset(root, counts, image_size=40, seed=0)


class RecordedInput(torch.utils.data.IterableDataset):
    """The batches Keras gets, passed through; the labels of each pass are kept (Keras peeks
    at a first batch before the epoch's pass)."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches
        self.passes = []

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        self.passes.append([])
        for images, labels in self.batches:
            self.passes[-1].append(labels.clone())
            yield images, labels


def train_observed(monkeypatch, *args) -> dict:
    """Run `plantkit train ARGS` and keep what its fit loop really used: the train loader,
    the labels of every train batch fed to Keras, and the compiled expert."""
    seen = {"loaders": [], "inputs": [], "experts": []}
    make_loader, keras_input, compile_expert = fit.make_loader, fit.keras_input, fit.compile_expert

    def loader(*a, **k):
        seen["loaders"].append(make_loader(*a, **k))
        return seen["loaders"][-1]

    def recorded(batches):
        seen["inputs"].append(RecordedInput(batches))
        return keras_input(seen["inputs"][-1])

    def compiled(expert, *a, **k):
        compile_expert(expert, *a, **k)
        seen["experts"].append(expert)

    monkeypatch.setattr(fit, "make_loader", loader)
    monkeypatch.setattr(fit, "keras_input", recorded)
    monkeypatch.setattr(fit, "compile_expert", compiled)
    code, out, err = cli(*args)
    monkeypatch.undo()
    assert code == 0, err
    (train_loader, _val), (train_input, _val_input) = seen["loaders"], seen["inputs"]
    epoch = train_input.passes[-1]  # the one epoch's whole pass
    assert len(epoch) == len(train_input)
    return {"summary": json.loads(out), "loader": train_loader, "expert": seen["experts"][0],
            "drawn": np.bincount(torch.cat(epoch).numpy(), minlength=CLASSES)}


def test_rare_species_options_change_what_training_sees(tail_root, tmp_path, monkeypatch):
    base = ["--artifacts", tmp_path, "train", "--data", tail_root, "--epochs", 1, "--json",
            *TINY]
    plain = train_observed(monkeypatch, *base, "--expert", "plain")
    rare = train_observed(monkeypatch, *base, "--expert", "rare", "--augment-below", 10,
                          "--sampler", "inverse", "--loss", "weighted")
    counts = np.array([35, 12, 7, 4, 2])
    assert rare["summary"]["expert"] == "rare" and 0.0 <= rare["summary"]["test_top1"] <= 1.0
    saved = json.loads((tmp_path / "experts" / "rare" / "train_config.json").read_text())
    assert (saved["config"]["augment_below"], saved["config"]["sampler"],
            saved["config"]["loss"]) == (10, "inverse", "weighted")

    # --sampler inverse: as many draws per epoch, about as many of each species.
    assert plain["drawn"].tolist() == counts.tolist()  # each image once
    assert rare["drawn"].sum() == counts.sum()
    assert rare["drawn"][-1] >= 3 * counts[-1] and rare["drawn"][0] <= 0.6 * counts[0]

    # --loss weighted: the compiled loss weighs each species by n / (C * n_c).
    labels = plain["loader"].dataset.labels
    assert plain["expert"].loss.class_weights is None
    weights = balanced_class_weights(labels, CLASSES)
    np.testing.assert_allclose(rare["expert"].loss.class_weights, weights, rtol=1e-6)
    logits, y = torch.randn(6, CLASSES, generator=torch.Generator().manual_seed(0)), \
        torch.tensor([0, 0, 0, 1, 4, 4])
    torch.testing.assert_close(rare["expert"].loss(y, logits),
                               F.cross_entropy(logits, y, weight=torch.tensor(weights)))
    assert not torch.allclose(rare["expert"].loss(y, logits), plain["expert"].loss(y, logits))

    # --augment-below 10: the images of species under 10 train images (not the others) are
    # augmented; the same row and draw seed gives the plain run's image otherwise.
    ours, theirs = rare["loader"].dataset, plain["loader"].dataset
    assert ours.augmented_classes == {2, 3, 4} and theirs.augmented_classes == frozenset()
    for row, label in enumerate(labels):
        same = torch.equal(ours[(row, 1000 + row)][0], theirs[(row, 1000 + row)][0])
        assert same == (label < 2), (row, label)


def test_a_diverging_training_exits_1_and_keeps_the_last_good_epoch(data_root, tmp_path):
    # One batch per epoch: epoch 1's loss is measured before its update, which blows the
    # weights up; epoch 2's first loss is then infinite or NaN.
    code, out, err = cli("--artifacts", tmp_path, "train", "--data", data_root, "--epochs", 3,
                         *TINY, "--batch-size", 256, "--lr", "1e30")
    run_dir = tmp_path / "experts" / "test_resnet"
    assert code == 1 and out == ""
    line, = err.strip().splitlines()
    assert "the training loss became NaN or infinite in epoch 2, batch 1" in line
    assert f"the checkpoints of epoch 1 are kept in {run_dir / 'checkpoints'}" in line
    assert "a lower --lr may help" in line
    state = read_state(run_dir / "checkpoints")
    assert state["next_epoch"] == 1 and (run_dir / "checkpoints" / state["last"]).is_dir()
    rows = read_history(run_dir / "history.csv")  # the diverged epoch's row explains the stop
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert math.isfinite(float(rows[0]["loss"])) and not math.isfinite(float(rows[1]["loss"]))
    assert not (run_dir / "expert.json").exists() and not (run_dir / "predictions.h5").exists()
    # The kept epoch is a resume point: the run is protected, not silently replaced.
    line = refused("--artifacts", tmp_path, "train", "--data", data_root, *TINY)
    assert "already exists" in line


def test_predict_stores_nothing_when_over_1_percent_is_corrupt(trained, data_root, tmp_path):
    import shutil

    from plantkit.data.layout import open_dataset
    from plantkit.errors import PlantkitInputError
    from plantkit.models.expert import load_expert
    from plantkit.predict import predict_to_store

    copy = tmp_path / "copy"
    shutil.copytree(data_root, copy)
    dataset = open_dataset(copy)
    (dataset.images_dir / dataset.splits["val"].paths[3]).write_bytes(b"not a jpeg")
    expert = load_expert(trained / "experts" / "test_resnet")
    target = tmp_path / "store" / "predictions.h5"
    with pytest.raises(PlantkitInputError, match="corrupt|decoded"):
        predict_to_store(expert, open_dataset(copy), ["val"], target, workers=0)
    assert not target.parent.exists()  # nor the folder made for it
