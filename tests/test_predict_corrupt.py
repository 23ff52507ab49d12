"""Prediction skips corrupt images as training does: up to 1 % of a split is left out of the
store (recorded as skipped, announced in one warning line), more is refused.

3 classes, 40 px images (120 val, 120 test) and timm's `test_resnet` at 32 px keep every
test to seconds on two CPU cores.
"""

from __future__ import annotations

import json
import shutil

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)

import h5py  # isort: skip
import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, one_torch_thread  # noqa: F401 (an autouse fixture)

from plantkit.data.layout import open_dataset
from plantkit.data.synth import generate_dataset
from plantkit.errors import PlantkitInputError
from plantkit.models.expert import create_expert
from plantkit.predict import predict_to_store
from plantkit.store import open_store

TINY = ["--arch", "test_resnet", "--resize", "40", "--crop", "32", "--workers", "0",
        "--milestones", "1", "--lr", "0.05", "--quiet"]


def corrupt(files, n: int) -> list:
    """Truncate n of `files`, spread over them; returns the victims (as in
    test_train_ordinary)."""
    victims = files[:: max(1, len(files) // n)][:n]
    for path in victims:
        path.write_bytes(path.read_bytes()[:40])
    return victims


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
    """3 classes x (10 train, 40 val, 40 test)."""
    counts = pd.DataFrame({"species_name": [f"Species {i}" for i in range(3)],
                           "train": [10] * 3, "val": [40] * 3, "test": [40] * 3},
                          index=pd.Index(range(3), name="class_id"))
    return generate_dataset(tmp_path_factory.mktemp("data") / "clean", counts, image_size=40)


@pytest.fixture(scope="module")
def experts():
    import keras

    keras.utils.set_random_seed(0)
    return [create_expert("test_resnet", 3, input_size=32) for _ in range(2)]


def damaged(clean_root, tmp_path, n_val: int, n_test: int = 0):
    """A copy of the dataset with corrupt val and test images: (root, victims' relative
    paths per split)."""
    root = tmp_path / "data"
    shutil.copytree(clean_root, root)
    dataset = open_dataset(root)
    victims = {}
    for split, n in (("val", n_val), ("test", n_test)):
        files = [dataset.images_dir / p for p in dataset.splits[split].paths]
        victims[split] = [str(v.relative_to(dataset.images_dir))
                          for v in (corrupt(files, n) if n else [])]
    return root, victims


def predict(expert, root, store, splits=("val", "test"), **options):
    lines: list[str] = []
    predict_to_store(expert, open_dataset(root), list(splits), store, workers=0, resize=40,
                     warn=lines.append, **options)
    return lines


def test_one_corrupt_val_image_in_120_is_skipped_and_recorded(clean_root, experts, tmp_path):
    root, victims = damaged(clean_root, tmp_path, n_val=1)
    victim, = victims["val"]
    store_file = tmp_path / "a" / "predictions.h5"
    lines = predict(experts[0], root, store_file, features=True, batch_size=16)
    assert len(lines) == 1
    assert lines[0].startswith(
        "warning: predicting val, test skipped 1 corrupt image (1 of 120 val images): ")
    assert victim in lines[0] and f"`plantkit data inspect --data {root} --verify`" in lines[0]

    dataset = open_dataset(root)
    kept = [i for i, p in enumerate(dataset.splits["val"].paths) if p != victim]
    with open_store(store_file) as store:
        assert store.num_rows("val") == 119 and store.num_rows("test") == 120
        assert store.paths("val") == [dataset.splits["val"].paths[i] for i in kept]
        assert np.array_equal(store.labels("val"), dataset.splits["val"].labels[kept])
        assert store.skipped_paths("val") == [victim] and store.skipped_paths("test") == []
        val_logits, val_features = store.logits("val"), store.features("val")
        assert val_features.shape[0] == 119
    # The kept rows are those of a clean run, row for row (the compaction moved them intact).
    clean_file = tmp_path / "clean" / "predictions.h5"
    assert predict(experts[0], clean_root, clean_file, features=True, batch_size=16) == []
    with open_store(clean_file) as clean:
        np.testing.assert_allclose(val_logits, clean.logits("val")[kept], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(val_features, clean.features("val")[kept], rtol=1e-2,
                                   atol=1e-3)
        assert clean.skipped_paths("val") == []
    # The checksums hold: fletcher32 on the shrunk datasets, the sha256 of what is stored.
    with h5py.File(store_file, "r") as f:
        group = f["splits/val"]
        assert all(group[name].fletcher32 for name in ("logits", "labels", "features"))
        assert group["logits"].shape == (119, 3)
        assert "skipped_paths_sha256" in group.attrs and "paths_sha256" in group.attrs


@pytest.mark.parametrize("n_val, message", [
    (2, r"2 of 120 images read are corrupt, more than 1%"),
    (120, r"of \d+ images read are corrupt, more than 1%"),  # every image: refused too
])
def test_more_than_one_percent_is_refused_and_nothing_stored(clean_root, experts, tmp_path,
                                                             n_val, message):
    root, _ = damaged(clean_root, tmp_path, n_val=n_val)
    store_file = tmp_path / "a" / "predictions.h5"
    with pytest.raises(PlantkitInputError, match=message):
        predict(experts[0], root, store_file)
    assert not store_file.parent.exists()


def test_appending_a_split_keeps_the_skipped_rows_out(clean_root, experts, tmp_path):
    root, victims = damaged(clean_root, tmp_path, n_val=1, n_test=1)
    store_file = tmp_path / "a" / "predictions.h5"
    assert len(predict(experts[0], root, store_file, splits=["val"])) == 1
    lines = predict(experts[0], root, store_file, splits=["test"], append=True)
    assert len(lines) == 1 and "(1 of 120 test images)" in lines[0]
    with open_store(store_file) as store:
        assert store.splits == ["val", "test"]
        for split in ("val", "test"):
            assert store.num_rows(split) == 119
            assert store.skipped_paths(split) == victims[split]
            assert victims[split][0] not in store.paths(split)
            store.logits(split)  # every chunk's fletcher32 verified
    # Predicting val again into the store: the other split's record is carried over again.
    assert len(predict(experts[0], root, store_file, splits=["val"], append=True)) == 1
    with open_store(store_file) as store:
        assert store.skipped_paths("test") == victims["test"]


def test_two_experts_skipping_the_same_images_combine_and_report(clean_root, experts,
                                                                 tmp_path):
    root, victims = damaged(clean_root, tmp_path, n_val=1, n_test=1)
    artifacts = tmp_path / "artifacts"
    for name, expert in zip(("alpha", "beta"), experts, strict=True):
        predict(expert, root, artifacts / "experts" / name / "predictions.h5", name=name)
    code, out, err = cli("--artifacts", artifacts, "combine", "--average", "--quiet")
    assert code == 0, err
    combos = sorted((artifacts / "combos").glob("*/predictions.h5"))
    assert combos
    with open_store(combos[0]) as combo, \
            open_store(artifacts / "experts" / "alpha" / "predictions.h5") as alpha:
        assert combo.num_rows("test") == 119
        assert combo.paths("test") == alpha.paths("test")
    code, out, err = cli("--artifacts", artifacts, "report", "--json", "--quiet",
                         "--workers", "1")
    assert code == 0, err
    report = json.loads(out)
    notes = [n for m in report["models"] for n in m["notes"]]
    assert "1 corrupt val image skipped when predicting: not in the store, nor in its scores" \
        in notes


def test_training_with_corrupt_val_and_test_images_completes(clean_root, tmp_path):
    root, victims = damaged(clean_root, tmp_path, n_val=1, n_test=1)
    artifacts = tmp_path / "artifacts"
    code, _, err = cli("--artifacts", artifacts, "train", "--data", root, "--epochs", 1,
                       "--batch-size", 16, *TINY)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert any("epoch 1/1 skipped 1 corrupt image (1 of 120 val images)" in w
               for w in warnings), err
    predicting = [w for w in warnings if w.startswith("warning: predicting")]
    assert len(predicting) == 1, err
    assert "skipped 2 corrupt images (1 of 120 val, 1 of 120 test images)" in predicting[0]
    with open_store(artifacts / "experts" / "test_resnet" / "predictions.h5") as store:
        for split in ("val", "test"):
            assert store.num_rows(split) == 119
            assert store.skipped_paths(split) == victims[split]
            assert not set(victims[split]) & set(store.paths(split))
