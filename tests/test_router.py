"""The router (plantkit.combine.router): routing beats averaging where the inputs reveal the
right expert, load balancing, top-k, cost accounting, determinism, bad input."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

from plantkit.combine import router
from plantkit.errors import PlantkitInputError

# Keras 3.15 converts torch tensors with np.array(x, copy=False), which NumPy 2 reports on
# every weight read (EarlyStopping keeps the best weights): thousands of lines of noise.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

NUM_CLASSES = 6
# Small and quick: 3 folds, a high learning rate and few epochs fit these cases in seconds.
FAST = dict(folds=3, learning_rate=0.02, max_epochs=15, patience=3, hidden=32,
            batch_size=512)


def regions_case(n_rows: int, n_experts: int = 3, dominant: bool = False, seed: int = 0):
    """Features that reveal which expert is right, and every expert's probabilities.

    Images fall in one region per expert; the features are the region's centre plus noise.
    Expert m gives the true class 0.7 on its region; elsewhere 0.1, with 0.8 on a wrong class
    that all wrong experts share, so the plain average is wrong wherever two experts are.
    With `dominant`, expert 0 is right everywhere (0.8) and the others still on their region.
    Returns (features N x 8, probs M x N x C, labels N).
    """
    rng = np.random.default_rng(seed)
    region = rng.integers(n_experts, size=n_rows)
    centres = 3.0 * np.eye(n_experts, 8)
    features = centres[region] + 0.6 * rng.standard_normal((n_rows, 8))
    labels = rng.integers(NUM_CLASSES, size=n_rows)
    wrong = (labels + 1 + rng.integers(NUM_CLASSES - 1, size=n_rows)) % NUM_CLASSES
    rows = np.arange(n_rows)
    probs = np.full((n_experts, n_rows, NUM_CLASSES), 0.0)
    for m in range(n_experts):
        right = region == m
        p_true = np.where(right, 0.7, 0.1)
        if dominant and m == 0:
            p_true = np.full(n_rows, 0.8)
        probs[m, rows, labels] = p_true
        probs[m, rows, wrong] = 0.9 - p_true
        probs[m] += 0.1 / NUM_CLASSES  # every class keeps some mass
        probs[m] /= probs[m].sum(axis=1, keepdims=True)
    return features.astype(np.float32), probs, labels


def true_class_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return probs[:, np.arange(len(labels)), labels].T


def accuracy(weights: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 of sum_m w_m p_m (weights N x M, probs M x N x C), by plain numpy."""
    mixed = np.einsum("nm,mnc->nc", np.asarray(weights, dtype=np.float64), probs)
    return float((mixed.argmax(axis=1) == labels).mean())


def split_val_test(case, n_val: int):
    features, probs, labels = case
    return ((features[:n_val], probs[:, :n_val], labels[:n_val]),
            (features[n_val:], probs[:, n_val:], labels[n_val:]))


@pytest.mark.slow
def test_router_beats_average_on_val_cross_fitted_and_on_test():
    (x_val, p_val, y_val), (x_test, p_test, y_test) = split_val_test(regions_case(2400), 1200)
    fit = router.fit_router(x_val, true_class_probs(p_val, y_val), balance=0.01, seed=0,
                            **FAST)
    uniform = np.full((len(y_val), 3), 1 / 3)
    average_val = accuracy(uniform, p_val, y_val)
    average_test = accuracy(uniform, p_test, y_test)
    routed_val = accuracy(fit.crossfit_val_weights, p_val, y_val)
    routed_test = accuracy(fit.weights(x_test), p_test, y_test)
    assert routed_val > average_val + 0.3
    assert routed_test > average_test + 0.3
    assert routed_val > 0.85 and routed_test > 0.85
    # the cross-fitted weights send most images to the right expert
    assert fit.params["crossfit_val_nll"] < fit.params["average_val_nll"]
    assert len(fit.params["best_epochs"]) == FAST["folds"]


@pytest.mark.slow
def test_balance_loss_lowers_the_dominant_experts_share():
    x, p, y = regions_case(1200, dominant=True)
    true = true_class_probs(p, y)
    shares = {}
    for balance in (0.0, 0.5):
        fit = router.fit_router(x, true, balance=balance, seed=3, **FAST)
        shares[balance] = router.expert_shares(fit.crossfit_val_weights)
    assert shares[0.0].argmax() == 0 and shares[0.0][0] > 0.8
    assert shares[0.5][0] < shares[0.0][0] - 0.2


