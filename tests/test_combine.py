"""plantkit.combine: hand-checked combiners, cost accounting, honesty, bad input."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
from combine_helpers import (
    CLASS_IDS,
    DEFAULT_SPECS,
    FINGERPRINT,
    NUM_CLASSES,
    TRAIN_COUNTS,
    ExpertSpec,
    make_experts,
    rewrite_with_test_labels,
    split_labels,
    write_expert,
)

from plantkit.artifacts import store_path
from plantkit.combine.cascade import (
    cascade_point,
    cascade_stops,
    fit_cascade,
    stage_costs,
)
from plantkit.combine.cost import parse_cost_overrides
from plantkit.combine.greedy import greedy_selection
from plantkit.combine.inputs import open_experts
from plantkit.combine.logit_adjust import TradeoffCurve, adjust, log_prior, pick_tau
from plantkit.combine.mixers import CALIBRATED, RAW, ProbMixture
from plantkit.combine.options import CombineOptions
from plantkit.combine.refs import MethodRef
from plantkit.combine.run import run_combine
from plantkit.combine.stream import stream_outputs
from plantkit.combine.temperature import fit_temperature
from plantkit.combine.weighted import accuracy_weights, fit_simplex_weights
from plantkit.errors import PlantkitInputError
from plantkit.store import open_store

# A small, quick router: this is about the plumbing; tests/test_router.py tests the router.
QUICK_ROUTER = dict(folds=2, max_epochs=3, hidden=16)
ALL_METHODS = dict(average=True, weighted=True, greedy=True, temperature=True,
                   logit_adjust="auto", target="macro", cascade=True, router=True,
                   router_settings=QUICK_ROUTER)


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mixture_nll(true_probs, weights) -> float:
    """Mean -log sum_m w_m p_m(y|x) over rows (true_probs: rows x experts)."""
    return float(-np.log(np.asarray(true_probs) @ np.asarray(weights)).mean())


def _combo(artifacts, name, split="test"):
    with open_store(artifacts / "combos" / name) as store:
        return store.logits(split)


def _document(artifacts, name):
    return json.loads((artifacts / "combos" / name / "combination.json").read_text())


def _expert_logits(artifacts, name, split):
    with open_store(store_path(artifacts, name)) as store:
        return store.logits(split).astype(np.float64)


@pytest.fixture(scope="module")
def experts_root(tmp_path_factory):
    """Four experts of different quality, calibration and cost, combined by every method."""
    artifacts = tmp_path_factory.mktemp("combine") / "art"
    make_experts(artifacts)
    result = run_combine(artifacts, CombineOptions(**ALL_METHODS))
    return artifacts, result


# --- average ---------------------------------------------------------------------------


def test_average_by_hand(tmp_path):
    """Two experts, three classes: the stored log-probabilities are log of the mean softmax."""
    labels = {"val": np.array([0, 2]), "test": np.array([2, 0])}
    logits = {"val": np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])),
              "test": np.log(np.array([[0.1, 0.1, 0.8], [0.5, 0.25, 0.25]]))}
    other = {"val": np.log(np.array([[0.2, 0.2, 0.6], [0.4, 0.4, 0.2]])),
             "test": np.log(np.array([[0.3, 0.3, 0.4], [0.7, 0.1, 0.2]]))}
    for name, z in (("a", logits), ("b", other)):
        _write_small(tmp_path, name, labels, z)
    result = run_combine(tmp_path, CombineOptions(average=True))
    expected_test = np.log([[0.2, 0.2, 0.6], [0.6, 0.175, 0.225]])
    np.testing.assert_allclose(_combo(tmp_path, "average"), expected_test, atol=1e-6)
    np.testing.assert_allclose(_combo(tmp_path, "average", "val"),
                               np.log([[0.4, 0.25, 0.35], [0.3, 0.45, 0.25]]), atol=1e-6)
    average = result["combinations"][0]
    assert average["test"]["top1"] == 1.0 and average["val"]["top1"] == 0.5
    assert average["expected_gflops"] == pytest.approx(3.0)  # 1 + 2 GFLOPs, both run


def _write_small(artifacts, name, labels, logits, gflops=None):
    from plantkit.store import StoreWriter

    attrs = {"gflops": gflops if gflops is not None else {"a": 1.0, "b": 2.0}[name]}
    with StoreWriter(store_path(artifacts, name), name=name, class_ids=["x", "y", "z"],
                     fingerprint="tiny", attrs=attrs, train_counts=[5, 3, 1]) as writer:
        for split, y in labels.items():
            writer.create_split(split, n_rows=len(y), dtype="float32").write(
                0, logits[split].astype(np.float32), y)


def test_average_matches_experts_softmax(experts_root):
    artifacts, result = experts_root
    probs = np.mean([_softmax(_expert_logits(artifacts, s.name, "test"))
                     for s in DEFAULT_SPECS], axis=0)
    stored = _combo(artifacts, "average")
    np.testing.assert_allclose(np.exp(stored), probs, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(_softmax(stored), probs, rtol=1e-4, atol=1e-7)
    average = next(c for c in result["combinations"] if c["method"] == "average")
    labels = split_labels(0, 360, 360)["test"]
    assert average["test"]["top1"] == pytest.approx((probs.argmax(1) == labels).mean())
    assert average["expected_gflops"] == pytest.approx(sum(s.gflops for s in DEFAULT_SPECS))


def test_average_of_logits(tmp_path):
    names = make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=40, n_test=30)
    run_combine(tmp_path, CombineOptions(average=True, space="logits", prefix="logit"))
    mean_logits = np.mean([_expert_logits(tmp_path, n, "test") for n in names], axis=0)
    np.testing.assert_allclose(_softmax(_combo(tmp_path, "logit-average")),
                               _softmax(mean_logits), rtol=1e-4, atol=1e-7)
    assert _document(tmp_path, "logit-average")["params"] == {"space": "logits"}


def test_stream_mixes_chunk_by_chunk_with_shared_softmaxes(tmp_path):
    """At T = 1 the raw and calibrated softmaxes are one array, normalised once; rows come
    in chunks of 7 (the last one short) and every mixer sees every chunk."""
    make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=30, n_test=20)
    mixers = [ProbMixture(MethodRef("average", "raw"), [0.5, 0.5], RAW, NUM_CLASSES),
              ProbMixture(MethodRef("weighted", "calibrated"), [0.25, 0.75], CALIBRATED,
                          NUM_CLASSES)]
    outputs = {}
    with open_experts(tmp_path) as experts:
        names = experts.names  # sorted: small, tiny
        stream_outputs(experts, mixers, np.ones(2), order=[1, 0], chunk_rows=7,
                       emit=lambda ref, split, rows, out: outputs.setdefault(
                           (ref.name, split), []).append((rows.start, out.copy())))
    assert [start for start, _ in outputs["raw", "test"]] == [0, 7, 14]
    probs = [_softmax(_expert_logits(tmp_path, n, "test")) for n in names]
    for name, expected in (("raw", 0.5 * probs[0] + 0.5 * probs[1]),
                           ("calibrated", 0.25 * probs[0] + 0.75 * probs[1])):
        stored = np.concatenate([out for _, out in outputs[name, "test"]])
        np.testing.assert_allclose(np.exp(stored), expected, rtol=1e-5, atol=1e-7)


# --- weights ---------------------------------------------------------------------------


def test_simplex_weights_reach_the_known_optimum():
    """Rows (0.8, 0.2) with share q and (0.2, 0.8) otherwise: the NLL of w*a + (1-w)*b is
    smallest at w = (q - 0.2) / 0.6; a third, useless expert gets weight 0."""
    q = 0.65
    rows = np.array([[0.8, 0.2, 0.01]] * 65 + [[0.2, 0.8, 0.01]] * 35)
    weights = fit_simplex_weights(rows)
    np.testing.assert_allclose(weights, [(q - 0.2) / 0.6, 1 - (q - 0.2) / 0.6, 0.0], atol=1e-4)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12) and (weights >= 0).all()
    nearby = [mixture_nll(rows, np.array([w, 1 - w, 0.0])) for w in (0.74, 0.76)]
    assert mixture_nll(rows, weights) < min(nearby)


def test_accuracy_weights_are_proportional():
    np.testing.assert_allclose(accuracy_weights([0.6, 0.3, 0.3]), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(accuracy_weights([0.0, 0.0]), [0.5, 0.5])


def test_weighted_run_weights_on_the_simplex(experts_root):
    artifacts, result = experts_root
    document = _document(artifacts, "weighted")
    weights = document["params"]["weights"]
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(w >= 0 for w in weights.values())
    # Mixing the calibrated experts by hand with the stored weights and temperatures
    # reproduces the stored predictions; only experts with weight > 0 count in the cost.
    temperatures = document["params"]["temperatures"]
    mixed = sum(w * _softmax(_expert_logits(artifacts, n, "test") / temperatures[n])
                for n, w in weights.items() if w > 0)
    np.testing.assert_allclose(np.exp(_combo(artifacts, "weighted")), mixed, rtol=1e-3,
                               atol=1e-6)
    gflops = {s.name: s.gflops for s in DEFAULT_SPECS}
    assert document["expected_gflops"] == pytest.approx(
        sum(gflops[n] for n, w in weights.items() if w > 0))
    assert document["experts"] == sorted(n for n, w in weights.items() if w > 0)
    # Fitted weights beat the plain average on val NLL (what they minimise).
    val = {c["method"]: c["val"] for c in result["combinations"]}
    assert val["weighted"]["nll"] < val["average"]["nll"]


def test_accuracy_weights_run(tmp_path):
    """Hand-built stores right on 30, 45 and 15 of 60 val rows: the weights are those counts
    over their sum, whatever the test rows say."""
    labels = {"val": np.sort(np.arange(60) % NUM_CLASSES),
              "test": np.sort(np.arange(40) % NUM_CLASSES)}
    hits = {"a": 30, "b": 45, "c": 15}
    for name, n_right in hits.items():
        logits = {}
        for split, y in labels.items():
            z = np.zeros((len(y), NUM_CLASSES), dtype=np.float32)
            right = np.arange(len(y)) < (n_right if split == "val" else len(y) // 2)
            z[np.arange(len(y)), np.where(right, y, (y + 1) % NUM_CLASSES)] = 3.0
            logits[split] = z
        write_expert(tmp_path, ExpertSpec(name, strength=0.0), labels, 0, logits=logits)
    result = run_combine(tmp_path, CombineOptions(weighted=True, weight_by="accuracy"))
    params = result["combinations"][0]["params"]
    assert params["rule"] == "accuracy"
    assert params["val_top1"] == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.25})
    assert params["weights"] == pytest.approx({"a": 30 / 90, "b": 45 / 90, "c": 15 / 90})


# --- greedy ----------------------------------------------------------------------------


def test_greedy_picks_the_complementary_pair():
    """A and B are each right on half the rows, C is unsure everywhere: greedy picks A (the
    tie goes to the lower index), then B; more picks only worsen val NLL."""
    a = np.r_[np.full(50, 0.9), np.full(50, 0.3)]
    true_probs = np.column_stack([a, a[::-1], np.full(100, 0.5)])
    selection = greedy_selection(true_probs, steps=6)
    assert [step["added"] for step in selection.path[:2]] == [0, 1]
    assert selection.best_step == 2
    np.testing.assert_array_equal(selection.counts, [1, 1, 0])
    assert selection.path[1]["val_nll"] == pytest.approx(-math.log(0.6))


def test_greedy_by_top1_on_candidates():
    """Two candidate classes per row (the true one in slot 0): expert 1 is right on every row,
    expert 0 on none, so top-1 greedy takes expert 1 and stops there."""
    candidates = np.zeros((10, 2, 2))
    candidates[:, :, 0] = [0.3, 0.7]
    candidates[:, :, 1] = [0.6, 0.4]
    selection = greedy_selection(candidates[:, 0, :], metric="top1", steps=4,
                                 candidate_probs=candidates, true_slot=np.zeros(10, int))
    assert selection.path[0]["added"] == 1 and selection.path[0]["val_top1"] == 1.0
    np.testing.assert_array_equal(selection.counts, [0, 1])


def test_greedy_run_prints_a_multiset_that_mixes(experts_root):
    artifacts, _ = experts_root
    params = _document(artifacts, "greedy")["params"]
    multiset = params["multiset"]
    assert sum(multiset.values()) == params["picks"] == params["best_step"]
    temperatures = params["temperatures"]
    mixed = sum(c * _softmax(_expert_logits(artifacts, n, "test") / temperatures[n])
                for n, c in multiset.items()) / params["picks"]
    np.testing.assert_allclose(np.exp(_combo(artifacts, "greedy")), mixed, rtol=1e-3,
                               atol=1e-6)


# --- temperature -----------------------------------------------------------------------


def test_temperature_known_optimum():
    """Logits (s, 0, ..., 0) with the first class right on a share q of rows: the NLL is
    smallest where its probability is q, at T = s / log(q (C-1) / (1-q))."""
    s, q, n_classes, n = 4.0, 0.8, 5, 1000
    logits = np.zeros((n, n_classes), dtype=np.float32)
    logits[:, 0] = s
    labels = np.zeros(n, dtype=int)
    labels[int(q * n):] = np.arange(n - int(q * n)) % (n_classes - 1) + 1
    expected = s / math.log(q * (n_classes - 1) / (1 - q))
    assert fit_temperature(logits - s, labels) == pytest.approx(expected, rel=1e-5)


def test_temperature_of_an_always_right_expert_is_clipped():
    logits = np.eye(4, dtype=np.float32)[np.arange(40) % 4] * 3 - 3
    assert fit_temperature(logits, np.arange(40) % 4) == pytest.approx(0.05, rel=1e-3)


def test_temperature_run_lowers_ece(experts_root):
    artifacts, result = experts_root
    temperature = next(c for c in result["combinations"] if c["method"] == "temperature")
    rows = temperature["params"]["calibration"]
    assert [r["expert"] for r in rows] == sorted(s.name for s in DEFAULT_SPECS)
    for row in rows:
        assert row["val_nll_after"] <= row["val_nll_before"] + 1e-9
        assert row["val_ece_after"] < row["val_ece_before"]
    # The miscalibrated experts (scale far from 1) are clearly better on test too.
    by_name = {r["expert"]: r for r in rows}
    for name in ("tiny", "small"):
        assert by_name[name]["test_ece_after"] < by_name[name]["test_ece_before"]
    assert by_name["tiny"]["temperature"] > 1 > by_name["small"]["temperature"]


# --- logit adjustment ------------------------------------------------------------------


def test_logit_adjust_tau_zero_is_a_no_op(tmp_path):
    make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=50, n_test=40)
    result = run_combine(tmp_path, CombineOptions(average=True, logit_adjust="0"))
    np.testing.assert_allclose(_combo(tmp_path, "logit-adjust"), _combo(tmp_path, "average"),
                               atol=1e-5)
    scores = {c["method"]: c["test"] for c in result["combinations"]}
    assert scores["logit-adjust"]["top1"] == scores["average"]["top1"]


def test_adjust_moves_predictions_towards_rare_classes():
    prior = log_prior([90, 10])
    log_probs = np.log(np.array([[0.6, 0.4]], dtype=np.float32))
    np.testing.assert_allclose(adjust(log_probs, prior, 0.0), log_probs, atol=1e-6)
    adjusted = adjust(log_probs, prior, 1.0)  # 0.6/0.9 vs 0.4/0.1: the rare class wins
    np.testing.assert_allclose(np.exp(adjusted), [[2 / 3 / (2 / 3 + 4), 4 / (2 / 3 + 4)]],
                               rtol=1e-5)


def test_tradeoff_curve_and_auto_tau():
    prior = log_prior([90, 10])
    log_probs = np.log(np.array([[0.6, 0.4], [0.7, 0.3], [0.9, 0.1]], dtype=np.float32))
    curve = TradeoffCurve([0.0, 1.0], prior, 2)
    curve.update(log_probs, np.array([1, 0, 0]))
    result = curve.result()
    # tau 0: rows 2 and 3 right (class 0 right, class 1 wrong); tau 1: every row goes to
    # class 1 except the third (0.9/0.9 = 1 > 0.1/0.1 = 1 is a tie: counted as a miss).
    assert result["val_top1"] == pytest.approx([2 / 3, 1 / 3])
    assert result["val_macro_top1"] == pytest.approx([0.5, 0.5])
    assert pick_tau(result, "top1") == 0.0


def test_auto_tau_trades_micro_for_macro(experts_root):
    artifacts, result = experts_root
    params = _document(artifacts, "logit-adjust")["params"]
    curve = params["curve"]
    assert params["base"] == "average" and params["target"] == "macro"
    best = max(curve["val_macro_top1"])
    assert curve["val_macro_top1"][curve["tau"].index(params["tau"])] == best
    assert best > curve["val_macro_top1"][0]  # the experts favour frequent classes
    adjusted = next(c for c in result["combinations"] if c["method"] == "logit-adjust")
    assert adjusted["val"]["macro_top1"] == pytest.approx(best)


# --- cascade and cost ------------------------------------------------------------------


def test_cascade_cost_by_hand():
    conf = np.array([[0.9, 0.95, 0.99], [0.5, 0.8, 0.7], [0.3, 0.4, 0.6], [0.7, 0.6, 0.9]])
    correct = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=bool)
    costs = stage_costs([1.0, 2.0, 5.0])
    np.testing.assert_array_equal(costs, [1.0, 3.0, 8.0])
    thresholds = [0.85, 0.75, 0.0]
    np.testing.assert_array_equal(cascade_stops(conf, thresholds), [0, 1, 2, 2])
    top1, gflops = cascade_point(conf, correct, thresholds, costs)
    assert top1 == pytest.approx(3 / 4)  # rows 1-3 right at their stops, row 4 wrong
    assert gflops == pytest.approx((1 + 3 + 8 + 8) / 4)


def test_cascade_fit_respects_within_and_budget():
    rng = np.random.default_rng(0)
    conf = np.sort(rng.uniform(0.2, 1.0, size=(400, 3)), axis=1)
    correct = rng.uniform(size=(400, 3)) < conf
    costs = stage_costs([1.0, 2.0, 4.0])
    full = correct[:, -1].mean()
    fit = fit_cascade(conf, correct, costs, within=0.02)
    assert fit.val_top1 >= full - 0.02 - 1e-12 and fit.val_gflops < costs[-1]
    assert fit.thresholds[-1] == 0.0
    assert cascade_point(conf, correct, fit.thresholds, costs) == pytest.approx(
        (fit.val_top1, fit.val_gflops))
    budget = fit_cascade(conf, correct, costs, budget=2.0)
    assert budget.val_gflops <= 2.0 + 1e-12
    # Nothing on the shared-threshold curve within the budget does better.
    assert all(p["val_top1"] <= budget.val_top1 + 1e-12
               for p in budget.curve if p["val_gflops"] <= 2.0)
    with pytest.raises(PlantkitInputError, match="--budget 0.5"):
        fit_cascade(conf, correct, costs, budget=0.5)


def test_cascade_run_matches_an_independent_recomputation(experts_root):
    """Recompute the stored test predictions and mean cost from the experts' logits, the
    stored temperatures and thresholds."""
    artifacts, result = experts_root
    document = _document(artifacts, "cascade")
    params = document["params"]
    gflops = {s.name: s.gflops for s in DEFAULT_SPECS}
    assert params["order"] == sorted(gflops, key=gflops.get)
    n = 360
    total = np.zeros((n, NUM_CLASSES))
    output = np.zeros((n, NUM_CLASSES))
    stop = np.full(n, -1)
    for stage, name in enumerate(params["order"]):
        total += _softmax(_expert_logits(artifacts, name, "test")
                          / params["temperatures"][name])
        average = total / (stage + 1)
        threshold = params["thresholds"][stage]
        newly = (stop < 0) & (average.max(1) >= (math.inf if threshold is None else threshold))
        if stage == len(params["order"]) - 1:
            newly = stop < 0
        output[newly], stop[newly] = average[newly], stage
    np.testing.assert_allclose(np.exp(_combo(artifacts, "cascade")), output, rtol=1e-3,
                               atol=1e-6)
    cumulative = np.cumsum([gflops[name] for name in params["order"]])
    assert document["expected_gflops"] == pytest.approx(cumulative[stop].mean())
    assert params["chosen"]["test_gflops"] == pytest.approx(cumulative[stop].mean())
    assert params["chosen"]["val_top1"] >= params["full_average_val_top1"] - 0.005 - 1e-12
    assert sum(params["test_stop_share"]) == pytest.approx(1.0)
    with open_store(artifacts / "combos" / "cascade") as store:
        assert store.attrs["gflops"] == pytest.approx(document["expected_gflops"])


def test_router_cost_and_shares(experts_root, tmp_path):
    """Features of the cheapest expert (which always runs) feed the router; with top-1 each
    image also runs the expert of its largest weight, unless that is the input expert."""
    artifacts, result = experts_root
    router = next(c for c in result["combinations"] if c["method"] == "router")
    params = router["params"]
    assert params["input"] == "features" and params["input_expert"] == "tiny"
    assert params["crossfit_val_top1"] == router["val"]["top1"]
    assert params["overfitting_gap"] == pytest.approx(router["val"]["top1"]
                                                      - router["test"]["top1"])
    assert sum(params["share"]["test"].values()) == pytest.approx(1.0)
    top1 = run_combine(artifacts, CombineOptions(router=True, top_k=1, prefix="top1",
                                                 router_settings=QUICK_ROUTER))
    routed = top1["combinations"][0]
    gflops = {s.name: s.gflops for s in DEFAULT_SPECS}
    for split, cost in (("test", routed["expected_gflops"]),
                        ("val", routed["expected_gflops_val"])):
        shares = routed["params"]["share"][split]
        by_hand = gflops["tiny"] + sum(gflops[n] * s for n, s in shares.items() if n != "tiny")
        assert cost == pytest.approx(by_hand)
    with open_store(artifacts / "combos" / "top1-router") as store:
        probs = np.exp(store.logits("test"))
    # One expert per image: every row is one calibrated expert's softmax (sums to 1).
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    dense = run_combine(artifacts, CombineOptions(router=True, router_input="confidences",
                                                  top_k=1, prefix="conf",
                                                  router_settings=QUICK_ROUTER))
    routed = dense["combinations"][0]
    assert routed["params"]["input"] == "confidences"
    # Confidences need every expert's output, whatever top-k keeps.
    assert routed["expected_gflops"] == pytest.approx(sum(gflops.values()))


def test_cost_overrides_and_missing_costs(tmp_path):
    assert parse_cost_overrides(["a=1.5", "b=0"]) == {"a": 1.5, "b": 0.0}
    for bad in ("a", "a=x", "=1", "a=-1"):
        with pytest.raises(PlantkitInputError, match="--cost"):
            parse_cost_overrides([bad])
    specs = [ExpertSpec("p", 2.0, gflops=None), ExpertSpec("q", 3.0, gflops=None)]
    make_experts(tmp_path, specs, n_val=40, n_test=30)
    with pytest.raises(PlantkitInputError, match="--cost p=GFLOPS"):
        run_combine(tmp_path, CombineOptions(cascade=True))
    assert not (tmp_path / "combos").exists()
    result = run_combine(tmp_path, CombineOptions(average=True, costs={"p": 1.0, "q": 2.5}))
    assert result["combinations"][0]["expected_gflops"] == pytest.approx(3.5)
    with pytest.raises(PlantkitInputError, match="--cost zz=...: no such expert"):
        run_combine(tmp_path, CombineOptions(average=True, costs={"zz": 1.0}))


# --- honesty ---------------------------------------------------------------------------


def test_permuting_test_labels_changes_no_test_prediction(tmp_path, experts_root):
    artifacts, result = experts_root
    permuted = tmp_path / "permuted"
    permutation = np.random.default_rng(7).permutation(360)
    for spec in DEFAULT_SPECS:
        rewrite_with_test_labels(store_path(artifacts, spec.name),
                                 store_path(permuted, spec.name), permutation)
    again = run_combine(permuted, CombineOptions(**ALL_METHODS))
    names = [c["name"] for c in result["combinations"]]
    assert names == [c["name"] for c in again["combinations"]] and len(names) == 7
    for name in names:
        np.testing.assert_array_equal(_combo(permuted, name), _combo(artifacts, name))
        np.testing.assert_array_equal(_combo(permuted, name, "val"),
                                      _combo(artifacts, name, "val"))
    # The labels did change: the test scores differ while every fitted parameter is equal.
    first, second = result["combinations"][0], again["combinations"][0]
    assert first["test"]["top1"] != second["test"]["top1"]
    for before, after in zip(result["combinations"], again["combinations"]):
        assert _fitted(before["params"]) == _fitted(after["params"])
        assert before["val"] == after["val"]


def _fitted(params):
    """Parameters without the test scores some of them report."""
    if isinstance(params, dict):
        return {k: _fitted(v) for k, v in params.items()
                if not k.startswith("test") and k != "overfitting_gap"}
    if isinstance(params, list):
        return [_fitted(v) for v in params]
    return params


# --- bad input -------------------------------------------------------------------------


def _refused(artifacts, match, **options):
    before = sorted(p.name for p in (artifacts / "combos").glob("*")) if (
        artifacts / "combos").exists() else None
    with pytest.raises(PlantkitInputError, match=match) as error:
        run_combine(artifacts, CombineOptions(**(options or {"average": True,
                                                             "weighted": True})))
    after = sorted(p.name for p in (artifacts / "combos").glob("*")) if (
        artifacts / "combos").exists() else None
    assert before == after  # nothing written, not even an empty folder or a temporary
    assert "\n" not in str(error.value)


def test_one_store_is_refused(tmp_path):
    make_experts(tmp_path, DEFAULT_SPECS[:1], n_val=20, n_test=20)
    _refused(tmp_path, "two or more expert stores, found 1")
    _refused(tmp_path, "--experts nothere: no prediction store", experts=["tiny", "nothere"],
             average=True)


def test_mismatched_datasets_are_refused(tmp_path):
    labels = split_labels(0, 30, 30)
    write_expert(tmp_path, DEFAULT_SPECS[0], labels, 0)
    write_expert(tmp_path, DEFAULT_SPECS[1], labels, 0, fingerprint="another")
    _refused(tmp_path, "made for different datasets")


def test_rows_in_another_order_are_refused(tmp_path):
    make_experts(tmp_path, DEFAULT_SPECS[:1], n_val=30, n_test=30)
    write_expert(tmp_path, DEFAULT_SPECS[1], split_labels(1, 30, 30), 0)
    _refused(tmp_path, "disagree on the rows of split 'val'")


def test_a_missing_split_is_refused(tmp_path):
    labels = split_labels(0, 30, 30)
    write_expert(tmp_path, DEFAULT_SPECS[0], labels, 0)
    write_expert(tmp_path, DEFAULT_SPECS[1], labels, 0, splits=("val",))
    _refused(tmp_path, r"small/predictions.h5 \(small\) has no 'test' split")


@pytest.mark.parametrize("split", ["val", "test"])
def test_nan_logits_are_refused_and_nothing_is_replaced(tmp_path, split):
    make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=30, n_test=30, dtype="float32")
    run_combine(tmp_path, CombineOptions(average=True))
    saved = (tmp_path / "combos" / "average" / "predictions.h5").read_bytes()
    with h5py.File(store_path(tmp_path, "small"), "r+") as f:  # past the writer's checks
        f[f"splits/{split}/logits"][17, 3] = np.nan
    _refused(tmp_path, rf"small\).* NaN or infinite logits in split '{split}' \(first at row "
             "17\\)", average=True, temperature=True)
    assert (tmp_path / "combos" / "average" / "predictions.h5").read_bytes() == saved


def test_options_are_checked_before_reading(tmp_path):
    for options, match in (({}, "choose at least one method"),
                           ({"average": True, "space": "x"}, "--space 'x'"),
                           ({"logit_adjust": "-1"}, "--logit-adjust '-1'"),
                           ({"cascade": True, "within": 0.1, "budget": 2.0}, "takes one"),
                           ({"average": True, "prefix": "a/b"}, "--prefix")):
        with pytest.raises(PlantkitInputError, match=match):
            run_combine(tmp_path, CombineOptions(**options))


def test_adjust_on_names_an_expert_or_a_method(tmp_path):
    make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=40, n_test=30)
    with pytest.raises(PlantkitInputError, match="--adjust-on 'greedy'"):
        run_combine(tmp_path, CombineOptions(logit_adjust="1", adjust_on="greedy"))
    result = run_combine(tmp_path, CombineOptions(logit_adjust="0", adjust_on="small"))
    expert = _expert_logits(tmp_path, "small", "test")
    np.testing.assert_allclose(_softmax(_combo(tmp_path, "logit-adjust")), _softmax(expert),
                               atol=1e-5)
    assert result["combinations"][0]["expected_gflops"] == pytest.approx(1.5)


def test_report_shows_combinations_beside_experts(experts_root):
    from plantkit.report.inputs import collect_store_paths
    from plantkit.report.leaderboard import build_report

    artifacts, _ = experts_root
    report = build_report(collect_store_paths([], artifacts), workers=1)
    kinds = {m["name"]: (m["kind"], m["gflops"]) for m in report["models"]}
    assert kinds["tiny"] == ("expert", 0.5)
    assert kinds["average"] == ("combination", 15.0)
    assert kinds["cascade"][0] == "combination" and kinds["cascade"][1] < 15.0
    assert TRAIN_COUNTS.tolist() == report["train_counts"]
    assert report["classes"]["ids"] == CLASS_IDS and report["fingerprint"] == FINGERPRINT


# --- tau-normalisation -----------------------------------------------------------------

# 3 classes, 2-D features: the head class's row has norm 2, the others 1 and 0.5.
TAU_W = np.array([[2.0, 0.0], [0.0, 1.0], [0.3, 0.4]], dtype=np.float32)
# Val rows A-F of the hand computation below (features exact enough in float16).
TAU_VAL = (np.array([[1, 0], [0.6, 1], [1, 1], [0.4, 1], [0, 1]], dtype=np.float32),
           np.array([0, 1, 2, 1, 1]))
TAU_TEST = (np.array([[1, 0.2], [0.5, 1], [1, 1.2], [0.2, 0.3]], dtype=np.float32),
            np.array([0, 1, 2, 2]))


def _tau_expert(artifacts, name="lin", weight=TAU_W, bias=(0.0, 0.0, 0.0), **kwargs):
    from combine_helpers import write_linear_expert

    labels = {"val": TAU_VAL[1], "test": TAU_TEST[1]}
    features = {"val": TAU_VAL[0], "test": TAU_TEST[0]}
    return write_linear_expert(artifacts, name, labels, features, weight, bias, **kwargs)


def test_tau_normalisation_by_hand():
    from plantkit.combine.tau_norm import fit_tau_norm, normalised_weight, tau_norm_log_probs

    # w_c / ||w_c||^tau: tau 1 leaves unit rows, tau 0.5 divides by sqrt(2), 1, sqrt(0.5).
    np.testing.assert_allclose(normalised_weight(TAU_W, 1.0), [[1, 0], [0, 1], [0.6, 0.8]],
                               rtol=1e-6)
    r = math.sqrt(2)
    np.testing.assert_allclose(normalised_weight(TAU_W, 0.5),
                               [[r, 0], [0, 1], [0.3 * r, 0.4 * r]], rtol=1e-6)
    np.testing.assert_array_equal(normalised_weight(TAU_W, 0.0), TAU_W)
    f = np.array([[1.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(np.exp(tau_norm_log_probs(f, TAU_W, 1.0)),
                               _softmax([[1.0, 1.0, 1.4]]), rtol=1e-6)
    # Logits per val row (A-F, labels 0 1 2 1 1), at tau 0 / 0.5 / 1:
    #   A (1, 0):   (2, 0, .3)     (1.41, 0, .42)   (1, 0, .6)      class 0 every time
    #   B (.6, 1):  (1.2, 1, .58)  (.85, 1, .82)    (.6, 1, 1.16)   class 1 only at 0.5
    #   C (1, 1):   (2, 1, .7)     (1.41, 1, .99)   (1, 1, 1.4)     class 2 only at 1
    #   D (.4, 1):  (.8, 1, .52)   (.57, 1, .74)    (.4, 1, 1.04)   class 1 at 0 and 0.5
    #   F (0, 1):   (0, 1, .4)     (0, 1, .57)      (0, 1, .8)      class 1 every time
    # top-1: 3/5, 4/5, 3/5; macro: (1 + 2/3 + 0)/3, (1 + 1 + 0)/3, (1 + 1/3 + 1)/3.
    fit = fit_tau_norm([TAU_VAL], TAU_W, 3, "macro", taus=(0.0, 0.5, 1.0))
    assert fit.curve["tau"] == [0.0, 0.5, 1.0]
    assert fit.curve["val_top1"] == pytest.approx([3 / 5, 4 / 5, 3 / 5])
    assert fit.curve["val_macro_top1"] == pytest.approx([5 / 9, 2 / 3, 7 / 9])
    assert fit.tau == 1.0
    # The curve fed in chunks is the same; top-1 picks 0.5.
    chunks = [(TAU_VAL[0][:2], TAU_VAL[1][:2]), (TAU_VAL[0][2:], TAU_VAL[1][2:])]
    by_top1 = fit_tau_norm(chunks, TAU_W, 3, "top1", taus=(0.0, 0.5, 1.0))
    assert by_top1.tau == 0.5 and by_top1.curve == fit.curve


def test_tau_norm_run_saves_the_val_curve_and_scores_test_once(tmp_path):
    from plantkit.combine.logit_adjust import TAU_GRID
    from plantkit.combine.tau_norm import normalised_weight

    _tau_expert(tmp_path)  # one expert store is enough for tau-normalisation alone
    result = run_combine(tmp_path, CombineOptions(tau_norm=["lin"], target="macro"))
    combo, = result["combinations"]
    assert (combo["name"], combo["method"], combo["experts"]) == ("tau-norm-lin", "tau-norm",
                                                                 ["lin"])
    params = _document(tmp_path, "tau-norm-lin")["params"]
    curve = params["curve"]
    assert set(curve) == {"tau", "val_top1", "val_macro_top1"}
    assert curve["tau"] == list(TAU_GRID)
    at = {t: i for i, t in enumerate(curve["tau"])}
    for tau, top1, macro in ((0.0, 3 / 5, 5 / 9), (0.5, 4 / 5, 2 / 3), (1.0, 3 / 5, 7 / 9)):
        assert curve["val_top1"][at[tau]] == pytest.approx(top1)
        assert curve["val_macro_top1"][at[tau]] == pytest.approx(macro)
    best = max(curve["val_macro_top1"])
    assert params["tau"] == curve["tau"][curve["val_macro_top1"].index(best)]  # first best
    assert (params["expert"], params["target"], params["bias"]) == ("lin", "macro", "dropped")
    assert combo["val"]["macro_top1"] == pytest.approx(best)
    # Test: the stored features (float16) on the normalised rows, nothing fitted on test.
    features = TAU_TEST[0].astype(np.float16).astype(np.float32)
    expected = _softmax(features @ normalised_weight(TAU_W, params["tau"]).T)
    np.testing.assert_allclose(np.exp(_combo(tmp_path, "tau-norm-lin")), expected, atol=1e-6)
    assert combo["expected_gflops"] == pytest.approx(1.0)


def test_tau_norm_at_tau_zero_is_the_expert_without_its_bias(tmp_path):
    # Rows of equal norm: every tau ranks alike, so the smallest, 0, is picked.
    weight = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    bias = np.array([0.5, 0.0, 0.0], dtype=np.float32)
    _tau_expert(tmp_path, weight=weight, bias=bias)
    result = run_combine(tmp_path, CombineOptions(tau_norm=["lin"]))
    assert result["combinations"][0]["params"]["tau"] == 0.0
    features = TAU_TEST[0].astype(np.float16).astype(np.float32)
    stored = np.exp(_combo(tmp_path, "tau-norm-lin"))
    np.testing.assert_allclose(stored, _softmax(features @ weight.T), atol=1e-6)
    # The expert's own logits have the bias, which moves the last test row (0.2, 0.3) from
    # class 2 (0.36 against 0.2 and 0.3) to class 0 (0.7).
    own = _softmax(_expert_logits(tmp_path, "lin", "test"))
    assert own[3].argmax() == 0 and stored[3].argmax() == 2
    expert_row = result["experts"][0]
    assert expert_row["test_top1"] == 0.5 and result["combinations"][0]["test"]["top1"] == 0.75


def test_several_tau_norms_beside_other_methods_and_in_the_report(tmp_path):
    from plantkit.report.html import _tau_curves
    from plantkit.report.inputs import collect_store_paths
    from plantkit.report.leaderboard import build_report

    _tau_expert(tmp_path, "lin")
    _tau_expert(tmp_path, "wide", weight=TAU_W * np.array([[1.0], [3.0], [1.0]]), gflops=2.0)
    result = run_combine(tmp_path, CombineOptions(average=True, tau_norm=["wide", "lin"],
                                                  logit_adjust="auto", prefix="run1"))
    names = [(c["name"], c["method"]) for c in result["combinations"]]
    assert names == [("run1-average", "average"), ("run1-tau-norm-wide", "tau-norm"),
                     ("run1-tau-norm-lin", "tau-norm"), ("run1-logit-adjust", "logit-adjust")]
    costs = {c["name"]: c["expected_gflops"] for c in result["combinations"]}
    assert costs["run1-tau-norm-wide"] == 2.0 and costs["run1-average"] == 3.0
    report = build_report(collect_store_paths([], tmp_path), workers=1)
    curves = dict(_tau_curves(report))  # what the report draws a line for
    assert set(curves) == {"run1-tau-norm-wide", "run1-tau-norm-lin", "run1-logit-adjust"}
    assert curves["run1-tau-norm-lin"] == _document(tmp_path, "run1-tau-norm-lin")["params"][
        "curve"]


def test_tau_norm_refusals(tmp_path):
    make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=30, n_test=30)  # tiny: features, small: none
    run_combine(tmp_path, CombineOptions(average=True, prefix="old"))
    for options, match in (
            ({"tau_norm": ["nobody"]},
             r"--tau-norm nobody: no expert nobody among the experts found \(small, tiny\)"),
            ({"tau_norm": ["average"]}, "average is a combination, not an expert"),
            ({"tau_norm": ["old-average"]}, "old-average is a combination, not an expert"),
            ({"tau_norm": ["tiny"], "experts": ["small", "tiny", "nothing"]}, "--experts nothing"),
            ({"tau_norm": ["tiny", "tiny"]}, "--tau-norm names tiny twice"),
            ({"tau_norm": ["small"]}, r"small/predictions\.h5 holds no features for split 'val'"),
            ({"tau_norm": ["tiny"]}, r"tiny/predictions\.h5 holds no classifier"),
            ({"tau_norm": ["tiny"], "adjust_on": "tau-norm", "logit_adjust": "1"},
             "--adjust-on 'tau-norm'")):
        with pytest.raises(PlantkitInputError, match=match):
            run_combine(tmp_path, CombineOptions(**options))
    # Stores without an expert folder (imported logits) say so rather than "predict again".
    with pytest.raises(PlantkitInputError, match="its logits were imported"):
        run_combine(tmp_path, CombineOptions(tau_norm=["tiny"]))
    with pytest.raises(PlantkitInputError, match=r"among --experts \(small\).*add it to "):
        run_combine(tmp_path, CombineOptions(tau_norm=["tiny"], experts=["small"]))
    assert sorted(p.name for p in (tmp_path / "combos").iterdir()) == ["old-average"]
