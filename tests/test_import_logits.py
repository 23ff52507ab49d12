"""`plantkit import logits`: outside predictions into an expert's store, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plantkit.data.layout import open_dataset
from plantkit.logits_import import import_logits
from plantkit.store import open_store

CLASS_IDS = ["1355868", "1355920", "1363227", "1392475"]


def _cli(artifacts: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(artifacts),
         "import", "logits", *args],
        capture_output=True, text=True,
    )


def _store(artifacts: Path, expert: str = "outside") -> Path:
    return artifacts / "experts" / expert / "predictions.h5"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Logits/labels for val (9 rows) and test (7 rows), classes as JSON and as text."""
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("val", 9), ("test", 7)):
        files[f"{split}_logits"] = tmp_path / f"{split}_logits.npy"
        files[f"{split}_labels"] = tmp_path / f"{split}_labels.npy"
        np.save(files[f"{split}_logits"], rng.normal(size=(n, len(CLASS_IDS))).astype(np.float32))
        np.save(files[f"{split}_labels"], rng.integers(0, len(CLASS_IDS), size=n))
    files["classes_json"] = tmp_path / "class_idx_to_species_id.json"
    files["classes_json"].write_text(json.dumps({str(i): c for i, c in enumerate(CLASS_IDS)}))
    files["classes_txt"] = tmp_path / "classes.txt"
    files["classes_txt"].write_text("\n".join(CLASS_IDS) + "\n")
    return files


def _import(artifacts, inputs, split="val", *extra):
    return _cli(artifacts, "--expert", "outside", "--split", split,
                "--logits", str(inputs[f"{split}_logits"]),
                "--labels", str(inputs[f"{split}_labels"]), *extra)


def test_import_with_a_json_class_mapping(tmp_path, inputs):
    artifacts = tmp_path / "art"
    without_classes = _import(artifacts, inputs, "val")
    assert without_classes.returncode == 2
    assert "--data ROOT or --classes FILE" in without_classes.stderr
    assert not (artifacts / "experts").exists()

    result = _import(artifacts, inputs, "val", "--classes", str(inputs["classes_json"]), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["classes"], summary["splits"]) == (9, 4, ["val"])
    with open_store(_store(artifacts)) as store:
        assert store.kind == "expert" and store.name == "outside"
        assert store.class_ids == CLASS_IDS
        assert store.fingerprint.startswith("classes:") and store.fingerprint == summary[
            "fingerprint"]
        np.testing.assert_array_equal(store.logits("val"), np.load(inputs["val_logits"]))
        np.testing.assert_array_equal(store.labels("val"), np.load(inputs["val_labels"]))
        assert store.paths("val") == [""] * 9
        assert store.train_counts is None


def test_text_classes_train_counts_and_paths(tmp_path, inputs):
    artifacts = tmp_path / "art"
    counts = tmp_path / "train_counts.csv"
    # Any row order, with a header: the counts land at each class's index.
    counts.write_text("species_id,train_images\n1392475,3\n1355868,120\n1363227,0\n1355920,45\n")
    paths = tmp_path / "paths.txt"
    paths.write_text("\n".join(f"test/x/{i}.jpg" for i in range(7)) + "\n")
    result = _import(artifacts, inputs, "test", "--classes", str(inputs["classes_txt"]),
                     "--train-counts", str(counts), "--paths", str(paths), "--dtype", "float16")
    assert result.returncode == 0, result.stderr
    with open_store(_store(artifacts)) as store:
        assert store.class_ids == CLASS_IDS
        np.testing.assert_array_equal(store.train_counts, [120, 45, 0, 3])
        assert store.paths("test") == [f"test/x/{i}.jpg" for i in range(7)]
        assert store.logits_dtype("test") == "float16"
        np.testing.assert_allclose(store.logits("test"), np.load(inputs["test_logits"]),
                                   rtol=2**-11, atol=1e-7)


