"""What the training tests share: a callback that interrupts a run like Ctrl-C."""

from __future__ import annotations

from plantkit.backend import keras


class InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Stops training like Ctrl-C once epoch 0 (and its checkpoints) is done."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt
