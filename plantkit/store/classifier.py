"""An expert's last linear layer, kept beside its features (docs/store.md, "The classifier"):
logits = features @ weight.T + bias, the pair tau-normalisation (plantkit.combine.tau_norm)
rescales."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from plantkit.errors import PlantkitInputError
from plantkit.store.chunks import create_checked

CLASSIFIER = "classifier"  # the root group: datasets weight and bias, attribute module


@dataclass(frozen=True)
class Classifier:
    """weight C x D and bias C (float32; zeros for a layer without bias); `module`: the
    layer's name in the backbone (``fc``, ``head.fc`` ...)."""

    weight: np.ndarray
    bias: np.ndarray
    module: str = ""

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])


def checked_classifier(classifier: Classifier, num_classes: int, where: str) -> Classifier:
    """`classifier` as float32 arrays, refused (PlantkitInputError naming `where`) unless the
    weight is C x D, the bias C and both finite."""
    weight = np.asarray(classifier.weight)
    bias = np.asarray(classifier.bias)
    if weight.ndim != 2 or weight.shape[0] != num_classes or weight.shape[1] < 1:
        raise PlantkitInputError(
            f"{where}: the classifier weight must be {num_classes} x D (one row per class), "
            f"got shape {weight.shape}")
    if bias.shape != (num_classes,):
        raise PlantkitInputError(
            f"{where}: the classifier bias must hold {num_classes} values, got shape "
            f"{bias.shape}")
    if weight.dtype.kind != "f" or bias.dtype.kind != "f":
        raise PlantkitInputError(f"{where}: the classifier must be floating point")
    weight, bias = weight.astype(np.float32), bias.astype(np.float32)
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise PlantkitInputError(f"{where}: the classifier holds NaN or infinite values")
    return Classifier(weight, bias, str(classifier.module))


def write_classifier(file: h5py.File, classifier: Classifier) -> None:
    group = file.create_group(CLASSIFIER)
    create_checked(group, "weight", classifier.weight.shape, np.dtype(np.float32),
                   data=classifier.weight)
    create_checked(group, "bias", classifier.bias.shape, np.dtype(np.float32),
                   data=classifier.bias)
    group.attrs["module"] = classifier.module


def read_classifier(file: h5py.File) -> tuple[np.ndarray, np.ndarray, str] | None:
    """The stored (weight, bias, module) as read, or None when the store keeps none."""
    if CLASSIFIER not in file:
        return None
    group = file[CLASSIFIER]
    return group["weight"][()], group["bias"][()], str(group.attrs.get("module", ""))
