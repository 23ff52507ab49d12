"""The JSON-able results of one call: per combination its experts, fitted parameters, val and
test scores and expected cost (the keys of docs/combine.md); per expert its scores; the store
attributes and combination.json document of every combination."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

import numpy as np

from plantkit import __version__, metrics
from plantkit.combine import apply, route
from plantkit.combine.cascade import NEVER
from plantkit.combine.cost import ensemble_gflops
from plantkit.combine.fit import ADJUST, CallPlan, Fitted, required_fit
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet
from plantkit.combine.mixers import (
    CALIBRATED,
    RAW,
    CascadeMixture,
    LogitAdjusted,
    Mixer,
    RouterMixture,
    TauNormalised,
)
from plantkit.combine.refs import Ref
from plantkit.combine.save import COMBINATION_FORMAT, COMBINATION_VERSION
from plantkit.combine.scoring import CombinationScores
from plantkit.combine.stream import ExpertRecords
from plantkit.combine.tau_norm import METHOD as TAU_NORM
from plantkit.metrics import to_plain


@dataclass(frozen=True)
class Outcome:
    """What the streaming pass left: every mixer (by its output), the saved ones' scores and
    what it saw of each expert."""

    experts: ExpertSet
    plan: CallPlan
    fitted: Fitted
    mixers: Mapping[Ref, Mixer]
    scores: Mapping[Ref, CombinationScores]
    records: ExpertRecords


def method_results(outcome: Outcome) -> list[dict]:
    """One result per saved combination (per expert of --tau-norm), in the plan's order."""
    costs: dict[Ref, tuple[float | None, float | None]] = {}  # (val, test) GFLOPs
    results = []
    for method, ref in outcome.plan.outputs():
        result = _result(outcome, method, outcome.mixers[ref], costs)
        costs[ref] = (result["expected_gflops_val"], result["expected_gflops"])
        results.append(result)
    return results


_M = TypeVar("_M", bound=Mixer)


def _mixer_of(mixer: Mixer, kind: type[_M], method: str) -> _M:
    """`mixer`, which plan_call built as a `kind` for `method`."""
    if not isinstance(mixer, kind):
        raise TypeError(f"method {method}: {mixer.name} is a {type(mixer).__name__}, "
                        f"not a {kind.__name__}")
    return mixer


def _names(experts: ExpertSet, indices) -> list[str]:
    return [experts.names[m] for m in sorted(indices)]


def _result(outcome: Outcome, method: str, mixer: Mixer, costs: Mapping) -> dict:
    experts, plan, fitted = outcome.experts, outcome.plan, outcome.fitted
    val, test = (outcome.scores[mixer.ref].result(s) for s in COMBINE_SPLITS)
    used = _names(experts, mixer.experts)
    gflops = gflops_val = ensemble_gflops(experts.gflops, [n in used for n in experts.names])
    params = dict(fitted.params.get(method, {}))
    if method == "average":
        params["space"] = plan.options.space
    elif method == "cascade":
        cascade = _mixer_of(mixer, CascadeMixture, method)
        params, gflops_val, gflops = _cascade_params(outcome, cascade, test)
        used = [experts.names[m] for m in plan.order]
    elif method == "router":
        router = _mixer_of(mixer, RouterMixture, method)
        params, gflops_val, gflops = route.result(required_fit(fitted.route, "router"), router,
                                                  experts, val, test)
        used = list(experts.names)
    elif method == ADJUST:
        adjusted = _mixer_of(mixer, LogitAdjusted, method)
        base = adjusted.base
        if base is None:  # a logit adjustment is always derived from a base
            raise RuntimeError(f"{adjusted.name} has no base combination")
        used = _names(experts, outcome.mixers[base].experts)
        gflops = gflops_val = ensemble_gflops(experts.gflops, [n in used for n in experts.names])
        if base in costs:  # a saved method of this call: its own cost
            gflops_val, gflops = costs[base]
        params = {"base": base.name, "tau": adjusted.tau,
                  "tau_rule": "auto" if plan.options.tau is None else "given",
                  "target": plan.options.target, "curve": adjusted.curve}
    elif method == TAU_NORM:
        normalised = _mixer_of(mixer, TauNormalised, method)
        fit = fitted.tau_norms[normalised.m]
        params = {"expert": experts.names[normalised.m], "tau": fit.tau, "tau_rule": "auto",
                  "target": plan.options.target, "bias": "dropped", "curve": fit.curve}
    elif method == "temperature":
        params["calibration"] = _calibration_rows(outcome)
    return {"name": mixer.name, "method": method, "experts": used, "params": params,
            "val": val, "test": test, "expected_gflops": gflops,
            "expected_gflops_val": gflops_val}


