"""Keras callbacks, one training concern each: seeding, statistics, NaN, checkpoints, history,
progress.

Checkpoints are folders replaced atomically: `best/` (highest val top-1) and `last/` (end of
the latest epoch, with the optimizer state and the epoch to resume from). Both are
plantkit expert folders. An epoch whose loss is not finite saves nothing, so the
checkpoints always hold the last good state.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import torch
from rich.console import Console

from plantkit.atomic import atomic_path, write_text_atomic
from plantkit.progress import progress_bar

STATE_WEIGHTS_FILE = "state.weights.h5"  # Keras weights: model and optimizer variables
STATE_FILE = "state.json"
BEST_FILE = "best.json"

HISTORY_COLUMNS = (
    "epoch", "loss", "top1", "top5", "macro_top1",
    "val_loss", "val_top1", "val_top5", "val_macro_top1",
    "lr", "seconds", "images_per_s", "corrupt_images",
)
_INTEGER_COLUMNS = frozenset({"epoch", "corrupt_images"})


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for torch's global generator that depends on (seed, epoch) only."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


def loss_is_finite(logs: dict | None) -> bool:
    loss = (logs or {}).get("loss")
    return loss is not None and math.isfinite(float(loss))


class EpochDeterminism(keras.callbacks.Callback):
    """Each epoch starts from an RNG state and a batch order that depend only on (seed, epoch).

    That makes a run resumed at epoch k identical to an uninterrupted one: nothing carries
    random state over from the epochs the resumed process never ran.
    """

    def __init__(self, seed: int, batches: Sequence):
        super().__init__()
        self.seed = int(seed)
        self.batches = list(batches)

    def on_epoch_begin(self, epoch, logs=None):
        torch.manual_seed(epoch_seed(self.seed, epoch))
        for each in self.batches:
            each.set_epoch(epoch)


class EpochStats(keras.callbacks.Callback):
    """Adds `seconds` (epoch wall time), `images_per_s` (training part) and `corrupt_images`."""

    def __init__(self, batches, corrupt_count: Callable[[], int] | None = None):
        super().__init__()
        self.batches = batches
        self.corrupt_count = corrupt_count or (lambda: 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end = None
        self._corrupt_at_start = self.corrupt_count()

    def on_test_begin(self, logs=None):
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        train_seconds = (self._train_end or now) - self._start
        logs["seconds"] = now - self._start
        logs["images_per_s"] = self.batches.images_seen / max(train_seconds, 1e-9)
        logs["corrupt_images"] = self.corrupt_count() - self._corrupt_at_start


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, and remembers where."""

    def __init__(self):
        super().__init__()
        self.diverged_at: tuple[int, int] | None = None  # (epoch, batch)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not loss_is_finite(logs):
            self.diverged_at = (self._epoch, int(batch))
            self.model.stop_training = True


