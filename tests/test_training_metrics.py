"""The Keras metrics of training (history.csv, the best epoch) count hits with plantkit's tie rule.

Hand-built logits with known answers, ties included, against both the hand-computed numbers
and plantkit.metrics on the same logits; then one tiny training whose history.csv val_top1
equals plantkit.metrics' top-1 of the stored val logits.
"""

from __future__ import annotations

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)

import keras  # isort: skip
import numpy as np
import pytest
import torch
from cli_helpers import one_torch_thread  # noqa: F401 (an autouse fixture)

from plantkit.artifacts import read_history_rows
from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.metrics import accuracy_scores, true_class_rank
from plantkit.store import open_store
from plantkit.training.config import TrainConfig
from plantkit.training.fit import train_expert
from plantkit.training.metrics import MacroTop1, TopKAccuracy, accuracy_metrics

# 7 classes, class 6 never the true class; each row's rank (other classes >= the true one)
# and what argmax / in_top_k (lowest index wins a tie) would say instead.
ROWS = [
    # label, logits,                 rank
    (0, [2, 2, 0, 0, 0, 0, 0], 1),   # true class tied at the top: argmax says hit, rule miss
    (3, [1, 1, 1, 1, 1, 1, 1], 6),   # all equal: a miss at every k < 7
    (4, [5, 4, 3, 2, 1, 1, 0], 5),   # tied at the 5th place: in_top_k(5) hit, rule miss
    (5, [5, 4, 3, 2, 1, 1, 0], 5),   # the other side of that tie
    (2, [0, 0, 9, 0, 0, 0, 0], 0),
    (1, [3, 1, 0, 0, 0, 0, 0], 1),
    (2, [1, 0, 2, 0, 0, 0, 0], 0),
    (0, [3, 0, 0, 0, 0, 0, 1], 0),
]
C = 7
LABELS = np.array([r[0] for r in ROWS])
LOGITS = np.array([r[1] for r in ROWS], dtype=np.float32)
RANKS = np.array([r[2] for r in ROWS])
# By hand: top-1 hits are the last three rows of rank 0; top-5 adds ranks 1 (rows 0 and 5).
# Macro top-1: class 0 1/2, class 1 0, class 2 1, classes 3, 4, 5 0, class 6 absent: 1.5 / 6.
HAND = {"top1": 3 / 8, "top5": 5 / 8, "macro_top1": 0.25}
BATCHES = [slice(0, 3), slice(3, 5), slice(5, 8)]  # class 1 and 5 absent from some of them


def fresh_metrics():
    return {m.name: m for m in accuracy_metrics(C)}


def stream(metrics, labels, logits, batches):
    for metric in metrics.values():
        for part in batches:
            metric.update_state(torch.tensor(labels[part]), torch.tensor(logits[part]))
    return {name: float(metric.result()) for name, metric in metrics.items()}


def plantkit_scores(labels, logits, num_classes):
    scores = accuracy_scores(true_class_rank(logits, labels), labels, num_classes, ks=(1, 5))
    return {name: scores[name] for name in ("top1", "top5", "macro_top1")}


def test_the_hand_built_ranks_are_plantkits():
    assert true_class_rank(LOGITS, LABELS).tolist() == RANKS.tolist()
    assert plantkit_scores(LABELS, LOGITS, C) == pytest.approx(HAND)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_ties_count_against_the_model_streamed_and_after_reset(dtype):
    logits = LOGITS.astype(dtype)
    metrics = fresh_metrics()
    assert list(metrics) == ["top1", "top5", "macro_top1"]
    assert metrics["top5"].k == 5
    got = stream(metrics, LABELS, logits, BATCHES)
    assert got == pytest.approx(HAND, abs=1e-7)
    assert got == pytest.approx(plantkit_scores(LABELS, logits, C), abs=1e-7)

    for metric in metrics.values():
        metric.reset_state()
        assert float(metric.result()) == 0.0
    part = slice(0, 5)  # rows 0-4: one top-1 hit (row 4), top-5 hits rows 0 and 4
    got = stream(metrics, LABELS[part], logits[part], [slice(0, 2), slice(2, 5)])
    assert got == pytest.approx({"top1": 1 / 5, "top5": 2 / 5, "macro_top1": 1 / 5}, abs=1e-7)
    assert got == pytest.approx(plantkit_scores(LABELS[part], logits[part], C), abs=1e-7)


