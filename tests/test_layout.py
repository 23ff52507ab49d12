"""Reading datasets: layouts, class order, fingerprints, carved val, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_tree, write_image

from plantkit.data.layout import carve_val_from_train, class_order, open_dataset
from plantkit.data.verify import verify_images
from plantkit.errors import PlantkitInputError

SMALL = {
    "train": {"b": 4, "a": 3},
    "val": {"a": 1, "b": 1},
    "test": {"a": 1, "b": 2},
}


def test_plantnet_layout_reads_classes_names_and_splits(plantnet_root):
    ds = open_dataset(plantnet_root)
    assert ds.layout == "plantnet"
    assert ds.class_ids == ["1355868", "1355920", "1363227"]
    assert ds.class_names["1363227"] == "Daucus carota L."
    assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [15, 3, 3]
    counts = ds.counts()
    assert counts.loc["1355868", "train"] == 8
    assert counts.loc["1363227", "species_name"] == "Daucus carota L."
    assert ds.splits["train"].paths[0].startswith("train/1355868/")
    assert ds.image_path("val", 0).is_file()
    assert ds.n_images == 21


@pytest.mark.parametrize("variant", ["images_underscore", "images_folder_itself", "imagefolder"])
def test_other_layouts_give_the_same_dataset(tmp_path, plantnet_root, variant):
    reference = open_dataset(plantnet_root)
    if variant == "images_underscore":
        root = tmp_path / "u"
        for split in ("train", "val", "test"):
            shutil.copytree(plantnet_root / "images" / split, root / f"images_{split}")
    elif variant == "images_folder_itself":
        root = plantnet_root / "images"
    else:
        root = tmp_path / "f"
        shutil.copytree(plantnet_root / "images", root)
    ds = open_dataset(root)
    assert ds.class_ids == reference.class_ids
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(ds.splits[split].labels, reference.splits[split].labels)
    if variant == "images_folder_itself":
        # The JSON files one level up are found, so names and layout are Pl@ntNet's.
        assert ds.layout == "plantnet" and ds.class_names == reference.class_names
        assert ds.fingerprint == reference.fingerprint
    if variant == "imagefolder":
        assert ds.layout == "imagefolder" and ds.class_names == {}


def test_class_index_is_numeric_rank_not_string_order():
    assert class_order(["100", "20", "3"]) == ["3", "20", "100"]
    assert class_order(["b", "a", "10"]) == ["10", "a", "b"]


def test_disagreeing_class_index_file_is_refused(plantnet_root):
    (plantnet_root / "class_idx_to_species_id.json").write_text(
        json.dumps({"0": "1355920", "1": "1355868", "2": "1363227"})
    )
    with pytest.raises(PlantkitInputError, match="disagrees.*first at 0"):
        open_dataset(plantnet_root)


def test_fingerprint_changes_with_content_and_not_with_location(tmp_path, plantnet_root):
    first = open_dataset(plantnet_root).fingerprint
    copy = tmp_path / "copy"
    shutil.copytree(plantnet_root, copy)
    assert open_dataset(copy).fingerprint == first
    # A new image changes it; so does moving an image between splits.
    write_image(copy / "images" / "train" / "1355920" / "extra.jpg")
    second = open_dataset(copy).fingerprint
    assert second != first
    os.rename(copy / "images/train/1355920/extra.jpg", copy / "images/test/1355920/extra.jpg")
    assert open_dataset(copy).fingerprint not in (first, second)
    assert len(first) == 16


def test_non_image_files_are_skipped_and_counted(plantnet_root):
    (plantnet_root / "images/train/1355868/notes.txt").write_text("x")
    (plantnet_root / "images/train/1355868/.DS_Store").write_text("x")
    ds = open_dataset(plantnet_root)
    assert ds.skipped["train"] == 2
    assert len(ds.splits["train"]) == 15


def test_missing_root_and_missing_splits(tmp_path):
    with pytest.raises(PlantkitInputError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlantkitInputError, match="no split folders under"):
        open_dataset(tmp_path / "empty")
    root = make_tree(tmp_path / "noval", {"train": SMALL["train"], "test": SMALL["test"]})
    with pytest.raises(PlantkitInputError, match="no val split; pass --val-from-train"):
        open_dataset(root)
    root = make_tree(tmp_path / "notest", {"train": SMALL["train"], "val": SMALL["val"]})
    with pytest.raises(PlantkitInputError, match="no test split"):
        open_dataset(root)


def test_val_from_train_is_stratified_seeded_and_disjoint(tmp_path):
    root = make_tree(
        tmp_path / "d", {"train": {"a": 20, "b": 10, "c": 2}, "test": {"a": 1, "b": 1, "c": 1}}
    )
    ds = open_dataset(root, val_from_train=0.2, seed=3)
    counts = ds.counts()
    assert counts["val"].tolist() == [4, 2, 0]  # 20 %, and a 2-image class keeps both
    assert counts["train"].tolist() == [16, 8, 2]
    assert not set(ds.splits["val"].paths) & set(ds.splits["train"].paths)
    again = open_dataset(root, val_from_train=0.2, seed=3)
    other = open_dataset(root, val_from_train=0.2, seed=4)
    assert again.splits["val"].paths == ds.splits["val"].paths
    assert other.splits["val"].paths != ds.splits["val"].paths
    assert other.fingerprint != ds.fingerprint
    assert ds.val_source.startswith("train (stratified 0.2")


def test_val_from_train_refused_when_val_exists_or_fraction_bad(tmp_path, plantnet_root):
    with pytest.raises(PlantkitInputError, match="already has a val split"):
        open_dataset(plantnet_root, val_from_train=0.1)
    root = make_tree(tmp_path / "d", {"train": SMALL["train"], "test": SMALL["test"]})
    with pytest.raises(PlantkitInputError, match="between 0 and 1"):
        open_dataset(root, val_from_train=1.5)


def test_carve_keeps_two_train_images_per_class():
    train = {"a": [(f"train/a/{i}.jpg", 1) for i in range(3)]}
    new_train, val = carve_val_from_train(train, 0.9, seed=0)
    assert len(new_train["a"]) == 2 and len(val["a"]) == 1


def test_class_in_val_absent_from_train(tmp_path):
    spec = {"train": {"a": 2}, "val": {"a": 1, "zz": 1}, "test": {"a": 1}}
    with pytest.raises(PlantkitInputError, match="in val are absent from train: zz"):
        open_dataset(make_tree(tmp_path / "d", spec))


def test_empty_class_folder(tmp_path):
    root = make_tree(tmp_path / "d", SMALL)
    (root / "test" / "c").mkdir()
    (root / "train" / "c").mkdir()
    with pytest.raises(PlantkitInputError, match=r"empty class folder .*train/c"):
        open_dataset(root)


def test_unreadable_file(tmp_path):
    root = make_tree(tmp_path / "d", SMALL)
    os.symlink(tmp_path / "gone.jpg", root / "train" / "a" / "broken.jpg")
    with pytest.raises(PlantkitInputError, match="unreadable file .*broken.jpg"):
        open_dataset(root)


def test_verify_lists_corrupt_images(tmp_path):
    root = make_tree(tmp_path / "d", SMALL)
    good = (root / "train/a/img000.jpg").read_bytes()
    (root / "train/a/img001.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (root / "test/b/img001.jpg").write_bytes(b"not an image at all")
    ds = open_dataset(root)
    seen = []
    corrupt = verify_images(ds, on_image=seen.append)
    assert sum(seen) == ds.n_images
    assert sorted(c["path"] for c in corrupt) == ["test/b/img001.jpg", "train/a/img001.jpg"]
    assert all(c["error"] for c in corrupt)


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_cli_bad_root_is_one_line_exit_2(tmp_path):
    result = _cli("data", "inspect", "--data", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "missing does not exist" in result.stderr


def test_cli_verify_reports_corrupt_files_in_json(tmp_path):
    root = make_tree(tmp_path / "d", SMALL)
    (root / "val/a/img000.jpg").write_bytes(b"garbage")
    result = _cli("data", "inspect", "--data", str(root), "--verify", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [c["path"] for c in payload["corrupt_images"]] == ["val/a/img000.jpg"]


def test_cli_val_from_train(tmp_path):
    root = make_tree(tmp_path / "d", {"train": {"a": 10, "b": 10}, "test": {"a": 1, "b": 1}})
    result = _cli("data", "inspect", "--data", str(root), "--val-from-train", "0.1", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["images_per_split"]["val"] == 2