@pytest.mark.slow
def test_same_seed_gives_identical_weights_and_top_k_one_is_one_hot():
    (x_val, p_val, y_val), (x_test, _, _) = split_val_test(regions_case(600, seed=1), 400)
    true = true_class_probs(p_val, y_val)
    options = {**FAST, "max_epochs": 4}
    first = router.fit_router(x_val, true, top_k=1, seed=7, **options)
    again = router.fit_router(x_val, true, top_k=1, seed=7, **options)
    other = router.fit_router(x_val, true, top_k=None, seed=8, **options)
    assert np.array_equal(first.crossfit_val_weights, again.crossfit_val_weights)
    assert np.array_equal(first.weights(x_test), again.weights(x_test))
    dense = router.fit_router(x_val, true, seed=7, **options)
    assert not np.array_equal(dense.crossfit_val_weights, other.crossfit_val_weights)
    for weights in (first.crossfit_val_weights, first.weights(x_test)):
        assert ((weights > 0).sum(axis=1) == 1).all()
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    # top-1 of the same fit keeps each row's largest dense weight
    np.testing.assert_array_equal(first.crossfit_val_weights.argmax(axis=1),
                                  dense.crossfit_val_weights.argmax(axis=1))


def test_apply_top_k_keeps_the_k_largest_renormalised():
    weights = np.random.default_rng(0).dirichlet(np.ones(5), size=50).astype(np.float32)
    kept = router.apply_top_k(weights, 2)
    assert ((kept > 0).sum(axis=1) == 2).all()
    np.testing.assert_allclose(kept.sum(axis=1), 1.0, rtol=1e-6)
    second_largest = np.sort(weights, axis=1)[:, -2:-1]
    np.testing.assert_array_equal(kept > 0, weights >= second_largest)
    # the kept weights keep their ratios
    row = kept[0][kept[0] > 0] / weights[0][kept[0] > 0]
    np.testing.assert_allclose(row, row[0], rtol=1e-5)
    # ties go to the lower expert index
    assert router.apply_top_k(np.array([[0.25, 0.25, 0.25, 0.25]]), 2).tolist() == [
        [0.5, 0.5, 0.0, 0.0]]
    np.testing.assert_allclose(router.apply_top_k(weights, None), weights)


WEIGHTS = np.array([[0.5, 0.5, 0.0],
                    [1.0, 0.0, 0.0],
                    [0.0, 0.3, 0.7],
                    [0.2, 0.3, 0.5]])
GFLOPS = [1.0, 2.0, 4.0]


@pytest.mark.parametrize(("input_expert", "router_input", "expected"), [
    # input expert 0 (1 GFLOP) always; others kept per row: {1}, {}, {1, 2}, {1, 2}
    (0, "features", 1 + (2 + 0 + 6 + 6) / 4),
    # input expert 2 (4 GFLOPs) always, counted once where kept: {0, 1}, {0}, {1}, {0, 1}
    (2, "features", 4 + (3 + 1 + 2 + 3) / 4),
    # no input expert: rows cost 3, 1, 6, 7
    (None, "features", (3 + 1 + 6 + 7) / 4),
    # confidences need every expert, whatever the weights keep
    (None, "confidences", 7.0),
])
def test_expected_gflops_by_hand(input_expert, router_input, expected):
    got = router.expected_gflops(WEIGHTS, GFLOPS, input_expert, router_input=router_input)
    assert got == pytest.approx(expected)


def test_expected_gflops_after_top_one():
    # top-1 keeps experts 0 (tie at 0.5: lower index), 0, 2, 2
    top_one = router.apply_top_k(WEIGHTS, 1)
    assert router.expected_gflops(top_one, GFLOPS, 0) == pytest.approx(1 + (0 + 0 + 4 + 4) / 4)
    assert router.expected_gflops(top_one, GFLOPS, 2) == pytest.approx(4 + (1 + 1 + 0 + 0) / 4)


def _top_k_by_hand(weights: np.ndarray, k: int | None) -> np.ndarray:
    if k is None:
        return weights
    kept = np.zeros_like(weights)
    for i, row in enumerate(weights):
        largest = sorted(range(len(row)), key=lambda m: (-row[m], m))[:k]
        kept[i, largest] = row[largest] / row[largest].sum()
    return kept


