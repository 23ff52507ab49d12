"""A combination as a runnable model: what `plantkit combine` saves beside each combination
(runnable.json + runnable.npz: JSON and plain arrays, no pickle) and how a batch of images'
expert logits becomes the combination's log-probabilities (what `plantkit classify` runs).

The math is the stream's: a dense combination is rebuilt as the very mixer
(plantkit.combine.mixers) that wrote the stored predictions and fed the same chunks
(mixers.shifted_chunk); the cascade uses the mixer's stage rule (mixers.stops_here,
mixers.stage_average) on the rows still open, so later experts run only on those; logit
adjustment is plantkit.combine.logit_adjust.adjust of its base.

A node of runnable.json's `output` tree:
  {"mix": "probs", "kind": "raw"|"calibrated", "weights": [w per expert]}  average, weighted,
                                                   greedy, temperature (weight 0: not run)
  {"mix": "logit-mean", "experts": [m ...]}        --space logits
  {"mix": "expert", "expert": m}                   an expert's own softmax
  {"mix": "cascade", "order": [m ...], "thresholds": [t | null (never stops)]}
  {"mix": "logit-adjust", "tau": t, "prior": "log_prior" (an array of runnable.npz),
   "base": node}
m indexes the document's `experts`; temperatures are per expert (1: uncalibrated).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plantkit.artifacts import (
    EXPERT_FILE,
    RUNNABLE_ARRAYS_FILE,
    RUNNABLE_FILE,
    write_bytes,
    write_text,
)
from plantkit.combine.logit_adjust import adjust
from plantkit.combine.mixers import (
    CALIBRATED,
    CascadeMixture,
    ExpertOutput,
    LogitAdjusted,
    LogitMean,
    Mixer,
    ProbMixture,
    RouterMixture,
    shifted_chunk,
    stage_average,
    stops_here,
)
from plantkit.combine.probs import log_mixture, shift_rows
from plantkit.combine.refs import ExpertRef, Ref
from plantkit.errors import PlantkitInputError

RUNNABLE_FORMAT = "plantkit-runnable-combination"
RUNNABLE_VERSION = 1
ROUTER_REFUSAL = "router combinations cannot be applied to new images yet (issue 12)"

# logits_of(m, rows) -> float32 len(rows) x C logits of expert m on those rows of the batch
# (a fresh array: it is shifted in place).
LogitsOf = Callable[[int, np.ndarray], np.ndarray]


class NotRunnable(Exception):
    """A combination that cannot be saved as a runnable model (the reason is the message)."""


# ---------------------------------------------------------------------------- saving


def runnable_form(mixer: Mixer, mixers: Mapping[Ref, Mixer], *, method: str,
                  names: Sequence[str], experts_sha256: Sequence[str | None],
                  gflops: Sequence[float | None], temperatures, order: Sequence[int],
                  num_classes: int) -> tuple[dict, dict[str, np.ndarray]]:
    """(runnable.json document, runnable.npz arrays) of the combination `mixer` writes;
    NotRunnable for a router, or when an expert it runs has no weights (imported logits)."""
    arrays: dict[str, np.ndarray] = {}
    output = _node(mixer, mixers, arrays)
    runs = sorted(_runs(output))
    for m in runs:
        if experts_sha256[m] is None:
            raise NotRunnable(f"expert {names[m]} has no weights (its logits were imported)")
    document = {
        "format": RUNNABLE_FORMAT, "version": RUNNABLE_VERSION, "method": method,
        "num_classes": int(num_classes),
        "experts": [{"name": n, "weights_sha256": s, "gflops": g}
                    for n, s, g in zip(names, experts_sha256, gflops)],
        "runs": runs,
        "temperatures": [float(t) for t in temperatures],
        "order": [int(m) for m in order],  # the stream's read order: the same sums
        "output": output,
    }
    return document, arrays


def _node(mixer: Mixer, mixers: Mapping[Ref, Mixer], arrays: dict[str, np.ndarray]) -> dict:
    if isinstance(mixer, RouterMixture):
        raise NotRunnable(ROUTER_REFUSAL)
    if isinstance(mixer, ProbMixture):
        return {"mix": "probs", "kind": mixer.kind,
                "weights": [float(w) for w in mixer.weights]}
    if isinstance(mixer, LogitMean):
        return {"mix": "logit-mean", "experts": [int(m) for m in mixer.experts]}
    if isinstance(mixer, ExpertOutput):
        return {"mix": "expert", "expert": int(mixer.m)}
    if isinstance(mixer, CascadeMixture):
        return {"mix": "cascade", "order": [int(m) for m in mixer.order],
                "thresholds": [None if math.isinf(t) else float(t) for t in mixer.thresholds]}
    if isinstance(mixer, LogitAdjusted):
        if mixer.base is None or mixer.tau is None:
            raise RuntimeError(f"{mixer.name}: logit adjustment without its base or tau")
        arrays["log_prior"] = np.asarray(mixer.prior, dtype=np.float32)
        return {"mix": "logit-adjust", "tau": float(mixer.tau), "prior": "log_prior",
                "base": _node(mixers[mixer.base], mixers, arrays)}
    raise NotRunnable(f"a {type(mixer).__name__} has no runnable form")


def _runs(node: dict) -> set[int]:
    """The experts a node can run (a cascade's later stages only on some images)."""
    mix = node["mix"]
    if mix == "probs":
        return {m for m, w in enumerate(node["weights"]) if w > 0}
    if mix == "logit-mean":
        return set(node["experts"])
    if mix == "expert":
        return {node["expert"]}
    if mix == "cascade":
        return set(node["order"])
    if mix == "logit-adjust":
        return _runs(node["base"])
    raise PlantkitInputError(f"unknown combination node {mix!r} in {RUNNABLE_FILE}")


def weights_sha256_beside(store_path) -> str | None:
    """The weights_sha256 of the expert.json beside an expert's store (None: imported logits,
    no expert folder)."""
    path = Path(store_path).parent / EXPERT_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):  # none, or unreadable: nothing to run (classify says so)
        return None
    sha = document.get("weights_sha256") if isinstance(document, dict) else None
    return str(sha) if sha else None


