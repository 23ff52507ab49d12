"""The end of an epoch on disk, and the resume from it.

At the end of every good epoch (finite loss) one callback, in this order:

1. writes `checkpoints/epoch-NNNN/` (the expert, and the Keras model and optimizer variables)
   through the write protocol,
2. rewrites `history.csv` with the rows of every epoch up to this one,
3. replaces `checkpoints/state.json`, the resume point: the epoch to start at, the folder of
   the last and of the best epoch, the best value, and the sha256 of every file they hold,
4. deletes the epoch folders that state.json no longer names.

state.json is written last, so a kill at any moment leaves the previous resume point intact,
with the best epoch it names still on disk; `--resume` then starts over the interrupted epoch,
whose seeds and batch order depend on (seed, epoch) only (EpochDeterminism), and ends with the
weights, logits, best epoch and history rows of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from plantkit.artifacts import (
    CHECKPOINT_STATE_FILE,
    CHECKPOINT_WEIGHTS_FILE,
    EPOCH_DIR_PREFIX,
    HISTORY_COLUMNS,
    discard,
    history_csv_text,
    read_history_rows,
    read_json,
    replacing_dir,
    sha256_file,
    verify_file,
    write_text,
)
from plantkit.backend import keras
from plantkit.errors import PlantkitInputError
from plantkit.training.callbacks import loss_is_finite

_INTEGER_COLUMNS = frozenset({"epoch", "corrupt_images"})
STATE_FORMAT = "plantkit-training-state"


def epoch_dir_name(epoch: int) -> str:
    return f"{EPOCH_DIR_PREFIX}{epoch:04d}"


def read_state(checkpoints: str | Path) -> dict | None:
    """The resume point of a run's checkpoints folder, or None when no epoch has finished."""
    path = Path(checkpoints) / CHECKPOINT_STATE_FILE
    if not path.is_file():
        return None
    state = read_json(path, "the training's resume point")
    if state.get("format") != STATE_FORMAT:
        raise PlantkitInputError(f"{path} is not a plantkit training state")
    return state


def verified_folder(checkpoints: str | Path, state: dict, which: str) -> Path:
    """The `which` ('last' or 'best') epoch folder named by `state`, its files verified."""
    checkpoints = Path(checkpoints)
    folder = checkpoints / state[which]
    fix = (f"the checkpoints in {checkpoints} are damaged: train again with --overwrite "
           "(or restore the folder from a copy)")
    for relative, digest in state["sha256"].items():
        if relative.split("/", 1)[0] == state[which]:
            verify_file(checkpoints / relative, digest, fix=fix)
    return folder


def restore(model: keras.Model, checkpoints: str | Path) -> tuple[int, dict]:
    """Load the model and optimizer variables of the last good epoch; return the epoch to
    start at and the state. The model must be compiled (its optimizer is built here)."""
    state = read_state(checkpoints)
    if state is None:
        raise PlantkitInputError(f"no finished epoch to resume from in {checkpoints}")
    folder = verified_folder(checkpoints, state, "last")
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / CHECKPOINT_WEIGHTS_FILE)
    return int(state["next_epoch"]), state


class EpochCommit(keras.callbacks.Callback):
    """Writes the end of every good epoch to the run folder (the order is the module's)."""

    def __init__(self, run_dir: str | Path, checkpoints: str | Path, history: str | Path,
                 save_expert_to: Callable[[Path], None], monitor: str = "val_top1"):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoints = Path(checkpoints)
        self.history = Path(history)
        self.save_expert_to = save_expert_to
        self.monitor = monitor
        self.state: dict | None = None
        self.rows: list[dict] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.rows is not None:
            return
        self.state = read_state(self.checkpoints)
        if self.state is not None and int(self.state["next_epoch"]) != epoch:
            raise RuntimeError(f"resume point says epoch {self.state['next_epoch']}, fit "
                               f"starts at {epoch}")
        # Rows of an epoch after the resume point came from a killed run: it is redone.
        self.rows = [row for row in read_history_rows(self.history) if int(row["epoch"]) < epoch]
        self._prune()  # epoch folders a killed run wrote after the resume point

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = dict(logs, epoch=epoch,
                   lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        row = {c: _csv_value(c, row.get(c)) for c in HISTORY_COLUMNS}
        if not loss_is_finite(logs):
            # The row explains the stop; nothing else is saved, so a resume redoes the epoch.
            write_text(self.history, history_csv_text([*self.rows, row]))
            return
        name = epoch_dir_name(epoch)
        with replacing_dir(self.checkpoints / name) as tmp:
            self.save_expert_to(tmp)
            self.model.save_weights(tmp / CHECKPOINT_WEIGHTS_FILE)
        value = logs.get(self.monitor)
        previous = self.state
        best_value = -math.inf if previous is None else float(previous["best_value"])
        improved = value is not None and float(value) > best_value
        best = name if improved or previous is None else previous["best"]
        self.rows.append(row)
        write_text(self.history, history_csv_text(self.rows))
        kept = {name, best}
        sha = {k: v for k, v in (previous or {}).get("sha256", {}).items()
               if k.split("/", 1)[0] in kept}
        for file in sorted(p.name for p in (self.checkpoints / name).iterdir()):
            sha[f"{name}/{file}"] = sha256_file(self.checkpoints / name / file)
        self.state = {
            "format": STATE_FORMAT,
            "next_epoch": epoch + 1,
            "last": name,
            "best": best,
            "best_epoch": epoch if best == name else int(previous["best_epoch"]),
            "monitor": self.monitor,
            "best_value": float(value) if best == name and value is not None else best_value,
            "logs": _plain(logs),
            "sha256": dict(sorted(sha.items())),
        }
        write_text(self.checkpoints / CHECKPOINT_STATE_FILE,
                   json.dumps(self.state, indent=2) + "\n")
        self._prune()

    def _prune(self) -> None:
        kept = set() if self.state is None else {self.state["last"], self.state["best"]}
        if not self.checkpoints.is_dir():
            return
        for folder in sorted(self.checkpoints.glob(f"{EPOCH_DIR_PREFIX}*")):
            if folder.name not in kept:
                discard(folder)


def _csv_value(column: str, value):
    if value is None:
        return ""
    value = float(keras.ops.convert_to_numpy(value))
    # Metrics and the rate are float32 inside Keras: 8 digits show all they hold.
    return int(value) if column in _INTEGER_COLUMNS else f"{value:.8g}"


def _plain(logs: dict | None) -> dict:
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in (logs or {}).items()}
