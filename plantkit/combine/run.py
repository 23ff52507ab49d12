"""`plantkit combine` as a library call: check the experts, fit every requested method on val,
stream val and test once through all of them, save each as a combination store.

Passes over the stores: one over val, expert by expert, when a method needs fitting
(plantkit.combine.val_stats; two for top-1 greedy), then one over val and test, row chunk by
row chunk (plantkit.combine.stream). Test labels are read only by the scorers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np

from plantkit import __version__, metrics
from plantkit.artifacts import STORE_FILE
from plantkit.combine import route
from plantkit.combine.cascade import NEVER, fit_cascade, stage_costs
from plantkit.combine.cost import ensemble_gflops, require_costs
from plantkit.combine.greedy import greedy_selection
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet, open_experts
from plantkit.combine.logit_adjust import TAU_GRID, log_prior
from plantkit.combine.mixers import (
    CALIBRATED,
    RAW,
    CascadeMixture,
    ExpertOutput,
    LogitAdjusted,
    LogitMean,
    Mixer,
    ProbMixture,
)
from plantkit.combine.options import CombineOptions
from plantkit.combine.save import COMBINATION_FORMAT, COMBINATION_VERSION, CombinationWriters
from plantkit.combine.scoring import CombinationScores
from plantkit.combine.stream import stream_outputs
from plantkit.combine.temperature import fitting_rows
from plantkit.combine.val_stats import ValNeeds, ValStats, collect_val_stats
from plantkit.combine.weighted import accuracy_weights, fit_simplex_weights
from plantkit.errors import PlantkitInputError
from plantkit.metrics import to_plain

# progress(description, total) -> a context manager yielding advance(n): plantkit.progress
Progress = Callable[[str, int], contextlib.AbstractContextManager]
_INTERNAL_AVERAGE = "_average"  # the average as a logit-adjustment base when not saved


@contextlib.contextmanager
def _no_progress(description: str, total: int):
    yield lambda n=1: None


def run_combine(artifacts_root: str | os.PathLike, options: CombineOptions, *,
                progress: Progress | None = None) -> dict:
    """Fit, apply and save every method `options` asks for; returns the JSON-able results:
    {experts: [...], combinations: [...], notes: [...]} (keys in docs/combine.md)."""
    options.validate()
    progress = progress or _no_progress
    with open_experts(artifacts_root, options.experts, options.costs) as experts:
        return _Run(experts, options, progress).run(artifacts_root)


class _Run:
    """The state of one call: experts, fitted parameters, mixers, results."""

    def __init__(self, experts: ExpertSet, options: CombineOptions, progress: Progress):
        self.experts, self.options, self.progress = experts, options, progress
        self.methods = options.methods()
        self.order = experts.cost_order()
        self.notes: list[str] = []
        self.stats: ValStats | None = None
        self.fitted: dict[str, dict] = {}  # method -> parameters for its result
        self.route: route.RouteFit | None = None
        self.costs: dict[str, tuple[float | None, float | None]] = {}  # name -> (val, test)

    # --- fitting on val -------------------------------------------------------------------

    def run(self, artifacts_root) -> dict:
        options, experts = self.options, self.experts
        if options.cascade:
            require_costs(experts.names, experts.gflops, "--cascade")
        self.adjust_base = self._adjust_base() if options.logit_adjust is not None else None
        self.router_input = (route.choose_input(experts, self.order, options.router_input)
                             if options.router else None)
        if options.router and options.router_input is None:
            cheapest = experts.names[self.order[0]]
            self.notes.append(
                f"router input: stored features of {cheapest}, the cheapest expert"
                if self.router_input == route.FEATURES else
                f"router input: every expert's confidences ({cheapest}, the cheapest expert, "
                "stores no features), so every expert runs")
        needs = self._val_needs()
        if needs is not None:
            passes = 2 if needs.greedy_candidates else 1
            total = experts.num_rows("val") * experts.size * passes
            with self.progress("fitting on val", total) as advance:
                self.stats = collect_val_stats(experts, needs, advance)
        self.temperatures = (self.stats.temperatures if self.stats is not None
                             else np.ones(experts.size))
        self._fit()
        mixers = self._mixers()
        saved = [m for m in mixers if not m.name.startswith("_")]
        scores = {m.name: CombinationScores(experts.labels, experts.num_classes, options.ks)
                  for m in saved}
        stored_dtype = np.dtype(options.dtype)
        read = {e for m in mixers if m.base is None for e in m.experts}
        total = sum(experts.num_rows(s) for s in COMBINE_SPLITS) * len(read)
        with CombinationWriters(artifacts_root, [m.name for m in saved], experts,
                                dtype=options.dtype) as writers:

            def emit(name: str, split: str, rows: slice, log_probs: np.ndarray) -> None:
                if name in scores:
                    writers.write(name, split, rows, log_probs)
                    if stored_dtype != log_probs.dtype:  # score what the store holds
                        log_probs = log_probs.astype(stored_dtype).astype(np.float32)
                    scores[name].update(split, rows, log_probs)

            with self.progress("combining val and test", total) as advance:
                self.records = stream_outputs(
                    experts, mixers, self.temperatures, emit, order=self.order,
                    chunk_rows=options.chunk_rows or experts.chunk_rows(),
                    record_conf=options.temperature, advance=advance)
            by_name = {m.name: m for m in mixers}
            results = []
            for method in self.methods:
                name = options.combination_name(method)
                result = self._result(method, by_name[name], scores[name], by_name)
                result["store"] = str(writers.root / name / STORE_FILE)
                results.append(result)
                writers.set_result(name, self._store_attrs(result), self._document(result))
        return to_plain({"ks": list(options.ks), "experts": self._expert_rows(),
                         "combinations": results, "notes": self.notes})

    def _adjust_base(self) -> str:
        """The mixer name logit adjustment reads: a method of this call, an expert, or the
        plain average (computed without being saved when --average is not given)."""
        base = self.options.adjust_on
        if base in self.methods and base != "logit-adjust":
            return self.options.combination_name(base)
        if base == "average":
            return _INTERNAL_AVERAGE
        if base in self.experts.names:
            return f"_expert:{base}"
        choices = [m for m in self.methods if m != "logit-adjust"] or ["average"]
        raise PlantkitInputError(
            f"--adjust-on {base!r}: name an expert ({', '.join(self.experts.names)}) or a "
            f"method of this call ({', '.join(dict.fromkeys(['average', *choices]))})"
        )

    def _val_needs(self) -> ValNeeds | None:
        options, methods = self.options, set(self.methods)
        calibrated = bool(methods & {"greedy", "temperature", "cascade", "router"}) or (
            options.weighted and options.weight_by == "fit")
        if not calibrated and not options.weighted:
            return None
        return ValNeeds(
            temperatures=calibrated,
            uncalibrated=options.temperature,
            cascade_order=self.order if options.cascade else None,
            greedy_candidates=(options.greedy_candidates
                               if options.greedy and options.greedy_metric == "top1" else None),
            confidences=(route.confidence_features
                         if self.router_input == route.CONFIDENCES else None),
            fit_rows=options.fit_rows,
        )

    def _fit(self) -> None:
        options, stats, names = self.options, self.stats, self.experts.names
        temperatures = {n: float(t) for n, t in zip(names, self.temperatures)}
        n_val = self.experts.num_rows("val")
        fit_rows = int(len(fitting_rows(n_val, options.fit_rows)))
        if fit_rows < n_val and np.any(self.temperatures != 1.0):
            self.notes.append(f"temperatures fitted on {fit_rows:,} of the {n_val:,} val rows, "
                              "evenly spread (everything else uses every val row)")
        if options.weighted:
            if options.weight_by == "fit":
                weights = fit_simplex_weights(stats.true_probs)
                self.fitted["weighted"] = {"rule": "fit", "temperatures": temperatures,
                                           "temperature_fit_rows": fit_rows}
            else:
                weights = accuracy_weights(stats.top1)
                self.fitted["weighted"] = {"rule": "accuracy",
                                           "val_top1": dict(zip(names, stats.top1))}
            self.fitted["weighted"]["weights"] = dict(zip(names, weights))
            self.weighted_weights = weights
        if options.greedy:
            self.selection = greedy_selection(
                stats.true_probs, metric=options.greedy_metric,
                candidate_probs=stats.candidate_probs, true_slot=stats.true_slot)
            path = [{**step, "added": names[step["added"]]} for step in self.selection.path]
            self.fitted["greedy"] = {
                "metric": options.greedy_metric,
                "multiset": {n: int(c) for n, c in zip(names, self.selection.counts) if c},
                "picks": int(self.selection.counts.sum()),
                "best_step": self.selection.best_step, "path": path,
                "temperatures": temperatures,
            }
            if options.greedy_metric == "top1":
                self.fitted["greedy"]["top1_candidates_per_row"] = options.greedy_candidates
        if options.temperature:
            self.fitted["temperature"] = {"temperatures": temperatures,
                                          "temperature_fit_rows": fit_rows}
        if options.cascade:
            costs = stage_costs([self.experts.gflops[m] for m in self.order])
            self.cascade_fit = fit_cascade(stats.stage_conf, stats.stage_correct, costs,
                                           within=options.within, budget=options.budget)
            self.cascade_costs = costs
        if options.router:
            self.route = route.fit(self.experts, stats, self.order, self.router_input, options)

    # --- mixers ---------------------------------------------------------------------------

    def _mixers(self) -> list[Mixer]:
        options, experts = self.options, self.experts
        n_experts, n_classes = experts.size, experts.num_classes
        uniform = np.full(n_experts, 1.0 / n_experts)
        mixers: list[Mixer] = []
        for method in self.methods:
            name = options.combination_name(method)
            if method == "average":
                mixers.append(LogitMean(name, n_experts, n_classes) if options.space == "logits"
                              else ProbMixture(name, uniform, RAW, n_classes))
            elif method == "weighted":
                kind = CALIBRATED if options.weight_by == "fit" else RAW
                mixers.append(ProbMixture(name, self.weighted_weights, kind, n_classes))
            elif method == "greedy":
                mixers.append(ProbMixture(name, self.selection.weights, CALIBRATED, n_classes))
            elif method == "temperature":
                mixers.append(ProbMixture(name, uniform, CALIBRATED, n_classes))
            elif method == "cascade":
                mixers.append(CascadeMixture(name, self.order, self.cascade_fit.thresholds,
                                             n_classes))
            elif method == "router":
                mixers.append(route.mixer(name, self.route, experts))
        if self.adjust_base is not None:
            if self.adjust_base == _INTERNAL_AVERAGE:
                mixers.append(LogitMean(_INTERNAL_AVERAGE, n_experts, n_classes)
                              if options.space == "logits"
                              else ProbMixture(_INTERNAL_AVERAGE, uniform, RAW, n_classes))
            elif self.adjust_base.startswith("_expert:"):
                expert = self.adjust_base.split(":", 1)[1]
                mixers.append(ExpertOutput(self.adjust_base, experts.names.index(expert)))
            mixers.append(LogitAdjusted(
                options.combination_name("logit-adjust"), self.adjust_base,
                log_prior(experts.train_counts), options.tau, options.target, TAU_GRID,
                experts.labels, n_classes))
        return mixers

    # --- results --------------------------------------------------------------------------

    def _result(self, method: str, mixer: Mixer, scores: CombinationScores,
                by_name: dict) -> dict:
        experts = self.experts
        val, test = scores.result("val"), scores.result("test")
        used = [experts.names[m] for m in sorted(mixer.experts)] if mixer.experts else []
        gflops = ensemble_gflops(experts.gflops, [n in used for n in experts.names])
        gflops_val = gflops
        params = dict(self.fitted.get(method, {}))
        if method == "average":
            params["space"] = self.options.space
        elif method == "cascade":
            params, gflops_val, gflops = self._cascade_params(mixer, test)
            used = [experts.names[m] for m in self.order]
        elif method == "router":
            params, gflops_val, gflops = route.result(self.route, mixer, experts, val, test)
            used = list(experts.names)
        elif method == "logit-adjust":
            base = by_name[mixer.base]
            used = [experts.names[m] for m in sorted(base.experts)]
            gflops = gflops_val = ensemble_gflops(
                experts.gflops, [n in used for n in experts.names])
            if mixer.base in self.costs:  # a saved method of this call: its own cost
                gflops_val, gflops = self.costs[mixer.base]
            base_label = {_INTERNAL_AVERAGE: "average"}.get(
                mixer.base, mixer.base.removeprefix("_expert:"))
            params = {"base": base_label, "tau": mixer.tau,
                      "tau_rule": "auto" if self.options.tau is None else "given",
                      "target": self.options.target, "curve": mixer.curve}
        elif method == "temperature":
            params["calibration"] = self._calibration_rows()
        self.costs[mixer.name] = (gflops_val, gflops)
        return {"name": mixer.name, "method": method, "experts": used, "params": params,
                "val": val, "test": test, "expected_gflops": gflops,
                "expected_gflops_val": gflops_val}

    def _cascade_params(self, mixer: CascadeMixture, test: dict):
        fit, costs = self.cascade_fit, self.cascade_costs
        stops = {s: mixer.stop_stages(s) for s in COMBINE_SPLITS}
        gflops = {s: float(costs[stops[s]].mean()) for s in COMBINE_SPLITS}
        n_stages = len(self.order)
        share = np.bincount(stops["test"], minlength=n_stages) / max(len(stops["test"]), 1)
        params = {
            "order": [self.experts.names[m] for m in self.order],
            "thresholds": [None if t == NEVER else float(t) for t in fit.thresholds],
            "stage_gflops": costs.tolist(),
            "within": self.options.within, "budget": self.options.budget,
            "full_average_val_top1": fit.full_val_top1, "full_gflops": fit.full_gflops,
            "curve": fit.curve,
            "chosen": {"val_top1": fit.val_top1, "val_gflops": fit.val_gflops,
                       "test_top1": test["top1"], "test_gflops": gflops["test"]},
            "test_stop_share": share.tolist(),
            "temperatures": {n: float(t) for n, t in zip(self.experts.names,
                                                         self.temperatures)},
        }
        return params, gflops["val"], gflops["test"]

    def _calibration_rows(self) -> list[dict]:
        rows = []
        for m, name in enumerate(self.experts.names):
            row = {"expert": name, "temperature": float(self.temperatures[m]),
                   **self.stats.calibration[m]}
            correct = self.records.ranks("test", m) == 0  # plantkit.metrics' top-1 hits
            for kind, when in ((RAW, "before"), (CALIBRATED, "after")):
                conf = self.records.confidence("test", m, kind)
                if conf is None and kind == CALIBRATED:
                    conf = self.records.confidence("test", m, RAW)  # T = 1 exactly
                row[f"test_ece_{when}"] = metrics.ece(conf, correct)
            rows.append(row)
        return rows

    def _expert_rows(self) -> list[dict]:
        experts, stats, ks = self.experts, self.stats, self.options.ks
        rows = []
        for m, name in enumerate(experts.names):
            row = {"name": name, "gflops": experts.gflops[m], "params": experts.params[m],
                   "temperature": None}
            for split in COMBINE_SPLITS:
                rank = self.records.ranks(split, m)
                scores = (metrics.accuracy_scores(rank, experts.labels[split],
                                                  experts.num_classes, ks)
                          if rank is not None else {})
                for k in ks:
                    for key in (f"top{k}", f"macro_top{k}"):
                        row[f"{split}_{key}"] = scores.get(key)
            if stats is not None:
                if self.records.ranks("val", m) is None:
                    # Not read by the streaming pass: val's first pass scored it (top-1).
                    row["val_top1"], row["val_macro_top1"] = stats.top1[m], stats.macro_top1[m]
                if not np.all(self.temperatures == 1.0):
                    row["temperature"] = float(self.temperatures[m])
            rows.append(row)
        return rows

    def _store_attrs(self, result: dict) -> dict:
        params = [self.experts.params[self.experts.names.index(n)] for n in result["experts"]]
        attrs = {"method": result["method"], "experts": result["experts"],
                 "architecture": f"{result['method']} of {len(result['experts'])} experts"}
        if result["expected_gflops"] is not None:
            attrs["gflops"] = float(result["expected_gflops"])
        if params and all(p is not None for p in params):
            attrs["params"] = int(sum(params))
        return attrs

    def _document(self, result: dict) -> dict:
        return to_plain({
            "format": COMBINATION_FORMAT, "version": COMBINATION_VERSION,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "plantkit_version": __version__,
            "fingerprint": self.experts.fingerprint,
            "num_classes": self.experts.num_classes,
            "fitted_on": "val", **{k: v for k, v in result.items() if k != "store"},
        })
