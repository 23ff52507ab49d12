"""Mixup / CutMix batches, and the long-tail options end to end: recorded, resumable."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import cli, one_torch_thread, refused  # noqa: F401 (an autouse fixture)
from train_helpers import InterruptAfterFirstEpoch

from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.training import fit
from plantkit.training.config import TrainConfig
from plantkit.training.fit import train_expert
from plantkit.training.mixing import BatchMixer


def _batch(n=6, size=8):
    images = torch.arange(n * 3 * size * size, dtype=torch.float32).reshape(n, 3, size, size)
    return images, torch.tensor([0, 1, 2, 3, 4, 5, 6][:n])


def test_mixup_blends_each_image_with_its_partner_by_lambda():
    images, labels = _batch()
    original = images.clone()
    mixed, rows = BatchMixer(0.4, None, batch_size=6, seed=1)(images, labels)
    lam = float(rows[0, 2])
    assert 0.0 < lam < 1.0 and torch.all(rows[:, 2] == lam)  # one lambda a batch
    partner = rows[:, 1].long()
    assert torch.equal(rows[:, 0].long(), labels)
    assert sorted(partner.tolist()) == labels.tolist() and torch.all(partner != labels)
    torch.testing.assert_close(mixed, lam * original + (1 - lam) * original[partner])


def test_cutmix_pastes_a_box_whose_area_is_one_minus_lambda():
    images, labels = _batch(size=16)
    original = images.clone()
    mixed, rows = BatchMixer(None, 1.0, batch_size=6, seed=2)(images, labels)
    partner, lam = rows[:, 1].long(), float(rows[0, 2])
    from_partner = (mixed != original) & (mixed == original[partner])
    pasted = from_partner[0, 0].float().mean().item()  # share of one channel's pixels
    assert pasted > 0 and pasted == pytest.approx(1 - lam, abs=1e-6)
    assert torch.equal(mixed[from_partner.logical_not()], original[from_partner.logical_not()])


def test_mixing_follows_seed_and_epoch_and_leaves_numpys_generator_alone():
    def rows(seed, epoch):
        mixer = BatchMixer(0.4, 1.0, batch_size=6, seed=seed)
        mixer.start_epoch(epoch)
        return [mixer(*_batch())[1] for _ in range(4)]

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = rows(0, 3)
    assert np.array_equal(np.random.get_state()[1], before)
    assert all(torch.equal(a, b) for a, b in zip(first, rows(0, 3)))
    assert not all(torch.equal(a, b) for a, b in zip(first, rows(0, 4)))
    assert not all(torch.equal(a, b) for a, b in zip(first, rows(1, 3)))


def test_an_odd_batchs_last_image_stays_as_it_is():
    images, labels = _batch(n=5)
    original = images.clone()
    mixed, rows = BatchMixer(0.4, None, batch_size=6, seed=0)(images, labels)
    assert torch.equal(mixed[4], original[4]) and rows[4].tolist() == [4.0, 4.0, 1.0]
    assert not torch.equal(mixed[0], original[0])


CLASSES = 5
TINY = dict(arch="test_resnet", resize=40, crop=32, batch_size=16, workers=0, milestones=(1,),
            lr=0.05, epochs=2)
LONGTAIL = dict(loss="ldam", defer_epoch=1, sampler="progressive", mixup=0.4, cutmix=1.0)


@pytest.fixture(scope="module")
def tail_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "tail"
    counts = make_profile("zipf", classes=CLASSES, scale=0.005, alpha=1.5)
    return generate_dataset(root, counts, image_size=40, seed=0)


def test_longtail_options_are_recorded_and_resume_exactly(tail_root, tmp_path, monkeypatch):
    config = TrainConfig(data=str(tail_root), name="lt", **TINY, **LONGTAIL)
    compiled = []
    compile_expert = fit.compile_expert
    monkeypatch.setattr(fit, "compile_expert",
                        lambda expert, *a, **k: (compile_expert(expert, *a, **k),
                                                 compiled.append(expert)))
    fed = []  # the label rows of the train batches Keras gets
    keras_input = fit.keras_input
    monkeypatch.setattr(fit, "keras_input", lambda batches: (
        fed.append(batches), keras_input(batches))[1])
    train_expert(config, artifacts=tmp_path / "whole", quiet=True)
    monkeypatch.undo()
    with pytest.raises(KeyboardInterrupt):
        train_expert(config, artifacts=tmp_path / "cut", quiet=True,
                     callbacks=[InterruptAfterFirstEpoch()])
    code, _, err = cli("--artifacts", tmp_path / "cut", "train", "--resume", "--expert", "lt",
                       "--quiet")
    assert code == 0, err

    run_dirs = [tmp_path / part / "experts" / "lt" for part in ("whole", "cut")]
    saved = json.loads((run_dirs[1] / "train_config.json").read_text())["config"]
    assert {key: saved[key] for key in LONGTAIL} == LONGTAIL
    ours, theirs = (torch.load(d / "weights.pt", weights_only=True) for d in run_dirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    # The train batches are mixed (label, partner, lambda), the val batches are not.
    train_rows = next(iter(fed[0]))[1]
    assert train_rows.shape == (16, 3) and torch.any(train_rows[:, 0] != train_rows[:, 1])
    assert next(iter(fed[1]))[1].ndim == 1
    # LDAM-DRW: the class-balanced weights, on from epoch 1.
    loss = compiled[0].loss
    assert loss.weights_active and loss.class_weights is not None


@pytest.mark.parametrize("options, message", [
    (["--mixup", "-0.5"], "--mixup must be an alpha >= 0"),
    (["--cutmix", "nan"], "--cutmix must be an alpha >= 0"),
    (["--loss", "class-balanced", "--beta", "1"], "--beta must be a number in [0, 1), got 1.0"),
    (["--loss", "logit-adjusted", "--tau", "-1"], "--tau must be a number >= 0"),
    (["--loss", "logit-adjusted", "--tau", "nan"], "--tau must be a number >= 0, got nan"),
    (["--loss", "focal", "--focal-gamma", "inf"], "--focal-gamma must be a number >= 0"),
    # An option of another loss would change nothing: refused, not ignored.
    (["--tau", "2"], "--tau is an option of --loss logit-adjusted, not of --loss ce"),
    (["--loss", "focal", "--beta", "0.9"], "--beta is an option of --loss class-balanced"),
    (["--loss", "ldam", "--focal-gamma", "1"],
     "--focal-gamma is an option of --loss class-balanced or focal, not of --loss ldam"),
    (["--defer-epoch", "3", "--epochs", "3", "--sampler", "sqrt"],
     "--defer-epoch 3 is not before --epochs 3"),
    (["--defer-epoch", "1", "--epochs", "3", "--loss", "focal"],
     "with --sampler none and --loss focal it changes nothing"),
])
def test_bad_longtail_options_exit_2(tail_root, tmp_path, options, message):
    assert message in refused("--artifacts", tmp_path, "train", "--data", tail_root, *options,
                              "--quiet")
