"""A fitted router as files beside its combination, for `plantkit classify`; no pickle.

Per fold k of the router:
  runnable.npz  router{k}_mean, router{k}_scale [, router{k}_pca_mean, router{k}_components,
                router{k}_whiten]: the fold's Preprocessing (plantkit.combine.router), float64
  router-gate-{k}.keras   the fold's gate (Dense-Dropout-Dense of standard Keras layers, saved
                without its compile state), loaded with safe_mode=True and compile=False

All fold gates are kept, not one refit on all of val: the combination's stored test
predictions (what `combine` scored once) are the mean of the fold routers' weights, and
classify must give those same probabilities; a router refit on all of val would also be a
model whose val score was never measured out of fold.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from plantkit.artifacts import ROUTER_GATE_FILE
from plantkit.errors import PlantkitInputError


def fold_prefix(fold: int) -> str:
    return f"router{fold}_"


def router_arrays(fold_routers) -> dict[str, np.ndarray]:
    """Every fold's preprocessing arrays under its prefix."""
    arrays: dict[str, np.ndarray] = {}
    for fold, router in enumerate(fold_routers):
        arrays.update({fold_prefix(fold) + name: values
                       for name, values in router.preprocessing.arrays().items()})
    return arrays


def gate_files(fold_routers) -> dict[str, Any]:
    """File name -> a compile-free copy of each fold's gate (keras.Model) to save."""
    from plantkit.backend import keras

    gates = {}
    for fold, router in enumerate(fold_routers):
        gate = keras.Model.from_config(router.model.get_config())  # no loss, no optimizer
        gate.set_weights(router.model.get_weights())
        gates[ROUTER_GATE_FILE.format(fold=fold)] = gate
    return gates


def save_gates(folder: Path, gates: Mapping[str, Any]) -> None:
    """Each gate into `folder`, the combination's temporary folder (switched into place with
    the store, so a killed run leaves no half-written gate in a finished combination)."""
    for file_name, gate in gates.items():
        gate.save(folder / file_name)


def missing_gates(folder: Path, folds: int) -> list[str]:
    """The gate files of a `folds`-fold router that are not in `folder` (torch-free)."""
    return [name for name in (ROUTER_GATE_FILE.format(fold=k) for k in range(folds))
            if not (folder / name).is_file()]


def load_fold_routers(folder: Path, folds: int, arrays: Mapping[str, np.ndarray],
                      num_experts: int) -> tuple:
    """The saved fold routers (plantkit.combine.router.FoldRouter), gates in safe mode, each
    checked to fit its preprocessing and the router's `num_experts`."""
    from plantkit.backend import keras
    from plantkit.combine.router import FoldRouter, Preprocessing

    routers = []
    for fold in range(folds):
        prefix = fold_prefix(fold)
        fold_arrays = {key[len(prefix):]: value for key, value in arrays.items()
                       if key.startswith(prefix)}
        if not {"mean", "scale"} <= set(fold_arrays):
            raise PlantkitInputError(
                f"{folder}: runnable.npz lacks fold {fold}'s router preprocessing: rerun "
                "`plantkit combine --router`")
        path = folder / ROUTER_GATE_FILE.format(fold=fold)
        if not zipfile.is_zipfile(path):  # Keras would call a damaged archive "not found"
            raise PlantkitInputError(
                f"{path} is damaged (not a Keras archive): rerun `plantkit combine --router`")
        try:
            gate = keras.saving.load_model(path, compile=False, safe_mode=True)
        except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            # safe_mode refuses a gate that would run code (a Lambda layer) with a ValueError
            raise PlantkitInputError(
                f"{path} is not a loadable Keras gate ({type(exc).__name__}: {exc}): rerun "
                "`plantkit combine --router`") from exc
        preprocessing = Preprocessing.from_arrays(fold_arrays)
        shapes = (tuple(gate.input_shape[1:]), tuple(gate.output_shape[1:]))
        if shapes != ((preprocessing.output_dims,), (num_experts,)):
            raise PlantkitInputError(
                f"{path} maps {shapes[0]} inputs to {shapes[1]} weights, but its preprocessing "
                f"gives {preprocessing.output_dims} and the router has {num_experts} experts: "
                "rerun `plantkit combine --router`")
        routers.append(FoldRouter(preprocessing, gate))
    return tuple(routers)
