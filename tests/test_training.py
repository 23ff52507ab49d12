"""Training pieces against torch: optimiser, schedule, loss, metrics, callbacks, train_expert."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import one_torch_thread  # noqa: F401 (an autouse fixture)

from plantkit.artifacts import HISTORY_COLUMNS, artifact_lock, history_csv_text, read_history_rows
from plantkit.backend import keras
from plantkit.training import callbacks as cb
from plantkit.training.batches import EpochBatches, keras_input
from plantkit.training.losses import CrossEntropy, balanced_class_weights
from plantkit.training.metrics import MacroTop1
from plantkit.training.optim import TorchSGD
from plantkit.training.resume import EpochCommit, read_state, restore
from plantkit.training.schedule import multistep_lr, multistep_lr_callback


class Wrapped(keras.Model):
    """A torch module as a Keras model, passing `training` through like an Expert."""

    def __init__(self, module):
        super().__init__()
        self.wrapper = keras.layers.TorchModuleWrapper(module)
        self.built = True  # the torch module is built already (as in Expert)

    def call(self, x, training=False):
        return self.wrapper(x, training=bool(training))


def small_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 5),
    )


def batches(n: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 3, 12, 12, generator=g), torch.randint(0, 5, (8,), generator=g))
            for _ in range(n)]


def relative_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    worst = 0.0
    for (_, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        x, y = x.double(), y.double()
        worst = max(worst, ((x - y).norm() / y.norm().clamp_min(1e-12)).item())
    return worst


def train_keras(module, optimizer, data, lrs) -> None:
    model = Wrapped(module)
    model.compile(optimizer=optimizer, loss=CrossEntropy(), jit_compile=False)
    for (x, y), lr in zip(data, lrs, strict=True):
        model.optimizer.learning_rate = lr
        model.train_on_batch(x, y)


def train_torch(module, data, lrs) -> None:
    opt = torch.optim.SGD(module.parameters(), lr=lrs[0], momentum=0.9, nesterov=True,
                          weight_decay=1e-4)
    module.train()
    for (x, y), lr in zip(data, lrs, strict=True):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        F.cross_entropy(module(x), y).backward()
        opt.step()


@pytest.mark.parametrize(
    "lrs", [[0.01] * 20, [0.05] * 10 + [0.005] * 10], ids=["constant-lr", "lr-drop-at-10"]
)
def test_torch_sgd_matches_torch_for_20_steps(lrs):
    data = batches(20)
    ours, reference = small_net(), small_net()
    train_keras(ours, TorchSGD(lrs[0], momentum=0.9, nesterov=True, l2_weight_decay=1e-4),
                data, lrs)
    train_torch(reference, data, lrs)
    assert relative_difference(ours, reference) <= 1e-5
    # The weights really moved, so the comparison means something.
    assert relative_difference(reference, small_net()) > 1e-2


def test_keras_sgd_is_not_torch_sgd():
    """Why TorchSGD exists: Keras's own SGD (decoupled decay, -lr*g velocity) ends elsewhere."""
    data, lrs = batches(20), [0.05] * 10 + [0.005] * 10
    theirs, reference = small_net(), small_net()
    train_keras(theirs, keras.optimizers.SGD(lrs[0], momentum=0.9, nesterov=True,
                                             weight_decay=1e-4), data, lrs)
    train_torch(reference, data, lrs)
    assert relative_difference(theirs, reference) > 1e-4


def test_torch_sgd_fast_path_equals_its_reference_update_step():
    """The batched torch update and the per-variable `update_step` compute the same thing."""
    g = torch.Generator().manual_seed(5)
    shapes = [(4, 3), (7,), (2, 2, 3)]
    start = [torch.randn(s, generator=g) for s in shapes]
    fast_vars = [keras.Variable(t.clone()) for t in start]
    slow_vars = [keras.Variable(t.clone()) for t in start]
    fast, slow = TorchSGD(0.1), TorchSGD(0.1)
    fast.build(fast_vars)
    slow.build(slow_vars)
    for _ in range(5):
        grads = [torch.randn(s, generator=g) for s in shapes]
        fast.apply([t.clone() for t in grads], fast_vars)
        for grad, variable in zip(grads, slow_vars, strict=True):
            slow.update_step(grad, variable, slow.learning_rate)
    for a, b, s0 in zip(fast_vars, slow_vars, start, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
        assert not np.allclose(a.numpy(), s0.numpy())


def test_torch_sgd_round_trips_its_config():
    opt = TorchSGD(0.1, momentum=0.5, nesterov=False, l2_weight_decay=3e-4)
    again = TorchSGD.from_config(opt.get_config())
    assert (again.momentum, again.nesterov, again.l2_weight_decay) == (0.5, False, 3e-4)
    with pytest.raises(ValueError, match="l2_weight_decay"):
        TorchSGD(0.1, weight_decay=1e-4)


def test_multistep_lr_equals_torch_for_30_epochs():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.01)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[20, 25], gamma=0.1)
    lr_at = multistep_lr(0.01, [20, 25], 0.1)
    expected = []
    for _epoch in range(30):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert [lr_at(e) for e in range(30)] == expected  # bit-identical
    assert len(set(expected)) == 3

    # The callback puts that rate into the Keras optimizer at each epoch start.
    model = Wrapped(small_net())
    model.compile(optimizer=TorchSGD(0.01), loss=CrossEntropy(), jit_compile=False)
    callback = multistep_lr_callback(0.01, [20, 25], 0.1)
    callback.set_model(model)
    for epoch in (0, 19, 20, 24, 25, 29):
        callback.on_epoch_begin(epoch)
        got = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        assert got == pytest.approx(expected[epoch], rel=1e-6)


