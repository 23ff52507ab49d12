"""Cross-entropy as torch computes it, optionally weighted per class (`--loss weighted`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from plantkit.backend import keras


def balanced_class_weights(train_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's 'balanced' weights, n / (C * n_c): 1/n per class up to a constant.

    Every class must have at least one training image (the dataset layout guarantees it).
    """
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"train labels must be class indices in 0-{num_classes - 1}")
    empty = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
    if len(empty):
        raise ValueError(
            f"balanced class weights need every class in the train labels; {len(empty)} "
            f"class(es) have none (first: index {empty[0]})"
        )
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return weights.astype(np.float32)


@keras.saving.register_keras_serializable(package="plantkit")
class CrossEntropy(keras.losses.Loss):
    """torch.nn.functional.cross_entropy on logits and integer labels, as a Keras loss.

    With `class_weights` w the batch loss is sum_i w[y_i] * l_i / sum_i w[y_i], torch's
    normalisation (not Keras's division by the batch size). Computed by torch itself, so
    plantkit's loss is bit-for-bit the reference script's.
    """

    def __init__(self, class_weights=None, name: str = "cross_entropy", **kwargs):
        kwargs.setdefault("reduction", None)  # torch reduces already
        super().__init__(name=name, **kwargs)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self._weights_by_device: dict[str, torch.Tensor] = {}

    def _weight_on(self, device):
        if self.class_weights is None:
            return None
        if device not in self._weights_by_device:
            self._weights_by_device[device] = torch.tensor(
                self.class_weights, dtype=torch.float32, device=device
            )
        return self._weights_by_device[device]

    def call(self, y_true, y_pred):
        # Keras casts the labels to the loss dtype (float32) on the way in: exact for
        # any realistic number of classes (< 2**24).
        return F.cross_entropy(
            y_pred.float(), y_true.reshape(-1).long(), weight=self._weight_on(y_pred.device)
        )

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}