class LastCheckpoint(keras.callbacks.Callback):
    """After every good epoch, `directory` holds the expert, the optimizer state and the epoch."""

    def __init__(self, directory: str | Path, save_expert_to: Callable[[Path], None]):
        super().__init__()
        self.directory = Path(directory)
        self.save_expert_to = save_expert_to

    def on_epoch_end(self, epoch, logs=None):
        if not loss_is_finite(logs):
            return
        with atomic_path(self.directory, is_dir=True) as tmp:
            self.save_expert_to(tmp)
            self.model.save_weights(tmp / STATE_WEIGHTS_FILE)
            state = {"next_epoch": epoch + 1, "logs": _plain(logs)}
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def read_last_state(directory: str | Path) -> dict | None:
    """The `state.json` of a last checkpoint, or None when there is none."""
    path = Path(directory) / STATE_FILE
    if not path.is_file() or not (Path(directory) / STATE_WEIGHTS_FILE).is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def restore_last_checkpoint(model: keras.Model, directory: str | Path) -> int:
    """Load weights and optimizer state saved by LastCheckpoint; return the epoch to start at.

    The model must be compiled (its optimizer is built here if it is not yet).
    """
    directory = Path(directory)
    state = read_last_state(directory)
    if state is None:
        raise FileNotFoundError(f"no resumable checkpoint in {directory}")
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(directory / STATE_WEIGHTS_FILE)
    return int(state["next_epoch"])


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the expert of the epoch with the highest `monitor` (val top-1) in `directory`.

    A resumed run picks up the best value from the folder, so it only replaces it with a
    better epoch.
    """

    def __init__(self, directory: str | Path, save_expert_to: Callable[[Path], None],
                 monitor: str = "val_top1"):
        super().__init__()
        self.directory = Path(directory)
        self.save_expert_to = save_expert_to
        self.monitor = monitor
        self.best: float = -math.inf
        self.best_epoch: int | None = None
        self._checked_existing = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._checked_existing:
            return
        self._checked_existing = True
        previous = read_best(self.directory)
        if previous is not None and previous["epoch"] < epoch:
            self.best, self.best_epoch = float(previous["value"]), int(previous["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if not loss_is_finite(logs) or value is None or not float(value) > self.best:
            return
        self.best, self.best_epoch = float(value), epoch
        with atomic_path(self.directory, is_dir=True) as tmp:
            self.save_expert_to(tmp)
            record = {"epoch": epoch, "monitor": self.monitor, "value": float(value),
                      "logs": _plain(logs)}
            (tmp / BEST_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_best(directory: str | Path) -> dict | None:
    """The `best.json` of a best checkpoint (epoch, monitor, value, logs), or None."""
    path = Path(directory) / BEST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class HistoryCSV(keras.callbacks.Callback):
    """One row per epoch with HISTORY_COLUMNS, the whole file rewritten atomically each epoch.

    A resumed run keeps the rows of the epochs before the one it starts at (rows of an
    epoch that was interrupted after its row was written are dropped and redone).
    """

    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.rows is None:
            self.rows = [row for row in read_history(self.path) if int(row["epoch"]) < epoch]

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["epoch"] = epoch
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.rows.append({c: _csv_value(c, logs.get(c)) for c in HISTORY_COLUMNS})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, buffer.getvalue())


def read_history(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class RichProgress(keras.callbacks.Callback):
    """A rich bar per epoch for training and one for validation, then a summary line (stderr)."""

    def __init__(self, epochs: int, train_images: int, val_images: int, batch_size: int,
                 *, disable: bool = False):
        super().__init__()
        self.epochs = epochs
        self.train_images = train_images
        self.val_images = val_images
        self.batch_size = batch_size
        self.disable = disable
        self.console = Console(stderr=True)
        self._bar: contextlib.ExitStack | None = None

    def _open(self, description: str, total: int) -> None:
        self.close()
        self._bar = contextlib.ExitStack()
        self._advance = self._bar.enter_context(
            progress_bar(description, total=total, disable=self.disable)
        )
        self._left = total

    def _step(self) -> None:
        n = min(self.batch_size, self._left)
        self._left -= n
        self._advance(n)

    def close(self) -> None:
        """End the current bar; safe to call at any time (training may stop mid-epoch)."""
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()

    def on_epoch_begin(self, epoch, logs=None):
        self._open(f"epoch {epoch + 1}/{self.epochs}", self.train_images)

    def on_train_batch_end(self, batch, logs=None):
        self._step()

    def on_test_begin(self, logs=None):
        self._open("  validation", self.val_images)

    def on_test_batch_end(self, batch, logs=None):
        self._step()

    def on_epoch_end(self, epoch, logs=None):
        self.close()
        if not self.disable:
            self.console.print(epoch_summary(epoch, self.epochs, logs or {}), highlight=False)

    def on_train_end(self, logs=None):
        self.close()


def epoch_summary(epoch: int, epochs: int, logs: dict) -> str:
    """One line: loss and accuracies of train and val, learning rate, time."""
    def pct(key):
        return f"{100 * logs[key]:.1f}%" if key in logs else "-"

    parts = [
        f"epoch {epoch + 1}/{epochs}",
        f"loss {logs.get('loss', float('nan')):.4f}",
        f"top1 {pct('top1')}",
        f"val_loss {logs.get('val_loss', float('nan')):.4f}",
        f"val_top1 {pct('val_top1')}",
        f"val_macro_top1 {pct('val_macro_top1')}",
    ]
    if "learning_rate" in logs:
        parts.append(f"lr {logs['learning_rate']:.3g}")
    if "seconds" in logs:
        parts.append(f"{logs['seconds']:.1f} s ({logs.get('images_per_s', 0):,.0f} img/s)")
    return "  ".join(parts)


def _csv_value(column: str, value):
    if value is None:
        return ""
    value = float(keras.ops.convert_to_numpy(value))
    # Metrics and the rate are float32 inside Keras: 8 digits show all they hold.
    return int(value) if column in _INTEGER_COLUMNS else f"{value:.8g}"


def _plain(logs: dict | None) -> dict:
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in (logs or {}).items()}
