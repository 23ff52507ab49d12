"""Metrics: hand-computed cases (ties included), scikit-learn as an oracle, the store path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import softmax as softmax64
from sklearn.calibration import calibration_curve
from sklearn.metrics import balanced_accuracy_score, log_loss, recall_score, top_k_accuracy_score

from plantkit import metrics
from plantkit.errors import PlantkitInputError
from plantkit.metrics.bootstrap import _resample_scores
from plantkit.store import StoreWriter, open_store

E = math.e


def rows_with(rank, conf=None) -> metrics.RowScores:
    """RowScores holding given ranks (and confidences); the other fields are unused filler."""
    rank = np.asarray(rank, dtype=np.int32)
    filler = np.zeros(len(rank), dtype=np.float32)
    conf = filler if conf is None else np.asarray(conf, dtype=np.float32)
    return metrics.RowScores(rank, filler, rank, conf, filler)


def random_problem(n_rows=400, num_classes=37, seed=0):
    """Continuous logits (no ties) and labels covering every class."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_rows) % num_classes)
    logits = rng.normal(size=(n_rows, num_classes)).astype(np.float32)
    logits[np.arange(n_rows), labels] += rng.gamma(1.0, 1.5, size=n_rows).astype(np.float32)
    return logits, labels


# --- per-row scores ----------------------------------------------------------------------

