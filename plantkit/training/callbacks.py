"""Keras callbacks, one training concern each: seeding, statistics, NaN, progress, corrupt
images. (The end of an epoch on disk, checkpoints and history, is plantkit.training.resume.)"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from rich.console import Console

from plantkit.backend import keras
from plantkit.data.loading import skipped_corrupt_line
from plantkit.progress import progress_bar


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

    def __init__(self, batches, corrupt_count: Callable[[], int] | None = None, *,
                 processes: int = 1):
        super().__init__()
        self.batches = batches
        self.corrupt_count = corrupt_count or (lambda: 0)
        self.processes = processes  # data-parallel: each reads as many images as this one

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
        logs["images_per_s"] = (self.batches.images_seen * self.processes
                                / max(train_seconds, 1e-9))
        logs["corrupt_images"] = self.corrupt_count() - self._corrupt_at_start


class BroadcastBuffers(keras.callbacks.Callback):
    """Data-parallel training: rank 0's buffers (BatchNorm's running statistics) in every
    process after each step, as DistributedDataParallel's broadcast_buffers keeps them."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def on_train_batch_end(self, batch, logs=None):
        from plantkit.training.distributed import broadcast_module

        broadcast_module(self.module, buffers_only=True)


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


class CorruptImagesWarning(keras.callbacks.Callback):
    """One warning line on stderr at the end of every epoch that skipped corrupt images: how
    many of each split's images, the first files, and the command that lists them all. (More
    than 1 % of a split stops the run instead: the loaders raise.)"""

    def __init__(self, loaders, epochs: int, stream=None):
        super().__init__()
        self.loaders = list(loaders)
        self.epochs = epochs
        self.stream = stream

    def line(self, epoch: int) -> str | None:
        return skipped_corrupt_line(f"epoch {epoch + 1}/{self.epochs}",
                                    [(loader.split, loader.last_pass) for loader in self.loaders])

    def on_epoch_end(self, epoch, logs=None):
        line = self.line(epoch)
        if line is not None:
            print(line, file=self.stream or sys.stderr, flush=True)
