"""Bad inputs, table-driven: every case must exit 2 with ONE stderr line naming the culprit
(a file, an option or a split) and leave every file under tmp_path (the artifacts root and
the inputs) as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import cli, one_torch_thread  # noqa: F401 - fixture used by every test
from combine_helpers import CLASS_IDS, make_experts

from plantkit.store import StoreWriter

TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b"
    "0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432"
    "ffc0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708090a"
    "0bffda0008010100003f00d2cf20ffd9"
)


# --- building inputs ------------------------------------------------------------------------


def art(tmp: Path) -> Path:
    return tmp / "art"


def dataset(tmp: Path, classes=("a", "b", "c"), *, splits=("train", "val", "test"),
            per_split=None, name="ds") -> Path:
    """An image-folder dataset: SPLIT/CLASS/imgN.jpg (never decoded by these commands)."""
    root = tmp / name
    per_split = per_split or {"train": 3, "val": 1, "test": 1}
    for split in splits:
        (root / split).mkdir(parents=True, exist_ok=True)
        for c in classes:
            for i in range(per_split.get(split, 1)):
                path = root / split / c / f"img{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(TINY_JPEG)
    return root


def empty_dataset(tmp: Path) -> Path:
    root = tmp / "empty"
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True)
    return root


def experts(tmp: Path, n: int = 2) -> list[str]:
    from combine_helpers import DEFAULT_SPECS

    return make_experts(art(tmp), DEFAULT_SPECS[:n], n_val=40, n_test=40)


def store_file(tmp: Path, name: str) -> Path:
    return art(tmp) / "experts" / name / "predictions.h5"


def raw_store(tmp: Path, name: str, logits: dict[str, np.ndarray]) -> Path:
    """An expert store written directly, with the given logits per split (NaN are written
    past StoreWriter, which refuses them, as a store from elsewhere might hold them)."""
    path = store_file(tmp, name)
    finite = {split: np.nan_to_num(z, nan=0.0) for split, z in logits.items()}
    _write_store(path, name, finite)
    if any(np.isnan(z).any() for z in logits.values()):
        with h5py.File(path, "r+") as f:
            for split, z in logits.items():
                f[f"splits/{split}/logits"][...] = z
    return path


def _write_store(path: Path, name: str, logits: dict[str, np.ndarray]) -> None:
    with StoreWriter(path, name=name, kind="expert", class_ids=CLASS_IDS,
                     fingerprint="synthetic0123abcd", attrs={"params": 1},
                     train_counts=np.arange(1, len(CLASS_IDS) + 1)) as writer:
        for split, z in logits.items():
            part = writer.create_split(split, n_rows=len(z), dtype="float32")
            if len(z):
                labels = np.arange(len(z)) % len(CLASS_IDS)
                part.write(0, z, labels, [f"{split}/{i}.jpg" for i in range(len(z))])


def npy(tmp: Path, name: str, array) -> Path:
    path = tmp / name
    np.save(path, np.asarray(array))
    return path


CLASSES = ["1355868", "1355920", "1363227", "1392475"]


def classes_file(tmp: Path, ids=CLASSES, name="classes.txt") -> Path:
    path = tmp / name
    path.write_text("\n".join(ids) + "\n")
    return path


def logits_args(tmp: Path, logits=None, labels=None, *, classes=None, split="test",
                expert="outside") -> list:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype(np.float32) if logits is None else logits
    labels = np.arange(5) % 4 if labels is None else labels
    lpath = logits if isinstance(logits, Path) else npy(tmp, "logits.npy", logits)
    ypath = labels if isinstance(labels, Path) else npy(tmp, "labels.npy", labels)
    return ["import", "logits", "--expert", expert, "--split", split, "--logits", lpath,
            "--labels", ypath, "--classes", classes or classes_file(tmp)]


def text_file(tmp: Path, name: str, text: str = "not what it should be\n") -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the cases ------------------------------------------------------------------------------
# Each case: id -> (setup(tmp) -> args after `--artifacts ART`, what the line must name).
# What the line must name may be a callable of tmp (a path built by the setup).

CASES: dict[str, tuple] = {}
XFAIL: dict[str, str] = {}


def case(name, setup, *culprits, xfail: str | None = None):
    assert name not in CASES, name
    CASES[name] = (setup, culprits)
    if xfail:
        XFAIL[name] = xfail



# data synth
def synth(*extra):
    return lambda t: ["data", "synth", "--out", t / "synth", "-q", *extra]


case("synth-scale-0", synth("--scale", "0"), "--scale")
case("synth-scale-negative", synth("--scale", "-1"), "--scale")
case("synth-scale-nan", synth("--scale", "nan"), "--scale")
case("synth-scale-garbage", synth("--scale", "abc"), "--scale")
case("synth-classes-0", synth("--classes", "0"), "--classes")
case("synth-classes-negative", synth("--classes", "-3"), "--classes")
case("synth-classes-too-many", synth("--classes", "5000"), "--classes")
case("synth-zipf-alpha-0", synth("--profile", "zipf", "--classes", "5", "--alpha", "0"),
     "--alpha")
case("synth-zipf-alpha-negative", synth("--profile", "zipf", "--classes", "5", "--alpha", "-1"),
     "--alpha")
case("synth-image-size-0", synth("--image-size", "0"), "--image-size")
case("synth-image-size-negative", synth("--image-size", "-64"), "--image-size")
case("synth-seed-negative", synth("--seed", "-1"), "--seed")
case("synth-profile-unknown", synth("--profile", "nope"), "nope")
case("synth-out-a-file",
     lambda t: ["data", "synth", "-q", "--out", text_file(t, "afile")], lambda t: t / "afile")
case("synth-out-not-empty",
     lambda t: ["data", "synth", "-q", "--scale", "0.001", "--classes", "3",
                "--out", text_file(t, "full/x.txt").parent], "--overwrite")

# data inspect
INSPECT = ["data", "inspect", "--data"]
case("inspect-missing-root", lambda t: [*INSPECT, t / "nowhere"],
     lambda t: t / "nowhere")
case("inspect-root-a-file", lambda t: [*INSPECT, text_file(t, "f.txt")],
     lambda t: t / "f.txt")
case("inspect-all-empty", lambda t: [*INSPECT, empty_dataset(t)], "train",
     lambda t: t / "empty")
case("inspect-empty-test-split",
     lambda t: [*INSPECT, dataset(t, per_split={"train": 3, "val": 1, "test": 0})],
     "test")
case("inspect-empty-class-folder",
     lambda t: [*INSPECT, (dataset(t) / "train" / "zz").mkdir() or t / "ds"],
     lambda t: t / "ds" / "train" / "zz")
case("inspect-no-train",
     lambda t: [*INSPECT, dataset(t, splits=("val", "test"))], "train")
case("inspect-no-val", lambda t: [*INSPECT, dataset(t, splits=("train", "test"))],
     "--val-from-train")
case("inspect-val-from-train-0",
     lambda t: [*INSPECT, dataset(t, splits=("train", "test")), "--val-from-train", "0"],
     "--val-from-train")
case("inspect-val-from-train-1.5",
     lambda t: [*INSPECT, dataset(t, splits=("train", "test")),
                "--val-from-train", "1.5"], "--val-from-train")
case("inspect-val-from-train-negative",
     lambda t: [*INSPECT, dataset(t, splits=("train", "test")),
                "--val-from-train", "-0.1"], "--val-from-train")
case("inspect-val-from-train-with-val",
     lambda t: [*INSPECT, dataset(t), "--val-from-train", "0.1"], "--val-from-train")
case("inspect-html-a-folder",
     lambda t: [*INSPECT, dataset(t), "--html", (t / "out").mkdir() or t / "out"],
     "--html")
case("inspect-json-html-parent-a-file",
     lambda t: [*INSPECT, dataset(t), "--json", "--html",
                text_file(t, "parent") / "sub" / "eda.html"], "--html", lambda t: t / "parent")
case("inspect-root-and-profile",
     lambda t: [*INSPECT, dataset(t), "--profile", "plantnet300k"], "--profile")
case("inspect-profile-unknown", lambda t: ["data", "inspect", "--profile", "nope"], "nope")
case("inspect-verify-profile",
     lambda t: ["data", "inspect", "--profile", "plantnet300k", "--verify"], "--verify")
case("inspect-test-class-not-in-train",
     lambda t: [*INSPECT, (dataset(t, classes=("z",), splits=("test",)), dataset(t))[1]],
     "test")


# report
def with_experts(*extra, n=2):
    return lambda t: (experts(t, n), ["report", "-q", "--workers", "1", *extra])[1]


case("report-no-stores", lambda t: ["report", "-q"], "no prediction stores")
case("report-missing-path", lambda t: ["report", "-q", t / "nope.h5"], lambda t: t / "nope.h5")
case("report-not-hdf5", lambda t: ["report", "-q", text_file(t, "fake.h5")],
     lambda t: t / "fake.h5")
case("report-truncated-h5",
     lambda t: ["report", "-q", _truncated(t)], lambda t: t / "cut.h5")
case("report-split-unknown", with_experts("--split", "nope"), "--split")
case("report-species-unknown", with_experts("--species", "nope"), "--species")
case("report-expert-unknown", with_experts("--expert", "nope"), "--expert")
case("report-k-0", with_experts("--k", "0"), "--k")
case("report-k-garbage", with_experts("--k", "abc"), "--k")
case("report-k-negative", with_experts("--k", "-1"), "--k")
case("report-k-empty", with_experts("--k", ""), "--k")
case("report-html-a-folder",
     lambda t: (experts(t), ["report", "-q", "--html", (t / "o").mkdir() or t / "o"])[1],
     "--html")
case("report-worst-0", with_experts("--worst", "0"), "--worst")
case("report-data-other-classes",
     lambda t: (experts(t), ["report", "-q", "--data", dataset(t)])[1],
     "--data", lambda t: t / "ds", "predictions.h5")
case("report-data-other-fingerprint",
     lambda t: (experts(t), ["report", "-q", "--data", dataset(t, classes=CLASS_IDS)])[1],
     "--data", "fingerprint", "predictions.h5")
case("report-data-missing",
     lambda t: (experts(t), ["report", "-q", "--data", t / "nods"])[1], lambda t: t / "nods")
case("report-zero-row-split",
     lambda t: (raw_store(t, "empty", {"val": np.zeros((0, 12), np.float32)}),
                ["report", "-q"])[1], lambda t: store_file(t, "empty"), "val")
case("report-nan-in-store",
     lambda t: (raw_store(t, "nan", {"val": _nan_logits(), "test": _nan_logits()}),
                ["report", "-q", "--workers", "1"])[1],
     lambda t: store_file(t, "nan"), "val")


def _truncated(t: Path) -> Path:
    experts(t, 1)
    data = store_file(t, "tiny").read_bytes()
    path = t / "cut.h5"
    path.write_bytes(data[: len(data) // 2])
    return path


def _nan_logits() -> np.ndarray:
    z = np.zeros((6, 12), np.float32)
    z[3, 2] = np.nan
    return z


# combine
def combine(*extra, n=3):
    return lambda t: (experts(t, n), ["combine", "-q", *extra])[1]


case("combine-one-expert", combine("--average", "--experts", "tiny"), "--experts")
case("combine-only-one-stored", combine("--average", n=1), "expert")
case("combine-experts-unknown", combine("--average", "--experts", "tiny,nope"), "nope")
case("combine-no-stores", lambda t: ["combine", "-q", "--average"], "expert")
case("combine-weights-unknown", combine("--weighted", "--weight-by", "nope"), "--weight-by")
case("combine-logit-adjust-negative", combine("--logit-adjust", "-1"), "--logit-adjust")
case("combine-logit-adjust-garbage", combine("--logit-adjust", "abc"), "--logit-adjust")
case("combine-target-unknown", combine("--logit-adjust", "auto", "--target", "nope"), "--target")
case("combine-within-negative", combine("--cascade", "--within", "-1"), "--within")
case("combine-budget-0", combine("--cascade", "--budget", "0"), "--budget")
case("combine-budget-negative", combine("--cascade", "--budget", "-2"), "--budget")
case("combine-top-k-0", combine("--router", "--top-k", "0"), "--top-k")
case("combine-top-k-too-many", combine("--router", "--top-k", "9"), "--top-k")
case("combine-name-slash", combine("--average", "--prefix", "a/b"), "--prefix")
case("combine-space-unknown", combine("--average", "--space", "nope"), "--space")
case("combine-greedy-metric-unknown", combine("--greedy", "--greedy-metric", "nope"),
     "--greedy-metric")
case("combine-cost-garbage", combine("--cascade", "--cost", "tiny"), "--cost")
case("combine-cost-unknown-expert", combine("--cascade", "--cost", "nope=1"), "nope")
case("combine-adjust-on-unknown", combine("--logit-adjust", "1", "--adjust-on", "nope"),
     "--adjust-on")
case("combine-k-0", combine("--average", "--k", "0"), "--k")
case("combine-balance-negative", combine("--router", "--balance", "-1"), "--balance")

# import logits
case("import-logits-1d", lambda t: logits_args(t, np.zeros(5, np.float32)), "--logits")
case("import-logits-3d", lambda t: logits_args(t, np.zeros((5, 4, 1), np.float32)), "--logits")
case("import-logits-columns", lambda t: logits_args(t, np.zeros((5, 3), np.float32)), "--logits")
case("import-logits-int", lambda t: logits_args(t, np.zeros((5, 4), np.int64)), "--logits")
case("import-logits-zero-rows",
     lambda t: logits_args(t, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)), "--logits",
     lambda t: t / "logits.npy")
case("import-logits-nan",
     lambda t: logits_args(t, np.where(np.eye(5, 4) > 0, np.nan, 0).astype(np.float32)),
     "--logits", lambda t: t / "logits.npy", "row 0")
case("import-logits-inf",
     lambda t: logits_args(t, np.array([[0, 0, 0, 0]] * 3 + [[0, np.inf, 0, 0]] * 2,
                                       np.float32)), lambda t: t / "logits.npy", "row 3")
case("import-logits-float16-overflow",
     lambda t: [*logits_args(t, np.full((5, 4), 1e6, np.float32)), "--dtype", "float16"],
     "--logits", "float32")
case("import-labels-out-of-range",
     lambda t: logits_args(t, labels=np.array([0, 1, 2, 3, 4])), "--labels", "row 4")
case("import-labels-negative",
     lambda t: logits_args(t, labels=np.array([0, -1, 2, 3, 0])), "--labels", "row 1")
case("import-labels-length", lambda t: logits_args(t, labels=np.arange(4) % 4), "--labels")
case("import-labels-float", lambda t: logits_args(t, labels=np.zeros(5)), "--labels")
case("import-labels-2d", lambda t: logits_args(t, labels=np.zeros((5, 1), np.int64)),
     "--labels")
case("import-classes-duplicates",
     lambda t: logits_args(t, classes=classes_file(t, ["1", "2", "2", "3"])), "--classes", "2")
case("import-classes-missing", lambda t: logits_args(t, classes=t / "nope.txt"), "--classes")
case("import-classes-empty", lambda t: logits_args(t, classes=text_file(t, "c.txt", "\n")),
     "--classes")
case("import-classes-bad-json", lambda t: logits_args(t, classes=text_file(t, "c.json", "{")),
     "--classes")
case("import-classes-json-gap",
     lambda t: logits_args(t, classes=text_file(t, "c.json", json.dumps(
         {"0": "a", "1": "b", "2": "c", "5": "d"}))), "--classes")
case("import-logits-not-npy",
     lambda t: logits_args(t, text_file(t, "logits.npy", "hello")), "--logits")
case("import-logits-missing", lambda t: logits_args(t, t / "nope.npy"), "--logits")
case("import-logits-pickled",
     lambda t: logits_args(t, npy(t, "obj.npy", np.array([object()] * 5, dtype=object))),
     "--logits")
case("import-split-slash", lambda t: logits_args(t, split="a/b"), "--split")
case("import-split-dotdot", lambda t: logits_args(t, split=".."), "--split")
case("import-expert-slash", lambda t: logits_args(t, expert="x/y"), "--expert")
case("import-dtype-float64", lambda t: [*logits_args(t), "--dtype", "float64"], "--dtype")
case("import-no-classes",
     lambda t: [a for a in logits_args(t)][:-2], "--classes")
case("import-paths-length",
     lambda t: [*logits_args(t), "--paths", text_file(t, "p.txt", "a\nb\n")], "--paths")
case("import-train-counts-missing-class",
     lambda t: [*logits_args(t), "--train-counts", text_file(t, "tc.csv", "1355868,3\n")],
     "--train-counts")
case("import-data-and-classes",
     lambda t: [*logits_args(t), "--data", dataset(t)], "--data")

# demo
case("demo-out-dataset", lambda t: ["demo", "--quick", "-q", "--out", dataset(t)],
     "--out", lambda t: t / "ds")
case("demo-out-dataset-overwrite",
     lambda t: ["demo", "--quick", "-q", "--overwrite", "--out", dataset(t)],
     "--out", lambda t: t / "ds")
case("demo-out-folder-with-a-file",
     lambda t: ["demo", "--quick", "-q", "--out", text_file(t, "mine/notes.txt").parent],
     "--out", lambda t: t / "mine")
case("demo-out-a-file", lambda t: ["demo", "--quick", "-q", "--out", text_file(t, "f")],
     "--out", lambda t: t / "f")


# global
def _artifacts_file(t: Path):
    text_file(t, "artfile")
    return ["data", "synth", "-q", "--scale", "0.001", "--classes", "3"]


case("global-artifacts-a-file-synth", _artifacts_file, lambda t: t / "artfile")
case("global-artifacts-a-file-report",
     lambda t: (text_file(t, "artfile"), ["report", "-q"])[1], lambda t: t / "artfile")
case("global-unknown-command", lambda t: ["nope"], "nope")
# An empty path would be read as the current folder.
case("empty-path-data", lambda t: ["data", "inspect", "--data", ""], "--data", "empty path")
case("empty-path-report", lambda t: ["report", ""], "PATH", "empty path")
case("empty-init-from", lambda t: ["train", "--init-from", ""], "--init-from", "empty")
case("empty-path-checkpoint", lambda t: ["import", "plantnet", "", "--arch", "resnet18"],
     "checkpoint", "empty path")
# A usage error names the command's own help, also when click reports it from the group.
case("option-without-value", lambda t: ["data", "synth", "--seed"], "--seed",
     "plantkit data synth --help")
case("renamed-option", lambda t: ["data", "synth", "--force"], "--force", "--overwrite")
case("renamed-argument", lambda t: ["data", "inspect", t], "--data ROOT")


# --- running them ---------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            tree[str(path.relative_to(root))] = (
                path.is_dir(), 0 if path.is_dir() else info.st_size,
                0 if path.is_dir() else info.st_mtime_ns)
    return tree


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=XFAIL[n], strict=True)) if n in XFAIL else n
    for n in CASES
])
def test_refused_with_one_line(tmp_path, name):
    setup, culprits = CASES[name]
    artifacts = tmp_path / ("artfile" if name.startswith("global-artifacts") else "art")
    args = setup(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = cli("--artifacts", artifacts, *args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    for culprit in culprits:
        text = str(culprit(tmp_path)) if callable(culprit) else culprit
        assert text in lines[0], (text, lines[0])
    assert snapshot(tmp_path) == before, lines[0]


def test_there_are_many_cases():
    assert len(CASES) >= 60


def test_nan_in_a_store_names_store_and_split_in_the_library(tmp_path):
    from plantkit.errors import PlantkitInputError
    from plantkit.report.leaderboard import build_report

    path = raw_store(tmp_path, "nan", {"val": _nan_logits()})
    with pytest.raises(PlantkitInputError) as info:
        build_report([path], workers=1)
    assert str(path) in str(info.value) and "val" in str(info.value)


def test_a_demo_folder_is_marked_before_its_first_stage(tmp_path, monkeypatch):
    """An interrupted first stage leaves a folder the next run accepts."""
    from plantkit import demo

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "_data", boom)
    out = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(out, quick=True, quiet=True)
    assert (out / demo.STATE_FILE).is_file()
    demo.check_demo_folder(out)  # accepted
