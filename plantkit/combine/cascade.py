"""Cascade: run experts from cheapest to dearest, stop an image once the calibrated average of
the experts run so far is confident enough; thresholds fitted on val.

Stage s (0-based) averages the temperature-scaled probabilities of the s+1 cheapest experts;
an image stops at the first stage whose top-1 probability reaches that stage's threshold
(the last stage always stops it). The cost of an image is the sum of the GFLOPs of the
experts run until it stops.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from plantkit.errors import PlantkitInputError

NEVER = math.inf  # a threshold no probability reaches: the stage never stops an image
# The sort key of a (top-1, cost) point: (infeasible, then two numbers); smallest is best.
_SortKey = tuple[bool, float, float]


@dataclass(frozen=True)
class CascadeFit:
    """Per-stage thresholds (the last is 0) and what they give on val.

    curve: the val accuracy-vs-cost points of one threshold shared by all stages, cheapest
    first, each {threshold, val_top1, val_gflops}; the chosen per-stage thresholds start
    from the best of them and are refined stage by stage.
    """

    thresholds: np.ndarray
    val_top1: float
    val_gflops: float
    full_val_top1: float
    full_gflops: float
    curve: list[dict]


def stage_costs(gflops_in_order) -> np.ndarray:
    """Cumulative GFLOPs of stopping after each stage."""
    return np.cumsum(np.asarray(gflops_in_order, dtype=np.float64))


def cascade_stops(conf: np.ndarray, thresholds) -> np.ndarray:
    """The stage each row stops at: the first with conf >= threshold, else the last."""
    reached = np.asarray(conf) >= np.asarray(thresholds, dtype=np.float64)[None, :]
    reached[:, -1] = True
    return reached.argmax(axis=1)


def cascade_point(conf, correct, thresholds, cum_costs) -> tuple[float, float]:
    """(top-1, mean GFLOPs per image) of the cascade with these thresholds."""
    stops = cascade_stops(conf, thresholds)
    return (float(np.asarray(correct)[np.arange(len(stops)), stops].mean()),
            float(np.asarray(cum_costs)[stops].mean()))


def fit_cascade(conf, correct, cum_costs, *, within: float | None = None,
                budget: float | None = None, grid: int = 32, max_sweeps: int = 10) -> CascadeFit:
    """Thresholds on val: the least cost whose top-1 is within `within` of the full average's
    (the last stage's), or the best top-1 at a mean cost <= `budget` GFLOPs.

    conf, correct: rows x stages, each stage's top-1 probability and whether its top-1 is
    right. Candidates per stage are `grid` quantiles of its confidences plus NEVER.
    """
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    cum_costs = np.asarray(cum_costs, dtype=np.float64)
    n_stages = conf.shape[1]
    full_top1 = float(correct[:, -1].mean())
    key = _objective(full_top1, cum_costs, within, budget)
    quantiles = np.linspace(0.0, 1.0, grid)
    shared = np.unique(np.concatenate([[0.0], np.quantile(conf[:, :-1], quantiles), [NEVER]]))
    curve: list[dict] = []
    best: np.ndarray | None = None
    best_key: _SortKey | None = None
    for threshold in shared:
        thresholds = np.append(np.full(n_stages - 1, threshold), 0.0)
        point = cascade_point(conf, correct, thresholds, cum_costs)
        curve.append({"threshold": None if threshold == NEVER else float(threshold),
                      "val_top1": point[0], "val_gflops": point[1]})
        if best_key is None or key(point) < best_key:
            best, best_key = thresholds, key(point)
    curve.sort(key=lambda p: (p["val_gflops"], -p["val_top1"]))
    if best is None or best_key is None:  # `shared` always holds 0.0 and NEVER
        raise ValueError("no shared threshold was tried")

    thresholds = best.copy()
    candidates = [np.unique(np.append(np.quantile(conf[:, s], quantiles), NEVER))
                  for s in range(n_stages - 1)]
    for _ in range(max_sweeps):
        changed = False
        for stage in range(n_stages - 1):
            options = _stage_options(conf, correct, cum_costs, thresholds, stage,
                                     candidates[stage])
            choice = min(range(len(options)), key=lambda i: key(options[i][1]))
            if key(options[choice][1]) < best_key:
                thresholds[stage], best_key = options[choice][0], key(options[choice][1])
                changed = True
        if not changed:
            break
    top1, cost = cascade_point(conf, correct, thresholds, cum_costs)
    return CascadeFit(thresholds, top1, cost, full_top1, float(cum_costs[-1]), curve)


def _objective(full_top1: float, cum_costs: np.ndarray, within: float | None,
               budget: float | None) -> Callable[[tuple[float, float]], _SortKey]:
    """The sort key of a (top-1, cost) point: the best point has the smallest key."""
    if (within is None) == (budget is None):
        raise ValueError("give exactly one of within and budget")
    if within is not None:
        if not within >= 0:
            raise PlantkitInputError(f"--within {within}: give a top-1 margin >= 0, e.g. 0.005")
        floor = full_top1 - within

        def least_cost(point: tuple[float, float]) -> _SortKey:
            # feasible first, then least cost, then best top-1
            top1, cost = point
            return (top1 < floor - 1e-12, cost, -top1)
        return least_cost
    if budget is None:  # excluded by the check above; narrows the type
        raise ValueError("give exactly one of within and budget")
    if not budget > 0:
        raise PlantkitInputError(f"--budget {budget}: give GFLOPs per image > 0")
    if cum_costs[0] > budget + 1e-12:
        raise PlantkitInputError(
            f"--budget {budget:g}: the cheapest expert alone costs {cum_costs[0]:g} GFLOPs "
            "per image; give a larger budget"
        )

    def best_top1(point: tuple[float, float]) -> _SortKey:
        # feasible first, then best top-1, then least cost
        top1, cost = point
        return (cost > budget + 1e-12, -top1, cost)
    return best_top1


def _stage_options(conf, correct, cum_costs, thresholds, stage: int, candidates):
    """(candidate, (top-1, cost)) for each candidate threshold of one stage, others fixed.

    Rows stopped before the stage are unaffected; the others stop here or where they would
    stop after it, so each candidate costs one pass over the rows, not over rows x stages.
    """
    n_rows = len(conf)
    rows = np.arange(n_rows)
    stops = cascade_stops(conf, thresholds)
    before = stops < stage
    later = thresholds.copy()
    later[stage] = NEVER
    after = cascade_stops(conf, later)  # where each row goes if this stage never stops it
    fixed_hits = correct[rows, stops][before].sum()
    fixed_cost = cum_costs[stops][before].sum()
    open_rows = ~before
    here_conf = conf[open_rows, stage]
    here_hit, here_cost = correct[open_rows, stage], cum_costs[stage]
    after_hit = correct[rows, after][open_rows]
    after_cost = cum_costs[after][open_rows]
    options = []
    for candidate in candidates:
        stop_here = here_conf >= candidate
        hits = fixed_hits + np.where(stop_here, here_hit, after_hit).sum()
        cost = fixed_cost + np.where(stop_here, here_cost, after_cost).sum()
        options.append((float(candidate), (hits / n_rows, cost / n_rows)))
    return options
