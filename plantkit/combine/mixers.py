"""Mixers: each builds one combination's output row chunk by row chunk from the experts'
probabilities, which the streaming pass (plantkit.combine.stream) hands them one expert at a
time. Outputs are log-probabilities (rows x C float32), so softmax recovers the mixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy.linalg.blas import saxpy

from plantkit.combine.logit_adjust import TradeoffCurve, adjust, pick_tau
from plantkit.combine.probs import exp_scaled, log_mixture
from plantkit.combine.refs import Ref
from plantkit.combine.tau_norm import tau_norm_log_probs
from plantkit.metrics import log_softmax

RAW, CALIBRATED, SHIFTED = "raw", "calibrated", "shifted"


class ExpertChunk:
    """One expert's logits for a row chunk (shifted so each row's max is 0), the rank of
    each row's true class (plantkit.metrics.true_class_rank of the unshifted logits: 0 is a
    top-1 hit) and the softmaxes asked for: kind -> (unnormalised exps, 1 / row sums). Its
    arrays belong to this chunk of this expert: a mixer uses them inside `add` and copies
    what it keeps."""

    def __init__(self, m: int, rows: slice, shifted: np.ndarray, rank: np.ndarray,
                 softmaxes: dict[str, tuple[np.ndarray, np.ndarray]]):
        self.m, self.rows, self.shifted, self.rank = m, rows, shifted, rank
        self.softmaxes = softmaxes
        self._normalised: set[int] = set()  # ids: two kinds may share one array (T = 1)

    def probs(self, kind: str) -> np.ndarray:
        """The probabilities (rows x C), normalised in place the first time they are asked
        for: one pass shared by every mixer of that kind."""
        exps, inv_total = self.softmaxes[kind]
        if id(exps) not in self._normalised:
            np.multiply(exps, inv_total[:, None], out=exps)
            self._normalised.add(id(exps))
        return exps

    def add_to(self, total: np.ndarray, kind: str, weight: float) -> None:
        """total += weight * probabilities, in place."""
        probs = self.probs(kind)
        if weight == 1.0:
            total += probs
        else:
            _axpy(probs, total, weight)

    def log_probs_raw(self) -> np.ndarray:
        """The expert's own log-softmax (a new array)."""
        return self.shifted + np.log(self.softmaxes[RAW][1])[:, None]


def shifted_chunk(m: int, rows: slice, shifted: np.ndarray, rank: np.ndarray, kinds,
                  temperature: float) -> ExpertChunk:
    """An expert's chunk from its row-shifted logits (plantkit.combine.probs.shift_rows, done
    in place) with the softmaxes of `kinds`: the one way the stream and classify
    (plantkit.combine.apply) turn an expert's logits into what the mixers read."""
    softmaxes = {}
    if RAW in kinds or (CALIBRATED in kinds and temperature == 1.0):
        softmaxes[RAW] = exp_scaled(shifted, 1.0)
    if CALIBRATED in kinds:
        softmaxes[CALIBRATED] = (softmaxes[RAW] if temperature == 1.0
                                 else exp_scaled(shifted, 1.0 / temperature))
    return ExpertChunk(m, rows, shifted, rank, softmaxes)


def _axpy(x: np.ndarray, y: np.ndarray, a: float) -> None:
    """y += a * x in one pass and no temporary (BLAS saxpy on the flat float32 arrays):
    2.7-3.9x faster than NumPy's `y += a * x` at 4096 x 1081 (benchmarks/bench_kernels.py)."""
    if x.dtype == y.dtype == np.float32 and x.flags.c_contiguous and y.flags.c_contiguous:
        saxpy(x.ravel(), y.ravel(), a=float(a))
    else:
        y += np.float32(a) * x


class Mixer:
    """A combination's output, a reducer over row chunks. `ref`: what the output is; `needs`:
    the softmax kinds it reads; `experts`: whom it reads; `base`: for a derived mixer, the
    output it reads instead of the experts.

    The pass calls begin(split, n_rows), then per row chunk add(chunk) for each expert in
    `experts` (cheapest first) and finish(rows); after the split's last chunk, drain(split)
    yields outputs it deferred.
    """

    def __init__(self, ref: Ref, needs: frozenset[str] = frozenset(),
                 experts: Sequence[int] = (), base: Ref | None = None):
        self.ref, self.needs, self.experts, self.base = ref, needs, list(experts), base
        self.split: str | None = None

    @property
    def name(self) -> str:
        return self.ref.name

    def begin(self, split: str, n_rows: int) -> None:
        self.split = split

    def current_split(self) -> str:
        """The split begun last; refused before any begin()."""
        if self.split is None:
            raise RuntimeError(f"mixer {self.name} was fed rows before begin(split)")
        return self.split

    def add(self, chunk: ExpertChunk) -> None:
        raise NotImplementedError

    def finish(self, rows: slice, base_output: np.ndarray | None = None) -> np.ndarray | None:
        raise NotImplementedError

    def drain(self, split: str) -> Iterator[tuple[slice, np.ndarray]]:
        return iter(())