def test_weighted_cross_entropy_equals_torch_and_normalises_by_weights():
    train_labels = np.array([0] * 50 + [1] * 5 + [2] * 2 + [3] * 10)
    weights = balanced_class_weights(train_labels, 4)
    counts = np.bincount(train_labels)
    np.testing.assert_allclose(weights, len(train_labels) / (4 * counts), rtol=1e-6)

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 4, generator=g)
    labels = torch.tensor([0] * 10 + [1, 2, 3, 3, 2, 1])
    ours = float(CrossEntropy(weights)(labels, logits))
    expected = float(F.cross_entropy(logits, labels, weight=torch.tensor(weights)))
    assert ours == pytest.approx(expected, rel=1e-6)
    # Normalised by the sum of the weights, not by the batch size.
    per_sample = F.cross_entropy(logits, labels, reduction="none").numpy()
    w = weights[labels.numpy()]
    assert ours == pytest.approx(float((w * per_sample).sum() / w.sum()), rel=1e-5)
    assert ours != pytest.approx(float((w * per_sample).mean()), rel=1e-2)

    # Through a compiled model the reported batch loss is the same number.
    model = Wrapped(torch.nn.Identity())
    model.compile(optimizer=TorchSGD(0.01), loss=CrossEntropy(weights), jit_compile=False)
    assert float(model.evaluate(logits, labels, verbose=0)) == pytest.approx(expected, rel=1e-5)


def test_balanced_weights_need_every_class():
    with pytest.raises(ValueError, match="every class"):
        balanced_class_weights(np.array([0, 0, 2]), 3)


def test_macro_top1_is_the_mean_of_per_class_accuracies():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=200)
    labels[labels == 5] = 4  # class 5 never appears: it must not count
    logits = rng.normal(size=(200, 6)).astype(np.float32)
    logits[np.arange(200), labels] += rng.normal(1.0, 1.0, size=200).astype(np.float32)
    metric = MacroTop1(6)
    for part in np.array_split(np.arange(200), 7):
        metric.update_state(torch.tensor(labels[part]), torch.tensor(logits[part]))
    hits = logits.argmax(1) == labels
    expected = np.mean([hits[labels == c].mean() for c in range(5)])
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
    assert expected != pytest.approx(hits.mean(), abs=1e-3)  # macro differs from micro here


# --- callbacks -----------------------------------------------------------------------------


def toy_loader(nan_from_epoch: int | None = None):
    data = batches(4, seed=3)

    def loader_for_epoch(epoch):
        for i, (x, y) in enumerate(data):
            if nan_from_epoch is not None and epoch >= nan_from_epoch and i == 2:
                x = torch.full_like(x, float("nan"))
            yield x, y, torch.arange(i * 8, i * 8 + 8)

    return loader_for_epoch


def compiled_toy_model():
    model = Wrapped(small_net())
    model.compile(optimizer=TorchSGD(0.01), loss=CrossEntropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")],
                  jit_compile=False)
    return model


def _commit(tmp_path, save_to=lambda d: None):
    return EpochCommit(tmp_path, tmp_path / "checkpoints", tmp_path / "history.csv", save_to)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model = compiled_toy_model()
    train = EpochBatches(toy_loader(nan_from_epoch=2), 4)
    val = EpochBatches(toy_loader(), 4)
    saved_epochs = []

    def save_to(directory):
        saved_epochs.append(int(model.optimizer.iterations.numpy()))
        (directory / "marker.txt").write_text(str(saved_epochs[-1]))

    stop = cb.StopOnNaN()
    with artifact_lock(tmp_path):
        model.fit(keras_input(train), validation_data=keras_input(val), epochs=5, verbose=0,
                  shuffle=False,
                  callbacks=[cb.EpochDeterminism(0, [train]), stop, _commit(tmp_path, save_to)])
    assert stop.diverged_at == (2, 2)  # third epoch, third batch
    state = read_state(tmp_path / "checkpoints")
    assert state["next_epoch"] == 2  # epochs 0 and 1 were good
    assert (tmp_path / "checkpoints" / state["last"] / "marker.txt").read_text() == "8"
    assert all(math.isfinite(v) for v in state["logs"].values())
    assert state["best_epoch"] in (0, 1)
    assert state["best"] == f"epoch-{state['best_epoch']:04d}"
    # Only the folders the state names are kept.
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert kept == sorted({state["last"], state["best"]})
    rows = read_history_rows(tmp_path / "history.csv")
    # The NaN epoch is recorded (it explains the stop) and redone by a resumed run.
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert math.isnan(float(rows[2]["loss"]))