def write_runnable(folder: Path, document: dict, arrays: Mapping[str, np.ndarray]) -> None:
    """Both files through the artifacts' write protocol (the folder is the combination's
    temporary one, switched into place with the store)."""
    write_text(folder / RUNNABLE_FILE, json.dumps(document, indent=2, allow_nan=False) + "\n")
    buffer = io.BytesIO()
    savez: Any = np.savez  # numpy's stubs type **arrays as its own keywords
    savez(buffer, **dict(arrays))
    write_bytes(folder / RUNNABLE_ARRAYS_FILE, buffer.getvalue())


def not_runnable_document(method: str, reason: str) -> dict:
    """runnable.json of a combination classify must refuse, saying why."""
    return {"format": RUNNABLE_FORMAT, "version": RUNNABLE_VERSION, "method": method,
            "runnable": False, "reason": reason}


# ---------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class Runnable:
    """A combination ready to apply: its experts (names, sha256, GFLOPs), who may run,
    temperatures, read order, output tree and arrays."""

    document: dict
    arrays: Mapping[str, np.ndarray]

    @property
    def names(self) -> list[str]:
        return [e["name"] for e in self.document["experts"]]

    @property
    def runs(self) -> list[int]:
        return list(self.document["runs"])

    @property
    def temperatures(self) -> list[float]:
        return list(self.document["temperatures"])

    @property
    def num_classes(self) -> int:
        return int(self.document["num_classes"])


def expert_as_runnable(name: str, sha256: str | None, gflops: float | None,
                       num_classes: int) -> Runnable:
    """A single expert as a (trivial) runnable model: its own softmax."""
    return Runnable({"format": RUNNABLE_FORMAT, "version": RUNNABLE_VERSION, "method": "expert",
                     "num_classes": num_classes,
                     "experts": [{"name": name, "weights_sha256": sha256, "gflops": gflops}],
                     "runs": [0], "temperatures": [1.0], "order": [0],
                     "output": {"mix": "expert", "expert": 0}}, {})


