"""A learned router: per-image weights over M frozen experts, fitted on val only.

The combination is sum_m w_m(x) p_m(x), the weights w(x) the softmax of a small gating
network (plantkit.combine.router_model) trained to minimise the mixture's NLL on the true
class plus `balance` times the Switch Transformer load-balancing loss. Training reads only
the N x M matrix of true-class probabilities p_m(y_i | x_i) and the router inputs.

Honesty: `fit_router` cross-fits inside val. Val is cut into `folds` folds; each fold's
router is trained on the other folds (early-stopped on an inner tenth of them, inputs
standardised and PCA-reduced with statistics of those folds only) and predicts its own
fold, so `crossfit_val_weights` are out-of-fold for every val image: the val score of the
combination they give is an honest estimate. Test weights (`RouterFit.weights`) are the
mean of the fold routers' weights (no refit on all of val; each fold router was trained on
(folds - 1) / folds of it).

Public API (used by plantkit.combine.route; the mixing itself, sum_m w_m p_m chunk by
chunk, is plantkit.combine.mixers.RouterMixture):

    fit_router(inputs_val, true_probs_val, *, expert_gflops=None, input_expert=None,
               router_input="features", balance=0.01, top_k=None, folds=5, seed=0,
               hidden=128, dropout=0.2, weight_decay=0.01, learning_rate=6e-3,
               batch_size=2048, max_epochs=40, patience=5, input_dims=128,
               labels_val=None) -> RouterFit
    RouterFit.crossfit_val_weights          N_val x M, out-of-fold, top-k applied
    RouterFit.weights(inputs) -> N x M      mean of the fold routers, top-k applied
    RouterFit.top_k, RouterFit.params       params: JSON-ready hyperparameters and results
    RouterFit.fold_routers                  FoldRouter: Preprocessing (plain arrays) + gate
    mean_fold_weights(fold_routers, top_k, inputs) -> N x M   what RouterFit.weights applies
    apply_top_k(weights, k) -> N x M        keep the k largest per row, renormalised
    expert_shares(weights) -> M             fraction of images whose largest weight is m
    expected_gflops(weights, expert_gflops, input_expert=None, router_input="features")
    confidence_inputs(prob_chunks) -> N x 3M  per expert: max prob, margin, entropy

Router inputs: `features` (the cheapest expert's stored penultimate features; that expert
always runs) or `confidences` (`confidence_inputs` of every expert's probabilities; every
expert runs, so the cost is dense whatever top-k keeps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from plantkit.choices import ROUTER_INPUTS
from plantkit.errors import PlantkitInputError

STOP_FRACTION = 0.1  # of each fold's training rows, held out for early stopping
MIN_ROWS_PER_FOLD = 10
# Standardising and PCA read a random sample of at most this many training rows: randomized
# PCA costs O(rows x features x components x power iterations), and a few thousand rows pin
# down means, scales and the leading directions of a <= 2k-dimensional covariance. On 31k x
# 2,048 synthetic features, 4,096 rows and 2 power iterations captured 85.7 % of the
# variance of all rows against 85.9 % for 8,192 rows and sklearn's default 7 iterations, at
# a fifth of the time; StandardScaler on all 25k training rows took 1.5 s a fold.
PREPROCESS_MAX_ROWS = 4096
PCA_POWER_ITERATIONS = 2
# Probabilities are floored here before their log: an expert (or mixture) that gives the
# true class probability 0 costs -log(1e-30) = 69 nats, not an infinite loss.
PROB_FLOOR = 1e-30


@dataclass(frozen=True)
class Preprocessing:
    """A fold router's input transform as plain arrays: standardise, then (with a PCA)
    centre, project on the kept components and whiten.

    The numbers are scikit-learn's (StandardScaler, PCA(whiten=True)) fitted on the fold's
    training rows; the transform is applied here from the arrays rather than by the sklearn
    objects so that combine's stored predictions and `plantkit classify` (which reads the
    arrays back from runnable.npz: no pickle) run the very same arithmetic.
    """

    mean: np.ndarray  # F: the scaler's
    scale: np.ndarray  # F: the scaler's (zero variances already replaced by 1)
    pca_mean: np.ndarray | None = None  # F: of the standardised rows
    components: np.ndarray | None = None  # D x F
    whiten: np.ndarray | None = None  # D: sqrt(explained variance), floored at eps

    ARRAYS = ("mean", "scale", "pca_mean", "components", "whiten")

    @classmethod
    def fitted(cls, scaler: StandardScaler, pca: PCA | None) -> Preprocessing:
        if pca is None:
            return cls(scaler.mean_, scaler.scale_)
        # As PCA.transform whitens: its explained variances' square roots, floored at eps.
        whiten = np.sqrt(pca.explained_variance_)
        whiten = np.maximum(whiten, np.finfo(whiten.dtype).eps)
        return cls(scaler.mean_, scaler.scale_, pca.mean_, pca.components_, whiten)

    @property
    def num_inputs(self) -> int:
        return len(self.mean)

    @property
    def output_dims(self) -> int:
        return self.num_inputs if self.components is None else len(self.components)

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """N x F inputs -> N x D float32 (computed in float64)."""
        scaled = (np.asarray(inputs, dtype=np.float64) - self.mean) / self.scale
        if self.components is None or self.pca_mean is None or self.whiten is None:
            return scaled.astype(np.float32)
        return (((scaled - self.pca_mean) @ self.components.T) / self.whiten).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """The non-empty arrays by name (float64, as fitted)."""
        return {name: np.asarray(getattr(self, name), dtype=np.float64)
                for name in self.ARRAYS if getattr(self, name) is not None}

    @classmethod
    def from_arrays(cls, arrays) -> Preprocessing:
        def array(name: str) -> np.ndarray | None:
            return np.asarray(arrays[name], dtype=np.float64) if name in arrays else None

        mean, scale = array("mean"), array("scale")
        if mean is None or scale is None:
            raise PlantkitInputError("router preprocessing: no mean or scale array")
        return cls(mean, scale, array("pca_mean"), array("components"), array("whiten"))


@dataclass(frozen=True)
class FoldRouter:
    """One fold's router: the preprocessing fitted on its training folds and its gate."""

    preprocessing: Preprocessing
    model: object  # keras.Model: gate logits

    def weights(self, inputs: np.ndarray) -> np.ndarray:
        """Dense softmax weights, N x M float32."""
        from plantkit.combine.router_model import gate_weights

        return gate_weights(self.model, self.preprocessing(inputs))


