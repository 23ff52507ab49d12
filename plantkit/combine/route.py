"""The router inside a combine run: its inputs, fitting on val, per-chunk weights, report.

The gating network itself lives in plantkit.combine.router; this module feeds it what the
val pass collected and turns its weights into a mixer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from plantkit.choices import RouterInput
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet
from plantkit.combine.mixers import RouterMixture
from plantkit.combine.refs import Ref
from plantkit.errors import PlantkitInputError

if TYPE_CHECKING:  # the router module imports torch
    from plantkit.combine.router import RouterFit

FEATURES, CONFIDENCES = RouterInput.features.value, RouterInput.confidences.value


@dataclass(frozen=True)
class RouteFit:
    """A fitted router and how it is fed: `input_kind`, and for features the expert whose
    stored features it reads (which then always runs)."""

    input_kind: str
    input_expert: int | None
    fit: RouterFit
    val_weights: np.ndarray  # cross-fitted on val, top-k applied


def choose_input(experts: ExpertSet, order, requested: str | None) -> str:
    """features when the cheapest expert stores them for val and test (or when asked),
    else confidences."""
    cheapest = experts.stores[order[0]]
    has_features = all(cheapest.has_features(s) for s in COMBINE_SPLITS)
    if requested == FEATURES and not has_features:
        raise PlantkitInputError(
            f"--router-input features: the cheapest expert {cheapest.name} stores no features "
            "for val and test; predict it with --features, or use --router-input confidences"
        )
    return requested or (FEATURES if has_features else CONFIDENCES)


def confidence_features(probs: np.ndarray) -> np.ndarray:
    """One expert's router inputs for a block of rows (its confidence, margin, entropy)."""
    from plantkit.combine import router

    return router.confidence_inputs([probs])


def fit(experts: ExpertSet, stats, order, input_kind: str, options) -> RouteFit:
    """Train the router on val (cross-fitted inside val by the router itself)."""
    from plantkit.combine import router

    input_expert: int | None = None
    if input_kind == FEATURES:
        input_expert = order[0]
        inputs = experts.stores[input_expert].features("val")
    else:
        inputs = stats.confidences
    fitted = router.fit_router(
        inputs, stats.true_probs, labels_val=experts.labels["val"],
        expert_gflops=_gflops_or_nan(experts), input_expert=input_expert,
        router_input=input_kind, balance=options.balance, top_k=options.top_k,
        seed=options.seed, **options.router_settings)
    # Both the cross-fitted val weights and RouterFit.weights come with top-k applied.
    return RouteFit(input_kind, input_expert, fitted,
                    np.asarray(fitted.crossfit_val_weights, dtype=np.float32))


def mixer(ref: Ref, fitted: RouteFit, experts: ExpertSet) -> RouterMixture:
    """The production router mixing: sum_m w_m(x) p_m(x) with the cross-fitted weights on
    val and the mean of the fold routers' weights (top-k applied) on test."""

    def weights_for(split: str, rows: slice, probs_by_expert: dict) -> np.ndarray:
        if split == "val":
            return fitted.val_weights[rows]
        if fitted.input_kind == FEATURES:
            if fitted.input_expert is None:  # fit() always sets it for features
                raise RuntimeError("a features router without its input expert")
            inputs = experts.stores[fitted.input_expert].features(split, rows)
        else:
            inputs = np.concatenate([confidence_features(probs_by_expert[m])
                                     for m in range(experts.size)], axis=1)
        return fitted.fit.weights(inputs)

    return RouterMixture(ref, experts.size, experts.num_classes, weights_for,
                         needs_all_probs=fitted.input_kind == CONFIDENCES)


def result(fitted: RouteFit, mixer: RouterMixture, experts: ExpertSet, val: dict, test: dict):
    """(params, val GFLOPs, test GFLOPs) of the router's combination."""
    from plantkit.combine import router

    params = {"input": fitted.input_kind,
              "input_expert": (None if fitted.input_expert is None
                               else experts.names[fitted.input_expert]),
              "router": dict(fitted.fit.params)}
    costs, shares = {}, {}
    known = all(g is not None for g in experts.gflops)
    for split in COMBINE_SPLITS:
        weights = mixer.weights(split)
        costs[split] = (float(router.expected_gflops(
            weights, _gflops_or_nan(experts), fitted.input_expert, fitted.input_kind))
            if known else None)
        shares[split] = dict(zip(experts.names, router.expert_shares(weights).tolist()))
    params.update({
        "crossfit_val_top1": val["top1"], "test_top1": test["top1"],
        "overfitting_gap": val["top1"] - test["top1"],
        "share": shares, "top_k": fitted.fit.top_k,
    })
    return params, costs["val"], costs["test"]


def _gflops_or_nan(experts: ExpertSet) -> list[float]:
    return [np.nan if g is None else g for g in experts.gflops]
