"""The streaming pass: val then test, row chunk by row chunk, every expert read once per chunk
and every mixer fed from it; never more than one chunk of each expert in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from plantkit import metrics
from plantkit.combine.inputs import COMBINE_SPLITS, ExpertSet, row_chunks
from plantkit.combine.mixers import RAW, ExpertChunk, Mixer, shifted_chunk
from plantkit.combine.probs import shift_rows
from plantkit.combine.refs import Ref

Emit = Callable[[Ref, str, slice, np.ndarray], None]


class ExpertRecords:
    """What the pass saw of each expert per split: the rank of the true class per row (the
    hits of plantkit.metrics) and, when asked, the top-1 probability at T = 1 and at its
    temperature (for ECE before and after)."""

    def __init__(self):
        self.rank: dict[tuple[str, int], list[np.ndarray]] = {}
        self.conf: dict[tuple[str, int, str], list[np.ndarray]] = {}

    def add(self, split: str, chunk: ExpertChunk, record_conf: bool) -> None:
        self.rank.setdefault((split, chunk.m), []).append(chunk.rank)
        if record_conf:
            for kind, (_, inv_total) in chunk.softmaxes.items():
                self.conf.setdefault((split, chunk.m, kind), []).append(inv_total)

    def ranks(self, split: str, m: int) -> np.ndarray | None:
        """True-class ranks of an expert's rows (0: a top-1 hit); None if it was not read."""
        parts = self.rank.get((split, m))
        return None if parts is None else np.concatenate(parts)

    def confidence(self, split: str, m: int, kind: str) -> np.ndarray | None:
        parts = self.conf.get((split, m, kind))
        return None if parts is None else np.concatenate(parts)


def stream_outputs(experts: ExpertSet, mixers: Sequence[Mixer], temperatures, emit: Emit, *,
                   order: Sequence[int], chunk_rows: int = 1024, record_conf: bool = False,
                   splits: Sequence[str] = COMBINE_SPLITS,
                   advance: Callable[[int], None] | None = None) -> ExpertRecords:
    """Run every mixer over the splits, handing each output chunk to emit(ref, split, rows,
    log_probs) (ref: the mixer's plantkit.combine.refs reference). Experts are read in
    `order` (cheapest first for the cascade).

    `record_conf` records every read expert's top-1 probability at T = 1 and at its
    temperature (ECE before and after calibration), computing the softmax at T = 1 even
    where no mixer reads it."""
    plan = _Plan(experts, mixers, order, temperatures, chunk_rows, record_conf)
    records = ExpertRecords()
    for split in splits:
        _stream_split(plan, split, emit, records, advance)
    return records


class _Plan:
    """Who reads whom in the pass: the experts read (in order), each one's mixers and the
    softmax kinds they need; the direct mixers (fed by experts) and the derived ones."""

    def __init__(self, experts: ExpertSet, mixers: Sequence[Mixer], order: Sequence[int],
                 temperatures, chunk_rows: int, record_conf: bool):
        self.experts, self.mixers, self.temperatures = experts, list(mixers), temperatures
        self.chunk_rows, self.record_conf = chunk_rows, record_conf
        self.direct = [mixer for mixer in self.mixers if mixer.base is None]
        self.derived = [mixer for mixer in self.mixers if mixer.base is not None]
        self.readers = {m: [x for x in self.direct if m in x.experts] for m in order}
        kinds = {m: set().union(*(x.needs for x in self.readers[m])) for m in order}
        if record_conf:  # ECE before calibration needs the softmax at T = 1 of every expert
            kinds = {m: needs | {RAW} for m, needs in kinds.items()}
        self.kinds = kinds
        self.read = [m for m in order if self.readers[m]]


def _stream_split(plan: _Plan, split: str, emit: Emit, records: ExpertRecords,
                  advance: Callable[[int], None] | None) -> None:
    experts = plan.experts
    n_rows = experts.num_rows(split)
    for mixer in plan.mixers:
        mixer.begin(split, n_rows)
    # One chunk iterator per expert, advanced in step: each dataset is looked up once.
    chunks = {m: experts.stores[m].iter_logits(split, plan.chunk_rows) for m in plan.read}
    for rows in row_chunks(n_rows, plan.chunk_rows):
        for m in plan.read:
            _, logits = next(chunks[m])
            chunk = _expert_chunk(experts, m, split, rows, logits, plan.kinds[m],
                                  plan.temperatures[m])
            records.add(split, chunk, plan.record_conf)
            for mixer in plan.readers[m]:
                mixer.add(chunk)
        _finish_chunk(plan, split, rows, emit)
        if advance is not None:
            advance((rows.stop - rows.start) * len(plan.read))
    for mixer in plan.mixers:
        for rows, output in mixer.drain(split):
            emit(mixer.ref, split, rows, output)


def _finish_chunk(plan: _Plan, split: str, rows: slice, emit: Emit) -> None:
    outputs: dict[Ref, np.ndarray] = {}
    for mixer in plan.direct:
        direct = mixer.finish(rows)
        if direct is None:  # only derived mixers may hold a chunk back
            raise RuntimeError(f"mixer {mixer.name} gave no output for rows {rows}")
        outputs[mixer.ref] = direct
        emit(mixer.ref, split, rows, direct)
    for mixer in plan.derived:
        if mixer.base is None:  # _Plan puts the mixers without a base in `direct`
            raise RuntimeError(f"derived mixer {mixer.name} has no base")
        output = mixer.finish(rows, outputs[mixer.base])
        if output is not None:
            emit(mixer.ref, split, rows, output)


def _expert_chunk(experts: ExpertSet, m: int, split: str, rows: slice, logits: np.ndarray,
                  kinds: set[str], temperature: float) -> ExpertChunk:
    # Ranked before the shift, on the logits the report reads (the shift may round two close
    # logits together).
    rank = metrics.true_class_rank(logits, experts.labels[split][rows])
    row_max = shift_rows(logits)
    experts.check_finite(m, split, row_max, rows.start)
    return shifted_chunk(m, rows, logits, rank, kinds, temperature)