def test_two_imports_add_val_and_test_to_one_store(tmp_path, inputs):
    artifacts = tmp_path / "art"
    first = _import(artifacts, inputs, "val", "--classes", str(inputs["classes_json"]))
    # The second import takes the class ids from the store it adds to.
    second = _import(artifacts, inputs, "test")
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    with open_store(_store(artifacts)) as store:
        assert store.splits == ["val", "test"]
        for split in ("val", "test"):
            np.testing.assert_array_equal(store.logits(split), np.load(inputs[f"{split}_logits"]))
            np.testing.assert_array_equal(store.labels(split), np.load(inputs[f"{split}_labels"]))

    # The same split again needs --overwrite, and then replaces only that split.
    before = _store(artifacts).read_bytes()
    refused = _import(artifacts, inputs, "val")
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert _store(artifacts).read_bytes() == before
    np.save(inputs["val_logits"], np.load(inputs["val_logits"]) + 1.0)
    replaced = _import(artifacts, inputs, "val", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    with open_store(_store(artifacts)) as store:
        np.testing.assert_array_equal(store.logits("val"), np.load(inputs["val_logits"]))
        np.testing.assert_array_equal(store.logits("test"), np.load(inputs["test_logits"]))


def test_import_with_a_dataset_takes_its_classes_paths_and_counts(tmp_path, plantnet_root):
    dataset = open_dataset(plantnet_root)
    val = dataset.splits["val"]
    logits = np.random.default_rng(1).normal(size=(len(val), dataset.num_classes))
    np.save(tmp_path / "l.npy", logits.astype(np.float32))
    np.save(tmp_path / "y.npy", val.labels)
    np.save(tmp_path / "shuffled.npy", val.labels[::-1])
    artifacts = tmp_path / "art"
    base = ["--expert", "outside", "--split", "val", "--logits", str(tmp_path / "l.npy"),
            "--data", str(plantnet_root)]

    shuffled = _cli(artifacts, *base, "--labels", str(tmp_path / "shuffled.npy"))
    assert shuffled.returncode == 2 and "dataset's order" in shuffled.stderr
    assert not _store(artifacts).exists()

    result = _cli(artifacts, *base, "--labels", str(tmp_path / "y.npy"))
    assert result.returncode == 0, result.stderr
    with open_store(_store(artifacts)) as store:
        assert store.fingerprint == dataset.fingerprint
        assert store.class_ids == dataset.class_ids
        assert store.paths("val") == val.paths
        np.testing.assert_array_equal(store.train_counts, dataset.counts()["train"].to_numpy())


def _existing_test_split(artifacts, inputs) -> None:
    """A store holding the test split, made in-process (one subprocess less per test)."""
    import_logits(artifacts, expert="outside", split="test", logits_path=inputs["test_logits"],
                  labels_path=inputs["test_labels"], classes_path=inputs["classes_json"])


def _write_nan_logits(tmp_path, inputs):
    logits = np.load(inputs["val_logits"])
    logits[4, 1] = np.nan
    np.save(inputs["val_logits"], logits)


def _write_wide_logits(tmp_path, inputs):
    np.save(inputs["val_logits"], np.zeros((9, len(CLASS_IDS) + 1), dtype=np.float32))


def _write_short_labels(tmp_path, inputs):
    np.save(inputs["val_labels"], np.zeros(8, dtype=np.int64))


def _write_label_out_of_range(tmp_path, inputs):
    labels = np.load(inputs["val_labels"])
    labels[3] = len(CLASS_IDS)
    np.save(inputs["val_labels"], labels)


def _write_unknown_count_class(tmp_path, inputs):
    (tmp_path / "counts.csv").write_text("".join(f"{c},5\n" for c in CLASS_IDS) + "7777777,2\n")


def _remove_logits(tmp_path, inputs):
    inputs["val_logits"].unlink()


BAD_INPUTS = [
    ("missing file", _remove_logits, [], "--logits", "no such file"),
    ("wrong width", _write_wide_logits, [], "--logits", "has 5 columns but there are 4 classes"),
    ("short labels", _write_short_labels, [], "--labels", "has 8 rows but --logits"),
    ("NaN", _write_nan_logits, [], "--logits", "NaN or infinite values (first at row 4)"),
    ("label range", _write_label_out_of_range, [], "--labels", "label 4 at row 3"),
    ("unknown count class", _write_unknown_count_class, ["--train-counts", "counts.csv"],
     "--train-counts", "class id 7777777 is not one of"),
]


@pytest.mark.parametrize(("case", "spoil", "extra", "option", "message"), BAD_INPUTS,
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_leaves_the_store_alone(
        tmp_path, inputs, case, spoil, extra, option, message):
    artifacts = tmp_path / "art"
    _existing_test_split(artifacts, inputs)
    before = _store(artifacts).read_bytes()
    spoil(tmp_path, inputs)
    extra = [str(tmp_path / a) if a.endswith(".csv") else a for a in extra]
    result = _import(artifacts, inputs, "val", *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and message in lines[0], result.stderr
    assert _store(artifacts).read_bytes() == before
    assert sorted(p.name for p in _store(artifacts).parent.iterdir()) == ["predictions.h5"]


def test_classes_of_another_dataset_are_refused_naming_both(tmp_path, inputs):
    artifacts = tmp_path / "art"
    _existing_test_split(artifacts, inputs)
    before = _store(artifacts).read_bytes()
    other = tmp_path / "other_classes.txt"
    other.write_text("\n".join(CLASS_IDS[:-1] + ["8888888"]))
    result = _import(artifacts, inputs, "val", "--classes", str(other))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "other_classes.txt" in lines[0], result.stderr
    assert "experts/outside/predictions.h5" in lines[0]
    assert _store(artifacts).read_bytes() == before
