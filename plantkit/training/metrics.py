"""Accuracy metrics logged per epoch: top-1, top-5 and macro (per-class mean) top-1.

They count a hit with plantkit's tie rule (`plantkit.metrics.true_class_rank`, docs/metrics.md):
the rank of the true class is the number of *other* classes whose logit is at least as high,
a top-k hit is rank < k, so a tie is never counted in the model's favour (argmax and
`in_top_k` let the lowest index win it). history.csv's columns and the best epoch (which
monitors `val_top1`) therefore agree with `plantkit report` and the train summary on the
same logits.

keras.ops only, on the batch as it is (no host round-trip, no loop over rows): one N x C
comparison per batch, as the cross-entropy already costs.
"""

from __future__ import annotations

from plantkit.backend import keras

ops = keras.ops


def own_labels(y_true):
    """The labels as int32 (N): mixed training rows (label, partner's label, lambda, from
    plantkit.training.mixing) count against each image's own label."""
    if len(ops.shape(y_true)) == 2 and ops.shape(y_true)[1] == 3:
        y_true = y_true[:, 0]
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


def true_class_rank(y_true, y_pred):
    """Per row, the number of other classes not scoring below the true class (int32):
    `plantkit.metrics.true_class_rank` in keras.ops (NaN included), compared in float32."""
    scores = ops.cast(y_pred, "float32")
    labels = own_labels(y_true)
    true_score = ops.take_along_axis(scores, ops.expand_dims(labels, -1), axis=-1)
    return ops.sum(ops.cast(ops.logical_not(ops.less(scores, true_score)), "int32"), axis=-1) - 1


@keras.saving.register_keras_serializable(package="plantkit")
class TopKAccuracy(keras.metrics.Metric):
    """Share of rows whose true class is a top-k hit under the tie rule (weighted by
    `sample_weight` when one is given)."""

    def __init__(self, k: int = 1, name: str | None = None, **kwargs):
        self.k = int(k)
        super().__init__(name=name or f"top{self.k}", **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hits = ops.cast(ops.less(true_class_rank(y_true, y_pred), self.k), self.dtype)
        if sample_weight is None:
            weights = ops.ones_like(hits)
        else:
            weights = ops.cast(ops.reshape(sample_weight, (-1,)), self.dtype)
            weights = ops.broadcast_to(weights, ops.shape(hits))
        self.total.assign_add(ops.sum(hits * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@keras.saving.register_keras_serializable(package="plantkit")
class MacroTop1(keras.metrics.Metric):
    """Mean over classes of the per-class top-1 accuracy (classes not seen yet are left out),
    a hit counted with the tie rule; `plantkit.metrics.macro_topk_accuracy(..., k=1)`.
    `sample_weight` is ignored: every row of a class counts once.

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
        labels = own_labels(y_true)
        hits = ops.cast(ops.equal(true_class_rank(labels, y_pred), 0), self.dtype)
        # Rows x classes one-hot by comparison: unlike bincount (torch's reads the largest
        # label back to the host on a GPU), it never waits on the device.
        one_hot = ops.cast(
            ops.equal(ops.expand_dims(labels, -1), ops.arange(self.num_classes, dtype="int32")),
            self.dtype,
        )
        self.seen.assign_add(ops.sum(one_hot, axis=0))
        self.correct.assign_add(ops.sum(one_hot * ops.expand_dims(hits, -1), axis=0))

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
        TopKAccuracy(1, name="top1"),
        TopKAccuracy(min(5, num_classes), name="top5"),
        MacroTop1(num_classes),
    ]
