"""One pass over the val split, expert by expert: what every combiner is fitted on.

Each expert's val logits are read once (one N x C float32 array at a time, never all
experts'), its temperature fitted, and reduced to a few numbers per row: the temperature-
scaled probability of the true class (all that the NLL of any mixture needs), its top-1,
and, when asked, the cascade's cumulative-average confidences, the router's confidence
inputs and the greedy top-1 candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from plantkit import metrics
from plantkit.combine.inputs import ExpertSet
from plantkit.combine.probs import exp_scaled, shift_rows
from plantkit.combine.temperature import fit_temperature, fitting_rows

SPLIT = "val"
_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class ValNeeds:
    """What the requested methods need from val besides each expert's top-1."""

    temperatures: bool = False  # fit T per expert; the calibrated true-class probabilities
    uncalibrated: bool = False  # NLL and ECE at T = 1 too (the temperature report)
    cascade_order: tuple[int, ...] | None = None  # cumulative-average stages in this order
    greedy_candidates: int | None = None  # K candidate classes per row for top-1 greedy
    confidences: Callable[[np.ndarray], np.ndarray] | None = None  # router inputs per expert
    fit_rows: int = 2048  # rows a temperature is fitted on (evenly spread over val)


@dataclass(frozen=True)
class ValStats:
    """Per-expert val results (arrays indexed like ExpertSet.stores)."""

    top1: np.ndarray
    macro_top1: np.ndarray
    temperatures: np.ndarray
    true_probs: np.ndarray | None = None  # rows x experts, calibrated
    calibration: list[dict] | None = None  # per expert: val NLL / ECE before and after
    stage_conf: np.ndarray | None = None  # rows x stages (cascade order)
    stage_correct: np.ndarray | None = None
    candidate_probs: np.ndarray | None = None  # rows x K x experts
    true_slot: np.ndarray | None = None
    confidences: np.ndarray | None = None  # rows x (features per expert x experts)


class ValBlock:
    """A block of one expert's val rows at its temperature: the unnormalised exps and their
    1 / row sums, the per-row (NLL, p_true, top-1 probability), and the probabilities,
    normalised in place the first time they are asked for (after the row scores)."""

    def __init__(self, m: int, stage: int, rows: slice, shifted: np.ndarray,
                 labels: np.ndarray, beta: float):
        self.m, self.stage, self.rows, self.shifted, self.labels = m, stage, rows, shifted, labels
        self.exps, self.inv_total = exp_scaled(shifted, beta)
        self.nll, self.p_true, self.conf = _row_scores(self.exps, self.inv_total, shifted,
                                                       labels, beta)
        self._probs: np.ndarray | None = None

    def probs(self) -> np.ndarray:
        if self._probs is None:
            self._probs = np.multiply(self.exps, self.inv_total[:, None], out=self.exps)
        return self._probs


class ValReducer:
    """One product of the val pass, fed every expert in turn: expert(m, shifted, rank) with
    its whole val logits (row-shifted) before its blocks, add(block) per ValBlock, end(m,
    rank) after them; result() -> the ValStats fields it fills."""

    blocks = True  # whether it reads ValBlocks

    def expert(self, m: int, shifted: np.ndarray, rank: np.ndarray) -> None:
        pass

    def add(self, block: ValBlock) -> None:
        pass

    def end(self, m: int, rank: np.ndarray) -> None:
        pass

    def result(self) -> dict:
        raise NotImplementedError


class Top1(ValReducer):
    """Each expert's val top-1 and macro top-1 (plantkit.metrics' tie rule)."""

    blocks = False

    def __init__(self, labels: np.ndarray, n_experts: int, num_classes: int):
        self.labels, self.num_classes = labels, num_classes
        self.top1, self.macro_top1 = np.zeros(n_experts), np.zeros(n_experts)

    def expert(self, m, shifted, rank):
        scores = metrics.accuracy_scores(rank, self.labels, self.num_classes)
        self.top1[m], self.macro_top1[m] = scores["top1"], scores["macro_top1"]

    def result(self):
        return {"top1": self.top1, "macro_top1": self.macro_top1}