def mean_fold_weights(fold_routers: Sequence[FoldRouter], top_k: int | None,
                      inputs) -> np.ndarray:
    """Weights for new rows: the mean of the fold routers' softmax weights, top-k applied.

    What the stored test predictions use and what `plantkit classify` applies to new images.
    """
    inputs = _float_matrix(inputs, "router inputs")
    expected = fold_routers[0].preprocessing.num_inputs
    if inputs.shape[1] != expected:
        raise PlantkitInputError(
            f"router inputs have {inputs.shape[1]} columns; the router was fitted on "
            f"{expected}: give the same kind of inputs as for val"
        )
    from plantkit.combine.router_model import single_threaded

    with single_threaded():
        dense = np.mean([fold.weights(inputs) for fold in fold_routers], axis=0)
    return apply_top_k(dense, top_k) if top_k else dense.astype(np.float32)


@dataclass(frozen=True)
class RouterFit:
    """The fold routers, their out-of-fold val weights and what was fitted."""

    fold_routers: tuple[FoldRouter, ...]
    crossfit_val_weights: np.ndarray  # N_val x M, top-k applied
    top_k: int | None
    params: dict = field(default_factory=dict)

    @property
    def num_experts(self) -> int:
        return self.crossfit_val_weights.shape[1]

    def weights(self, inputs) -> np.ndarray:
        """Weights for new rows (test): the mean of the fold routers' weights, top-k applied."""
        return mean_fold_weights(self.fold_routers, self.top_k, inputs)


