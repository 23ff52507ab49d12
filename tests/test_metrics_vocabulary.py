"""One metrics vocabulary: train's summary, `plantkit combine --json` and `plantkit report
--json` print the same top-1 for the same expert, on a float16 store whose rounding ties the
true class with another class (argmax would credit those ties to the lowest index)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from combine_helpers import CLASS_IDS, NUM_CLASSES, ExpertSpec, write_expert

from plantkit import metrics
from plantkit.artifacts import store_path
from plantkit.commands import main
from plantkit.errors import PlantkitInputError
from plantkit.logits_import import import_logits
from plantkit.store import open_store

# Three test rows (labels 0, 1, 2) written as float16:
# row 0: every class scores 0, a tie of all 12 classes; argmax says class 0, a "hit".
# row 1: class 1 gets 5.0 and class 7 gets 5.001, equal once rounded to float16 (spacing
#        0.0039 at 5); argmax says class 1, a "hit".
# row 2: class 2 alone on top: a hit however ties are broken.
# Top-1 is 1/3 under plantkit's rule (a tie is a miss), 3/3 by argmax.
TIED_TEST = np.zeros((3, NUM_CLASSES), dtype=np.float32)
TIED_TEST[1, 1], TIED_TEST[1, 7] = 5.0, 5.001
TIED_TEST[2, 2] = 3.0
LABELS = {"val": np.array([0, 1, 2, 3]), "test": np.array([0, 1, 2])}


def _val_logits(rng) -> np.ndarray:
    z = rng.normal(size=(len(LABELS["val"]), NUM_CLASSES)).astype(np.float32)
    z[np.arange(4), LABELS["val"]] += 2.0
    z[3, 5] = z[3, 3]  # a val tie too
    return z


def _write_stores(artifacts) -> None:
    rng = np.random.default_rng(0)
    tied = ExpertSpec("tied", strength=0.0)
    write_expert(artifacts, tied, LABELS, 0, logits={"val": _val_logits(rng), "test": TIED_TEST})
    other = {"val": _val_logits(rng), "test": rng.normal(size=(3, NUM_CLASSES))}
    write_expert(artifacts, ExpertSpec("other", strength=0.0), LABELS, 0,
                 logits={s: z.astype(np.float32) for s, z in other.items()})


def _cli_json(capsys, monkeypatch, artifacts, *args) -> dict:
    monkeypatch.setattr(sys, "argv", ["plantkit", "--artifacts", str(artifacts), *args])
    with pytest.raises(SystemExit) as done:
        main.run()
    captured = capsys.readouterr()
    assert done.value.code == 0, captured.err
    return json.loads(captured.out)


def _train_summary(monkeypatch, artifacts, name: str) -> dict:
    """`plantkit train --json`'s document (TrainResult) of an expert folder; the training
    state it reads (checkpoints) is stood in for."""
    from plantkit.training import result

    monkeypatch.setattr(result.resume, "read_state",
                        lambda folder: {"best_epoch": 0, "best_value": 0.25})
    return result.TrainResult.of_run(store_path(artifacts, name).parent).to_dict()


def test_float16_ties_are_real_and_argmax_would_credit_them(tmp_path):
    _write_stores(tmp_path)
    with open_store(store_path(tmp_path, "tied")) as store:
        logits, labels = store.logits("test"), store.labels("test")
    assert logits[1, 1] == logits[1, 7]  # float16 made the tie
    assert (logits.argmax(axis=1) == labels).mean() == 1.0
    assert metrics.topk_hits(logits, labels).tolist() == [False, False, True]
    assert metrics.true_class_rank(logits, labels).tolist() == [11, 1, 0]


def test_train_summary_combine_and_report_agree_on_top1(tmp_path, capsys, monkeypatch):
    _write_stores(tmp_path)
    summary = _train_summary(monkeypatch, tmp_path, "tied")
    combined = _cli_json(capsys, monkeypatch, tmp_path, "combine", "--average", "--weighted",
                         "--weight-by", "accuracy", "--k", "1,3", "--json", "--quiet")
    reported = _cli_json(capsys, monkeypatch, tmp_path, "report", "--json", "--quiet",
                         "--workers", "1", "--k", "1,3")

    expert = {e["name"]: e for e in combined["experts"]}
    models = {m["name"]: m for m in reported["models"]}
    assert summary["test_top1"] == pytest.approx(1 / 3)
    for split in ("val", "test"):
        for name in ("tied", "other"):
            top1 = models[name]["results"][split]["top1"]
            assert expert[name][f"{split}_top1"] == top1, (name, split)
            assert (expert[name][f"{split}_macro_top1"]
                    == models[name]["results"][split]["macro_top1"])
            assert expert[name][f"{split}_top3"] == models[name]["results"][split]["top3"]
        assert summary[f"{split}_top1"] == models["tied"]["results"][split]["top1"]
    # --weights accuracy weighs by the same val top-1.
    weighted = next(c for c in combined["combinations"] if c["method"] == "weighted")
    assert weighted["params"]["val_top1"] == {n: expert[n]["val_top1"] for n in expert}
    # Each combination's scores, its combination.json and the report on its store agree.
    for combo in combined["combinations"]:
        document = json.loads((tmp_path / "combos" / combo["name"] / "combination.json")
                              .read_text())
        for split in ("val", "test"):
            result = models[combo["name"]]["results"][split]
            for key in ("top1", "macro_top1", "top3", "macro_top3", "avg1", "avg3",
                        "avg3_set_size"):
                assert combo[split][key] == pytest.approx(result[key]), (combo["name"], key)
                assert document[split][key] == combo[split][key]
    assert reported["ks"] == [1, 3] and combined["ks"] == [1, 3]


def test_summary_uses_the_metrics_top1(tmp_path, monkeypatch):
    _write_stores(tmp_path)
    summary = _train_summary(monkeypatch, tmp_path, "tied")
    with open_store(store_path(tmp_path, "tied")) as store:
        for split in ("val", "test"):
            assert summary[f"{split}_top1"] == metrics.split_accuracy(store, split)["top1"]
    json.dumps(summary)  # plain JSON (train --json)


def test_per_class_top1_is_sklearn_recall_of_tie_rule_hits():
    labels = np.array([0, 0, 1, 1, 1, 3])
    hits = np.array([True, False, True, True, False, True])
    per_class = metrics.per_class_recall(hits, labels, 5)
    np.testing.assert_array_equal(per_class, [0.5, 2 / 3, np.nan, 1.0, np.nan])
    assert metrics.macro_mean(per_class) == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    # the same as plantkit's own per-class mean, for k = 1 and beyond
    rank = np.where(hits, 0, 2)
    np.testing.assert_array_equal(metrics.per_class_topk(rank, labels, 5, 1),
                                  metrics.per_class_mean(hits, labels, 5))
    np.testing.assert_array_equal(metrics.per_class_topk(rank, labels, 5, 3),
                                  [1.0, 1.0, np.nan, 1.0, np.nan])


def test_parse_ks():
    assert metrics.parse_ks(None) == metrics.DEFAULT_KS == (1, 3, 5, 10)
    assert metrics.parse_ks("10, 1,3") == (1, 3, 10)
    assert metrics.parse_ks([5, 1, 5]) == (1, 5)
    for bad in ("", "0,1", "a", "1.5"):
        with pytest.raises(PlantkitInputError, match="--k"):
            metrics.parse_ks(bad)


def test_shot_buckets_have_one_definition():
    counts = np.array([101, 100, 20, 19])
    assert metrics.shot_class_counts(counts) == {"many": 1, "medium": 2, "few": 1}
    assert metrics.SHOT_RULES == {"many": "> 100 train images", "medium": "20-100",
                                  "few": "< 20"}
    from plantkit.report.columns import BUCKET_RULES

    assert BUCKET_RULES is metrics.SHOT_RULES


def test_bad_k_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    _write_stores(tmp_path)
    for command in (["combine", "--average"], ["report"]):
        monkeypatch.setattr(sys, "argv", ["plantkit", "--artifacts", str(tmp_path), *command,
                                          "--k", "0,3", "--quiet"])
        with pytest.raises(SystemExit) as done:
            main.run()
        err = capsys.readouterr().err
        assert done.value.code == 2 and "--k '0,3'" in err and len(err.strip().splitlines()) == 1


def test_temperature_alone_on_imported_logits(tmp_path, capsys, monkeypatch):
    """`plantkit combine --temperature` with no other method: the ECE before calibration
    needs every expert's softmax at T = 1, which no mixer reads (it used to crash with
    'object of too small depth for desired array')."""
    rng = np.random.default_rng(3)
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CLASS_IDS) + "\n")
    artifacts = tmp_path / "art"
    labels = {split: np.sort(rng.integers(0, NUM_CLASSES, size=n))
              for split, n in (("val", 40), ("test", 30))}
    for split, y in labels.items():
        np.save(tmp_path / f"{split}_labels.npy", y)
    for expert in ("one", "two"):
        for split, y in labels.items():
            logits = 3.0 * rng.normal(size=(len(y), NUM_CLASSES)).astype(np.float32)
            logits[np.arange(len(y)), y] += 4.0
            np.save(tmp_path / f"{expert}_{split}_logits.npy", logits)
            import_logits(artifacts, expert=expert, split=split,
                          logits_path=tmp_path / f"{expert}_{split}_logits.npy",
                          labels_path=tmp_path / f"{split}_labels.npy", classes_path=classes,
                          dtype="float16")
    result = _cli_json(capsys, monkeypatch, artifacts, "combine", "--temperature", "--json",
                       "--quiet")
    (combo,) = result["combinations"]
    assert combo["method"] == "temperature"
    rows = combo["params"]["calibration"]
    assert [r["expert"] for r in rows] == ["one", "two"]
    for row in rows:
        for key in ("val_ece_before", "val_ece_after", "test_ece_before", "test_ece_after"):
            assert 0.0 <= row[key] <= 1.0, key
    # ECE before calibration is the expert's own: the same as `plantkit report` computes.
    reported = _cli_json(capsys, monkeypatch, artifacts, "report", "--json", "--quiet",
                         "--workers", "1")
    models = {m["name"]: m for m in reported["models"]}
    for row in rows:
        assert row["test_ece_before"] == pytest.approx(
            models[row["expert"]]["results"]["test"]["ece"], abs=1e-6)
        assert row["val_ece_before"] == pytest.approx(
            models[row["expert"]]["results"]["val"]["ece"], abs=1e-6)
