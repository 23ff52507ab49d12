"""`train --init-from` takes an expert folder, a checkpoint file, or the name of an expert
under ARTIFACTS/experts; a name becomes that folder, which the run records (so --resume
finds the same start)."""

from __future__ import annotations

import json
import subprocess
import sys

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)

import keras  # isort: skip
import pytest
import torch
from cli_helpers import one_torch_thread  # noqa: F401 (an autouse fixture)
from train_helpers import InterruptAfterFirstEpoch

from plantkit.data.layout import open_dataset
from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.errors import PlantkitInputError
from plantkit.training.config import TrainConfig, resolve_init_from, run_dir_of
from plantkit.training.fit import train_expert


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    counts = make_profile("uniform", classes=3, scale=19 / 9012)  # 3 x (15 train, 2, 2)
    return generate_dataset(tmp_path_factory.mktemp("data") / "three", counts, image_size=40,
                            seed=0)


@pytest.fixture
def artifacts(tmp_path, data_root):
    """ARTIFACTS holding one expert, `base` (a test_resnet of the dataset's classes, random
    weights of seed 7: not what a fresh run of --seed 0 would draw)."""
    from plantkit.models.expert import create_expert, save_expert

    dataset = open_dataset(data_root)
    torch.manual_seed(7)
    expert = create_expert("test_resnet", dataset.num_classes, input_size=32)
    save_expert(expert, tmp_path / "art" / "experts" / "base",
                class_ids=list(dataset.class_ids), fingerprint=dataset.fingerprint)
    return tmp_path / "art"


def tiny(data_root, **changes) -> TrainConfig:
    values = {"data": str(data_root), "epochs": 1, "resize": 40, "crop": 32, "batch_size": 16,
              "workers": 0, "lr": 0.05, "milestones": (1,)}
    return TrainConfig(**{**values, **changes})


class StartingWeights(keras.callbacks.Callback):
    """Keeps the backbone's weights as training begins."""

    def on_train_begin(self, logs=None):
        self.state = {k: v.detach().cpu().clone()
                      for k, v in self.model.backbone.state_dict().items()}


def test_init_from_an_expert_name_trains_from_its_weights_and_records_its_folder(
        artifacts, data_root):
    base = artifacts / "experts" / "base"
    start = StartingWeights()
    run_dir = train_expert(tiny(data_root, init_from="base"), artifacts=artifacts, quiet=True,
                           callbacks=[start]).folder
    # Named after the architecture of the expert it started from.
    assert run_dir == artifacts / "experts" / "test_resnet"
    assert (run_dir / "expert.json").is_file()
    recorded = json.loads((run_dir / "train_config.json").read_text())["config"]
    assert recorded["init_from"] == str(base)
    saved = torch.load(base / "weights.pt", weights_only=True)
    assert start.state.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(start.state[key], value), key


