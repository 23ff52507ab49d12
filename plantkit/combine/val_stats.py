"""One pass over the val split, expert by expert: what every combiner is fitted on.

Each expert's val logits are read once (one N x C float32 array at a time, never all
experts'), its temperature fitted, and reduced to a few numbers per row: the temperature-
scaled probability of the true class (all that the NLL of any mixture needs), its top-1,
and, when asked, the cascade's cumulative-average confidences, the router's confidence
inputs and the greedy top-1 candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from plantkit import metrics
from plantkit.combine.inputs import ExpertSet
from plantkit.combine.probs import exp_scaled, shift_rows
from plantkit.combine.temperature import fit_temperature, fitting_rows

SPLIT = "val"
_BLOCK_ROWS = 4096


@dataclass
class ValNeeds:
    """What the requested methods need from val besides each expert's top-1."""

    temperatures: bool = False  # fit T per expert; the calibrated true-class probabilities
    uncalibrated: bool = False  # NLL and ECE at T = 1 too (the temperature report)
    cascade_order: list[int] | None = None  # cumulative-average stages in this expert order
    greedy_candidates: int | None = None  # K candidate classes per row for top-1 greedy
    confidences: Callable[[np.ndarray], np.ndarray] | None = None  # router inputs per expert
    fit_rows: int = 2048  # rows a temperature is fitted on (evenly spread over val)


@dataclass
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
    notes: list[str] = field(default_factory=list)


def collect_val_stats(experts: ExpertSet, needs: ValNeeds,
                      advance: Callable[[int], None] | None = None) -> ValStats:
    """Read every expert's val logits once (twice with greedy top-1 candidates)."""
    labels = experts.labels[SPLIT]
    n_rows, n_experts, n_classes = len(labels), experts.size, experts.num_classes
    accumulate = needs.cascade_order is not None or needs.greedy_candidates is not None
    order = needs.cascade_order if needs.cascade_order is not None else list(range(n_experts))
    stats = ValStats(np.zeros(n_experts), np.zeros(n_experts), np.ones(n_experts))
    if needs.temperatures or accumulate or needs.confidences:
        stats.true_probs = np.zeros((n_rows, n_experts))
    if needs.uncalibrated:
        stats.calibration = [None] * n_experts
    if accumulate:
        summed = np.zeros((n_rows, n_classes), dtype=np.float32)
        stage_conf = np.zeros((n_rows, n_experts))
        stage_correct = np.zeros((n_rows, n_experts), dtype=bool)
    confidences = [None] * n_experts

    for stage, m in enumerate(order):
        shifted = experts.stores[m].logits(SPLIT)
        rank = metrics.true_class_rank(shifted, labels)  # unshifted, as the report ranks
        row_max = shift_rows(shifted)
        experts.check_finite(m, SPLIT, row_max, 0)
        scores = metrics.accuracy_scores(rank, labels, n_classes)
        stats.top1[m], stats.macro_top1[m] = scores["top1"], scores["macro_top1"]
        if needs.temperatures:
            fit = fitting_rows(n_rows, needs.fit_rows)
            stats.temperatures[m] = fit_temperature(shifted[fit], labels[fit])
        if stats.true_probs is None and not needs.uncalibrated:
            _advance(advance, n_rows)
            continue
        beta = 1.0 / stats.temperatures[m]
        after, before, features = [], [], []
        for first in range(0, n_rows, _BLOCK_ROWS):
            block = slice(first, min(n_rows, first + _BLOCK_ROWS))
            y = labels[block]
            exps, inv_total = exp_scaled(shifted[block], beta)
            nll, p_true, conf = _row_scores(exps, inv_total, shifted[block], y, beta)
            after.append((nll, conf))
            if stats.true_probs is not None:
                stats.true_probs[block, m] = p_true
            if needs.uncalibrated:
                raw_exps, raw_inv = exp_scaled(shifted[block], 1.0)
                before.append(_row_scores(raw_exps, raw_inv, shifted[block], y, 1.0)[::2])
            if needs.confidences is None and not accumulate:
                continue
            probs = np.multiply(exps, inv_total[:, None], out=exps)
            if needs.confidences is not None:
                features.append(np.asarray(needs.confidences(probs), dtype=np.float32))
            if accumulate:
                summed[block] += probs
                # The stage's output as the cascade mixer forms it; its top-1 hits under
                # plantkit.metrics' tie rule.
                average = summed[block] / np.float32(stage + 1)
                stage_conf[block, stage] = average.max(axis=1)
                stage_correct[block, stage] = metrics.topk_hits(average, y)
        if needs.uncalibrated:
            correct = rank == 0
            stats.calibration[m] = {
                "val_nll_before": float(np.concatenate([b[0] for b in before]).mean()),
                "val_nll_after": float(np.concatenate([a[0] for a in after]).mean()),
                "val_ece_before": metrics.ece(np.concatenate([b[1] for b in before]), correct),
                "val_ece_after": metrics.ece(np.concatenate([a[1] for a in after]), correct),
            }
        if features:
            confidences[m] = np.concatenate(features)
        _advance(advance, n_rows)
        del shifted

    if accumulate:
        stats.stage_conf, stats.stage_correct = stage_conf, stage_correct
    if needs.confidences is not None:
        stats.confidences = np.concatenate(confidences, axis=1)
    if needs.greedy_candidates is not None:
        candidates, stats.true_slot = _candidates(summed, labels, needs.greedy_candidates)
        del summed
        stats.candidate_probs = _candidate_probs(experts, stats.temperatures, candidates,
                                                 advance)
    return stats


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