class ProbMixture(Mixer):
    """sum_m w_m p_m with fixed weights: average, weighted, greedy, temperature."""

    def __init__(self, ref: Ref, weights, kind: str, num_classes: int):
        weights = np.asarray(weights, dtype=np.float64)
        super().__init__(ref, frozenset({kind}), [m for m, w in enumerate(weights) if w > 0])
        self.kind, self.num_classes, self.weights = kind, num_classes, weights
        used = self.weights[self.experts]
        # Equal weights: add the probabilities and scale the sum once per chunk.
        self.common = float(used[0]) if np.all(used == used[0]) else None
        self._total: np.ndarray | None = None

    def begin(self, split: str, n_rows: int) -> None:
        self.split, self._total = split, None

    def add(self, chunk: ExpertChunk) -> None:
        weight = 1.0 if self.common is not None else self.weights[chunk.m]
        if self._total is None:
            self._total = chunk.probs(self.kind) * np.float32(weight)
        else:
            chunk.add_to(self._total, self.kind, weight)

    def finish(self, rows, base_output=None):
        total, self._total = self._total, None
        if self.common is not None:
            total *= np.float32(self.common)
        return log_mixture(total)


class LogitMean(Mixer):
    """softmax of the mean logits (`--space logits`)."""

    def __init__(self, ref: Ref, n_experts: int, num_classes: int):
        super().__init__(ref, frozenset({SHIFTED}), range(n_experts))
        self.num_classes = num_classes
        self._total: np.ndarray | None = None

    def begin(self, split, n_rows):
        self.split, self._total = split, None

    def add(self, chunk):
        # Each row's own shift cancels in the softmax of the mean.
        if self._total is None:
            self._total = np.zeros((len(chunk.shifted), self.num_classes), dtype=np.float32)
        self._total += chunk.shifted

    def finish(self, rows, base_output=None):
        total, self._total = self._total, None
        return log_softmax(total / np.float32(len(self.experts)))


class TauNormalised(Mixer):
    """One expert's tau-normalised classifier (plantkit.combine.tau_norm, bias dropped) over
    its stored features: features_for(split, rows) -> rows x D float32. The expert's logits
    are read (its own scores are reported beside) but not used."""

    def __init__(self, ref: Ref, m: int, weight: np.ndarray, tau: float,
                 features_for: Callable[[str, slice], np.ndarray]):
        super().__init__(ref, frozenset(), [m])
        self.m, self.weight, self.tau, self.features_for = m, weight, tau, features_for

    def add(self, chunk):
        pass

    def finish(self, rows, base_output=None):
        return tau_norm_log_probs(self.features_for(self.current_split(), rows), self.weight,
                                  self.tau)


class ExpertOutput(Mixer):
    """One expert's own log-softmax: a base for logit adjustment."""

    def __init__(self, ref: Ref, m: int):
        super().__init__(ref, frozenset({RAW}), [m])
        self.m = m
        self._out: np.ndarray | None = None

    def add(self, chunk):
        self._out = chunk.log_probs_raw()

    def finish(self, rows, base_output=None):
        return self._out


class CascadeMixture(Mixer):
    """Cumulative average of calibrated probabilities in stage order; a row's output is the
    average at the first stage whose top-1 probability reaches that stage's threshold."""

    def __init__(self, ref: Ref, order: Sequence[int], thresholds, num_classes: int):
        super().__init__(ref, frozenset({CALIBRATED}), order)
        self.order, self.num_classes = list(order), num_classes
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.stage_of = {m: s for s, m in enumerate(order)}
        self.stops: dict[str, list[np.ndarray]] = {}
        self._total = self._out = self._stop = None
        self._next = 0

    def begin(self, split, n_rows):
        self.split = split
        self.stops[split] = []
        self._total = self._out = None

    def add(self, chunk):
        stage = self.stage_of[chunk.m]
        n = len(chunk.shifted)
        if self._total is None:
            self._total = np.zeros((n, self.num_classes), dtype=np.float32)
            self._out = np.empty_like(self._total)
            self._stop = np.full(n, -1)
            self._next = 0
        if stage != self._next:
            raise RuntimeError("cascade stages must be added cheapest first")
        self._next += 1
        self._total += chunk.probs(CALIBRATED)
        last = stage == len(self.order) - 1
        newly = (self._stop < 0) & stops_here(self._total, stage, self.thresholds[stage], last)
        self._out[newly] = stage_average(self._total[newly], stage)
        self._stop[newly] = stage

    def finish(self, rows, base_output=None):
        self.stops[self.split].append(self._stop)
        out = self._out
        self._total = self._out = None
        return log_mixture(out)

    def stop_stages(self, split: str) -> np.ndarray:
        return np.concatenate(self.stops[split])


