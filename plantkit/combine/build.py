"""The mixers of one call, made from its plan and what was fitted on val (plantkit.combine.fit):
one per requested method (per expert for tau-normalisation), plus the unsaved base logit
adjustment reads when it is not one."""

from __future__ import annotations

import numpy as np

from plantkit.combine import mixers as mx
from plantkit.combine import route
from plantkit.combine.fit import ADJUST, CallPlan, Fitted, required_fit
from plantkit.combine.inputs import ExpertSet
from plantkit.combine.logit_adjust import TAU_GRID, log_prior
from plantkit.combine.refs import ExpertRef, MethodRef, Ref
from plantkit.combine.tau_norm import METHOD as TAU_NORM


def build_mixers(experts: ExpertSet, plan: CallPlan, fitted: Fitted) -> list[mx.Mixer]:
    """The requested methods' mixers in the plan's order, logit adjustment (and its unsaved
    base, if any) last."""
    mixers = [_method_mixer(method, plan.ref(method), experts, plan, fitted)
              for method in plan.methods if method not in (ADJUST, TAU_NORM)]
    mixers += [_tau_norm_mixer(plan.tau_norm_ref(expert), expert.index, experts, fitted)
               for expert in plan.tau_norm]
    base = plan.adjust_base
    if base is not None:
        if isinstance(base, ExpertRef):
            mixers.append(mx.ExpertOutput(base, base.index))
        elif not base.saved:
            mixers.append(_average(base, experts, plan))
        options = plan.options
        mixers.append(mx.LogitAdjusted(
            plan.ref(ADJUST), base, log_prior(experts.train_counts), options.tau,
            options.target, TAU_GRID, experts.labels, experts.num_classes))
    return mixers


def _method_mixer(method: str, ref: MethodRef, experts: ExpertSet, plan: CallPlan,
                  fitted: Fitted) -> mx.Mixer:
    n_classes, options = experts.num_classes, plan.options
    if method == "average":
        return _average(ref, experts, plan)
    if method == "weighted":
        kind = mx.CALIBRATED if options.weight_by == "fit" else mx.RAW
        return mx.ProbMixture(ref, fitted.weighted_weights, kind, n_classes)
    if method == "greedy":
        weights = required_fit(fitted.greedy, method).weights
        return mx.ProbMixture(ref, weights, mx.CALIBRATED, n_classes)
    if method == "temperature":
        return mx.ProbMixture(ref, _uniform(experts), mx.CALIBRATED, n_classes)
    if method == "cascade":
        cascade = required_fit(fitted.cascade, method)
        return mx.CascadeMixture(ref, plan.order, cascade.fit.thresholds, n_classes)
    if method == "router":
        return route.mixer(ref, required_fit(fitted.route, method), experts)
    raise ValueError(f"unknown method {method!r}")


def _tau_norm_mixer(ref: MethodRef, m: int, experts: ExpertSet,
                    fitted: Fitted) -> mx.TauNormalised:
    fit = fitted.tau_norms[m]
    store = experts.stores[m]
    return mx.TauNormalised(ref, m, fit.weight, fit.tau,
                            lambda split, rows: store.features(split, rows))


def _average(ref: Ref, experts: ExpertSet, plan: CallPlan) -> mx.Mixer:
    if plan.options.space == "logits":
        return mx.LogitMean(ref, experts.size, experts.num_classes)
    return mx.ProbMixture(ref, _uniform(experts), mx.RAW, experts.num_classes)


def _uniform(experts: ExpertSet) -> np.ndarray:
    return np.full(experts.size, 1.0 / experts.size)
