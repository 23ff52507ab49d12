"""What `plantkit combine` fits on val, as frozen values: the plan of the call (methods, expert
order, router input, logit-adjustment base, experts to tau-normalise) and, from one val pass,
every method's fit (tau-normalisation reads its expert's val features instead).

plan_call(experts, options) -> CallPlan; fit_on_val(experts, plan, progress) -> Fitted. The
mixers (plantkit.combine.build) are made from these two, nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from plantkit.combine import route
from plantkit.combine.cascade import CascadeFit, fit_cascade, stage_costs
from plantkit.combine.cost import require_costs
from plantkit.combine.greedy import GreedySelection, greedy_selection
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet, row_chunks
from plantkit.combine.options import METHODS, CombineOptions
from plantkit.combine.refs import ExpertRef, MethodRef, Ref
from plantkit.combine.tau_norm import METHOD as TAU_NORM
from plantkit.combine.tau_norm import TauNormFit, fit_tau_norm
from plantkit.combine.temperature import fitting_rows
from plantkit.combine.val_stats import ValNeeds, ValStats, collect_val_stats
from plantkit.combine.weighted import accuracy_weights, fit_simplex_weights
from plantkit.errors import PlantkitInputError

# progress(description, total) -> a context manager yielding advance(n): plantkit.progress
Progress = Callable[[str, int], contextlib.AbstractContextManager]
ADJUST = "logit-adjust"
_FEATURE_ROWS = 4096  # val rows of features per read when fitting tau-normalisation


@dataclass(frozen=True)
class CallPlan:
    """What one call asks for, resolved against its experts before anything is read."""

    options: CombineOptions
    methods: tuple[str, ...]
    order: tuple[int, ...]  # experts cheapest first (the cascade's stages)
    router_input: str | None  # route.FEATURES | route.CONFIDENCES; None without --router
    adjust_base: Ref | None  # what logit adjustment reads; None without --logit-adjust
    notes: tuple[str, ...]
    tau_norm: tuple[ExpertRef, ...] = ()  # the experts --tau-norm names, in its order

    def ref(self, method: str) -> MethodRef:
        """The saved result of a method of this call (tau-norm: `tau_norm_ref`)."""
        return MethodRef(method, self.options.combination_name(method))

    def tau_norm_ref(self, expert: ExpertRef) -> MethodRef:
        return MethodRef(TAU_NORM, self.options.tau_norm_name(expert.name))

    def outputs(self) -> list[tuple[str, MethodRef]]:
        """(method, saved result) of every combination of the call, in the listing order."""
        outputs: list[tuple[str, MethodRef]] = []
        for method in self.methods:
            if method == TAU_NORM:
                outputs.extend((method, self.tau_norm_ref(e)) for e in self.tau_norm)
            else:
                outputs.append((method, self.ref(method)))
        return outputs


@dataclass(frozen=True)
class CascadePlan:
    fit: CascadeFit
    stage_costs: np.ndarray  # cumulative GFLOPs of stopping after each stage


@dataclass(frozen=True)
class Fitted:
    """Everything fitted on val. `params`: per method, its fitted parameters as reported."""

    temperatures: np.ndarray  # per expert; all 1 when nothing is calibrated
    stats: ValStats | None  # None when no method needed a val pass
    params: Mapping[str, dict]
    weighted_weights: np.ndarray | None = None
    greedy: GreedySelection | None = None
    cascade: CascadePlan | None = None
    route: route.RouteFit | None = None
    notes: tuple[str, ...] = ()
    tau_norms: Mapping[int, TauNormFit] = field(default_factory=dict)  # by expert index


def plan_call(experts: ExpertSet, options: CombineOptions,
              combinations: Collection[str] = ()) -> CallPlan:
    """The call's plan; `combinations`: the names of the saved combinations (a `--tau-norm`
    naming one is refused as not an expert)."""
    methods = tuple(options.methods())
    order = tuple(experts.cost_order())
    if options.cascade:
        require_costs(experts.names, experts.gflops, "--cascade")
    adjust_base = (_adjust_base(experts, options, methods)
                   if options.logit_adjust is not None else None)
    router_input = (route.choose_input(experts, order, options.router_input)
                    if options.router else None)
    notes = []
    if options.router and options.router_input is None:
        cheapest = experts.names[order[0]]
        notes.append(
            f"router input: stored features of {cheapest}, the cheapest expert"
            if router_input == route.FEATURES else
            f"router input: every expert's confidences ({cheapest}, the cheapest expert, "
            "stores no features), so every expert runs")
    tau_norm = tuple(_tau_norm_expert(experts, options, name, combinations)
                     for name in options.tau_norm)
    return CallPlan(options, methods, order, router_input, adjust_base, tuple(notes), tau_norm)


def _tau_norm_expert(experts: ExpertSet, options: CombineOptions, name: str,
                     combinations: Collection[str]) -> ExpertRef:
    """The expert `--tau-norm name` names, refused unless its store keeps val and test
    features and the classifier over them (read: a few MB)."""
    from plantkit.combine.apply import weights_sha256_beside

    listed = ", ".join(experts.names)
    if name not in experts.names:
        if name in combinations or name in METHODS or name in options.output_names():
            raise PlantkitInputError(
                f"--tau-norm {name}: {name} is a combination, not an expert; "
                f"tau-normalisation rescales one expert's classifier: name an expert ({listed})")
        among = "--experts" if options.experts is not None else "the experts found"
        raise PlantkitInputError(
            f"--tau-norm {name}: no expert {name} among {among} ({listed}): name one of "
            "them" + (", or add it to --experts" if options.experts is not None else ""))
    m = experts.names.index(name)
    store = experts.stores[m]
    again = f"predict again with `plantkit predict --expert {name} --features`"
    if weights_sha256_beside(store.path) is None:  # no expert.json: imported logits
        again = ("its logits were imported, without the features and classifier that "
                 f"`plantkit predict --expert {name} --features` stores for an expert with "
                 "weights")
    for split in COMBINE_SPLITS:
        if not store.has_features(split):
            raise PlantkitInputError(
                f"--tau-norm {name}: {store.path} holds no features for split {split!r}: "
                f"{again}")
    classifier = store.classifier()
    if classifier is None:
        raise PlantkitInputError(
            f"--tau-norm {name}: {store.path} holds no classifier (stored with the features "
            "when the expert's last layer is a linear layer over them): " + again)
    for split in COMBINE_SPLITS:
        if store.feature_dim(split) != classifier.feature_dim:
            raise PlantkitInputError(
                f"--tau-norm {name}: {store.path} holds {store.feature_dim(split)} features per "
                f"row in split {split!r} but a classifier over {classifier.feature_dim}: "
                + again)
    return ExpertRef(m, name)


def _adjust_base(experts: ExpertSet, options: CombineOptions, methods) -> Ref:
    """What logit adjustment reads: a method of this call, an expert, or the plain average
    (computed without being saved when --average is not given)."""
    base = options.adjust_on
    if base in methods and base not in (ADJUST, TAU_NORM):
        return MethodRef(base, options.combination_name(base))
    if base == "average":
        return MethodRef("average", "average", saved=False)
    if base in experts.names:
        return ExpertRef(experts.names.index(base), base)
    choices = [m for m in methods if m not in (ADJUST, TAU_NORM)] or ["average"]
    raise PlantkitInputError(
        f"--adjust-on {base!r}: name an expert ({', '.join(experts.names)}) or a "
        f"method of this call ({', '.join(dict.fromkeys(['average', *choices]))})"
    )


def val_needs(plan: CallPlan) -> ValNeeds | None:
    """What the val pass must collect for the plan's methods; None: no val pass."""
    options, methods = plan.options, set(plan.methods)
    calibrated = bool(methods & {"greedy", "temperature", "cascade", "router"}) or (
        options.weighted and options.weight_by == "fit")
    if not calibrated and not options.weighted:
        return None
    return ValNeeds(
        temperatures=calibrated,
        uncalibrated=options.temperature,
        cascade_order=plan.order if options.cascade else None,
        greedy_candidates=(options.greedy_candidates
                           if options.greedy and options.greedy_metric == "top1" else None),
        confidences=(route.confidence_features
                     if plan.router_input == route.CONFIDENCES else None),
        fit_rows=options.fit_rows,
    )


