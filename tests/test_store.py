"""The HDF5 prediction store: round trips, chunked reads, atomic writes, appends, validation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from plantkit.artifacts import STORE_FILE, find_stores, store_path
from plantkit.errors import PlantkitInputError
from plantkit.store import StoreWriter, check_compatible, classes_fingerprint, open_store

CLASS_IDS = ["1355868", "1355920", "1363227", "1392475", "1398178"]
C = len(CLASS_IDS)


def _predictions(n_rows: int, seed: int = 0, feature_dim: int | None = None):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(n_rows, C)) * 4).astype(np.float32)
    labels = rng.integers(0, C, size=n_rows)
    paths = [f"val/{CLASS_IDS[y]}/img{i:04d}.jpg" for i, y in enumerate(labels)]
    features = None if feature_dim is None else rng.normal(size=(n_rows, feature_dim))
    return logits, labels, paths, features


def _write(path, splits: dict, *, fingerprint="fp-a", class_ids=CLASS_IDS, dtype="float32",
           batch=8, append=False, attrs=None, train_counts=None, feature_dim=None):
    """Write {split: (logits, labels, paths, features)} in batches of `batch` rows."""
    with StoreWriter(path, name="resnet18-a", class_ids=class_ids, fingerprint=fingerprint,
                     attrs=attrs, train_counts=train_counts, append=append) as writer:
        for split, (logits, labels, paths, features) in splits.items():
            handle = writer.create_split(split, n_rows=len(labels), num_classes=len(class_ids),
                                         dtype=dtype, feature_dim=feature_dim)
            for start in range(0, len(labels), batch):
                stop = start + batch
                handle.write(start, logits[start:stop], labels[start:stop], paths[start:stop],
                             None if features is None else features[start:stop])
    return path


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_keeps_every_value(tmp_path, dtype):
    val = _predictions(37, seed=1, feature_dim=6)
    test = _predictions(20, seed=2, feature_dim=6)
    counts = np.array([50, 20, 3, 0, 7])
    attrs = {"architecture": "resnet18", "params": 11_689_512, "gflops": 1.82}
    path = _write(tmp_path / STORE_FILE, {"val": val, "test": test}, dtype=dtype,
                  attrs=attrs, train_counts=counts, feature_dim=6)

    with open_store(path) as store:
        assert (store.name, store.kind, store.fingerprint) == ("resnet18-a", "expert", "fp-a")
        assert store.class_ids == CLASS_IDS and store.num_classes == C
        assert store.splits == ["val", "test"]
        assert store.attrs == attrs
        np.testing.assert_array_equal(store.train_counts, counts)
        for split, (logits, labels, paths, features) in (("val", val), ("test", test)):
            got = store.logits(split)
            assert got.dtype == np.float32 and store.logits_dtype(split) == dtype
            # exactly the values numpy's cast to the stored dtype gives (float16 rounds)
            np.testing.assert_array_equal(got, logits.astype(dtype).astype(np.float32))
            if dtype == "float16":
                assert not np.array_equal(got, logits)
            np.testing.assert_array_equal(store.labels(split), labels)
            assert store.labels(split).dtype == np.int64
            assert store.paths(split) == paths
            assert store.num_rows(split) == len(labels)
            assert store.has_features(split) and store.feature_dim(split) == 6
            np.testing.assert_array_equal(store.features(split),
                                          features.astype(np.float16).astype(np.float32))


def test_chunked_iteration_equals_the_full_read_in_any_write_order(tmp_path):
    logits, labels, paths, _ = _predictions(53)
    path = tmp_path / "p.h5"
    order = np.random.default_rng(3).permutation(np.arange(0, 53, 5))
    with StoreWriter(path, name="x", class_ids=CLASS_IDS, fingerprint="fp") as writer:
        handle = writer.create_split("val", n_rows=53)
        for start in order:  # batches arrive out of order, e.g. from several workers
            handle.write(start, logits[start:start + 5], labels[start:start + 5],
                         paths[start:start + 5])
    with open_store(path) as store:
        full = store.logits("val")
        for chunk_rows in (1, 7, 53, 4096):
            chunks = list(store.iter_logits("val", chunk_rows=chunk_rows))
            assert [start for start, _ in chunks] == list(range(0, 53, chunk_rows))
            assert all(len(c) <= chunk_rows and c.dtype == np.float32 for _, c in chunks)
            np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), full)
        np.testing.assert_array_equal(store.logits("val", rows=slice(10, 20)), logits[10:20])
    np.testing.assert_array_equal(full, logits)


def test_float16_reads_give_the_rounded_values_in_every_read_path(tmp_path):
    logits, labels, paths, _ = _predictions(30)
    logits[0, :] = [0.1, 1 / 3, 2048.5, -65504.0, 1e-8]
    path = _write(tmp_path / "p.h5", {"val": (logits, labels, paths, None)}, dtype="float16")
    expected = logits.astype(np.float16).astype(np.float32)
    # float16 rounds to 11 significant bits: known values, not only "what float16 gives"
    np.testing.assert_array_equal(expected[0], [0.0999755859375, 0.333251953125, 2048.0,
                                                -65504.0, 0.0])
    with open_store(path) as store:
        chunks = [c for _, c in store.iter_logits("val", chunk_rows=4)]
        np.testing.assert_array_equal(np.concatenate(chunks), expected)
        np.testing.assert_array_equal(store.logits("val"), expected)
        np.testing.assert_array_equal(store.logits("val", rows=slice(3, 29, 5)),
                                      expected[3:29:5])
        np.testing.assert_array_equal(store.logits("val", rows=slice(7, 30)), expected[7:])
        assert store.logits("val", rows=slice(5, 5)).shape == (0, C)


def test_unwritten_rows_save_nothing_and_keep_the_old_store(tmp_path):
    logits, labels, paths, _ = _predictions(20)
    path = _write(tmp_path / "p.h5", {"val": (logits, labels, paths, None)})
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match=r"split 'test': 4 of 20 rows were never written"):
        with StoreWriter(path, name="x", class_ids=CLASS_IDS, fingerprint="fp") as writer:
            handle = writer.create_split("test", n_rows=20)
            handle.write(0, logits[:12], labels[:12], paths[:12])
            handle.write(16, logits[16:], labels[16:], paths[16:])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]


def test_exception_inside_the_block_leaves_no_file_and_no_temporary(tmp_path):
    logits, labels, paths, _ = _predictions(10)
    new = tmp_path / "new" / "predictions.h5"
    with pytest.raises(KeyError):
        with StoreWriter(new, name="x", class_ids=CLASS_IDS, fingerprint="fp") as writer:
            writer.create_split("val", n_rows=10).write(0, logits, labels, paths)
            raise KeyError("crash in the middle of a prediction run")
    assert list(tmp_path.iterdir()) == []  # no temporary, nor the folders made for it

    old = _write(tmp_path / "old.h5", {"val": (logits, labels, paths, None)})
    before = old.read_bytes()
    with pytest.raises(KeyError):
        with StoreWriter(old, name="x", class_ids=CLASS_IDS, fingerprint="fp-a",
                         append=True) as writer:
            writer.create_split("test", n_rows=10).write(0, logits, labels, paths)
            raise KeyError("crash")
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]


def test_append_adds_and_replaces_splits_keeping_the_rest(tmp_path):
    val = _predictions(15, seed=1)
    test = _predictions(9, seed=2)
    new_val = _predictions(11, seed=3)
    path = _write(tmp_path / "p.h5", {"val": val}, attrs={"architecture": "resnet18", "k": 1},
                  train_counts=np.arange(C))
    _write(path, {"test": test}, append=True, dtype="float16", attrs={"k": 2})
    with open_store(path) as store:
        assert store.splits == ["val", "test"]
        np.testing.assert_array_equal(store.logits("val"), val[0])
        assert store.paths("val") == val[2]
        assert (store.logits_dtype("val"), store.logits_dtype("test")) == ("float32", "float16")
        assert store.attrs == {"architecture": "resnet18", "k": 2}
        np.testing.assert_array_equal(store.train_counts, np.arange(C))
    with h5py.File(path) as f:
        assert f.attrs["dtype"] == "mixed"

    _write(path, {"val": new_val}, append=True)
    with open_store(path) as store:
        assert store.splits == ["val", "test"]
        np.testing.assert_array_equal(store.logits("val"), new_val[0])
        np.testing.assert_array_equal(store.labels("test"), test[1])

    _write(path, {"val": val})  # without append the store is replaced whole
    with open_store(path) as store:
        assert store.splits == ["val"] and store.train_counts is None and store.attrs == {}


def test_append_refuses_another_dataset_naming_both(tmp_path):
    path = _write(tmp_path / "p.h5", {"val": _predictions(4)})
    before = path.read_bytes()
    with pytest.raises(PlantkitInputError, match=r"resnet18-a \(.*p\.h5\) and the new .*fp-a"):
        _write(path, {"test": _predictions(4)}, fingerprint="fp-b", append=True)
    other_ids = CLASS_IDS[:-1] + ["9999999"]
    with pytest.raises(PlantkitInputError, match="first difference at index 4: 1398178 vs 9999999"):
        _write(path, {"test": _predictions(4)}, class_ids=other_ids, append=True)
    assert path.read_bytes() == before


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_are_refused_naming_split_and_row(tmp_path, bad):
    logits, labels, paths, _ = _predictions(16)
    logits[13, 2] = bad
    with pytest.raises(PlantkitInputError, match=r"split 'val': logits hold NaN .* row 13\)"):
        _write(tmp_path / "p.h5", {"val": (logits, labels, paths, None)})
    assert not (tmp_path / "p.h5").exists()


def test_values_beyond_float16_range_are_refused_for_float16_only(tmp_path):
    logits, labels, paths, _ = _predictions(8)
    logits[5, 0] = 70_000.0
    with pytest.raises(PlantkitInputError, match="row 5 exceed the float16 range"):
        _write(tmp_path / "p.h5", {"val": (logits, labels, paths, None)}, dtype="float16")
    _write(tmp_path / "p.h5", {"val": (logits, labels, paths, None)}, dtype="float32")
    with open_store(tmp_path / "p.h5") as store:
        assert store.logits("val")[5, 0] == 70_000.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lo, la, pa: (lo[:, :-1], la, pa), r"logits must be rows x 5"),
        (lambda lo, la, pa: (lo, la[:-1], pa), r"labels must be a vector of 8"),
        (lambda lo, la, pa: (lo, np.where(np.arange(8) == 6, 5, la), pa), r"label 5 at row 6"),
        (lambda lo, la, pa: (lo, np.where(np.arange(8) == 2, -1, la), pa), r"label -1 at row 2"),
        (lambda lo, la, pa: (lo, la.astype(float), pa), r"integer class indices"),
        (lambda lo, la, pa: (lo, la, pa[:-1]), r"7 paths for 8 rows"),
    ],
)
def test_bad_batches_are_refused(tmp_path, change, message):
    logits, labels, paths, _ = _predictions(8)
    logits, labels, paths = change(logits, labels, paths)
    with pytest.raises(PlantkitInputError, match=message):
        with StoreWriter(tmp_path / "p.h5", name="x", class_ids=CLASS_IDS,
                         fingerprint="fp") as writer:
            writer.create_split("val", n_rows=8).write(0, logits, labels, paths)
    assert list(tmp_path.iterdir()) == []


def test_writes_outside_the_split_and_wrong_class_counts_are_refused(tmp_path):
    logits, labels, paths, _ = _predictions(8)
    with pytest.raises(PlantkitInputError, match="rows 4-11 fall outside the split's 8 rows"):
        with StoreWriter(tmp_path / "p.h5", name="x", class_ids=CLASS_IDS,
                         fingerprint="fp") as writer:
            writer.create_split("val", n_rows=8).write(4, logits, labels, paths)
    with pytest.raises(PlantkitInputError, match="6 classes, but the store has 5 class ids"):
        with StoreWriter(tmp_path / "p.h5", name="x", class_ids=CLASS_IDS,
                         fingerprint="fp") as writer:
            writer.create_split("val", n_rows=8, num_classes=6)
    with pytest.raises(PlantkitInputError, match="one count per class"):
        StoreWriter(tmp_path / "p.h5", name="x", class_ids=CLASS_IDS, fingerprint="fp",
                    train_counts=[1, 2])
    assert list(tmp_path.iterdir()) == []


def test_attributes_round_trip_through_json(tmp_path):
    attrs = {
        "architecture": "convnext_tiny",
        "params": 28_589_128,
        "gflops": 4.47,
        "amp": False,
        "input_size": 224,
        "mean": [0.485, 0.456, 0.406],
        "recipe": {"lr": 0.01, "milestones": [20, 25], "nesterov": True, "notes": None},
        "weights_from": None,
    }
    path = _write(tmp_path / "p.h5", {"val": _predictions(3)}, attrs=attrs)
    with open_store(path) as store:
        assert store.attrs == attrs
        assert type(store.attrs["params"]) is int and type(store.attrs["amp"]) is bool
    with h5py.File(path) as f:  # plain values stay readable without plantkit
        assert f.attrs["architecture"] == "convnext_tiny" and f.attrs["params"] == 28_589_128


@pytest.mark.parametrize(("attrs", "message"), [
    ({"fingerprint": "x"}, "set by the store itself"),
    ({"weights": object()}, "not JSON-serialisable"),
])
def test_bad_attributes_are_refused_before_writing(tmp_path, attrs, message):
    with pytest.raises(PlantkitInputError, match=message):
        StoreWriter(tmp_path / "p.h5", name="x", class_ids=CLASS_IDS, fingerprint="fp",
                    attrs=attrs)
    assert list(tmp_path.iterdir()) == []


def test_check_compatible_names_both_stores(tmp_path):
    a = _write(tmp_path / "a.h5", {"val": _predictions(6, seed=1)})
    b = _write(tmp_path / "b.h5", {"val": _predictions(6, seed=1)})
    c = _write(tmp_path / "c.h5", {"val": _predictions(6, seed=1)}, fingerprint="fp-c")
    d = _write(tmp_path / "d.h5", {"val": _predictions(6, seed=2)})
    e = _write(tmp_path / "e.h5", {"val": _predictions(6, seed=1)},
               class_ids=list(reversed(CLASS_IDS)))
    with open_store(a) as sa, open_store(b) as sb, open_store(c) as sc, \
            open_store(d) as sd, open_store(e) as se:
        check_compatible([sa, sb], splits=["val"])
        with pytest.raises(PlantkitInputError, match=r"a\.h5\) and .*c\.h5\) .* fp-a and fp-c"):
            check_compatible([sa, sb, sc])
        with pytest.raises(PlantkitInputError, match=r"a\.h5\) and .*e\.h5\) have different cl"):
            check_compatible([sa, se])
        check_compatible([sa, sd])  # same dataset ...
        with pytest.raises(PlantkitInputError, match=r"a\.h5\) and .*d\.h5\) disagree on .*'val'"):
            check_compatible([sa, sd], splits=["val"])  # ... but not the same rows


def test_find_stores_and_store_path(tmp_path):
    for kind, name in [("expert", "resnet18"), ("expert", "alexnet"), ("combination", "avg")]:
        _write(store_path(tmp_path, name, kind), {"val": _predictions(2)})
    (tmp_path / "experts" / "no-store-yet").mkdir()
    experts = [p.parent.name for p in find_stores(tmp_path, kind="expert")]
    assert experts == ["alexnet", "resnet18"]
    assert [p.parent.name for p in find_stores(tmp_path)] == ["alexnet", "resnet18", "avg"]
    assert find_stores(tmp_path / "nothing") == []
    with open_store(store_path(tmp_path, "avg", "combination").parent) as store:
        assert store.splits == ["val"]
    with pytest.raises(PlantkitInputError, match="'../x' is not usable"):
        store_path(tmp_path, "../x")
    with pytest.raises(PlantkitInputError, match="kind 'model' is unknown"):
        find_stores(tmp_path, kind="model")


def test_opening_what_is_not_a_store_is_one_clear_error(tmp_path):
    with pytest.raises(PlantkitInputError, match="no prediction store at"):
        open_store(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(PlantkitInputError, match="not a readable HDF5 file"):
        open_store(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(PlantkitInputError, match="not a plantkit prediction store"):
        open_store(tmp_path / "other.h5")
    path = _write(tmp_path / "p.h5", {"val": _predictions(2)})
    with open_store(path) as store, pytest.raises(PlantkitInputError, match=r"no 'test' split"):
        store.labels("test")
    with open_store(path) as store, pytest.raises(PlantkitInputError, match="no features"):
        store.features("val")
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(PlantkitInputError, match="schema 99.*upgrade plantkit"):
        open_store(path)


def test_layout_is_readable_with_h5py_alone(tmp_path):
    """The recipe in docs/store.md, on hand-made logits whose top-1 accuracy is known."""
    logits = np.array([[3.0, 0, 0, 0, 0],   # predicts 0, label 0: hit
                       [0, 0, 2.5, 0, 0],   # predicts 2, label 2: hit
                       [0, 1.0, 0, 0, 0],   # predicts 1, label 4: miss
                       [0, 0, 0, 0, 9.0]],  # predicts 4, label 4: hit
                      dtype=np.float32)
    labels = np.array([0, 2, 4, 4])
    paths = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    path = _write(tmp_path / "p.h5", {"test": (logits, labels, paths, None)},
                  train_counts=np.arange(C))
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "plantkit-predictions" and f.attrs["schema_version"] == 1
        assert list(f["class_ids"].asstr()[:]) == CLASS_IDS
        split = f["splits/test"]
        assert split["logits"].dtype == np.float32 and split["logits"].chunks[1] == C
        np.testing.assert_array_equal(split["logits"][:], logits)
        assert split["labels"][:].tolist() == [0, 2, 4, 4]
        assert list(split["paths"].asstr()[:]) == paths
        assert f["train_counts"][:].tolist() == [0, 1, 2, 3, 4]
        assert (split["logits"][:].argmax(axis=1) == split["labels"][:]).mean() == 0.75


def test_classes_fingerprint_is_the_recorded_digest_of_ids_in_order():
    # sha256 of the ids joined with tabs plus a newline, first 16 hex digits (`printf
    # '1355868\t...\t1398178\n' | sha256sum`): stores record it, so it must not drift.
    assert classes_fingerprint(CLASS_IDS) == "classes:bf16ced9502a52a7"
    assert classes_fingerprint(CLASS_IDS[::-1]) != classes_fingerprint(CLASS_IDS)


def test_the_writer_is_usable_only_inside_its_block(tmp_path):
    logits, labels, paths, _ = _predictions(4)
    with StoreWriter(tmp_path / "p.h5", name="x", class_ids=CLASS_IDS,
                     fingerprint="fp") as writer:
        writer.create_split("val", n_rows=4).write(0, logits, labels, paths)
    with pytest.raises(RuntimeError, match="inside its with-block"):
        writer.create_split("test", n_rows=4)
    with open_store(tmp_path / "p.h5") as store:
        assert store.splits == ["val"]
        np.testing.assert_array_equal(store.logits("val"), logits)


def test_a_failing_close_is_an_error_of_the_write_and_leaves_the_old_store(
        tmp_path, monkeypatch):
    """A full disk often shows only when HDF5 flushes on close: no file, no temporary."""
    logits, labels, paths, _ = _predictions(6)
    path = _write(tmp_path / "p.h5", {"val": (logits, labels, paths, None)})
    before = path.read_bytes()
    real_close = h5py.File.close

    def close_then_fail(self):
        writing = self.mode == "r+"
        real_close(self)
        if writing:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py.File, "close", close_then_fail)
    with pytest.raises(OSError, match="No space left"):
        _write(path, {"test": (logits, labels, paths, None)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]


# --- the classifier (an expert's last linear layer beside its features) ----------------------


def _classifier(dim: int = 6, seed: int = 4):
    from plantkit.store import Classifier

    rng = np.random.default_rng(seed)
    return Classifier(rng.normal(size=(C, dim)).astype(np.float32),
                      rng.normal(size=C).astype(np.float32), "head.fc")


def _write_with_classifier(path, classifier, splits, append=False):
    with StoreWriter(path, name="resnet18-a", class_ids=CLASS_IDS, fingerprint="fp-a",
                     append=append) as writer:
        for split, (logits, labels, paths, features) in splits.items():
            writer.create_split(split, n_rows=len(labels), feature_dim=6).write(
                0, logits, labels, paths, features)
        if classifier is not False:
            writer.set_classifier(classifier)
    return path


def test_the_classifier_round_trips_and_stores_without_one_read_as_before(tmp_path):
    classifier = _classifier()
    path = _write_with_classifier(tmp_path / "p.h5", classifier,
                                  {"val": _predictions(7, feature_dim=6)})
    with open_store(path) as store:
        got = store.classifier()
        assert got is not None and got.module == "head.fc" and got.feature_dim == 6
        assert got.weight.dtype == got.bias.dtype == np.float32
        np.testing.assert_array_equal(got.weight, classifier.weight)
        np.testing.assert_array_equal(got.bias, classifier.bias)
    with h5py.File(path) as f:  # plain datasets, checksummed like the logits
        assert f["classifier/weight"].shape == (C, 6) and f["classifier/weight"].fletcher32
        assert f["classifier/bias"].shape == (C,) and f.attrs["schema_version"] == 1
    # A store written without one (as every store before the classifier existed) has none.
    plain = _write(tmp_path / "q.h5", {"val": _predictions(7, feature_dim=6)}, feature_dim=6)
    with open_store(plain) as store:
        assert store.classifier() is None and store.features("val").shape == (7, 6)


def test_append_keeps_the_classifier_unless_replaced_or_dropped(tmp_path):
    first, second = _classifier(seed=4), _classifier(seed=5)
    path = _write_with_classifier(tmp_path / "p.h5", first,
                                  {"val": _predictions(7, feature_dim=6)})
    _write(path, {"test": _predictions(5)}, append=True)  # no features: the classifier stays
    with open_store(path) as store:
        np.testing.assert_array_equal(store.classifier().weight, first.weight)
    _write_with_classifier(path, second, {"test": _predictions(5, feature_dim=6)}, append=True)
    with open_store(path) as store:
        np.testing.assert_array_equal(store.classifier().weight, second.weight)
    _write_with_classifier(path, None, {"test": _predictions(5, feature_dim=6)}, append=True)
    with open_store(path) as store:
        assert store.classifier() is None and store.splits == ["val", "test"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.weight[:3], "weight must be 5 x D"),
    (lambda c: c.bias[:, None], "bias must hold 5 values"),
    (lambda c: np.where(c.weight > 1, np.nan, c.weight), "NaN or infinite"),
])
def test_a_bad_classifier_is_refused_and_nothing_is_written(tmp_path, change, message):
    from dataclasses import replace

    classifier = _classifier()
    field = "bias" if "bias" in message else "weight"
    bad = replace(classifier, **{field: change(classifier)})
    with pytest.raises(PlantkitInputError, match=message):
        _write_with_classifier(tmp_path / "p.h5", bad, {"val": _predictions(7, feature_dim=6)})
    assert not (tmp_path / "p.h5").exists()


def test_a_classifier_of_the_wrong_shape_on_disk_is_refused_as_damaged(tmp_path):
    path = _write_with_classifier(tmp_path / "p.h5", _classifier(),
                                  {"val": _predictions(7, feature_dim=6)})
    with h5py.File(path, "r+") as f:
        del f["classifier/bias"]
        f["classifier/bias"] = np.zeros(3, np.float32)
    with open_store(path) as store, pytest.raises(PlantkitInputError,
                                                  match=r"p\.h5 is damaged: its classifier"):
        store.classifier()
