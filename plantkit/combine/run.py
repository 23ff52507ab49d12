"""`plantkit combine` as a library call: check the experts, fit every requested method on val,
stream val and test once through all of them, save each as a combination store.

A pipeline over frozen values: plan_call -> fit_on_val (plantkit.combine.fit) -> build_mixers
(plantkit.combine.build) -> stream and save -> results (plantkit.combine.results).

Passes over the stores: one over val, expert by expert, when a method needs fitting
(plantkit.combine.val_stats; two for top-1 greedy), then one over val and test, row chunk by
row chunk (plantkit.combine.stream). Test labels are read only by the scorers.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from plantkit.artifacts import STORE_FILE, find_stores
from plantkit.combine import results as report
from plantkit.combine.build import build_mixers
from plantkit.combine.fit import CallPlan, Fitted, Progress, fit_on_val, plan_call
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet, open_experts
from plantkit.combine.mixers import Mixer
from plantkit.combine.options import CombineOptions
from plantkit.combine.refs import Ref, is_saved
from plantkit.combine.save import combination_writers
from plantkit.combine.scoring import CombinationScores
from plantkit.combine.stream import stream_outputs
from plantkit.metrics import to_plain

__all__ = ["Progress", "run_combine"]


@contextlib.contextmanager
def _no_progress(description: str, total: int):
    yield lambda n=1: None


def run_combine(artifacts_root: str | os.PathLike, options: CombineOptions, *,
                progress: Progress | None = None) -> dict:
    """Fit, apply and save every method `options` asks for; returns the JSON-able results:
    {experts: [...], combinations: [...], notes: [...]} (keys in docs/combine.md)."""
    options.validate()
    progress = progress or _no_progress
    with open_experts(artifacts_root, options.experts, options.costs,
                      min_stores=options.min_experts) as experts:
        combinations = [p.parent.name for p in find_stores(artifacts_root, kind="combination")]
        plan = plan_call(experts, options, combinations)
        fitted = fit_on_val(experts, plan, progress)
        mixers = build_mixers(experts, plan, fitted)
        return _stream_and_save(artifacts_root, experts, plan, fitted, mixers, progress)


def _stream_and_save(artifacts_root, experts: ExpertSet, plan: CallPlan, fitted: Fitted,
                     mixers: list[Mixer], progress: Progress) -> dict:
    """Stream val and test through every mixer into the combination stores and score what
    they hold; the stores are switched into place only once every result is set."""
    options = plan.options
    saved = [m.ref for m in mixers if is_saved(m.ref)]
    scores = {ref: CombinationScores(experts.labels, experts.num_classes, options.ks)
              for ref in saved}
    stored_dtype = np.dtype(options.dtype)
    read = {e for m in mixers if m.base is None for e in m.experts}
    total = sum(experts.num_rows(s) for s in COMBINE_SPLITS) * len(read)
    with combination_writers(artifacts_root, [ref.name for ref in saved], experts,
                             dtype=options.dtype) as writers:

        def emit(ref: Ref, split: str, rows: slice, log_probs: np.ndarray) -> None:
            if ref in scores:
                writers.write(ref.name, split, rows, log_probs)
                if stored_dtype != log_probs.dtype:  # score what the store holds
                    log_probs = log_probs.astype(stored_dtype).astype(np.float32)
                scores[ref].update(split, rows, log_probs)

        with progress("combining val and test", total) as advance:
            records = stream_outputs(
                experts, mixers, fitted.temperatures, emit, order=plan.order,
                chunk_rows=options.chunk_rows or experts.chunk_rows(),
                record_conf=options.temperature, advance=advance)
        outcome = report.Outcome(experts, plan, fitted, {m.ref: m for m in mixers}, scores,
                                 records)
        results = report.method_results(outcome)
        for result in results:
            result["store"] = str(writers.root / result["name"] / STORE_FILE)
            writers.set_result(result["name"], report.store_attrs(experts, result),
                               report.document(experts, result),
                               report.runnable(outcome, result))
    return to_plain({"ks": list(options.ks), "experts": report.expert_rows(outcome),
                     "combinations": results, "notes": [*plan.notes, *fitted.notes]})