def fit_on_val(experts: ExpertSet, plan: CallPlan, progress: Progress) -> Fitted:
    """One val pass (when a method needs it), then every method's fit."""
    options, names = plan.options, experts.names
    needs, stats = val_needs(plan), None
    if needs is not None:
        passes = 2 if needs.greedy_candidates else 1
        with progress("fitting on val", experts.num_rows("val") * experts.size * passes) as step:
            stats = collect_val_stats(experts, needs, step)
    temperatures = stats.temperatures if stats is not None else np.ones(experts.size)
    by_name = {n: float(t) for n, t in zip(names, temperatures)}
    n_val = experts.num_rows("val")
    fit_rows = int(len(fitting_rows(n_val, options.fit_rows)))
    notes: tuple[str, ...] = ()
    if fit_rows < n_val and np.any(temperatures != 1.0):
        notes = (f"temperatures fitted on {fit_rows:,} of the {n_val:,} val rows, evenly "
                 "spread (everything else uses every val row)",)
    params: dict[str, dict] = {}
    weights = greedy = cascade = routed = None
    if options.weighted:
        weights, params["weighted"] = _fit_weighted(options, stats, names, by_name, fit_rows)
    if options.greedy:
        greedy, params["greedy"] = _fit_greedy(options, stats, names, by_name)
    if options.temperature:
        params["temperature"] = {"temperatures": by_name, "temperature_fit_rows": fit_rows}
    if options.cascade:
        stats = required_fit(stats, "cascade")
        costs = stage_costs([experts.gflops[m] for m in plan.order])
        cascade = CascadePlan(fit_cascade(stats.stage_conf, stats.stage_correct, costs,
                                          within=options.within, budget=options.budget), costs)
    if options.router:
        if plan.router_input is None:  # plan_call chooses one whenever --router is on
            raise RuntimeError("the router was planned without its input kind")
        routed = route.fit(experts, stats, plan.order, plan.router_input, options)
    tau_norms = {ref.index: _fit_tau_norm(experts, ref, options.target, progress)
                 for ref in plan.tau_norm}
    return Fitted(temperatures, stats, params, weights, greedy, cascade, routed, notes,
                  tau_norms)