def stops_here(total: np.ndarray, stage: int, threshold: float, last: bool) -> np.ndarray:
    """Which rows the cascade stops at `stage` (0-based), given the sum of the calibrated
    probabilities of its stage + 1 experts: top-1 average >= threshold, or the last stage.
    Row by row, so the stream (every row) and classify (the rows still open) agree."""
    conf = total.max(axis=1) / np.float32(stage + 1)
    return np.asarray(last | (conf >= threshold), dtype=bool)


def stage_average(total: np.ndarray, stage: int) -> np.ndarray:
    """The cascade's output at `stage` from the sum of its stage + 1 experts' probabilities."""
    return total / np.float32(stage + 1)


class RouterMixture(Mixer):
    """sum_m w_m(x) p_m(x) with per-row weights: cross-fitted ones on val, the router's on test.

    weights_for(split, rows, probs_by_expert) -> rows x experts; probs_by_expert holds every
    expert's calibrated probabilities of the chunk when `needs_all_probs` (confidence
    inputs), else is None (the weights are known before the experts are read).
    """

    def __init__(self, ref: Ref, n_experts: int, num_classes: int,
                 weights_for: Callable, needs_all_probs: bool):
        super().__init__(ref, frozenset({CALIBRATED}), range(n_experts))
        self.num_classes = num_classes
        self.weights_for, self.needs_all_probs = weights_for, needs_all_probs
        self.used_weights: dict[str, list[np.ndarray]] = {}
        self._probs: dict[int, np.ndarray] = {}
        self._weights = self._total = None

    def begin(self, split, n_rows):
        self.split = split
        self.used_weights[split] = []
        self._probs = {}
        self._weights = self._total = None

    def add(self, chunk):
        if self.needs_all_probs:  # the weights depend on every expert's probabilities
            self._probs[chunk.m] = chunk.probs(CALIBRATED).copy()
            return
        if self._weights is None:
            self._weights = self._chunk_weights(chunk.rows, None)
            self._total = np.zeros((len(chunk.shifted), self.num_classes), dtype=np.float32)
        _add_weighted_rows(self._total, chunk.probs(CALIBRATED), self._weights[:, chunk.m])

    def finish(self, rows, base_output=None):
        if self.needs_all_probs:
            probs, self._probs = self._probs, {}
            weights = self._chunk_weights(rows, probs)
            total = np.zeros_like(next(iter(probs.values())))
            for m, p in probs.items():
                _add_weighted_rows(total, p, weights[:, m])
        else:
            total, self._total, self._weights = self._total, None, None
        return log_mixture(total)

    def _chunk_weights(self, rows, probs) -> np.ndarray:
        split = self.current_split()
        weights = np.asarray(self.weights_for(split, rows, probs), dtype=np.float32)
        self.used_weights[split].append(weights)
        return weights

    def weights(self, split: str) -> np.ndarray:
        return np.concatenate(self.used_weights[split])


def _add_weighted_rows(total: np.ndarray, probs: np.ndarray, row_weights: np.ndarray) -> None:
    """total += row_weights[:, None] * probs, skipping rows of weight 0 (top-k)."""
    if row_weights.all():
        total += probs * row_weights[:, None]
    elif row_weights.any():
        kept = np.flatnonzero(row_weights)
        total[kept] += probs[kept] * row_weights[kept, None]


class LogitAdjusted(Mixer):
    """Another mixer's output adjusted by -tau * log prior; with tau None ('auto') the val
    output waits until the val curve picked tau (the base's val output is kept meanwhile)."""

    def __init__(self, ref: Ref, base: Ref, prior: np.ndarray, tau: float | None,
                 target: str, taus: Sequence[float], labels: dict[str, np.ndarray],
                 num_classes: int):
        super().__init__(ref, base=base)
        self.prior, self.tau, self.target = prior, tau, target
        self.taus = sorted(set(taus) | ({tau} if tau is not None else set()))
        self.labels, self.num_classes = labels, num_classes
        self.curve: dict | None = None
        self._curve: TradeoffCurve | None = None
        self._kept: np.ndarray | None = None

    def begin(self, split, n_rows):
        self.split = split
        if split == "val":
            self._curve = TradeoffCurve(self.taus, self.prior, self.num_classes)
            self._kept = (np.empty((n_rows, self.num_classes), dtype=np.float32)
                          if self.tau is None else None)

    def finish(self, rows, base_output=None):
        if self.split == "val":
            self._curve.update(base_output, self.labels["val"][rows])
            if self._kept is not None:
                self._kept[rows] = base_output
                return None
        return adjust(base_output, self.prior, self.tau)

    def drain(self, split):
        if split != "val":
            return
        self.curve = self._curve.result()
        if self.tau is None:
            self.tau = pick_tau(self.curve, self.target)
            kept, self._kept = self._kept, None
            for first in range(0, len(kept), 4096):
                rows = slice(first, min(len(kept), first + 4096))
                yield rows, adjust(kept[rows], self.prior, self.tau)