def fit_router(inputs_val, true_probs_val, *, expert_gflops: Sequence[float] | None = None,
               input_expert: int | None = None, router_input: str = "features",
               balance: float = 0.01, top_k: int | None = None, folds: int = 5, seed: int = 0,
               hidden: int = 128, dropout: float = 0.2, weight_decay: float = 0.01,
               learning_rate: float = 6e-3, batch_size: int = 2048, max_epochs: int = 40,
               patience: int = 5, input_dims: int | None = 128,
               labels_val=None) -> RouterFit:
    """Fit the router on val with `folds`-fold cross-fitting; see the module docstring.

    inputs_val: N x F router inputs (features or confidences; float16 is fine).
    true_probs_val: N x M, expert m's probability of image i's true class.
    expert_gflops, input_expert, router_input: for `params["crossfit_val_gflops"]` (see
    expected_gflops; None when a cost is unknown: NaN). input_dims: PCA components kept
    (whitened) after standardising; None or >= F: no PCA. labels_val: not needed (the loss
    reads true-class probabilities), only its length is checked. Runs on one thread and
    seeds Python, NumPy and torch globally (see router_model).

    params (JSON-ready): the options, `input_dims` after PCA, `best_epochs` per fold, the
    cross-fitted val NLL of the mixture (`crossfit_val_nll`, top-k applied; `_dense`: not),
    the plain average's (`average_val_nll`), `router_gflops` (the fold routers' own cost
    per image, PCA included; not in expected_gflops) and `crossfit_val_gflops`.
    """
    inputs = _float_matrix(inputs_val, "router inputs")
    true_probs = _float_matrix(true_probs_val, "true-class probabilities", dtype=np.float64)
    n_rows, num_experts = true_probs.shape
    _check_fit_options(inputs, true_probs, labels_val, expert_gflops, input_expert,
                       router_input, balance, top_k, folds, hidden, dropout, input_dims)
    log_true = np.log(np.maximum(true_probs, PROB_FLOOR)).astype(np.float32)
    train = dict(hidden=hidden, dropout=dropout, weight_decay=weight_decay,
                 learning_rate=learning_rate, balance=balance, batch_size=batch_size,
                 max_epochs=max_epochs, patience=patience)

    from plantkit.combine.router_model import single_threaded

    crossfit = np.zeros((n_rows, num_experts), dtype=np.float32)
    fold_routers, best_epochs = [], []
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    with single_threaded():
        for fold, (train_rows, held_rows) in enumerate(splitter.split(inputs)):
            fold_seed = int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])
            router, best_epoch = _fit_fold(inputs, log_true, train_rows, fold_seed,
                                           input_dims, train)
            crossfit[held_rows] = router.weights(inputs[held_rows])
            fold_routers.append(router)
            best_epochs.append(best_epoch)

    dense_crossfit = crossfit
    if top_k:
        crossfit = apply_top_k(crossfit, top_k)
    reduced_dims = fold_routers[0].preprocessing.output_dims
    params = {
        "router_input": router_input, "folds": folds, "seed": seed, **train,
        "input_dims": int(reduced_dims),
        "best_epochs": best_epochs,
        "test_weights": f"mean of the {folds} fold routers' weights",
        "crossfit_val_nll": _mixture_nll(crossfit, true_probs),
        "crossfit_val_nll_dense": _mixture_nll(dense_crossfit, true_probs),
        "average_val_nll": _mixture_nll(np.full_like(crossfit, 1.0 / num_experts), true_probs),
        "router_gflops": folds * _router_gflops(
            inputs.shape[1], reduced_dims, hidden, num_experts,
            pca=fold_routers[0].preprocessing.components is not None),
        "crossfit_val_gflops": (
            None if expert_gflops is None or np.isnan(np.asarray(expert_gflops, float)).any()
            else expected_gflops(crossfit, expert_gflops, input_expert, router_input)),
    }
    return RouterFit(tuple(fold_routers), crossfit, top_k, params)


def _fit_fold(inputs, log_true, train_rows, seed, input_dims, train) -> tuple[FoldRouter, int]:
    """Preprocessing and gate of one fold, fitted on `train_rows` only."""
    from plantkit.combine.router_model import train_gate

    rng = np.random.default_rng(seed)
    train_rows = rng.permutation(train_rows)
    n_stop = max(1, round(STOP_FRACTION * len(train_rows)))
    stop_rows, fit_rows = train_rows[:n_stop], train_rows[n_stop:]

    sample = inputs[train_rows[:PREPROCESS_MAX_ROWS]]  # train_rows are in a random order
    scaler = StandardScaler().fit(sample)
    pca = None
    if input_dims is not None and input_dims < inputs.shape[1]:
        pca = PCA(n_components=min(input_dims, len(sample)), whiten=True,
                  svd_solver="randomized", iterated_power=PCA_POWER_ITERATIONS,
                  random_state=seed)
        pca.fit(scaler.transform(sample))
    preprocessing = Preprocessing.fitted(scaler, pca)
    model, best_epoch = train_gate(
        preprocessing(inputs[fit_rows]), log_true[fit_rows],
        preprocessing(inputs[stop_rows]), log_true[stop_rows], seed=seed, **train)
    return FoldRouter(preprocessing, model), best_epoch


