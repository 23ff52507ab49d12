"""Router fitting time at Pl@ntNet-300K scale: 26 experts, 31,118 val rows, 2,048 features.

A synthetic case where the input features reveal which experts are right: images fall in
`--clusters` latent groups, the float16 features are a random projection of the group's
centre plus noise, and each expert's true-class probability depends on the group. Prints:
- the floor: one pass that standardises the val features (what any learned router pays),
- fit_router (5-fold cross-fitting: standardise, PCA, train, predict the held-out fold) and
  its ratio to the floor, with the epochs each fold trained and the cross-fitted val NLL
  against the plain average's and the per-image oracle's (the best expert of every image),
- the test NLL of the router (the fold routers' mean weights) on as many new rows of the
  same synthetic world, and the time of RouterFit.weights on them (ratio to the floor).

    .venv/bin/python benchmarks/bench_router.py [--rows 31118] [--features 2048]
        [--experts 26] [--clusters 64] [--folds 5] [--hidden 128] [--batch-size 2048]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.preprocessing import StandardScaler

from plantkit.combine.router import expert_shares, fit_router


def synthetic_case(rows: int, n_features: int, n_experts: int, n_clusters: int,
                   world_seed: int = 0, rows_seed: int = 1):
    """(float16 features, N x M true-class probabilities): each cluster has its own experts'
    accuracies, so routing by cluster beats any fixed weighting. The same `world_seed` gives
    the same clusters and experts (val and test of one world); `rows_seed` draws the rows."""
    world = np.random.default_rng(world_seed)
    centres = world.standard_normal((n_clusters, 64))
    projection = world.standard_normal((64, n_features)) / 8.0
    skill = world.uniform(-2.0, 2.0, size=(n_clusters, n_experts))
    rng = np.random.default_rng(rows_seed)
    cluster = rng.integers(n_clusters, size=rows)
    latent = centres[cluster] + 0.7 * rng.standard_normal((rows, 64))
    features = latent @ projection + 0.5 * rng.standard_normal((rows, n_features))
    logit_true = skill[cluster] + rng.standard_normal((rows, n_experts))
    true_probs = 1.0 / (1.0 + np.exp(-logit_true))
    return features.astype(np.float16), true_probs


def mixture_nll(weights: np.ndarray, true_probs: np.ndarray) -> float:
    return float(-np.mean(np.log(np.einsum("nm,nm->n", weights, true_probs))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=31118)
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--experts", type=int, default=26)
    parser.add_argument("--clusters", type=int, default=64)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=6e-3)
    args = parser.parse_args()

    features, true_probs = synthetic_case(args.rows, args.features, args.experts,
                                          args.clusters, rows_seed=1)
    test_features, test_true_probs = synthetic_case(args.rows, args.features, args.experts,
                                                    args.clusters, rows_seed=2)

    start = time.perf_counter()
    StandardScaler().fit_transform(features.astype(np.float32))
    floor = time.perf_counter() - start
    print(f"rows {args.rows:,}, features {args.features:,}, experts {args.experts}")
    print(f"floor (standardise the val features once): {floor:.2f} s")

    start, start_cpu = time.perf_counter(), time.process_time()
    fit = fit_router(features, true_probs, folds=args.folds, hidden=args.hidden,
                     batch_size=args.batch_size, learning_rate=args.learning_rate, seed=0)
    fit_s, fit_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(f"fit_router, {args.folds} folds: {fit_s:.1f} s = {fit_s / floor:.0f}x floor "
          f"({fit_cpu:.1f} s CPU, all threads); best epochs {fit.params['best_epochs']}, "
          f"input dims {fit.params['input_dims']}")

    average = np.full_like(true_probs, 1.0 / args.experts)
    oracle = np.eye(args.experts)[true_probs.argmax(axis=1)]
    print(f"val NLL: cross-fitted router {fit.params['crossfit_val_nll']:.4f}, "
          f"average {mixture_nll(average, true_probs):.4f}, "
          f"oracle {mixture_nll(oracle, true_probs):.4f}")
    print(f"largest expert share (cross-fitted val): "
          f"{expert_shares(fit.crossfit_val_weights).max():.3f}")

    start = time.perf_counter()
    test_weights = fit.weights(test_features)
    weights_s = time.perf_counter() - start
    print(f"test NLL: router {mixture_nll(test_weights, test_true_probs):.4f} (fold routers' "
          f"mean), average {mixture_nll(average, test_true_probs):.4f}")
    print(f"RouterFit.weights on {args.rows:,} test rows: {weights_s:.2f} s = "
          f"{weights_s / floor:.1f}x floor")


if __name__ == "__main__":
    main()
