"""A combination as a runnable model: what `plantkit combine` saves beside each combination
(runnable.json + runnable.npz: JSON and plain arrays, no pickle) and how a batch of images'
expert logits becomes the combination's log-probabilities (what `plantkit classify` runs).

The math is the stream's: a dense combination is rebuilt as the very mixer
(plantkit.combine.mixers) that wrote the stored predictions and fed the same chunks
(mixers.shifted_chunk); the cascade uses the mixer's stage rule (mixers.stops_here,
mixers.stage_average) on the rows still open, so later experts run only on those; logit
adjustment is plantkit.combine.logit_adjust.adjust of its base; tau-normalisation is
plantkit.combine.tau_norm.tau_norm_log_probs of the expert's features.

A node of runnable.json's `output` tree:
  {"mix": "probs", "kind": "raw"|"calibrated", "weights": [w per expert]}  average, weighted,
                                                   greedy, temperature (weight 0: not run)
  {"mix": "logit-mean", "experts": [m ...]}        --space logits
  {"mix": "expert", "expert": m}                   an expert's own softmax
  {"mix": "cascade", "order": [m ...], "thresholds": [t | null (never stops)]}
  {"mix": "logit-adjust", "tau": t, "prior": "log_prior" (an array of runnable.npz),
   "base": node}
  {"mix": "tau-norm", "expert": m, "tau": t, "weight": "classifier_weight" (C x D float32,
   before normalisation, an array of runnable.npz), "input_dtype": "float16"}
                                                   --tau-norm: the expert's features (rounded
                                                   to the stored dtype) on its classifier's
                                                   rows w_c / ||w_c||^tau, bias dropped
  {"mix": "router", "experts": [m ...], "input": "features"|"confidences",
   "input_expert": m | null, "input_dtype": "float16"|"float32", "top_k": k | null,
   "folds": n}                                     gates and preprocessing: router_files
m indexes the document's `experts`; temperatures are per expert (1: uncalibrated).

A router is applied as the stream mixes it (mixers.RouterMixture): its inputs (the input
expert's features, rounded to the dtype the store kept them in; or every expert's confidence
columns), the mean of the fold gates' weights with top-k applied, then per expert only the
images it has a nonzero weight for.
"""

from __future__ import annotations

import functools
import io
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from plantkit.artifacts import (
    EXPERT_FILE,
    RUNNABLE_ARRAYS_FILE,
    RUNNABLE_FILE,
    write_bytes,
    write_text,
)
from plantkit.choices import RouterInput
from plantkit.combine import router_files
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
    TauNormalised,
    shifted_chunk,
    stage_average,
    stops_here,
)
from plantkit.combine.probs import log_mixture, shift_rows
from plantkit.combine.refs import ExpertRef, Ref
from plantkit.combine.runnable_checks import check_runnable
from plantkit.combine.tau_norm import tau_norm_log_probs
from plantkit.errors import PlantkitInputError

RUNNABLE_FORMAT = "plantkit-runnable-combination"
RUNNABLE_VERSION = 1
ROUTER_FEATURES = RouterInput.features.value
# The reason plantkit wrote into a router's runnable.json before routers could run.
LEGACY_ROUTER_REASON = "router combinations cannot be applied to new images yet (issue 12)"
TAU_NORM_WEIGHT = "classifier_weight"  # runnable.npz: a tau-normalised expert's classifier