TIED_LOGITS = np.array([
    [2, 1, 0, 0],  # label 0 alone on top: rank 0
    [1, 3, 3, 0],  # label 1 tied with class 2 at the top: rank 1
    [0, 0, 0, 0],  # label 3 tied with everything: rank 3
    [5, 1, 2, 2],  # label 2 tied with class 3 in second place: rank 2
], dtype=np.float32)
TIED_LABELS = np.array([0, 1, 3, 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_ties_are_never_counted_in_the_models_favour(dtype):
    rows = metrics.score_rows(TIED_LOGITS.astype(dtype), TIED_LABELS)
    assert rows.rank.tolist() == [0, 1, 3, 2]
    assert [metrics.topk_accuracy(rows, k) for k in (1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1.0]
    assert rows.pred.tolist() == [0, 1, 0, 0]  # argmax: lowest index among tied maxima


def test_sklearn_lets_the_highest_index_win_a_tie_where_plantkit_does_not():
    # Documented difference (docs/metrics.md): rows 2 and 3 are hits for sklearn.
    rows = metrics.score_rows(TIED_LOGITS, TIED_LABELS)
    for k, theirs in ((1, 0.5), (3, 1.0)):
        assert top_k_accuracy_score(TIED_LABELS, TIED_LOGITS, k=k, labels=range(4)) == theirs
        assert metrics.topk_accuracy(rows, k) < theirs


def test_topk_and_per_class_agree_with_sklearn_when_scores_are_distinct():
    logits, labels = random_problem()
    rows = metrics.score_rows(logits, labels)
    classes = np.arange(logits.shape[1])
    for k in (1, 3, 5, 10):
        assert metrics.topk_accuracy(rows, k) == pytest.approx(
            top_k_accuracy_score(labels, logits, k=k, labels=classes), abs=1e-12)
    pred = logits.argmax(axis=1)
    np.testing.assert_allclose(metrics.per_class_accuracy(rows, labels, len(classes)),
                               recall_score(labels, pred, average=None, labels=classes))
    assert metrics.macro_topk_accuracy(rows, labels, 1, len(classes)) == pytest.approx(
        balanced_accuracy_score(labels, pred))


def test_softmax_is_stable_float32_and_matches_float64():
    logits = np.array([[1000.0, 999.0, 0.0], [-1000.0, -1000.0, -1001.0]], dtype=np.float32)
    probs = metrics.softmax(logits)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs, softmax64(logits.astype(np.float64), axis=1), atol=1e-7)
    assert probs[0, 0] == pytest.approx(1 / (1 + 1 / E))
    logits16, _ = random_problem(50, 9)
    np.testing.assert_allclose(metrics.softmax(logits16.astype(np.float16)),
                               softmax64(logits16.astype(np.float16).astype(np.float64), axis=1),
                               rtol=1e-5, atol=1e-7)


def test_nll_and_confidence_by_hand_and_where_the_probability_underflows():
    logits = np.array([[0.0, math.log(3)], [0.0, math.log(3)], [0.0, 200.0]], dtype=np.float32)
    rows = metrics.score_rows(logits, np.array([1, 0, 0]))
    np.testing.assert_allclose(rows.nll, [math.log(4 / 3), math.log(4), 200.0], rtol=1e-6)
    np.testing.assert_allclose(rows.conf, [0.75, 0.75, 1.0], rtol=1e-6)
    assert rows.p_true[2] == 0.0  # e^-200 underflows in float32; the NLL above did not
    assert metrics.nll_mean(rows) == pytest.approx((math.log(4 / 3) + math.log(4) + 200) / 3)


def test_nll_matches_sklearn_log_loss():
    logits, labels = random_problem(300, 11, seed=3)
    rows = metrics.score_rows(logits, labels)
    reference = log_loss(labels, softmax64(logits.astype(np.float64), axis=1), labels=range(11))
    assert metrics.nll_mean(rows) == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("logits, labels, message", [
    (np.zeros((3, 4), np.float32), np.array([0, 1]), "vector of 3 class indices"),
    (np.zeros((2, 4), np.float32), np.array([0, 4]), "label 4 at row 1"),
    (np.zeros((2, 4), np.float32), np.array([0.0, 1.0]), "integer class indices"),
    (np.array([[0, np.nan], [0, 1]], np.float32), np.array([0, 1]), "NaN or infinite"),
    (np.zeros(4, np.float32), np.array([0]), "rows x classes"),
    (np.zeros((2, 4), np.int64), np.array([0, 1]), "floating point"),
])
def test_bad_inputs_are_refused_with_a_clear_line(logits, labels, message):
    with pytest.raises(PlantkitInputError, match=message):
        metrics.score_rows(logits, labels)


def test_concat_keeps_row_order_and_refuses_mixed_thresholds():
    logits, labels = random_problem(30, 5)
    whole = metrics.score_rows(logits, labels, thresholds={1: 0.3})
    parts = [metrics.score_rows(logits[s:s + 7], labels[s:s + 7], thresholds={1: 0.3})
             for s in range(0, 30, 7)]
    joined = metrics.RowScores.concat(parts)
    for name in ("rank", "p_true", "pred", "conf", "nll"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    np.testing.assert_array_equal(joined.set_size[1], whole.set_size[1])
    with pytest.raises(ValueError, match="different thresholds"):
        metrics.RowScores.concat([parts[0], metrics.score_rows(logits[:2], labels[:2])])
    assert len(metrics.RowScores.concat([])) == 0


# --- accuracy, buckets, calibration ------------------------------------------------------


def test_micro_macro_and_per_class_by_hand():
    rows = rows_with([0, 0, 2, 1, 0, 5])
    labels = np.array([0, 0, 0, 1, 2, 2])  # class 3 has no rows
    per_class = metrics.per_class_accuracy(rows, labels, 4)
    np.testing.assert_allclose(per_class[:3], [2 / 3, 0.0, 0.5])
    assert np.isnan(per_class[3])
    assert metrics.topk_accuracy(rows, 1) == 0.5
    assert metrics.macro_topk_accuracy(rows, labels, 1, 4) == pytest.approx(7 / 18)
    assert metrics.topk_accuracy(rows, 3) == pytest.approx(5 / 6)
    assert metrics.macro_topk_accuracy(rows, labels, 3, 4) == pytest.approx(2.5 / 3)


def test_species_above_is_strict_and_skips_absent_classes():
    assert metrics.species_above([0.9, 0.91, 1.0, np.nan, 0.5, 0.0]) == 2
    assert metrics.species_above([0.5, np.nan], 0.4) == 1


def test_shot_buckets_by_train_count_with_their_boundaries():
    train_counts = np.array([150, 101, 100, 20, 19, 0])
    per_class = np.array([0.8, 0.6, 0.5, np.nan, 0.25, 0.75])
    assert metrics.shot_accuracy(per_class, train_counts) == pytest.approx(
        {"many": 0.7, "medium": 0.5, "few": 0.5})
    empty = metrics.shot_accuracy(np.array([1.0, np.nan]), np.array([150, 50]))
    assert empty["many"] == 1.0 and math.isnan(empty["medium"]) and math.isnan(empty["few"])
    with pytest.raises(PlantkitInputError, match="train counts hold 2 classes"):
        metrics.shot_accuracy(np.array([1.0, 0.5, 0.2]), np.array([1, 2]))


def test_ece_and_reliability_bins_by_hand():
    conf = np.array([0.1, 0.1, 0.9, 0.9, 0.9, 0.9])
    correct = np.array([0, 0, 1, 1, 1, 0], dtype=bool)
    bins = metrics.reliability_bins(conf, correct)
    assert len(bins["edges"]) == 16 and bins["count"].sum() == 6
    assert bins["count"][1] == 2 and bins["count"][13] == 4  # (1/15, 2/15], (13/15, 14/15]
    assert bins["accuracy"][13] == 0.75 and bins["confidence"][1] == pytest.approx(0.1)
    assert np.isnan(bins["accuracy"][0])
    # |0 - 0.1| over 2 rows, |0.75 - 0.9| over 4 rows
    assert metrics.ece(conf, correct) == pytest.approx(2 / 6 * 0.1 + 4 / 6 * 0.15)
    # Upper edges belong to their bin: conf 1/15 -> bin 0, conf 1 -> bin 14.
    edges = metrics.reliability_bins(np.array([1 / 15, 1.0]), np.array([1, 1]))["count"]
    assert edges[0] == 1 and edges[14] == 1
    assert math.isnan(metrics.ece(np.array([]), np.array([])))


def test_reliability_bins_match_sklearn_calibration_curve():
    logits, labels = random_problem(500, 13, seed=5)
    rows = metrics.score_rows(logits, labels)
    bins = metrics.reliability_bins(rows.conf, rows.hits(1))
    filled = bins["count"] > 0
    accuracy, confidence = calibration_curve(rows.hits(1), rows.conf.astype(np.float64),
                                             n_bins=15)
    np.testing.assert_allclose(bins["accuracy"][filled], accuracy)
    np.testing.assert_allclose(bins["confidence"][filled], confidence, rtol=1e-6)


# --- average-k -----------------------------------------------------------------------------

# Val probabilities (three rows): row 0 softmax[4,1,1,0] = .8945 .04454 .04454 .01638,
# row 1 softmax[0,3,0,0] = .04332 .8701 .04332 .04332, row 2 uniform .25 x 4. Sorted: .8945
# .8701 .25 .25 .25 .25 .04454 .04454 .04332 .04332 .04332 .01638 (ties within a row are
# bit-identical). N_val = 3, so lambda_k sits between the (3k)-th and (3k+1)-th values.
VAL_LOGITS = np.array([[4, 1, 1, 0], [0, 3, 0, 0], [0, 0, 0, 0]], dtype=np.float32)
VAL_LABELS = np.array([1, 1, 2])
TEST_LOGITS = np.array([[0, 0, 0, 0], [1, 0, 0, 0]], dtype=np.float32)  # .25 x4; .4753 .1749 x3
TEST_LABELS = np.array([0, 1])
P_ROW0_SMALL = E / (E**4 + 2 * E + 1)  # .04454
P_ROW1_SMALL = 1 / (E**3 + 3)  # .04332


def fitted_on_val(ks=(1, 2, 3), chunk_rows=3):
    top = metrics.TopValues.for_average_k(3, ks)
    parts = [metrics.score_rows(VAL_LOGITS[s:s + chunk_rows], VAL_LABELS[s:s + chunk_rows],
                                top_values=top) for s in range(0, 3, chunk_rows)]
    return metrics.average_k_thresholds(top, 3, ks), top, metrics.RowScores.concat(parts)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_average_k_thresholds_between_equal_and_distinct_values(chunk_rows):
    thresholds, top, _ = fitted_on_val(chunk_rows=chunk_rows)
    assert thresholds[1] == 0.25  # 3rd and 4th largest are both .25: the threshold is a tie
    assert thresholds[2] == pytest.approx((0.25 + P_ROW0_SMALL) / 2, rel=1e-6)
    assert thresholds[3] == pytest.approx(P_ROW1_SMALL, rel=1e-6)  # 9th, 10th: tied .04332
    # Val sets {c : p_c >= lambda}: ties at lambda widen them past k on average.
    assert [top.count_at_least(thresholds[k]) for k in (1, 2, 3)] == [1 + 1 + 4, 6, 3 + 4 + 4]


def test_test_reuses_the_val_thresholds_and_sets_include_the_threshold():
    thresholds, _, val_rows = fitted_on_val()
    val = val_rows.with_coverage(thresholds)
    assert val.covered[1].tolist() == [False, True, True]  # .04454 < .25; .8701; .25 >= .25
    assert metrics.average_k_accuracy(val, 3) == 1.0

    test = metrics.score_rows(TEST_LOGITS, TEST_LABELS, thresholds=thresholds)
    assert test.set_size[1].tolist() == [4, 1] and test.covered[1].tolist() == [True, False]
    assert test.set_size[2].tolist() == [4, 4] and test.covered[2].all()
    assert metrics.average_k_accuracy(test, 1) == 0.5
    assert metrics.mean_set_size(test, 1) == 2.5
    assert metrics.macro_average_k_accuracy(test, TEST_LABELS, 1, 4) == 0.5


def test_average_k_threshold_is_the_midpoint_and_needs_enough_values():
    assert metrics.average_k_threshold([0.9, 0.7, 0.5, 0.1], 1, 2) == pytest.approx(0.6)
    with pytest.raises(PlantkitInputError, match="k must be below the number of classes"):
        metrics.average_k_threshold([0.5, 0.5], 2, 1)


def test_val_sets_hold_exactly_k_labels_on_average_without_ties():
    logits, labels = random_problem(200, 30, seed=7)
    top = metrics.TopValues.for_average_k(200, (1, 3, 5))
    metrics.score_rows(logits, labels, top_values=top)
    thresholds = metrics.average_k_thresholds(top, 200, (1, 3, 5))
    rows = metrics.score_rows(logits, labels, thresholds=thresholds)
    for k in (1, 3, 5):
        assert metrics.mean_set_size(rows, k) == k
        assert top.count_at_least(thresholds[k]) == k * 200


def test_top_values_stream_matches_a_full_sort_with_many_ties():
    rng = np.random.default_rng(11)
    stream = [rng.integers(0, 12, size=size).astype(np.float32) for size in (5, 40, 1, 33, 60)]
    everything = np.sort(np.concatenate(stream))[::-1]
    for n in (1, 7, 25, 60, 500):
        top = metrics.TopValues(n)
        for values in stream:
            top.update(values)
        np.testing.assert_array_equal(top.values(), everything[:n])
        for threshold in np.unique(everything[: min(n, everything.size)]):
            assert top.count_at_least(threshold) == (everything >= threshold).sum()
    # A 3 dropped, then the floor stays 3 while a 4 pushes out another 3: both are counted.
    top = metrics.TopValues(3)
    top.update(np.array([5, 3, 3, 3], np.float32))
    top.update(np.array([4, 3, 1], np.float32))
    assert top.values().tolist() == [5, 4, 3] and top.count_at_least(3) == 6
    assert top.count_at_least(3.5) == 2
    with pytest.raises(ValueError, match="below the 3-th largest"):
        top.count_at_least(2.0)


def test_thresholds_between_adjacent_float32_values_split_them():
    low = np.float32(0.3)
    high = np.nextafter(low, np.float32(1))
    midpoint = (float(low) + float(high)) / 2  # not a float32: rounding it could admit `low`
    top = metrics.TopValues(4)
    top.update(np.array([high, low, low, 0.1], np.float32))
    assert top.count_at_least(midpoint) == 1


# --- bootstrap -----------------------------------------------------------------------------


def test_resampled_scores_by_hand():
    hits = np.array([True, False, True, True])
    labels = np.array([0, 0, 1, 2])
    picks = np.array([[0, 0, 1, 3], [1, 1, 1, 1]])
    top1, macro = _resample_scores(hits, labels, 3, picks)
    # Resample 0: hits 1,1,0,1; class 0 has 2 of 3, class 2 has 1 of 1, class 1 is absent.
    np.testing.assert_allclose(top1, [0.75, 0.0])
    np.testing.assert_allclose(macro, [(2 / 3 + 1) / 2, 0.0])


def test_resampled_scores_match_a_plain_loop():
    logits, labels = random_problem(120, 9, seed=2)
    rows = metrics.score_rows(logits, labels)
    picks = np.random.default_rng(0).integers(0, 120, size=(25, 120))
    top1, macro = _resample_scores(rows.hits(1), labels, 9, picks)
    for i, pick in enumerate(picks):
        resampled = rows_with(rows.rank[pick])
        assert top1[i] == pytest.approx(metrics.topk_accuracy(resampled, 1))
        assert macro[i] == pytest.approx(
            metrics.macro_topk_accuracy(resampled, labels[pick], 1, 9))


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate():
    logits, labels = random_problem(600, 20, seed=4)
    rows = metrics.score_rows(logits, labels)
    first = metrics.bootstrap_ci(rows, labels, 20, n=200, seed=1)
    assert first == metrics.bootstrap_ci(rows, labels, 20, n=200, seed=1)
    assert first != metrics.bootstrap_ci(rows, labels, 20, n=200, seed=2)
    for key, estimate in (("top1", metrics.topk_accuracy(rows, 1)),
                          ("macro_top1", metrics.macro_topk_accuracy(rows, labels, 1, 20))):
        lo, hi = first[key]
        assert lo < estimate < hi and hi - lo < 0.15
    assert all(math.isnan(v) for v in metrics.bootstrap_ci(rows_with([]), [], 3)["top1"])


# --- the reference study's views ---------------------------------------------------------


def test_accuracy_by_image_count_bins():
    per_class = [1.0, 0.0, 0.5, 0.9, np.nan, 0.3, 0.2, 0.4]
    counts = [5, 10, 11, 2500, 60, 0, 2000, 2001]
    view = metrics.accuracy_by_count(per_class, counts)
    assert view["bins"] == ["1-10", "11-20", "21-50", "51-100", "101-200", "201-500",
                            "501-1000", "1001-2000", "2001+"]
    assert view["upper"][-1] is None and view["lower"][0] == 1
    assert view["classes"] == [2, 1, 0, 0, 0, 0, 0, 1, 2]  # count 0 and NaN left out
    np.testing.assert_allclose(view["mean_accuracy"],
                               [0.5, 0.5, np.nan, np.nan, np.nan, np.nan, np.nan, 0.2, 0.65])


def test_image_count_by_accuracy_bin():
    per_class = [0.0, 0.29, 29 / 100, 0.295, 1.0, 0.999, np.nan]
    counts = [10, 20, 30, 40, 50, 60, 70]
    view = metrics.count_by_accuracy_bin(per_class, counts)
    assert len(view["lower"]) == 101 and view["lower"][29] == 0.29 and view["lower"][100] == 1.0
    nonempty = {i: (view["mean_count"][i], view["classes"][i])
                for i in range(101) if view["classes"][i]}
    assert nonempty == {0: (10.0, 1), 29: (30.0, 3), 99: (60.0, 1), 100: (50.0, 1)}


# --- a whole store ---------------------------------------------------------------------------


def write_store(path, splits: dict, num_classes: int, train_counts=None, dtype="float32"):
    with StoreWriter(path, name="toy", class_ids=[f"c{i}" for i in range(num_classes)],
                     fingerprint="test:toy", train_counts=train_counts) as writer:
        for split, (logits, labels) in splits.items():
            writer.create_split(split, n_rows=len(labels), dtype=dtype).write(0, logits, labels)
    return path


def test_evaluate_store_average_k_case_with_val_thresholds(tmp_path):
    path = write_store(tmp_path / "p.h5", {"val": (VAL_LOGITS, VAL_LABELS),
                                          "test": (TEST_LOGITS, TEST_LABELS)}, 4)
    with open_store(path) as store:
        result = metrics.evaluate_store(store, ks=(1, 2), avg_ks=(1, 2, 3), chunk_rows=1)
    assert result["average_k"]["fitted_on"] == "val"
    assert result["average_k"]["thresholds"]["1"] == 0.25
    val, test = result["splits"]["val"], result["splits"]["test"]
    assert [val[f"avg{k}_set_size"] for k in (1, 2, 3)] == pytest.approx([2, 2, 11 / 3])
    assert val["avg1"] == pytest.approx(2 / 3) and val["avg3"] == 1.0
    assert (test["avg1"], test["avg1_set_size"], test["avg2"]) == (0.5, 2.5, 1.0)
    assert test["top1"] == 0.0  # row 0's label ties with all, row 1's loses
    assert test["top2"] == 0.0 and val["top1"] == pytest.approx(1 / 3)
    assert any("no train counts" in note for note in result["notes"])
    assert test["many"] is None and test["shot_classes"] is None


def test_evaluate_store_streams_chunks_to_the_same_numbers(tmp_path):
    logits_val, labels_val = random_problem(90, 12, seed=8)
    logits_test, labels_test = random_problem(70, 12, seed=9)
    train_counts = np.array([500, 150, 101, 100, 60, 20, 19, 5, 3, 2, 2, 2])
    path = write_store(tmp_path / "p.h5", {"val": (logits_val, labels_val),
                                          "test": (logits_test, labels_test)}, 12,
                       train_counts=train_counts, dtype="float16")
    with open_store(path) as store:
        seen = []
        whole = metrics.evaluate_store(store, bootstrap=50, seed=3, advance=seen.append)
        chunked = metrics.evaluate_store(store, bootstrap=50, seed=3, chunk_rows=8)
        assert sum(seen) == metrics.evaluation_rows(store) == 160
    assert whole == chunked
    json.dumps(whole, allow_nan=False)  # JSON-able, NaN already None

    test = whole["splits"]["test"]
    rows = metrics.score_rows(logits_test.astype(np.float16), labels_test)
    assert test["top1"] == metrics.topk_accuracy(rows, 1)
    assert test["top10"] == metrics.topk_accuracy(rows, 10)
    assert test["macro_top5"] == pytest.approx(metrics.macro_topk_accuracy(rows, labels_test, 5,
                                                                           12))
    assert test["ece"] == pytest.approx(metrics.ece(rows.conf, rows.hits(1)))
    per_class = metrics.per_class_accuracy(rows, labels_test, 12)
    assert test["many"] == pytest.approx(np.nanmean(per_class[train_counts > 100]))
    assert test["shot_classes"] == {"many": 3, "medium": 3, "few": 6}
    assert test["per_class_rows"] == np.bincount(labels_test, minlength=12).tolist()
    assert test["bootstrap"]["resamples"] == 50
    lo, hi = test["bootstrap"]["top1"]
    assert lo <= test["top1"] <= hi
    assert whole["splits"]["val"]["avg3_set_size"] == 3.0  # by construction on val
    assert whole["count_basis"] == "train+val+test"
    expected_counts = (train_counts + np.bincount(labels_val, minlength=12)
                       + np.bincount(labels_test, minlength=12))
    assert whole["image_counts"] == expected_counts.tolist()
    assert sum(test["accuracy_by_count"]["classes"]) == 12


def test_evaluate_store_without_val_or_a_split_notes_what_is_missing(tmp_path):
    logits, labels = random_problem(40, 4, seed=1)
    path = write_store(tmp_path / "p.h5", {"test": (logits, labels)}, 4)
    with open_store(path) as store:
        result = metrics.evaluate_store(store, splits=("val", "test"), avg_ks=(1, 3, 5))
        assert metrics.evaluation_rows(store) == 40
    assert list(result["splits"]) == ["test"]
    assert result["average_k"] == {"fitted_on": None, "thresholds": {}}
    test = result["splits"]["test"]
    assert test["avg1"] is None and test["macro_avg3"] is None and test["avg5_set_size"] is None
    notes = " | ".join(result["notes"])
    assert "no val split" in notes and "k=5 skipped" in notes and "has no val split" in notes
    assert test["top5"] == 1.0  # k above the number of classes: every row is a hit
    assert result["count_basis"] == "test"
    with open_store(path) as store, pytest.raises(PlantkitInputError, match="k >= 1"):
        metrics.evaluate_store(store, ks=(0, 1))
