"""`plantkit report`: the report dict, the terminal tables, the HTML page and the command.

The stores are built so that every number is known by construction: a row is a top-1 hit
exactly when its true class gets the largest logit, and the expected numbers are computed
here independently of plantkit.metrics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import process_running
from rich.console import Console

from plantkit.artifacts import store_path
from plantkit.errors import PlantkitInputError
from plantkit.report.history import read_history
from plantkit.report.html import write_report_html
from plantkit.report.inputs import collect_store_paths, rows_to_read
from plantkit.report.leaderboard import build_report
from plantkit.report.per_class import check_per_class, per_class_table
from plantkit.report.tables import leaderboard_table, print_report, training_options_table
from plantkit.report.train_options import LONG_TAIL_OPTIONS
from plantkit.store import StoreWriter
from plantkit.training.config import TrainConfig

NUM_CLASSES = 20
CLASS_IDS = [str(1000 + i) for i in range(NUM_CLASSES)]
CLASS_NAMES = [f"Planta exempli {i}" for i in range(NUM_CLASSES)]
FINGERPRINT = "test-dataset-0001"
# Long-tailed: 5 many-shot (> 100), 7 medium (20-100), 8 few (< 20) classes.
TRAIN_COUNTS = np.array([900, 400, 250, 150, 101, 100, 80, 60, 45, 30, 21, 20,
                         19, 15, 12, 10, 8, 5, 3, 2])
TEST_PER_CLASS = np.array([40, 30, 25, 20, 16, 14, 12, 10, 9, 8, 7, 6, 5, 4, 4, 3, 3, 2, 1, 1])
VAL_PER_CLASS = np.maximum(TEST_PER_CLASS - 2, 1)
# name: kind, share of each class's rows that are top-1 hits, splits, attrs
MODELS = {
    "alpha": ("expert", 0.8, ("val", "test"),
              {"architecture": "resnet18", "params": 11_689_512, "gflops": 1.82,
               "class_names": CLASS_NAMES}),
    "beta": ("expert", 0.5, ("val", "test"),
             {"architecture": "mobilenetv3_small_050", "params": 1_590_000, "gflops": 0.03}),
    "gamma": ("expert", 0.6, ("test",), {"architecture": "resnet10t"}),  # no val, no gflops
    "mix": ("combination", 0.9, ("val", "test"), {"gflops": 1.85}),
}
HISTORY = """epoch,loss,top1,top5,macro_top1,val_loss,val_top1,val_top5,val_macro_top1,lr,seconds
0,3.1,0.20,0.40,0.10,2.9,0.25,0.45,0.12,0.01,12.5
1,2.2,0.45,0.70,0.30,2.4,0.41,0.66,0.25,0.01,11.9
2,1.6,0.62,0.85,0.45,2.5,0.39,,0.27,0.001,12.1
"""


def _labels(per_class: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(NUM_CLASSES), per_class)


def _hits(per_class: np.ndarray, share: float) -> np.ndarray:
    """The first round(share * n) rows of every class are hits."""
    hits = [np.arange(n) < round(share * n) for n in per_class]
    return np.concatenate(hits)


def _logits(labels: np.ndarray, hits: np.ndarray, seed: int) -> np.ndarray:
    """A hit gives the true class logit 8; a miss gives it to the next class and the true
    class 4 (rank 1: inside the top 5); the rest is noise in [-1, 1]."""
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-1, 1, size=(len(labels), NUM_CLASSES)).astype(np.float32)
    rows = np.arange(len(labels))
    logits[rows, labels] = np.where(hits, 8.0, 4.0)
    logits[rows[~hits], (labels[~hits] + 1) % NUM_CLASSES] = 8.0
    return logits


def _write_store(root: Path, name: str, kind: str, share: float, splits, attrs, *,
                 train_counts=TRAIN_COUNTS, fingerprint=FINGERPRINT, class_ids=CLASS_IDS,
                 seed: int = 0) -> Path:
    path = store_path(root, name, kind)
    with StoreWriter(path, name=name, kind=kind, class_ids=class_ids, fingerprint=fingerprint,
                     attrs=attrs, train_counts=train_counts) as writer:
        for split in splits:
            per_class = VAL_PER_CLASS if split == "val" else TEST_PER_CLASS
            labels = _labels(per_class)
            logits = _logits(labels, _hits(per_class, share), seed)
            writer.create_split(split, n_rows=len(labels), num_classes=len(class_ids),
                                dtype="float16").write(0, logits, labels)
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    for seed, (name, (kind, share, splits, attrs)) in enumerate(MODELS.items()):
        counts = None if name == "gamma" else TRAIN_COUNTS
        _write_store(root, name, kind, share, splits, attrs, train_counts=counts, seed=seed)
    (root / "experts" / "alpha" / "history.csv").write_text(HISTORY)
    return root


@pytest.fixture(scope="module")
def report(artifacts) -> dict:
    return build_report(collect_store_paths([], artifacts), workers=1)


def _model(report: dict, name: str) -> dict:
    return next(m for m in report["models"] if m["name"] == name)


def _row(report: dict, split: str, name: str) -> dict:
    return next(r for r in report["splits"][split]["leaderboard"] if r["name"] == name)


def _expected(share: float, per_class: np.ndarray) -> dict:
    correct = np.array([round(share * n) for n in per_class])
    accuracy = correct / per_class
    many, few = TRAIN_COUNTS > 100, TRAIN_COUNTS < 20
    return {
        "top1": correct.sum() / per_class.sum(),
        "macro_top1": accuracy.mean(),
        "per_class": accuracy,
        "many": accuracy[many].mean(),
        "medium": accuracy[~many & ~few].mean(),
        "few": accuracy[few].mean(),
        "species_above_90": int((accuracy > 0.9).sum()),
    }


# --- the report dict --------------------------------------------------------------------


def test_leaderboard_numbers_match_the_construction(report):
    assert list(report["splits"]) == ["val", "test"]  # train never by default
    assert [m["name"] for m in report["models"]] == ["alpha", "beta", "gamma", "mix"]
    for name, (kind, share, splits, _) in MODELS.items():
        for split in splits:
            per_class = VAL_PER_CLASS if split == "val" else TEST_PER_CLASS
            want = _expected(share, per_class)
            row = _row(report, split, name)
            assert row["kind"] == kind
            for key in ("top1", "macro_top1", "many", "medium", "few"):
                assert row[key] == pytest.approx(want[key]), (name, split, key)
            assert row["species_above_90"] == want["species_above_90"]
            assert row["top5"] == pytest.approx(1.0)  # every miss ranks the true class 2nd
            result = _model(report, name)["results"][split]
            np.testing.assert_allclose(result["per_class_accuracy"], want["per_class"])


def _expected_ece(name: str, split: str) -> float:
    """ECE by hand: every top-1 confidence is above 14/15 (the winning logit 8 against 4 and
    noise in [-1, 1]), so all rows share the last of the 15 bins and the ECE is
    |top-1 - mean confidence|, the confidences recomputed from the float16 logits stored."""
    kind, share, _, _ = MODELS[name]
    seed = list(MODELS).index(name)
    per_class = VAL_PER_CLASS if split == "val" else TEST_PER_CLASS
    labels = _labels(per_class)
    logits = _logits(labels, _hits(per_class, share), seed).astype(np.float16)
    logits = logits.astype(np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    conf = (exp / exp.sum(axis=1, keepdims=True)).max(axis=1)
    assert conf.min() > 14 / 15
    return abs(_expected(share, per_class)["top1"] - conf.mean())


def test_best_values_per_column(report):
    test, val = _expected(0.9, TEST_PER_CLASS), _expected(0.9, VAL_PER_CLASS)
    best = report["splits"]["test"]["best"]
    # mix hits the largest share of every class: it is best on every accuracy column
    for key in ("top1", "macro_top1", "many", "medium", "few"):
        assert best[key] == pytest.approx(test[key]), key
        assert report["splits"]["val"]["best"][key] == pytest.approx(val[key]), key
    assert best["species_above_90"] == test["species_above_90"] == 9
    assert best["top5"] == pytest.approx(1.0)
    # lowest cost is best: beta's; gamma and mix have no params, gamma no gflops
    assert best["gflops"] == 0.03 and best["params"] == 1_590_000
    assert report["splits"]["val"]["best"]["gflops"] == 0.03
    for name, (_, _, splits, _) in MODELS.items():
        for split in splits:
            assert _row(report, split, name)["ece"] == pytest.approx(
                _expected_ece(name, split), abs=1e-5), (name, split)
    assert best["ece"] == pytest.approx(_expected_ece("mix", "test"), abs=1e-5)


def test_missing_inputs_are_none_and_noted(report):
    gamma = _model(report, "gamma")
    assert gamma["gflops"] is None and gamma["history"] is None
    assert "val" not in gamma["results"]
    row = _row(report, "test", "gamma")
    assert row["avg3"] is None and row["avg3_set_size"] is None
    # gamma has no train counts; the report lends it alpha's (same dataset)
    assert row["many"] == pytest.approx(_expected(0.6, TEST_PER_CLASS)["many"])
    val_row = _row(report, "val", "gamma")
    assert val_row["available"] is False and val_row["top1"] is None
    assert report["splits"]["val"]["missing"] == ["gamma"]
    notes = gamma["notes"]
    assert any("no val split" in n for n in notes)
    assert any("gflops" in n for n in notes)
    assert any("history.csv" in n for n in notes)
    assert not any("history.csv" in n for n in _model(report, "mix")["notes"])  # not an expert


def test_average_k_uses_val_thresholds(report):
    val = _row(report, "val", "alpha")
    # on val the threshold makes the sets hold 3 labels on average (no ties in the noise)
    assert val["avg3_set_size"] == pytest.approx(3.0, abs=1e-6)
    # A set of 3 labels on average holds the logit-8 winner, then the true class of a miss
    # (logit 4, far above the noise): every set holds the true class, on val and on test,
    # and the sets reach past the two into the noise on test too (2 < size < 4).
    for name in ("alpha", "beta", "mix"):
        for split in ("val", "test"):
            row = _row(report, split, name)
            assert row["avg3"] == 1.0 and row["macro_avg3"] == 1.0, (name, split)
        assert 2.0 < _row(report, "test", name)["avg3_set_size"] < 4.0


def test_worker_processes_give_the_same_report(artifacts, report):
    """Stores evaluated in two spawned processes: the same dict, progress counted whole."""
    read = []
    parallel = build_report(collect_store_paths([], artifacts), workers=2, advance=read.append)
    assert parallel == report
    assert sum(read) == rows_to_read(collect_store_paths([], artifacts))
    # val once per store that has it (scored and thresholds in one pass), test once
    assert sum(read) == 3 * (VAL_PER_CLASS.sum() + TEST_PER_CLASS.sum()) + TEST_PER_CLASS.sum()


def test_report_is_strict_json(report):
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report


def test_views_share_one_image_count_axis(report):
    counts = np.array(report["image_counts"])
    np.testing.assert_array_equal(counts, TRAIN_COUNTS + VAL_PER_CLASS + TEST_PER_CLASS)
    assert report["image_counts_from"] == ["train", "val", "test"]
    # the classes of each count bin (1-10, 11-20, 21-50, 51-100, 101-200, 201-500,
    # 501-1000, 1001-2000, 2001+), by hand from the counts 978, 458, 298, ..., 8, 5, 4
    members = [[17, 18, 19], [14, 15, 16], [9, 10, 11, 12, 13], [7, 8], [3, 4, 5, 6], [1, 2],
               [0], [], []]
    alpha = _model(report, "alpha")["results"]["test"]
    # gamma's store knows only train-less test counts, yet it is drawn on the same axis
    gamma = _model(report, "gamma")["results"]["test"]
    for name, result in (("alpha", alpha), ("gamma", gamma)):
        per_class = _expected(MODELS[name][1], TEST_PER_CLASS)["per_class"]
        view = result["accuracy_by_count"]
        assert view["classes"] == [3, 3, 5, 2, 4, 2, 1, 0, 0]
        for got, classes in zip(view["mean_accuracy"], members):
            if classes:
                assert got == pytest.approx(per_class[classes].mean()), name
            else:
                assert got is None  # an empty bin: NaN, null in JSON
    # gamma's three rarest species hold 2, 1, 1 test images, 1 hit each at share 0.6
    assert gamma["accuracy_by_count"]["mean_accuracy"][0] == pytest.approx((0.5 + 1 + 1) / 3)
    # alpha (share 0.8): every species is in the accuracy bin of round(0.8 n) / n
    accuracy_bins = alpha["count_by_accuracy"]["classes"]
    assert sum(accuracy_bins) == NUM_CLASSES
    assert accuracy_bins[100] == 3  # the species of 1 or 2 test images: 100 %
    assert accuracy_bins[80] == 6  # 40, 30, 25, 20, 10 and 5 images: 80 % exactly


def test_names_from_the_store_attribute(report):
    assert report["classes"]["names"] == CLASS_NAMES
    assert report["classes"]["names_from"] == "store attribute class_names"


def test_split_option_and_unknown_split(artifacts):
    paths = collect_store_paths([], artifacts)
    only_test = build_report(paths, splits=["test"], workers=1)
    assert list(only_test["splits"]) == ["test"]
    assert _row(only_test, "test", "alpha")["avg3"] is not None  # thresholds still from val
    with pytest.raises(PlantkitInputError, match="--split train"):
        build_report(paths, splits=["train"], workers=1)


def test_history_is_read_with_blanks_as_none(artifacts):
    history = read_history(artifacts / "experts" / "alpha" / "history.csv")
    assert len(history["rows"]) == 3
    assert history["rows"][2]["val_top5"] is None
    assert history["rows"][1]["val_top1"] == pytest.approx(0.41)
    assert history["rows"][0]["epoch"] == 0
    assert read_history(artifacts / "nowhere.csv") is None


def test_history_cells(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,lr,loss,note,seconds\n3,1e-3,2.0, warm ,\n")
    row = read_history(path)["rows"][0]
    assert row == {"epoch": 3, "lr": 0.001, "loss": 2.0, "note": "warm", "seconds": None}
    assert type(row["epoch"]) is int and type(row["loss"]) is float  # "2.0" stays a float


def test_cost_attributes_are_finite_numbers_or_none():
    from plantkit.report.evaluation import _number

    assert _number(np.int64(11_689_512)) == 11_689_512
    assert type(_number(np.int64(7))) is int and type(_number(np.float32(0.5))) is float
    assert _number(np.float32(0.5)) == 0.5 and _number(1.82) == 1.82
    for value in (None, True, np.bool_(False), "1.8", float("nan"), np.float64(np.inf), [1]):
        assert _number(value) is None, value


# --- finding stores, refusing mixtures ----------------------------------------------------


def test_collect_store_paths_forms(artifacts):
    everything = collect_store_paths([], artifacts)
    assert len(everything) == 4
    alpha = artifacts / "experts" / "alpha"
    assert collect_store_paths([alpha], "unused") == [(alpha / "predictions.h5").resolve()]
    assert collect_store_paths([alpha / "predictions.h5", alpha], "unused") == [
        (alpha / "predictions.h5").resolve()
    ]
    assert len(collect_store_paths([artifacts / "experts"], "unused")) == 3


def test_no_stores_says_how_to_make_some(tmp_path):
    with pytest.raises(PlantkitInputError, match="plantkit train.*plantkit import logits"):
        collect_store_paths([], tmp_path)


def test_refuses_stores_of_different_datasets(artifacts, tmp_path):
    other = _write_store(tmp_path, "other", "expert", 0.5, ("test",), {},
                         fingerprint="another-dataset")
    paths = [artifacts / "experts" / "alpha", other]
    with pytest.raises(PlantkitInputError, match="alpha .*other .*different datasets"):
        build_report(paths)


# --- the per-species table ------------------------------------------------------------------


def test_per_class_sorted_by_train_count_and_default_model(report):
    table = per_class_table(report, "test")
    assert table["model"] == "mix"  # best top-1
    assert [r["class_id"] for r in table["rows"]] == CLASS_IDS  # train counts descend already
    first = table["rows"][0]
    assert first["name"] == CLASS_NAMES[0] and first["train_images"] == 900
    assert first["split_images"] == 40


def test_per_class_filters(report):
    want = _expected(0.5, TEST_PER_CLASS)["per_class"]
    worst = per_class_table(report, "test", expert="beta", worst=3)
    order = np.argsort(want, kind="stable")
    assert sorted(r["class_index"] for r in worst["rows"]) == sorted(order[:3].tolist())
    assert [r["train_images"] for r in worst["rows"]] == sorted(
        (r["train_images"] for r in worst["rows"]), reverse=True)
    best = per_class_table(report, "test", expert="beta", best=2)
    np.testing.assert_allclose(sorted(r["accuracy"] for r in best["rows"]), np.sort(want)[-2:])
    picked = per_class_table(report, "test", expert="beta",
                             species=["1003", CLASS_NAMES[7].upper()])
    assert [r["class_id"] for r in picked["rows"]] == ["1003", "1007"]
    assert picked["rows"][0]["accuracy"] == pytest.approx(want[3])


def test_per_class_bad_input(report):
    with pytest.raises(PlantkitInputError, match="--species 999"):
        per_class_table(report, "test", species=["999"])
    with pytest.raises(PlantkitInputError, match="--expert nobody.*alpha"):
        per_class_table(report, "test", expert="nobody")
    with pytest.raises(PlantkitInputError, match="gamma.*no val split"):
        per_class_table(report, "val", expert="gamma")


def test_bad_per_class_options_are_refused_before_evaluating(artifacts, monkeypatch):
    from plantkit import metrics

    def never(*args, **kwargs):
        raise AssertionError("evaluated before the options were checked")

    monkeypatch.setattr(metrics, "evaluate_store", never)
    paths = collect_store_paths([], artifacts)
    for options, message in (({"expert": "nobody"}, "--expert nobody"),
                             ({"species": ["Planta ignota"]}, "--species Planta ignota")):
        with pytest.raises(PlantkitInputError, match=message):
            build_report(paths, workers=1,
                         before_evaluation=lambda o, kw=options: check_per_class(o, **kw))
    with pytest.raises(PlantkitInputError, match="gamma: its store has no val split"):
        build_report(paths, splits=["test", "val"], workers=1,
                     before_evaluation=lambda o: check_per_class(o, expert="gamma"))


# --- terminal tables ----------------------------------------------------------------------


def _text(report: dict, **kwargs) -> str:
    console = Console(record=True, width=220, color_system=None)
    print_report(report, console, **kwargs)
    return console.export_text()


def test_tables_show_numbers_dashes_history_and_notes(report):
    text = _text(report, per_class=per_class_table(report, "test", expert="alpha", worst=2))
    mix = _expected(0.9, TEST_PER_CLASS)
    assert f"{100 * mix['top1']:.1f}" in text and f"{100 * mix['macro_top1']:.1f}" in text
    gamma_line = next(line for line in text.splitlines() if "│ gamma " in line)
    assert " - " in gamma_line  # no avg-3 and no GFLOPs: dashes, not a crash
    assert "Training history · alpha (all 3 epochs)" in text
    assert "41.0" in text  # val top-1 of the 2nd epoch, in %
    assert "no val split" in text and "gamma" in text.split("notes")[-1]
    assert "Per-species accuracy · alpha" in text and "Mean per-species top-1" in text


def test_leaderboard_is_ranked_by_top1(report):
    assert [r["name"] for r in report["splits"]["test"]["leaderboard"]] == [
        "mix", "alpha", "gamma", "beta"]
    # a model without the split comes last
    assert [r["name"] for r in report["splits"]["val"]["leaderboard"]][-1] == "gamma"


def test_best_cells_are_highlighted(report):
    table = leaderboard_table(report, "test")
    names = [r["name"] for r in report["splits"]["test"]["leaderboard"]]
    top1 = next(c for c in table.columns if c.header == "top-1")
    cells = list(top1.cells)

    def bold(cell) -> bool:
        return "bold" in str(getattr(cell, "style", ""))

    assert bold(cells[names.index("mix")])
    assert not any(bold(c) for i, c in enumerate(cells) if names[i] != "mix")
    ece = next(c for c in table.columns if c.header == "ECE")
    best_ece = min(range(4), key=lambda i: _row(report, "test", names[i])["ece"])
    assert bold(list(ece.cells)[best_ece])
    gflops = next(c for c in table.columns if c.header == "GFLOPs")
    best_gflops = list(gflops.cells)[names.index("beta")]
    assert bold(best_gflops) and str(best_gflops) == "0.03"
    assert str(list(gflops.cells)[names.index("gamma")]) == "-"


# --- HTML -----------------------------------------------------------------------------------


def test_html_page_is_self_contained(report, tmp_path):
    target = tmp_path / "out" / "report.html"
    assert write_report_html(target, report) == target
    page = target.read_text(encoding="utf-8")
    # plotly.js inline exactly once; nothing else loads from a URL (the bundle itself
    # mentions cdn.plot.ly as the default of geo maps, which the page does not draw)
    assert not re.search(r"<script[^>]*\bsrc=", page)
    bundles = re.findall(r"<script>/\*\*\s*\* plotly\.js v.*?</script>", page, flags=re.S)
    assert len(bundles) == 1
    rest = page.replace(bundles[0], "")
    assert "cdn.plot.ly" not in rest
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", rest)
    assert rest.count('"updatemenus"') == 5  # species, bins, reliability, history, cost
    for name in MODELS:  # a dropdown entry per model and split (plotly escapes the dot)
        assert f'"label":"{name} \\u00b7 test"' in rest
    assert '"label":"gamma \\u00b7 val"' not in rest  # gamma has no val split
    assert CLASS_NAMES[5] in page  # hover names the species
    assert "Training curves" in page and "val top-1" in page
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]


def test_figure_dropdowns_switch_models_and_splits(report, monkeypatch):
    from plantkit.report import html

    scatter = html.accuracy_by_count_figure(report)
    labels = [b["label"] for b in scatter.layout.updatemenus[0].buttons]
    assert labels == ["alpha · val", "beta · val", "mix · val",
                      "alpha · test", "beta · test", "gamma · test", "mix · test"]
    # the best model on test is shown first; each choice shows exactly its own trace
    assert [t.visible for t in scatter.data].index(True) == labels.index("mix · test")
    for i, button in enumerate(scatter.layout.updatemenus[0].buttons):
        assert button.args[0]["visible"] == [t == i for t in range(len(labels))]
    monkeypatch.setattr(html, "RELIABILITY_LINES", 2)
    reliability = html.reliability_figure(report)
    test_button = reliability.layout.updatemenus[0].buttons[1]
    assert test_button.label == "test"
    # val: diagonal + 3 models; test: diagonal + 4, the 2 best by top-1 (mix, alpha) drawn
    assert test_button.args[0]["visible"] == [False] * 4 + [True, True, "legendonly",
                                                            "legendonly", True]


def test_html_without_history_or_gflops(artifacts, tmp_path):
    only_gamma = build_report([artifacts / "experts" / "gamma"], workers=1)
    page = write_report_html(tmp_path / "g.html", only_gamma).read_text(encoding="utf-8")
    assert "No expert has a history.csv" in page
    assert "No store carries a gflops attribute" in page


# --- training options -----------------------------------------------------------------------

# train_config.json "config" of each expert: every long-tail option (beta at its default,
# focal_gamma unset, lr no long-tail option), an older run's (no tau, beta, mixup ...), the
# default recipe's as `plantkit train` records it; "damaged" has an unreadable file,
# "imported" none.
TRAIN_CONFIGS = {
    "balanced": {"loss": "logit-adjusted", "sampler": "sqrt", "tau": 1.5, "beta": 0.999,
                 "focal_gamma": None, "defer_epoch": 20, "mixup": 0.2, "cutmix": None,
                 "retrain_head": True, "lr": 0.05},
    "older": {"loss": "ce", "sampler": "none", "defer_epoch": None},
    "recipe": TrainConfig().to_dict(),
    # a loss's own options at their defaults (None) are shown with the defaults' values
    "cb": {**TrainConfig().to_dict(), "loss": "class-balanced", "mixup": 0},
}
# What the table shows: the options on and off their default, the loss always.
SHOWN_OPTIONS = {
    "balanced": {"loss": "logit-adjusted", "sampler": "sqrt", "tau": "1.5",
                 "defer_epoch": "20", "mixup": "0.2", "retrain_head": "yes"},
    "older": {"loss": "ce"},
    "recipe": {"loss": "ce"},
    "cb": {"loss": "class-balanced", "beta": "0.999", "focal_gamma": "0"},
}


@pytest.fixture(scope="module")
def options_report(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("options")
    for seed, name in enumerate(("balanced", "older", "recipe", "cb", "damaged", "imported")):
        folder = _write_store(root, name, "expert", 0.5, ("test",), {}, seed=seed).parent
        if name in TRAIN_CONFIGS:
            (folder / "train_config.json").write_text(
                json.dumps({"config": TRAIN_CONFIGS[name], "dataset": {}}))
    (root / "experts" / "damaged" / "train_config.json").write_text("{not json")
    return build_report(collect_store_paths([], root), workers=1)


def test_training_options_are_read_as_recorded(options_report):
    options = {m["name"]: m["training_options"] for m in options_report["models"]}
    balanced = {k: v for k, v in TRAIN_CONFIGS["balanced"].items() if k != "lr"}
    for name in ("recipe", "cb"):
        assert options.pop(name) == {k: v for k, v in TRAIN_CONFIGS[name].items()
                                     if k in LONG_TAIL_OPTIONS}
    assert options == {"balanced": balanced, "older": TRAIN_CONFIGS["older"],
                       "damaged": None, "imported": None}
    # the report itself is not stopped by a damaged train_config.json
    assert _row(options_report, "test", "damaged")["top1"] is not None


def test_training_options_table_shows_what_is_set(options_report):
    table = training_options_table(options_report)
    assert [c.header for c in table.columns] == ["name", "loss", "options"]
    names, losses, others = ([str(cell) for cell in c.cells] for c in table.columns)
    assert set(names) == set(SHOWN_OPTIONS)  # no readable train_config.json: no row
    rows = dict(zip(names, zip(losses, others)))
    assert rows["balanced"] == ("logit-adjusted", "sampler sqrt, tau 1.5, defer epoch 20, "
                                "mixup 0.2, retrain head yes")
    assert rows["cb"] == ("class-balanced", "beta 0.999, focal gamma 0")
    assert rows["older"] == rows["recipe"] == ("ce", "")
    text = _text(options_report)
    assert "Training options" in text and "not recorded (a run of an older plantkit)" in text


def test_no_training_options_table_without_train_configs(report):
    assert training_options_table(report) is None
    assert "Training options" not in _text(report)


def test_html_shows_the_training_options(options_report, report, tmp_path):
    page = write_report_html(tmp_path / "o.html", options_report).read_text(encoding="utf-8")
    section = page.split("<h2>Training options</h2>")[1].split("<h2>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    cells = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in rows]
    assert cells[0] == ["expert", "loss", "sampler", "tau", "beta", "focal gamma",
                        "defer epoch", "mixup", "retrain head"]
    assert cells[1:] == [
        ["balanced", "logit-adjusted", "sqrt", "1.5", "", "", "20", "0.2", "yes"],
        ["cb", "class-balanced", "", "", "0.999", "0", "", "", ""],
        ["older", "ce", "", "", "", "", "", "", ""],
        ["recipe", "ce", "", "", "", "", "", "", ""]]
    plain = write_report_html(tmp_path / "p.html", report).read_text(encoding="utf-8")
    assert "No expert has a train_config.json" in plain


# --- the command ----------------------------------------------------------------------------


def _cli(artifacts: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(artifacts),
         "report", *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "220"},
    )


def test_cli_json_is_one_document(artifacts, tmp_path):
    html = tmp_path / "r.html"
    result = _cli(artifacts, "--json", "--html", str(html), "--worst", "2", "--bootstrap", "50")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["splits"]["test"]["best"]["top1"] == pytest.approx(
        _expected(0.9, TEST_PER_CLASS)["top1"])
    assert payload["per_class_table"]["model"] == "mix"
    assert len(payload["per_class_table"]["rows"]) == 2
    lo, hi = _model(payload, "alpha")["results"]["test"]["bootstrap"]["top1"]
    assert lo <= _expected(0.8, TEST_PER_CLASS)["top1"] <= hi
    assert html.is_file()


def test_cli_tables(artifacts):
    result = _cli(artifacts, "--split", "test", "--per-class", "--expert", "beta", "--quiet",
                  "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "Leaderboard · test" in result.stdout and "Leaderboard · val" not in result.stdout
    assert "Per-species accuracy · beta" in result.stdout
    assert CLASS_NAMES[19] in result.stdout


def test_cli_errors_are_one_line(tmp_path, artifacts):
    empty = _cli(tmp_path / "nothing")
    assert empty.returncode == 2 and empty.stdout == ""
    assert "plantkit import logits" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    other = _write_store(tmp_path / "other", "other", "expert", 0.5, ("test",), {},
                         fingerprint="another-dataset")
    mixed = _cli(artifacts, str(artifacts), str(other), "--quiet")
    assert mixed.returncode == 2
    assert "alpha" in mixed.stderr and "other" in mixed.stderr
    assert len(mixed.stderr.strip().splitlines()) == 1


def test_data_root_gives_names_and_train_counts(plantnet_root, tmp_path):
    from plantkit.data.layout import open_dataset

    dataset = open_dataset(plantnet_root)
    split = dataset.splits["test"]
    labels = np.asarray(split.labels)
    logits = np.eye(dataset.num_classes, dtype=np.float32)[labels] * 5
    with StoreWriter(store_path(tmp_path, "tiny"), name="tiny", class_ids=dataset.class_ids,
                     fingerprint=dataset.fingerprint) as writer:
        writer.create_split("test", n_rows=len(labels),
                            num_classes=dataset.num_classes).write(0, logits, labels)
    without = build_report(collect_store_paths([], tmp_path), workers=1)
    assert without["train_counts"] is None
    assert _row(without, "test", "tiny")["many"] is None
    assert any("--data" in n for n in without["notes"])
    report = build_report(collect_store_paths([], tmp_path), data_root=plantnet_root,
                          workers=1)
    assert report["train_counts"] == [8, 2, 5]
    assert report["classes"]["names"][0] == "Lactuca virosa L."
    row = _row(report, "test", "tiny")
    assert row["few"] == pytest.approx(1.0) and row["many"] is None  # no class > 100


def test_evaluating_processes_exit_when_the_report_is_killed(tmp_path):
    """`plantkit report`'s pool processes, set up as evaluate_all sets them up, end on their
    own once their parent is killed with SIGKILL (they used to wait for work forever)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from plantkit.parent_watch import exit_with\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
        "                               initializer=exit_with, initargs=(os.getpid(),))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120)\n"
        "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              text=True)
    worker = int(parent.stdout.readline())

    assert process_running(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # PARENT_CHECK_S is 1 s
        if not process_running(worker):
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the evaluating process outlived its killed parent")