def _cascade_params(outcome: Outcome, mixer: CascadeMixture, test: dict):
    experts, plan = outcome.experts, outcome.plan
    cascade = required_fit(outcome.fitted.cascade, "cascade")
    fit, costs = cascade.fit, cascade.stage_costs
    stops = {s: mixer.stop_stages(s) for s in COMBINE_SPLITS}
    gflops = {s: float(costs[stops[s]].mean()) for s in COMBINE_SPLITS}
    share = np.bincount(stops["test"], minlength=len(plan.order)) / max(len(stops["test"]), 1)
    params = {
        "order": [experts.names[m] for m in plan.order],
        "thresholds": [None if t == NEVER else float(t) for t in fit.thresholds],
        "stage_gflops": costs.tolist(),
        "within": plan.options.within, "budget": plan.options.budget,
        "full_average_val_top1": fit.full_val_top1, "full_gflops": fit.full_gflops,
        "curve": fit.curve,
        "chosen": {"val_top1": fit.val_top1, "val_gflops": fit.val_gflops,
                   "test_top1": test["top1"], "test_gflops": gflops["test"]},
        "test_stop_share": share.tolist(),
        "temperatures": {n: float(t) for n, t in zip(experts.names,
                                                     outcome.fitted.temperatures)},
    }
    return params, gflops["val"], gflops["test"]


def _calibration_rows(outcome: Outcome) -> list[dict]:
    fitted, records = outcome.fitted, outcome.records
    calibration = required_fit(required_fit(fitted.stats, "temperature").calibration, "temperature")
    rows = []
    for m, name in enumerate(outcome.experts.names):
        row = {"expert": name, "temperature": float(fitted.temperatures[m]),
               **calibration[m]}
        correct = records.ranks("test", m) == 0  # plantkit.metrics' top-1 hits
        for kind, when in ((RAW, "before"), (CALIBRATED, "after")):
            conf = records.confidence("test", m, kind)
            if conf is None and kind == CALIBRATED:
                conf = records.confidence("test", m, RAW)  # T = 1 exactly
            row[f"test_ece_{when}"] = metrics.ece(conf, correct)
        rows.append(row)
    return rows


def expert_rows(outcome: Outcome) -> list[dict]:
    """Per expert its cost and val and test scores (and temperature, when fitted)."""
    experts, stats, ks = outcome.experts, outcome.fitted.stats, outcome.plan.options.ks
    temperatures = outcome.fitted.temperatures
    rows = []
    for m, name in enumerate(experts.names):
        row = {"name": name, "gflops": experts.gflops[m], "params": experts.params[m],
               "temperature": None}
        for split in COMBINE_SPLITS:
            rank = outcome.records.ranks(split, m)
            scores = (metrics.accuracy_scores(rank, experts.labels[split],
                                              experts.num_classes, ks)
                      if rank is not None else {})
            for k in ks:
                for key in (f"top{k}", f"macro_top{k}"):
                    row[f"{split}_{key}"] = scores.get(key)
        if stats is not None:
            if outcome.records.ranks("val", m) is None:
                # Not read by the streaming pass: val's first pass scored it (top-1).
                row["val_top1"], row["val_macro_top1"] = stats.top1[m], stats.macro_top1[m]
            if not np.all(temperatures == 1.0):
                row["temperature"] = float(temperatures[m])
        rows.append(row)
    return rows


def store_attrs(experts: ExpertSet, result: dict) -> dict:
    """The extra attributes of a combination's store."""
    params = [experts.params[experts.names.index(n)] for n in result["experts"]]
    attrs = {"method": result["method"], "experts": result["experts"],
             "architecture": f"{result['method']} of {len(result['experts'])} experts"}
    if result["expected_gflops"] is not None:
        attrs["gflops"] = float(result["expected_gflops"])
    if params and all(p is not None for p in params):
        attrs["params"] = int(sum(params))
    return attrs


def document(experts: ExpertSet, result: dict) -> dict:
    """A combination's combination.json."""
    return to_plain({
        "format": COMBINATION_FORMAT, "version": COMBINATION_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "plantkit_version": __version__,
        "fingerprint": experts.fingerprint,
        "num_classes": experts.num_classes,
        "fitted_on": "val", **{k: v for k, v in result.items() if k != "store"},
    })


def runnable(outcome: Outcome, result: dict) -> apply.RunnableForm:
    """A combination's runnable form (plantkit.combine.apply), or the document saying why
    it has none (an expert without weights: imported logits)."""
    experts, plan = outcome.experts, outcome.plan
    mixer = outcome.mixers[{ref.name: ref for _, ref in plan.outputs()}[result["name"]]]
    try:
        return apply.runnable_form(
            mixer, outcome.mixers, method=result["method"], names=experts.names,
            experts_sha256=[apply.weights_sha256_beside(s.path) for s in experts.stores],
            gflops=experts.gflops, temperatures=outcome.fitted.temperatures,
            order=plan.order, num_classes=experts.num_classes, route=outcome.fitted.route)
    except apply.NotRunnable as exc:
        return apply.not_runnable_form(result["method"], str(exc))