def _fit_tau_norm(experts: ExpertSet, ref: ExpertRef, target: str,
                  progress: Progress) -> TauNormFit:
    """Tau-normalisation of one expert: its val features chunk by chunk through the curve."""
    store, labels = experts.stores[ref.index], experts.labels["val"]
    classifier = required_fit(store.classifier(), TAU_NORM)  # plan_call checked it is there
    with progress(f"fitting tau-norm of {ref.name} on val", len(labels)) as advance:

        def chunks():
            for rows in row_chunks(len(labels), _FEATURE_ROWS):
                yield store.features("val", rows), labels[rows]
                advance(rows.stop - rows.start)

        return fit_tau_norm(chunks(), classifier.weight, experts.num_classes, target)


_T = TypeVar("_T")


def required_fit(value: _T | None, method: str) -> _T:
    """What fit_on_val fits for `method` whenever it is on (refused if it is missing)."""
    if value is None:
        raise RuntimeError(f"method {method}: nothing was fitted on val for it")
    return value


def _fit_weighted(options, stats, names, temperatures, fit_rows):
    if options.weight_by == "fit":
        weights = fit_simplex_weights(stats.true_probs)
        params = {"rule": "fit", "temperatures": temperatures, "temperature_fit_rows": fit_rows}
    else:
        weights = accuracy_weights(stats.top1)
        params = {"rule": "accuracy", "val_top1": dict(zip(names, stats.top1))}
    params["weights"] = dict(zip(names, weights))
    return weights, params


def _fit_greedy(options, stats, names, temperatures):
    selection = greedy_selection(stats.true_probs, metric=options.greedy_metric,
                                 candidate_probs=stats.candidate_probs,
                                 true_slot=stats.true_slot)
    params = {
        "metric": options.greedy_metric,
        "multiset": {n: int(c) for n, c in zip(names, selection.counts) if c},
        "picks": int(selection.counts.sum()),
        "best_step": selection.best_step,
        "path": [{**step, "added": names[step["added"]]} for step in selection.path],
        "temperatures": temperatures,
    }
    if options.greedy_metric == "top1":
        params["top1_candidates_per_row"] = options.greedy_candidates
    return selection, params