class Temperatures(ValReducer):
    """Each expert's temperature, fitted on `fit_rows` evenly spread val rows."""

    blocks = False

    def __init__(self, labels: np.ndarray, n_experts: int, fit_rows: int):
        self.labels, self.fit = labels, fitting_rows(len(labels), fit_rows)
        self.temperatures = np.ones(n_experts)

    def expert(self, m, shifted, rank):
        self.temperatures[m] = fit_temperature(shifted[self.fit], self.labels[self.fit])

    def result(self):
        return {"temperatures": self.temperatures}


class TrueProbs(ValReducer):
    """rows x experts: each expert's calibrated probability of the true class."""

    def __init__(self, n_rows: int, n_experts: int):
        self.true_probs = np.zeros((n_rows, n_experts))

    def add(self, block):
        self.true_probs[block.rows, block.m] = block.p_true

    def result(self):
        return {"true_probs": self.true_probs}


class Calibration(ValReducer):
    """Per expert its val NLL and ECE at T = 1 and at its temperature."""

    def __init__(self, n_experts: int):
        self.calibration: list[dict | None] = [None] * n_experts
        self._after: list[tuple] = []
        self._before: list[tuple] = []

    def add(self, block):
        self._after.append((block.nll, block.conf))
        raw_exps, raw_inv = exp_scaled(block.shifted, 1.0)
        self._before.append(_row_scores(raw_exps, raw_inv, block.shifted, block.labels,
                                        1.0)[::2])

    def end(self, m, rank):
        correct = rank == 0
        before, after, self._before, self._after = self._before, self._after, [], []
        self.calibration[m] = {
            "val_nll_before": float(np.concatenate([b[0] for b in before]).mean()),
            "val_nll_after": float(np.concatenate([a[0] for a in after]).mean()),
            "val_ece_before": metrics.ece(np.concatenate([b[1] for b in before]), correct),
            "val_ece_after": metrics.ece(np.concatenate([a[1] for a in after]), correct),
        }

    def result(self):
        return {"calibration": self.calibration}


class Confidences(ValReducer):
    """The router's confidence inputs: per expert `features(probs)`, side by side."""

    def __init__(self, features: Callable[[np.ndarray], np.ndarray], n_experts: int):
        self.features = features
        self.columns: list[np.ndarray | None] = [None] * n_experts
        self._parts: list[np.ndarray] = []

    def add(self, block):
        self._parts.append(np.asarray(self.features(block.probs()), dtype=np.float32))

    def end(self, m, rank):
        self.columns[m], self._parts = np.concatenate(self._parts), []

    def result(self):
        return {"confidences": np.concatenate(self.columns, axis=1)}


class RunningAverage(ValReducer):
    """The cumulative average of the calibrated probabilities in read order, as the cascade
    mixer forms it: per stage its top-1 probability and whether its top-1 is right."""

    def __init__(self, n_rows: int, n_experts: int, num_classes: int):
        self.summed = np.zeros((n_rows, num_classes), dtype=np.float32)
        self.stage_conf = np.zeros((n_rows, n_experts))
        self.stage_correct = np.zeros((n_rows, n_experts), dtype=bool)

    def add(self, block):
        rows, stage = block.rows, block.stage
        self.summed[rows] += block.probs()
        # The stage's output as the cascade mixer forms it; its top-1 hits under
        # plantkit.metrics' tie rule.
        average = self.summed[rows] / np.float32(stage + 1)
        self.stage_conf[rows, stage] = average.max(axis=1)
        self.stage_correct[rows, stage] = metrics.topk_hits(average, block.labels)

    def result(self):
        return {"stage_conf": self.stage_conf, "stage_correct": self.stage_correct}


def _reducers(needs: ValNeeds, labels: np.ndarray, n_experts: int, num_classes: int):
    """The reducers `needs` asks for: (all of them, the running average or None)."""
    n_rows = len(labels)
    reducers: list[ValReducer] = [Top1(labels, n_experts, num_classes)]
    if needs.temperatures:
        reducers.append(Temperatures(labels, n_experts, needs.fit_rows))
    running = None
    if needs.cascade_order is not None or needs.greedy_candidates is not None:
        running = RunningAverage(n_rows, n_experts, num_classes)
    if needs.temperatures or running is not None or needs.confidences is not None:
        reducers.append(TrueProbs(n_rows, n_experts))
    if needs.uncalibrated:
        reducers.append(Calibration(n_experts))
    if needs.confidences is not None:
        reducers.append(Confidences(needs.confidences, n_experts))
    if running is not None:
        reducers.append(running)
    return reducers, running