def test_a_run_started_from_a_name_resumes(artifacts, data_root):
    config = tiny(data_root, init_from="base", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train_expert(config, artifacts=artifacts, quiet=True,
                     callbacks=[InterruptAfterFirstEpoch()])
    run_dir = artifacts / "experts" / "test_resnet"
    assert not (run_dir / "expert.json").exists()
    # The same options with --resume (the name again): the recorded folder matches.
    again = train_expert(tiny(data_root, init_from="base", epochs=2, resume=True),
                         artifacts=artifacts, quiet=True, given={"init_from", "resume"}).folder
    assert again == run_dir and (run_dir / "expert.json").is_file()


def test_a_path_wins_over_an_expert_of_the_same_name(artifacts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").write_bytes(b"a checkpoint file named like the expert")
    assert resolve_init_from(artifacts, "base") == "base"
    monkeypatch.chdir(artifacts)
    assert resolve_init_from(artifacts, "base") == str(artifacts / "experts" / "base")


def test_run_dir_of_resolves_the_name_in_place(artifacts):
    config = TrainConfig(init_from="base")
    assert run_dir_of(artifacts, config) == artifacts / "experts" / "test_resnet"
    assert config.init_from == str(artifacts / "experts" / "base")


@pytest.mark.parametrize("value", ["nobody", "a/b", "experts"])
def test_neither_a_path_nor_an_expert_is_refused_naming_both(artifacts, value, tmp_path,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)  # "experts" is no path here, and no expert
    with pytest.raises(PlantkitInputError) as refused:
        resolve_init_from(artifacts, value)
    assert str(refused.value) == (f"--init-from {value}: no such file or folder, and no expert "
                                  f"{value} under {artifacts / 'experts'}")


def test_a_folder_without_an_expert_under_the_name_is_refused(artifacts, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    (artifacts / "experts" / "attempt").mkdir()  # a killed training's leftovers, say
    with pytest.raises(PlantkitInputError, match="no expert attempt under"):
        resolve_init_from(artifacts, "attempt")


def test_the_cli_refuses_an_unknown_name_in_one_line_before_torch(tmp_path):
    code = ("import sys; from plantkit.commands import main; "
            "sys.argv = ['plantkit', '--artifacts', sys.argv[1], 'train', '--init-from', "
            "'nobody']\n"
            "try:\n    main.run()\n"
            "except SystemExit as exc:\n"
            "    heavy = [m for m in ('torch', 'keras', 'timm') if m in sys.modules]\n"
            "    print(exc.code, heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "art")],
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "2 []", result.stderr
    assert len(lines) == 2 and "--init-from nobody" in lines[0], lines


def _classifier_keys(state: dict) -> set[str]:
    return {key for key in state if key.startswith("fc.")}  # test_resnet's head is `fc`


def test_retrain_head_trains_a_new_classifier_on_the_frozen_backbone(artifacts, data_root):
    base = torch.load(artifacts / "experts" / "base" / "weights.pt", weights_only=True)
    start = StartingWeights()
    config = tiny(data_root, init_from="base", retrain_head=True, sampler="balanced", epochs=2,
                  name="crt")
    run_dir = train_expert(config, artifacts=artifacts, quiet=True, callbacks=[start]).folder
    after = torch.load(run_dir / "weights.pt", weights_only=True)
    head = _classifier_keys(base)
    assert head == {"fc.weight", "fc.bias"}
    # Everything but the classifier, BatchNorm statistics included, is the base's.
    for key in base.keys() - head:
        assert torch.equal(after[key], base[key]), key
    # The classifier started anew (not the base's) and was trained from there.
    for key in head:
        assert not torch.equal(start.state[key], base[key]), key
        assert not torch.equal(after[key], start.state[key]), key
    recorded = json.loads((run_dir / "train_config.json").read_text())["config"]
    assert recorded["retrain_head"] is True and recorded["sampler"] == "balanced"


def test_retrain_head_resumes_to_the_uninterrupted_run(artifacts, data_root, tmp_path):
    config = dict(init_from="base", retrain_head=True, sampler="balanced", epochs=2, name="crt")
    whole = train_expert(tiny(data_root, **config), artifacts=artifacts, quiet=True).folder
    other = tmp_path / "other"
    (other / "experts").mkdir(parents=True)
    (other / "experts" / "base").symlink_to(artifacts / "experts" / "base")
    with pytest.raises(KeyboardInterrupt):
        train_expert(tiny(data_root, **config), artifacts=other, quiet=True,
                     callbacks=[InterruptAfterFirstEpoch()])
    again = train_expert(tiny(data_root, **config, resume=True), artifacts=other, quiet=True,
                         given={"init_from", "resume"}).folder
    ours = torch.load(again / "weights.pt", weights_only=True)
    theirs = torch.load(whole / "weights.pt", weights_only=True)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_retrain_head_needs_init_from(data_root, tmp_path):
    with pytest.raises(PlantkitInputError, match="--retrain-head .* pass --init-from"):
        train_expert(tiny(data_root, retrain_head=True), artifacts=tmp_path, quiet=True)


def test_retrain_head_on_stored_train_features_is_sgd_on_those_rows(artifacts, data_root,
                                                                    capsys):
    from plantkit.data.loading import EpochSampler
    from plantkit.models.expert import load_expert
    from plantkit.predict import predict_to_store
    from plantkit.store import open_store

    base_dir = artifacts / "experts" / "base"
    dataset = open_dataset(data_root)
    predict_to_store(load_expert(base_dir), dataset, ["train", "val"], base_dir / "predictions.h5",
                     features=True, resize=40, workers=0)
    with open_store(base_dir / "predictions.h5") as store:
        features = torch.from_numpy(store.features("train").astype("float32"))
    start = StartingWeights()
    config = tiny(data_root, init_from="base", retrain_head=True, name="fast", lr=0.05)
    run_dir = train_expert(config, artifacts=artifacts, callbacks=[start]).folder
    assert "training the classifier on" in capsys.readouterr().err

    # The same epoch by hand: torch's SGD (momentum 0.9, Nesterov, coupled L2 1e-4) on the
    # stored features, in the epoch's row order, from the run's starting classifier.
    head = torch.nn.Linear(features.shape[1], 3)
    with torch.no_grad():
        head.weight.copy_(start.state["fc.weight"])
        head.bias.copy_(start.state["fc.bias"])
    optimizer = torch.optim.SGD(head.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    labels = torch.from_numpy(dataset.splits["train"].labels)
    rows = [row for row, _ in EpochSampler(labels.numpy(), order="none", seed=0, epoch=0,
                                           batch_size=16)]
    for at in range(0, len(rows), 16):
        batch = torch.tensor(rows[at:at + 16])
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(head(features[batch]), labels[batch]).backward()
        optimizer.step()
    after = torch.load(run_dir / "weights.pt", weights_only=True)
    torch.testing.assert_close(after["fc.weight"], head.weight.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(after["fc.bias"], head.bias.detach(), atol=1e-5, rtol=1e-4)
    base = torch.load(base_dir / "weights.pt", weights_only=True)
    for key in base.keys() - {"fc.weight", "fc.bias"}:
        assert torch.equal(after[key], base[key]), key


def test_retrain_head_says_why_it_reads_the_images(artifacts, data_root, capsys):
    config = tiny(data_root, init_from="base", retrain_head=True, name="slow")
    train_expert(config, artifacts=artifacts)
    assert "training on the images, through the frozen backbone: its store holds no " \
        "features of every train image" in " ".join(capsys.readouterr().err.split())


def test_retrain_head_from_a_checkpoint_file_reads_the_images(artifacts, data_root, capsys):
    checkpoint = artifacts / "experts" / "base" / "weights.pt"
    config = tiny(data_root, init_from=str(checkpoint), retrain_head=True, name="from-file",
                  arch="test_resnet")
    run_dir = train_expert(config, artifacts=artifacts).folder
    assert "--init-from is a checkpoint file, without a prediction store" in " ".join(
        capsys.readouterr().err.split())
    base = torch.load(checkpoint, weights_only=True)
    after = torch.load(run_dir / "weights.pt", weights_only=True)
    assert all(torch.equal(after[k], base[k]) for k in base.keys() - {"fc.weight", "fc.bias"})