def _mixture_nll(weights: np.ndarray, true_probs: np.ndarray) -> float:
    mixture = np.einsum("nm,nm->n", weights.astype(np.float64), true_probs)
    return float(-np.mean(np.log(np.maximum(mixture, PROB_FLOOR))))


def _router_gflops(n_inputs: int, reduced: int, hidden: int, num_experts: int,
                   pca: bool) -> float:
    """2 x multiply-adds of one image through one fold router's PCA and MLP, in GFLOPs."""
    projection = n_inputs * reduced if pca else 0
    return 2.0 * (projection + reduced * hidden + hidden * num_experts) / 1e9


# --- weights ------------------------------------------------------------------------------


def apply_top_k(weights, k: int | None) -> np.ndarray:
    """Keep the k largest weights of each row (ties: the lower expert index), renormalised.

    k None keeps all. Rows must be non-negative with a positive sum (softmax weights are).
    """
    weights = _weights_matrix(weights)
    num_experts = weights.shape[1]
    if k is None:
        return weights.copy()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_experts:
        raise PlantkitInputError(
            f"--top-k {k}: give a whole number from 1 to the number of experts ({num_experts})"
        )
    # A stable sort of -w puts equal weights in index order, so ties are reproducible.
    kept = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    top = np.zeros_like(weights)
    np.put_along_axis(top, kept, np.take_along_axis(weights, kept, axis=1), axis=1)
    sums = top.sum(axis=1, keepdims=True)
    if not (sums > 0).all():
        raise PlantkitInputError(f"router weights: a row's {k} largest weights sum to 0")
    return (top / sums).astype(np.float32)


def expert_shares(weights) -> np.ndarray:
    """Fraction of images whose largest weight is expert m (the Switch f_m), length M."""
    weights = _weights_matrix(weights)
    top = weights.argmax(axis=1)
    return np.bincount(top, minlength=weights.shape[1]) / len(top)


def expected_gflops(weights, expert_gflops: Sequence[float], input_expert: int | None = None,
                    router_input: str = "features") -> float:
    """Expected GFLOPs per image of the routed combination (the router itself excluded).

    features: the input expert always runs (counted once, even where it is also kept), plus,
    per image, every other expert with a nonzero weight; the mean over images. confidences:
    every expert runs to compute the inputs, so the sum of all experts' GFLOPs.
    """
    weights = _weights_matrix(weights)
    gflops = _gflops_vector(expert_gflops, weights.shape[1])
    if router_input not in ROUTER_INPUTS:
        raise PlantkitInputError(
            f"router input {router_input!r}: use one of {', '.join(ROUTER_INPUTS)}"
        )
    if np.isnan(gflops).any():
        raise PlantkitInputError(
            "expected GFLOPs: an expert's cost is unknown; give it with --cost NAME=GFLOPS"
        )
    if router_input == "confidences":
        return float(gflops.sum())
    _check_input_expert(input_expert, weights.shape[1])
    runs = weights > 0
    always = 0.0
    if input_expert is not None:
        runs[:, input_expert] = False
        always = gflops[input_expert]
    return float(always + (runs @ gflops).mean())


# --- confidence inputs --------------------------------------------------------------------


def confidence_inputs(prob_chunks: Sequence[np.ndarray]) -> np.ndarray:
    """Router inputs from probabilities: n x 3M float32, per expert (in order) its max
    probability, margin (top-1 minus top-2 probability) and entropy (nats).

    Works block by block: the columns of one expert depend only on its own rows.
    """
    if len(prob_chunks) == 0:
        raise PlantkitInputError("confidence inputs: no expert's probabilities were given")
    columns = []
    for m, probs in enumerate(prob_chunks):
        probs = np.asarray(probs, dtype=np.float32)
        if probs.ndim != 2 or probs.shape[1] < 2 or probs.shape[0] != len(prob_chunks[0]):
            raise PlantkitInputError(
                f"confidence inputs: expert {m}'s probabilities have shape {probs.shape}; "
                "expected rows x classes (>= 2 classes), the same rows for every expert"
            )
        top_two = np.partition(probs, -2, axis=1)[:, -2:]
        entropy = -np.sum(probs * np.log(np.maximum(probs, np.finfo(np.float32).tiny)), axis=1)
        columns += [top_two[:, 1], top_two[:, 1] - top_two[:, 0], entropy]
    return np.stack(columns, axis=1).astype(np.float32)