def test_argmax_metrics_would_have_counted_the_ties():
    # Why the compiled metrics were replaced: on the same logits Keras' argmax top-1 says 4/8.
    top1 = keras.metrics.SparseCategoricalAccuracy()
    top1.update_state(torch.tensor(LABELS), torch.tensor(LOGITS))
    assert float(top1.result()) == pytest.approx(4 / 8)
    assert float(top1.result()) != pytest.approx(HAND["top1"])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_many_ties_agree_with_plantkit_metrics(dtype):
    rng = np.random.default_rng(0)
    num_classes = 12
    labels = rng.integers(0, num_classes - 2, size=300)  # the last two classes absent
    logits = rng.integers(0, 4, size=(300, num_classes)).astype(dtype)  # ties everywhere
    logits[np.arange(300), labels] += rng.integers(0, 2, size=300).astype(dtype)
    metrics = {m.name: m for m in accuracy_metrics(num_classes)}
    got = stream(metrics, labels, logits, np.array_split(np.arange(300), 7))
    expected = plantkit_scores(labels, logits, num_classes)
    assert got == pytest.approx(expected, abs=1e-6)
    argmax_top1 = float(np.mean(logits.argmax(1) == labels))
    assert abs(argmax_top1 - expected["top1"]) > 0.05  # the tie rule matters here


def test_labels_as_a_column_and_sample_weights():
    metric = TopKAccuracy(1, name="top1")
    metric.update_state(torch.tensor(LABELS[:, None]), torch.tensor(LOGITS),
                        sample_weight=torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 1]))
    assert float(metric.result()) == pytest.approx(1 / 5)  # only row 7 of those 5 is a hit
    macro = MacroTop1(C)
    macro.update_state(torch.tensor(LABELS[:, None]), torch.tensor(LOGITS))
    assert float(macro.result()) == pytest.approx(HAND["macro_top1"])


def test_few_classes_cap_k_and_the_metrics_round_trip_their_config():
    assert [(m.name, getattr(m, "k", None)) for m in accuracy_metrics(3)] == [
        ("top1", 1), ("top5", 3), ("macro_top1", None)]
    for metric in accuracy_metrics(C):
        config = keras.saving.serialize_keras_object(metric)
        assert config["registered_name"].startswith("plantkit>")
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is type(metric) and again.get_config() == metric.get_config()


def test_history_val_top1_is_plantkits_top1_of_the_stored_val_logits(tmp_path):
    counts = make_profile("uniform", classes=3, scale=19 / 9012)  # 3 x (15 train, 2 val, 2 test)
    root = generate_dataset(tmp_path / "data", counts, image_size=40, seed=0)
    config = TrainConfig(data=str(root), arch="test_resnet", epochs=1, resize=40, crop=32,
                         batch_size=16, workers=0, lr=0.05)
    run_dir = train_expert(config, artifacts=tmp_path / "artifacts", quiet=True).folder
    last = read_history_rows(run_dir / "history.csv")[-1]
    with open_store(run_dir / "predictions.h5") as store:  # the best epoch = the only one
        labels, logits = store.labels("val"), store.logits("val")
    expected = plantkit_scores(labels, logits, 3)
    assert float(last["val_top1"]) == pytest.approx(expected["top1"], abs=1e-6)
    assert float(last["val_macro_top1"]) == pytest.approx(expected["macro_top1"], abs=1e-6)


def test_nan_logits_count_against_the_model_in_both_implementations():
    # A diverging training's NaN must never look like a perfect epoch: a NaN true score is a
    # miss at every k < C; a NaN elsewhere ranks above the true class.
    labels = np.array([0, 1, 2])
    logits = np.array([[np.nan, 1, 2], [np.nan, 3, 0], [0, 1, 2]], dtype=np.float32)
    np.testing.assert_array_equal(true_class_rank(logits, labels), [2, 1, 0])
    metrics = stream(fresh_metrics(), labels, logits, [slice(0, 3)])
    assert metrics["top1"] == pytest.approx(1 / 3)
    assert metrics["macro_top1"] == pytest.approx(1 / 3)