@pytest.mark.parametrize("top_k", [None, 2])
def test_production_router_mixing_is_the_weighted_sum(tmp_path, top_k):
    """What `plantkit combine --router` streams equals sum_m w_m p_m computed here: on val
    with the cross-fitted weights, on test with the mean of the fold routers' weights (top-k
    applied by hand), p_m each expert's softmax at its fitted temperature."""
    from combine_helpers import make_experts

    from plantkit.combine.build import build_mixers
    from plantkit.combine.fit import fit_on_val, plan_call
    from plantkit.combine.inputs import open_experts
    from plantkit.combine.options import CombineOptions
    from plantkit.combine.stream import stream_outputs

    make_experts(tmp_path, n_val=120, n_test=90)
    options = CombineOptions(router=True, top_k=top_k,
                             router_settings=dict(folds=2, max_epochs=3, hidden=16)).validate()
    outputs = {}
    with open_experts(tmp_path) as experts:
        plan = plan_call(experts, options)
        fitted = fit_on_val(experts, plan,
                            lambda what, total: contextlib.nullcontext(lambda n=1: None))
        mixers = build_mixers(experts, plan, fitted)
        stream_outputs(experts, mixers, fitted.temperatures, order=plan.order, chunk_rows=50,
                       emit=lambda ref, split, rows, out: outputs.setdefault(
                           split, []).append(out.copy()))
        probs = {split: [] for split in ("val", "test")}
        for m, store in enumerate(experts.stores):
            for split in probs:
                z = store.logits(split).astype(np.float64) / fitted.temperatures[m]
                e = np.exp(z - z.max(axis=1, keepdims=True))
                probs[split].append(e / e.sum(axis=1, keepdims=True))
        features = experts.stores[plan.order[0]].features("test")
    folds = fitted.route.fit.fold_routers
    assert len(folds) == 2 and fitted.route.input_expert == plan.order[0]
    dense = np.mean([fold.weights(features) for fold in folds], axis=0).astype(np.float64)
    weights = {"val": np.asarray(fitted.route.val_weights, dtype=np.float64),
               "test": _top_k_by_hand(dense, top_k)}
    if top_k is not None:
        assert ((weights["val"] > 0).sum(axis=1) <= top_k).all()
        assert ((weights["test"] > 0).sum(axis=1) == top_k).all()
    for split, w in weights.items():
        expected = np.einsum("nm,mnc->nc", w, np.stack(probs[split]))
        np.testing.assert_allclose(np.exp(np.concatenate(outputs[split])), expected,
                                   rtol=1e-4, atol=1e-6)


def test_confidence_inputs_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    columns = router.confidence_inputs([probs, probs[::-1]])
    assert columns.shape == (2, 6)
    entropy = [-(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
               -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))]
    np.testing.assert_allclose(columns[:, :3], [[0.7, 0.5, entropy[0]], [0.4, 0.0, entropy[1]]],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(columns[:, 3:], columns[::-1, :3], rtol=1e-6)
    # block by block equals all at once
    np.testing.assert_array_equal(router.confidence_inputs([probs[:1]]), columns[:1, :3])


def test_bad_inputs_raise_plantkit_input_error():
    x, p, y = regions_case(200)
    true = true_class_probs(p, y)
    with pytest.raises(PlantkitInputError, match="at least 2 experts"):
        router.fit_router(x, true[:, :1])
    with pytest.raises(PlantkitInputError, match="rows"):
        router.fit_router(x[:-1], true)
    with pytest.raises(PlantkitInputError, match="--top-k 4"):
        router.fit_router(x, true, top_k=4)
    with pytest.raises(PlantkitInputError, match="--top-k 4"):
        router.apply_top_k(true, 4)
    with pytest.raises(PlantkitInputError, match="--top-k 0"):
        router.apply_top_k(true, 0)
    nan_inputs = x.copy()
    nan_inputs[3, 2] = np.nan
    with pytest.raises(PlantkitInputError, match="NaN"):
        router.fit_router(nan_inputs, true)
    with pytest.raises(PlantkitInputError, match=r"\[0, 1\]"):
        router.fit_router(x, true * 2)
    with pytest.raises(PlantkitInputError, match="val rows for 5 folds"):
        router.fit_router(x[:30], true[:30])
    with pytest.raises(PlantkitInputError, match="3 values for 2 experts"):
        router.expected_gflops(WEIGHTS[:, :2], GFLOPS, 0)
    with pytest.raises(PlantkitInputError, match="input expert 3"):
        router.expected_gflops(WEIGHTS, GFLOPS, 3)
    with pytest.raises(PlantkitInputError, match="unknown"):
        router.expected_gflops(WEIGHTS, [1.0, math.nan, 4.0], 0)
    with pytest.raises(PlantkitInputError, match="same rows"):
        router.confidence_inputs([p[0], p[1][:-1]])


@pytest.mark.parametrize("with_pca", [True, False])
def test_preprocessing_arrays_transform_as_the_fitted_sklearn_objects(with_pca):
    """The router applies its preprocessing from plain arrays (what runnable.npz keeps):
    the same numbers as scikit-learn's own transform, through a save and load of the arrays."""
    import io

    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    rows = rng.normal(size=(300, 12)) * rng.uniform(0.1, 5, size=12) + rng.normal(size=12)
    rows[:, 4] = 2.0  # a constant column: the scaler's zero variance
    scaler = StandardScaler().fit(rows)
    pca = PCA(n_components=5, whiten=True, random_state=0).fit(scaler.transform(rows)) \
        if with_pca else None
    expected = scaler.transform(rows) if pca is None else pca.transform(scaler.transform(rows))
    buffer = io.BytesIO()
    np.savez(buffer, **router.Preprocessing.fitted(scaler, pca).arrays())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        loaded = router.Preprocessing.from_arrays({k: stored[k] for k in stored.files})
    got = loaded(rows.astype(np.float32))
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
