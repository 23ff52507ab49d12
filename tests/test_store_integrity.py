"""Store integrity (issue 9): checksums written when a store is completed, verified on read.

Each test damages a store on disk the way a bad disk or a truncated copy would (one flipped
byte inside a data region) and expects a one-line PlantkitInputError naming the file.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from plantkit import store as store_module
from plantkit.artifacts import STORE_FILE, artifact_lock
from plantkit.errors import PlantkitInputError
from plantkit.store import (
    CLASS_IDS_SHA256,
    PATHS_SHA256,
    StoreWriter,
    check_compatible,
    open_store,
    strings_sha256,
)

# Strings that occur once in the file, so a test can find their bytes and damage them.
CLASS_IDS = ["classAlpha", "classBravo", "classCharlie", "classDelta"]
C = len(CLASS_IDS)
FEATURE_DIM = 6
COUNTS = np.array([40, 3, 0, 12])


def _predictions(n_rows: int, seed: int):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(n_rows, C)) * 3).astype(np.float32)
    labels = rng.integers(0, C, size=n_rows)
    paths = [f"seed{seed}/c{y}/img{i:04d}.jpg" for i, y in enumerate(labels)]
    features = rng.normal(size=(n_rows, FEATURE_DIM)).astype(np.float32)
    return logits, labels, paths, features


SPLITS = {"val": _predictions(300, seed=1), "test": _predictions(120, seed=2)}


def _write(path, splits=SPLITS, *, dtype="float32", append=False, batch=64):
    with artifact_lock(path.parent), StoreWriter(
        path, name="expert-a", class_ids=CLASS_IDS, fingerprint="fp-integrity",
        attrs={"architecture": "resnet18"}, train_counts=COUNTS, append=append,
    ) as writer:
        for split, (logits, labels, paths, features) in splits.items():
            out = writer.create_split(split, n_rows=len(labels), dtype=dtype,
                                      feature_dim=FEATURE_DIM)
            for start in range(0, len(labels), batch):
                stop = start + batch
                out.write(start, logits[start:stop], labels[start:stop], paths[start:stop],
                          features[start:stop])
    return path


@pytest.fixture
def verification_off():
    store_module.set_verification(False)
    try:
        yield
    finally:
        store_module.set_verification(True)


def _flip_byte(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x5A]))


def _flip_in_dataset(path, name: str, row: int = 0) -> None:
    """Flip one byte in the middle of the chunk holding `row` of dataset `name`, on disk."""
    with h5py.File(path, "r") as f:
        dataset = f[name]
        assert dataset.fletcher32, f"{name} carries no checksum"
        info = dataset.id.get_chunk_info_by_coord((row,) + (0,) * (dataset.ndim - 1))
        offset = info.byte_offset + info.size // 2
    _flip_byte(path, offset)


def _replace_string(path, text: str, new_char: str = "Z") -> None:
    """Change one character of a string stored once in the file (e.g. in the string heap)."""
    data = bytearray(path.read_bytes())
    needle = text.encode()
    assert data.count(needle) == 1, f"{text!r} is not stored exactly once"
    at = data.find(needle) + len(needle) // 2
    assert chr(data[at]) != new_char
    data[at] = ord(new_char)
    path.write_bytes(bytes(data))


def _assert_refused(path, read, *expected_parts):
    with pytest.raises(PlantkitInputError) as caught:
        with open_store(path) as store:
            read(store)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    assert "re-create it" in message
    for part in expected_parts:
        assert part in message
    return message


def _read_everything(store):
    """Every value a store holds, through every read path."""
    out = {"class_ids": store.class_ids, "train_counts": store.train_counts,
           "attrs": store.attrs, "splits": store.splits}
    for split in store.splits:
        out[split] = {
            "labels": store.labels(split), "paths": store.paths(split),
            "logits": store.logits(split), "features": store.features(split),
            "iter_logits": np.concatenate([c for _, c in store.iter_logits(split, 50)]),
        }
    return out


def _assert_reads_as_written(path, dtype):
    with open_store(path) as store:
        got = _read_everything(store)
    assert got["class_ids"] == CLASS_IDS
    np.testing.assert_array_equal(got["train_counts"], COUNTS)
    assert got["attrs"] == {"architecture": "resnet18"}
    assert [s for s in got["splits"] if s in SPLITS] == ["val", "test"]
    tolerance = {} if dtype == "float32" else {"rtol": 2**-11, "atol": 1e-6}
    for split, (logits, labels, paths, features) in SPLITS.items():
        read = got[split]
        np.testing.assert_array_equal(read["labels"], labels)
        assert read["paths"] == paths
        np.testing.assert_allclose(read["logits"], logits, **tolerance)
        np.testing.assert_array_equal(read["iter_logits"], read["logits"])
        np.testing.assert_allclose(read["features"], features, rtol=2**-11, atol=1e-4)


# --- what is written ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_every_dataset_carries_a_checksum_and_an_untouched_store_reads_identically(
        tmp_path, dtype):
    path = _write(tmp_path / STORE_FILE, dtype=dtype)
    with h5py.File(path, "r") as f:
        for split in SPLITS:
            for name in ("logits", "features", "labels"):
                assert f[f"splits/{split}/{name}"].fletcher32, (split, name)
            assert f[f"splits/{split}"].attrs[PATHS_SHA256] == strings_sha256(SPLITS[split][2])
        assert f["train_counts"].fletcher32
        assert f["splits/val/labels"].chunks == (300,)
        assert f.attrs[CLASS_IDS_SHA256] == strings_sha256(CLASS_IDS)
        assert f.attrs["schema_version"] == 1
    _assert_reads_as_written(path, dtype)


def test_strings_sha256_is_the_documented_recipe():
    # docs/store.md: sha256 of the strings joined with "\n", UTF-8 (`printf 'a\nb' | sha256sum`)
    assert strings_sha256(["a", "b"]) == (
        "7e18f737311b2dc3b2f269dd78396b0351f14fb66efa879f768cb23181883c78")
    assert strings_sha256([]) == (  # an empty split: the sha256 of no bytes
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert strings_sha256(["é"]) == hashlib.sha256("é".encode()).hexdigest()


def test_checksum_attributes_are_not_user_attributes(tmp_path):
    path = _write(tmp_path / STORE_FILE)
    with open_store(path) as store:
        assert CLASS_IDS_SHA256 not in store.attrs
    with pytest.raises(PlantkitInputError, match="set by the store itself"):
        StoreWriter(tmp_path / "other.h5", name="x", class_ids=CLASS_IDS, fingerprint="fp",
                    attrs={CLASS_IDS_SHA256: "0" * 64})


# --- damaged data are refused ------------------------------------------------------------


READS = {
    "logits": lambda s: s.logits("val"),
    "logits rows": lambda s: s.logits("val", rows=slice(0, 10)),
    "iter_logits": lambda s: [c for _, c in s.iter_logits("val", 64)],
    "features": lambda s: s.features("val"),
    "features rows": lambda s: s.features("val", rows=slice(0, 10)),
    "labels": lambda s: s.labels("val"),
    "check_compatible": lambda s: check_compatible([s, s], splits=["val"]),
}
DAMAGED = {  # read -> the dataset whose first chunk is damaged
    "logits": "splits/val/logits", "logits rows": "splits/val/logits",
    "iter_logits": "splits/val/logits", "features": "splits/val/features",
    "features rows": "splits/val/features",
    "labels": "splits/val/labels", "check_compatible": "splits/val/labels",
}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("read", list(READS))
def test_a_flipped_byte_in_a_data_chunk_is_refused_naming_the_file(tmp_path, dtype, read):
    path = _write(tmp_path / STORE_FILE, dtype=dtype)
    name = DAMAGED[read]
    _flip_in_dataset(path, name)
    what = name.rsplit("/", 1)[1]
    _assert_refused(path, READS[read], f"the {what} of split 'val'")
    # The other split is untouched and still reads.
    with open_store(path) as store:
        store.logits("test"), store.features("test"), store.labels("test")


def test_a_damaged_later_chunk_is_refused_when_the_iteration_reaches_it(tmp_path):
    path = _write(tmp_path / STORE_FILE, {"val": _predictions(2100, seed=5)}, batch=500)
    with h5py.File(path, "r") as f:
        assert f["splits/val/logits"].chunks == (1024, C)
    _flip_in_dataset(path, "splits/val/logits", row=2048)  # the third chunk
    with open_store(path) as store:
        pieces = store.iter_logits("val", 1000)
        assert [next(pieces)[0], next(pieces)[0]] == [0, 1000]  # chunks 1 and 2 are sound
        with pytest.raises(PlantkitInputError, match="the logits of split 'val'"):
            next(pieces)
        assert store.logits("val", rows=slice(0, 2048)).shape == (2048, C)
    _assert_refused(path, lambda s: s.logits("val", rows=slice(2099, 2100)), "logits")


def test_damaged_train_counts_are_refused(tmp_path):
    path = _write(tmp_path / STORE_FILE)
    _flip_in_dataset(path, "train_counts")
    _assert_refused(path, lambda s: s.train_counts, "the train counts")


def test_a_changed_path_is_refused_naming_the_split(tmp_path):
    path = _write(tmp_path / STORE_FILE)
    _replace_string(path, SPLITS["val"][2][7])
    message = _assert_refused(path, lambda s: s.paths("val"), "the paths of split 'val'")
    assert "sha256" in message
    with open_store(path) as store:  # the other split and the numbers still read
        assert store.paths("test") == SPLITS["test"][2]
        np.testing.assert_array_equal(store.labels("val"), SPLITS["val"][1])


def test_a_changed_class_id_is_refused(tmp_path):
    path = _write(tmp_path / STORE_FILE)
    _replace_string(path, "classCharlie")
    _assert_refused(path, lambda s: s.class_ids, "the class ids")
    _assert_refused(path, lambda s: s.num_classes, "the class ids")
    # labels are range-checked against the class count, so they need the class ids too
    _assert_refused(path, lambda s: s.labels("val"), "the class ids")


@pytest.mark.parametrize(("row", "value"), [(3, C), (0, -1), (299, 2**40)])
def test_a_label_out_of_range_is_refused_naming_split_and_row(tmp_path, row, value):
    path = _write(tmp_path / STORE_FILE)
    with h5py.File(path, "r+") as f:  # bypass the writer (HDF5 rewrites the checksum)
        f["splits/val/labels"][row] = value
    message = _assert_refused(path, lambda s: s.labels("val"), "'val'", f"row {row}",
                              f"label {value}")
    assert "0-3" in message
    _assert_refused(path, lambda s: check_compatible([s, s], splits=["val"]), f"row {row}")
    with open_store(path) as store:
        np.testing.assert_array_equal(store.labels("test"), SPLITS["test"][1])


def test_a_read_failure_is_one_line_not_a_traceback_of_oserror(tmp_path):
    path = _write(tmp_path / STORE_FILE)
    _flip_in_dataset(path, "splits/val/logits")
    with pytest.raises(PlantkitInputError) as caught:
        with open_store(path) as store:
            store.logits("val")
    assert isinstance(caught.value.__cause__, OSError)


# --- stores written before the checksums existed -----------------------------------------


def test_a_store_without_the_checksum_attributes_still_reads(tmp_path):
    path = _write(tmp_path / STORE_FILE)
    with h5py.File(path, "r+") as f:
        del f.attrs[CLASS_IDS_SHA256]
        for split in SPLITS:
            del f[f"splits/{split}"].attrs[PATHS_SHA256]
    _assert_reads_as_written(path, "float32")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_store_in_the_old_layout_reads_and_appending_gives_it_checksums(
        tmp_path, dtype, verification_off):
    path = _write(tmp_path / STORE_FILE, dtype=dtype)
    with h5py.File(path, "r") as f:  # the layout written before issue 9
        assert not f["splits/val/logits"].fletcher32
        assert f["splits/val/labels"].chunks is None and f["train_counts"].chunks is None
        assert CLASS_IDS_SHA256 not in f.attrs and PATHS_SHA256 not in f["splits/val"].attrs
    store_module.set_verification(True)
    _assert_reads_as_written(path, dtype)

    extra = {"train": _predictions(50, seed=3)}
    _write(path, extra, dtype=dtype, append=True)
    with h5py.File(path, "r") as f:
        for split in ("train", "val", "test"):
            assert f[f"splits/{split}/logits"].fletcher32
            assert f[f"splits/{split}/features"].fletcher32
            assert f[f"splits/{split}/labels"].fletcher32
            assert PATHS_SHA256 in f[f"splits/{split}"].attrs
        assert f.attrs[CLASS_IDS_SHA256] == strings_sha256(CLASS_IDS)
    _assert_reads_as_written(path, dtype)  # copied values are exact, float16 included


# --- append ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["logits", "features", "labels", "paths"])
def test_append_over_a_damaged_split_refuses_and_keeps_the_old_file(tmp_path, damage):
    path = _write(tmp_path / STORE_FILE, dtype="float16")
    if damage == "paths":
        _replace_string(path, SPLITS["val"][2][0])
    else:
        _flip_in_dataset(path, f"splits/val/{damage}")
    before = path.read_bytes()
    with pytest.raises(PlantkitInputError) as caught:
        _write(path, {"train": _predictions(40, seed=4)}, dtype="float16", append=True)
    message = str(caught.value)
    assert str(path) in message and "'val'" in message and "\n" not in message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []  # no temporary


def test_append_keeps_the_checksums_of_copied_splits(tmp_path):
    path = _write(tmp_path / STORE_FILE, dtype="float16")
    _write(path, {"train": _predictions(40, seed=4)}, dtype="float16", append=True)
    with h5py.File(path, "r") as f:
        assert f["splits/val/logits"].fletcher32 and f["splits/val/features"].fletcher32
        assert f["splits/val/labels"].fletcher32
        assert f["splits/val"].attrs[PATHS_SHA256] == strings_sha256(SPLITS["val"][2])
    _assert_reads_as_written(path, "float16")
    _flip_in_dataset(path, "splits/val/logits")  # the copy is checked like the original
    _assert_refused(path, lambda s: s.logits("val"), "the logits of split 'val'")


def test_append_that_replaces_the_damaged_split_succeeds(tmp_path):
    path = _write(tmp_path / STORE_FILE)
    _flip_in_dataset(path, "splits/val/logits")
    _write(path, {"val": SPLITS["val"]}, append=True)  # the damaged split is not copied
    _assert_reads_as_written(path, "float32")