class ExpertRuns(Protocol):
    """What applying a combination asks of the loaded experts for one batch of images."""

    def logits(self, m: int, rows: np.ndarray) -> np.ndarray:
        """float32 len(rows) x C logits of expert m on those rows (a fresh array)."""

    def logits_and_features(self, m: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The logits and penultimate features (float32) of one forward pass."""


class NotRunnable(Exception):
    """A combination that cannot be saved as a runnable model (the reason is the message)."""


@dataclass(frozen=True)
class RunnableForm:
    """What `combine` saves beside a combination: runnable.json, runnable.npz and, for a
    router, its fold gates (file name -> keras.Model)."""

    document: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- saving


def runnable_form(mixer: Mixer, mixers: Mapping[Ref, Mixer], *, method: str,
                  names: Sequence[str], experts_sha256: Sequence[str | None],
                  gflops: Sequence[float | None], temperatures, order: Sequence[int],
                  num_classes: int, route=None) -> RunnableForm:
    """The runnable form of the combination `mixer` writes (`route`: the call's
    plantkit.combine.route.RouteFit, for a router); NotRunnable when an expert it runs has
    no weights (imported logits)."""
    form = RunnableForm({})
    output = _node(mixer, mixers, form, route)
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
    form.document.update(document)
    return form


def _node(mixer: Mixer, mixers: Mapping[Ref, Mixer], form: RunnableForm, route) -> dict:
    if isinstance(mixer, RouterMixture):
        return _router_node(mixer, form, route)
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
        form.arrays["log_prior"] = np.asarray(mixer.prior, dtype=np.float32)
        return {"mix": "logit-adjust", "tau": float(mixer.tau), "prior": "log_prior",
                "base": _node(mixers[mixer.base], mixers, form, route)}
    if isinstance(mixer, TauNormalised):
        from plantkit.store.schema import FEATURES_DTYPE

        form.arrays[TAU_NORM_WEIGHT] = np.asarray(mixer.weight, dtype=np.float32)
        # The stream read the stored features, which the store rounds.
        return {"mix": "tau-norm", "expert": int(mixer.m), "tau": float(mixer.tau),
                "weight": TAU_NORM_WEIGHT, "input_dtype": FEATURES_DTYPE}
    raise NotRunnable(f"a {type(mixer).__name__} has no runnable form")


def _router_node(mixer: RouterMixture, form: RunnableForm, route) -> dict:
    from plantkit.store.schema import FEATURES_DTYPE

    if route is None:
        raise RuntimeError("a router mixer without its fitted router")
    fold_routers = route.fit.fold_routers
    form.arrays.update(router_files.router_arrays(fold_routers))
    form.gates.update(router_files.gate_files(fold_routers))
    features = route.input_kind == ROUTER_FEATURES
    return {"mix": "router", "experts": sorted(mixer.experts), "input": route.input_kind,
            "input_expert": None if route.input_expert is None else int(route.input_expert),
            # The stream fed the gates the stored features, which the store rounds.
            "input_dtype": FEATURES_DTYPE if features else "float32",
            "top_k": route.fit.top_k, "folds": len(fold_routers)}


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
    if mix == "router":
        return set(node["experts"])
    if mix == "tau-norm":
        return {node["expert"]}
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


def write_runnable(folder: Path, form: RunnableForm) -> None:
    """The files of `form` into the combination's temporary folder (switched into place with
    the store), the JSON and the arrays through the artifacts' write protocol."""
    router_files.save_gates(folder, form.gates)
    buffer = io.BytesIO()
    savez: Any = np.savez  # numpy's stubs type **arrays as its own keywords
    savez(buffer, **form.arrays)
    write_bytes(folder / RUNNABLE_ARRAYS_FILE, buffer.getvalue())
    write_text(folder / RUNNABLE_FILE,
               json.dumps(form.document, indent=2, allow_nan=False) + "\n")


def not_runnable_form(method: str, reason: str) -> RunnableForm:
    """runnable.json of a combination classify must refuse, saying why."""
    return RunnableForm({"format": RUNNABLE_FORMAT, "version": RUNNABLE_VERSION,
                         "method": method, "runnable": False, "reason": reason})


# ---------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class Runnable:
    """A combination ready to apply: its experts (names, sha256, GFLOPs), who may run,
    temperatures, read order, output tree and arrays; `folder` holds a router's gates."""

    document: dict
    arrays: Mapping[str, np.ndarray]
    folder: Path | None = None

    @functools.cached_property
    def fold_routers(self) -> tuple:
        """A router's fold routers, loaded on first use (imports keras)."""
        node = _router_of(self.document["output"])
        if node is None or self.folder is None:
            return ()
        return router_files.load_fold_routers(self.folder, int(node["folds"]), self.arrays,
                                              len(node["experts"]))

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
    if not isinstance(document, dict) or document.get("format") != RUNNABLE_FORMAT or \
            document.get("version") != RUNNABLE_VERSION:
        raise PlantkitInputError(f"{path} is not a {RUNNABLE_FORMAT} version {RUNNABLE_VERSION}")
    if document.get("runnable") is False:
        if document.get("reason") == LEGACY_ROUTER_REASON:
            raise PlantkitInputError(
                f"combination {name} is a router saved by an older plantkit, which could not "
                "apply routers to images: rerun `plantkit combine --router`")
        raise PlantkitInputError(f"combination {name} cannot be applied to images: "
                                 f"{document.get('reason', '')}")
    arrays: dict[str, np.ndarray] = {}
    npz = folder / RUNNABLE_ARRAYS_FILE
    try:
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise PlantkitInputError(f"{npz} is not a readable npz file: {exc}") from exc
    check_runnable(document, arrays, str(path))
    router = _router_of(document["output"])
    if router is not None:
        missing = router_files.missing_gates(folder, int(router["folds"]))
        if missing:
            raise PlantkitInputError(
                f"router {name} lacks {', '.join(missing)} in {folder}: rerun "
                "`plantkit combine --router`")
    return Runnable(document, arrays, folder)


