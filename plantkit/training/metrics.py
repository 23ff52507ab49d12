"""Accuracy metrics logged per epoch: top-1, top-5 and macro (per-class mean) top-1."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="plantkit")
class MacroTop1(keras.metrics.Metric):
    """Mean over classes of the per-class top-1 accuracy (classes not seen yet are left out).

    On a long-tailed dataset this is the number that moves when rare species improve;
    the micro top-1 barely notices them.
    """

    def __init__(self, num_classes: int, name: str = "macro_top1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.correct = self.add_variable(
            shape=(self.num_classes,), initializer="zeros", name="correct"
        )
        self.seen = self.add_variable(shape=(self.num_classes,), initializer="zeros", name="seen")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels),
                        self.dtype)
        self.seen.assign_add(
            ops.cast(ops.bincount(labels, minlength=self.num_classes), self.dtype)
        )
        self.correct.assign_add(ops.bincount(labels, weights=hits, minlength=self.num_classes))

    def result(self):
        present = ops.greater(self.seen, 0)
        per_class = ops.divide_no_nan(self.correct, self.seen)
        n_present = ops.sum(ops.cast(present, self.dtype))
        return ops.divide_no_nan(ops.sum(ops.where(present, per_class, 0.0)), n_present)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def accuracy_metrics(num_classes: int) -> list[keras.metrics.Metric]:
    """The compiled metrics; their names are the history's column names (val_ prefixed)."""
    return [
        keras.metrics.SparseCategoricalAccuracy(name="top1"),
        keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, num_classes), name="top5"),
        MacroTop1(num_classes),
    ]