def test_resume_restores_weights_optimizer_and_epoch(tmp_path):
    """Three epochs in one go equal two epochs, a fresh process-like restart, and one more."""
    def run(folder, epochs, initial_epoch=0, model=None):
        model = model or compiled_toy_model()
        train = EpochBatches(toy_loader(), 4)
        with artifact_lock(folder):
            model.fit(keras_input(train), epochs=epochs, initial_epoch=initial_epoch,
                      verbose=0, shuffle=False,
                      callbacks=[cb.EpochDeterminism(7, [train]), _commit(folder)])
        return model

    straight = run(tmp_path / "a", 3)
    straight_weights = [w.copy() for w in straight.get_weights()]

    run(tmp_path / "b", 2)
    resumed = compiled_toy_model()
    start, _ = restore(resumed, tmp_path / "b" / "checkpoints")
    assert start == 2
    assert int(resumed.optimizer.iterations.numpy()) == 8
    run(tmp_path / "b", 3, initial_epoch=start, model=resumed)
    for a, b in zip(resumed.get_weights(), straight_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    rows = read_history_rows(tmp_path / "b" / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]


def test_history_csv_has_the_columns_and_drops_epochs_after_the_resume_point(tmp_path):
    model = compiled_toy_model()
    train = EpochBatches(toy_loader(), 4)
    with artifact_lock(tmp_path):
        model.fit(keras_input(train), epochs=2, verbose=0, shuffle=False,
                  callbacks=[cb.EpochDeterminism(7, [train]), _commit(tmp_path)])
        path = tmp_path / "history.csv"
        rows = read_history_rows(path)
        # A killed run wrote the row of epoch 2 but not its resume point.
        path.write_text(history_csv_text([*rows, {**rows[-1], "epoch": 2, "loss": 9.0}]))
        commit = _commit(tmp_path)
        commit.set_model(model)
        commit.on_epoch_begin(2)  # resumed at epoch 2: the old row of epoch 2 goes
        commit.on_epoch_end(2, {"loss": 0.5, "val_top1": 0.25, "corrupt_images": 3})
    rows = read_history_rows(path)
    assert list(rows[0]) == list(HISTORY_COLUMNS)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert rows[2]["loss"] == "0.5"
    assert rows[2]["corrupt_images"] == "3" and float(rows[2]["lr"]) == pytest.approx(0.01)
    assert read_state(tmp_path / "checkpoints")["next_epoch"] == 3


# epoch_seed(seed, epoch) for seed 0-2 and epoch 0-2: a resumed run (in a new process, maybe
# of a newer plantkit) must draw what the interrupted one would have, so these never change.
EPOCH_SEEDS = [[2968811710, 3964924996, 3141116543], [1835504127, 1189033389, 1596810411],
               [2834126987, 307626447, 1340026844]]


def test_epoch_seed_depends_on_seed_and_epoch_only():
    expected = [[cb.epoch_seed(s, e) for e in range(3)] for s in range(3)]
    assert len({v for row in expected for v in row}) == 9
    assert all(type(v) is int and 0 <= v < 2**32 for row in expected for v in row)
    json.dumps(expected)  # plain ints
    assert expected == EPOCH_SEEDS
    # Not the global random state of this process...
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    assert [[cb.epoch_seed(s, e) for e in range(3)] for s in range(3)] == expected
    # ...nor the process (hash seed, imports): another interpreter gives the same seeds.
    code = ("import json, random; import numpy, torch; random.seed(9); numpy.random.seed(9); "
            "torch.manual_seed(9); from plantkit.training.callbacks import epoch_seed; "
            "print(json.dumps([[epoch_seed(s, e) for e in range(3)] for s in range(3)]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONHASHSEED": "123"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_epoch_determinism_seeds_torch_and_the_batches_per_epoch():
    class Batches:
        epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

    batches = Batches()
    callback = cb.EpochDeterminism(7, [batches])
    callback.on_epoch_begin(3)
    assert torch.initial_seed() == cb.epoch_seed(7, 3) and batches.epoch == 3
    drawn = torch.rand(4)
    torch.manual_seed(1234)  # whatever ran before
    callback.on_epoch_begin(3)
    assert torch.equal(torch.rand(4), drawn)
    callback.on_epoch_begin(4)
    assert torch.initial_seed() == cb.epoch_seed(7, 4) != cb.epoch_seed(7, 3)