def collect_val_stats(experts: ExpertSet, needs: ValNeeds,
                      advance: Callable[[int], None] | None = None) -> ValStats:
    """Read every expert's val logits once (twice with greedy top-1 candidates), feeding
    each the reducers of what `needs` asks for."""
    labels = experts.labels[SPLIT]
    n_rows = len(labels)
    reducers, running = _reducers(needs, labels, experts.size, experts.num_classes)
    temperatures = next((r for r in reducers if isinstance(r, Temperatures)), None)
    block_readers = [r for r in reducers if r.blocks]
    order = (needs.cascade_order if needs.cascade_order is not None
             else range(experts.size))
    for stage, m in enumerate(order):
        shifted = experts.stores[m].logits(SPLIT)
        rank = metrics.true_class_rank(shifted, labels)  # unshifted, as the report ranks
        row_max = shift_rows(shifted)
        experts.check_finite(m, SPLIT, row_max, 0)
        for reducer in reducers:
            reducer.expert(m, shifted, rank)
        if block_readers:
            beta = 1.0 if temperatures is None else 1.0 / temperatures.temperatures[m]
            for first in range(0, n_rows, _BLOCK_ROWS):
                rows = slice(first, min(n_rows, first + _BLOCK_ROWS))
                block = ValBlock(m, stage, rows, shifted[rows], labels[rows], beta)
                for reducer in block_readers:
                    reducer.add(block)
            for reducer in block_readers:
                reducer.end(m, rank)
        _advance(advance, n_rows)
        del shifted
    products: dict[str, Any] = {"temperatures": np.ones(experts.size)}  # ValStats' fields
    for reducer in reducers:
        products.update(reducer.result())
    if needs.greedy_candidates is not None:
        candidates, products["true_slot"] = _candidates(running.summed, labels,
                                                        needs.greedy_candidates)
        products["candidate_probs"] = _candidate_probs(experts, products["temperatures"],
                                                       candidates, advance)
    return ValStats(**products)


def _row_scores(exps, inv_total, shifted, labels, beta):
    """(NLL, p_true, top-1 probability) per row; NLL in log-sum-exp form, exact where p_true
    underflows."""
    rows = np.arange(len(labels))
    nll = -np.log(inv_total) - beta * shifted[rows, labels]
    return nll, exps[rows, labels] * inv_total, inv_total  # the max's exp is exactly 1


def _candidates(summed: np.ndarray, labels: np.ndarray, k: int):
    """Per row the k classes of highest average probability, the true class always among
    them (it replaces the k-th when missing); returns (rows x k classes, true slot)."""
    k = min(k, summed.shape[1])
    top = np.argpartition(summed, summed.shape[1] - k, axis=1)[:, -k:]
    has_true = (top == labels[:, None]).any(axis=1)
    order = np.argsort(np.take_along_axis(summed, top, axis=1), axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    top[~has_true, -1] = labels[~has_true]
    return top, (top == labels[:, None]).argmax(axis=1)


def _candidate_probs(experts: ExpertSet, temperatures, candidates, advance):
    """rows x K x experts: each expert's calibrated probabilities of the candidate classes."""
    n_rows, k = candidates.shape
    out = np.zeros((n_rows, k, experts.size), dtype=np.float32)
    for m in range(experts.size):
        shifted = experts.stores[m].logits(SPLIT)
        shift_rows(shifted)  # finite: checked in the first pass
        for first in range(0, n_rows, _BLOCK_ROWS):
            block = slice(first, min(n_rows, first + _BLOCK_ROWS))
            exps, inv_total = exp_scaled(shifted[block], 1.0 / temperatures[m])
            out[block, :, m] = np.take_along_axis(exps, candidates[block], axis=1) * inv_total[
                :, None]
        _advance(advance, n_rows)
    return out


def _advance(advance, n: int) -> None:
    if advance is not None:
        advance(n)