def _router_of(node: dict) -> dict | None:
    """The router node of an output tree (a router or logit adjustment of one), or None."""
    while node.get("mix") == "logit-adjust":
        node = node["base"]
    return node if node.get("mix") == "router" else None


def apply_batch(runnable: Runnable, run: ExpertRuns, n_rows: int) -> np.ndarray:
    """The combination's log-probabilities (n_rows x C float32) for one batch; experts are
    asked for only the rows they must run on."""
    return _apply(runnable.document["output"], runnable, run, n_rows)


def _apply(node: dict, runnable: Runnable, run: ExpertRuns, n_rows: int) -> np.ndarray:
    mix = node["mix"]
    if mix == "logit-adjust":
        base = _apply(node["base"], runnable, run, n_rows)
        return adjust(base, runnable.arrays[node["prior"]], float(node["tau"]))
    if mix == "cascade":
        return _cascade(node, runnable, run, n_rows)
    if mix == "router":
        return _router(node, runnable, run, n_rows)
    if mix == "tau-norm":
        _, features = run.logits_and_features(int(node["expert"]), np.arange(n_rows))
        features = features.astype(node["input_dtype"]).astype(np.float32)
        return tau_norm_log_probs(features, runnable.arrays[node["weight"]],
                                  float(node["tau"]))
    mixer = _dense_mixer(node, runnable.num_classes)
    mixer.begin("images", n_rows)
    every = np.arange(n_rows)
    for m in runnable.document["order"]:
        if m in mixer.experts:
            mixer.add(_chunk(m, run.logits(m, every), mixer.needs, runnable.temperatures[m]))
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


def _cascade(node: dict, runnable: Runnable, run: ExpertRuns, n_rows: int) -> np.ndarray:
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
        chunk = _chunk(m, run.logits(m, open_rows), {CALIBRATED}, runnable.temperatures[m])
        total[open_rows] += chunk.probs(CALIBRATED)
        running = total[open_rows]
        newly = stops_here(running, stage, thresholds[stage], stage == len(order) - 1)
        out[open_rows[newly]] = stage_average(running[newly], stage)
        open_rows = open_rows[~newly]
    return log_mixture(out)


def _router(node: dict, runnable: Runnable, run: ExpertRuns, n_rows: int) -> np.ndarray:
    """The router: its inputs, the fold gates' mean weights (top-k applied), then each
    expert only on the images it weighs; summed in the stream's order, as the mixer does."""
    from plantkit.combine.router import confidence_inputs, mean_fold_weights

    temperatures, every = runnable.temperatures, np.arange(n_rows)
    probs: dict[int, np.ndarray] = {}  # calibrated, of every image, for the experts run so

    def calibrated(m: int, logits: np.ndarray) -> np.ndarray:
        return _chunk(m, logits, {CALIBRATED}, temperatures[m]).probs(CALIBRATED)

    if node["input"] == ROUTER_FEATURES:
        m = int(node["input_expert"])
        logits, features = run.logits_and_features(m, every)
        probs[m] = calibrated(m, logits)
        inputs = features.astype(node["input_dtype"]).astype(np.float32)
    else:
        for m in runnable.document["order"]:
            probs[m] = calibrated(m, run.logits(m, every))
        inputs = confidence_inputs([probs[m] for m in node["experts"]])
    weights = mean_fold_weights(runnable.fold_routers, node["top_k"], inputs)
    total = np.zeros((n_rows, runnable.num_classes), dtype=np.float32)
    for m in runnable.document["order"]:
        rows = np.flatnonzero(weights[:, m])
        if len(rows) == n_rows:
            total += (probs[m] if m in probs else calibrated(m, run.logits(m, every))
                      ) * weights[:, m, None]
        elif len(rows):
            part = probs[m][rows] if m in probs else calibrated(m, run.logits(m, rows))
            total[rows] += part * weights[rows, m, None]
    return log_mixture(total)