# --- checks -------------------------------------------------------------------------------


def _float_matrix(values, what: str, dtype=np.float32) -> np.ndarray:
    matrix = np.asarray(values, dtype=dtype)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise PlantkitInputError(f"{what}: expected a non-empty rows x columns matrix, "
                                 f"got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise PlantkitInputError(f"{what}: contains NaN or infinite values")
    return matrix


def _weights_matrix(weights) -> np.ndarray:
    weights = _float_matrix(weights, "router weights")
    if (weights < 0).any():
        raise PlantkitInputError("router weights: negative values; weights are probabilities")
    return weights


def _gflops_vector(expert_gflops, num_experts: int) -> np.ndarray:
    gflops = np.asarray(expert_gflops, dtype=np.float64)
    if gflops.shape != (num_experts,):
        raise PlantkitInputError(
            f"expert GFLOPs: {gflops.size} values for {num_experts} experts"
        )
    if (gflops < 0).any() or np.isinf(gflops).any():
        raise PlantkitInputError("expert GFLOPs: give finite values >= 0 (NaN: unknown)")
    return gflops


def _check_input_expert(input_expert, num_experts: int) -> None:
    if input_expert is not None and not (
            isinstance(input_expert, (int, np.integer)) and 0 <= input_expert < num_experts):
        raise PlantkitInputError(
            f"router input expert {input_expert!r}: give an index from 0 to {num_experts - 1}"
        )


def _check_fit_options(inputs, true_probs, labels_val, expert_gflops, input_expert,
                       router_input, balance, top_k, folds, hidden, dropout,
                       input_dims) -> None:
    _check_fit_data(inputs, true_probs, labels_val)
    num_experts = true_probs.shape[1]
    if router_input not in ROUTER_INPUTS:
        raise PlantkitInputError(
            f"--router-input {router_input!r}: use one of {', '.join(ROUTER_INPUTS)}"
        )
    if expert_gflops is not None:
        _gflops_vector(expert_gflops, num_experts)
    _check_input_expert(input_expert, num_experts)
    if not balance >= 0:
        raise PlantkitInputError(f"--balance {balance}: give a weight >= 0")
    if top_k is not None:
        apply_top_k(np.full((1, num_experts), 1.0 / num_experts), top_k)
    _check_model_options(len(true_probs), folds, hidden, dropout, input_dims)


def _check_fit_data(inputs, true_probs, labels_val) -> None:
    n_rows, num_experts = true_probs.shape
    if num_experts < 2:
        raise PlantkitInputError(
            f"the router needs at least 2 experts; got {num_experts}: pass more experts"
        )
    if inputs.shape[0] != n_rows:
        raise PlantkitInputError(
            f"router inputs have {inputs.shape[0]} rows but the experts' true-class "
            f"probabilities {n_rows}: both must be the val rows in the same order"
        )
    if labels_val is not None and len(labels_val) != n_rows:
        raise PlantkitInputError(
            f"val labels have {len(labels_val)} rows, the true-class probabilities {n_rows}"
        )
    if (true_probs < 0).any() or (true_probs > 1 + 1e-6).any():
        raise PlantkitInputError("true-class probabilities must lie in [0, 1]")


def _check_model_options(n_rows, folds, hidden, dropout, input_dims) -> None:
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise PlantkitInputError(f"router folds {folds!r}: give a whole number >= 2")
    if n_rows < MIN_ROWS_PER_FOLD * folds:
        raise PlantkitInputError(
            f"the router needs at least {MIN_ROWS_PER_FOLD * folds} val rows for {folds} "
            f"folds; got {n_rows}"
        )
    if hidden < 1 or not 0 <= dropout < 1:
        raise PlantkitInputError(
            f"router hidden={hidden}, dropout={dropout}: give hidden >= 1, 0 <= dropout < 1"
        )
    if input_dims is not None and input_dims < 1:
        raise PlantkitInputError(f"router input_dims={input_dims}: give >= 1 or None")