def read_runnable(folder: Path, name: str) -> Runnable:
    """The runnable form saved beside combination `name` (torch-free); refused in one line
    when there is none or it says why it cannot run."""
    path = folder / RUNNABLE_FILE
    if not path.is_file():
        raise PlantkitInputError(
            f"combination {name} has no {RUNNABLE_FILE} (saved by an older plantkit): rerun "
            "`plantkit combine` to make it runnable")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlantkitInputError(f"{path} is not readable JSON: {exc}") from exc
    if document.get("format") != RUNNABLE_FORMAT or document.get("version") != RUNNABLE_VERSION:
        raise PlantkitInputError(f"{path} is not a {RUNNABLE_FORMAT} version {RUNNABLE_VERSION}")
    if document.get("runnable") is False:
        reason = document.get("reason", "")
        raise PlantkitInputError(reason if reason == ROUTER_REFUSAL else
                                 f"combination {name} cannot be applied to images: {reason}")
    arrays: dict[str, np.ndarray] = {}
    npz = folder / RUNNABLE_ARRAYS_FILE
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    return Runnable(document, arrays)


def apply_batch(runnable: Runnable, logits_of: LogitsOf, n_rows: int) -> np.ndarray:
    """The combination's log-probabilities (n_rows x C float32) for one batch; experts are
    asked for only the rows they must run on."""
    return _apply(runnable.document["output"], runnable, logits_of, n_rows)


def _apply(node: dict, runnable: Runnable, logits_of: LogitsOf, n_rows: int) -> np.ndarray:
    mix = node["mix"]
    if mix == "logit-adjust":
        base = _apply(node["base"], runnable, logits_of, n_rows)
        return adjust(base, runnable.arrays[node["prior"]], float(node["tau"]))
    if mix == "cascade":
        return _cascade(node, runnable, logits_of, n_rows)
    mixer = _dense_mixer(node, runnable.num_classes)
    mixer.begin("images", n_rows)
    every = np.arange(n_rows)
    for m in runnable.document["order"]:
        if m in mixer.experts:
            mixer.add(_chunk(m, logits_of(m, every), mixer.needs, runnable.temperatures[m]))
    output = mixer.finish(slice(0, n_rows))
    if output is None:  # only logit adjustment defers, and it is not built here
        raise RuntimeError(f"the {mix} mixer gave no output")
    return output


def _dense_mixer(node: dict, num_classes: int) -> Mixer:
    ref = ExpertRef(-1, "images")  # a mixer's ref only names its output
    mix = node["mix"]
    if mix == "probs":
        return ProbMixture(ref, node["weights"], node["kind"], num_classes)
    if mix == "logit-mean":
        mixer = LogitMean(ref, 0, num_classes)
        mixer.experts = list(node["experts"])
        return mixer
    if mix == "expert":
        return ExpertOutput(ref, int(node["expert"]))
    raise PlantkitInputError(f"unknown combination node {mix!r} in {RUNNABLE_FILE}")


def _chunk(m: int, logits: np.ndarray, kinds, temperature: float):
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    shift_rows(logits)
    rows = slice(0, len(logits))
    return shifted_chunk(m, rows, logits, np.zeros(len(logits), np.int32), kinds, temperature)


def _cascade(node: dict, runnable: Runnable, logits_of: LogitsOf, n_rows: int) -> np.ndarray:
    """The cascade, stage by stage on the rows still open: the mixer's rule, row by row."""
    order = list(node["order"])
    thresholds = np.array([math.inf if t is None else t for t in node["thresholds"]],
                          dtype=np.float64)
    total = np.zeros((n_rows, runnable.num_classes), dtype=np.float32)
    out = np.empty_like(total)
    open_rows = np.arange(n_rows)
    for stage, m in enumerate(order):
        if not len(open_rows):
            break
        chunk = _chunk(m, logits_of(m, open_rows), {CALIBRATED}, runnable.temperatures[m])
        total[open_rows] += chunk.probs(CALIBRATED)
        running = total[open_rows]
        newly = stops_here(running, stage, thresholds[stage], stage == len(order) - 1)
        out[open_rows[newly]] = stage_average(running[newly], stage)
        open_rows = open_rows[~newly]
    return log_mixture(out)
