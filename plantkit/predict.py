"""Predict dataset splits with an expert into its HDF5 store, batch by batch.

Outputs go straight from each batch into the store's preallocated datasets: memory stays
at one batch whatever the split's size (Keras's `model.predict` would hold every output).

Corrupt images follow training's rule (plantkit.data.loading): up to 1 % of a split is
skipped and announced in one warning line; more refuses the split and stores nothing. The
skipped images' rows are dropped (the store's datasets shrink in place at the end, block by
block) and their paths recorded in the store (`Store.skipped_paths`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from plantkit.artifacts import STORE_FILE, artifact_lock, artifacts_root, read_train_config
from plantkit.errors import PlantkitInputError

if TYPE_CHECKING:  # the store imports h5py: loaded when predicting
    from plantkit.store import Classifier

# The eval transform of the Pl@ntNet-300K recipe resizes to 256 and centre-crops 224.
RESIZE_RATIO = 256 / 224


def default_resize(crop: int) -> int:
    """The resize that goes with `crop` in the recipe's proportions (224 -> 256)."""
    return int(round(crop * RESIZE_RATIO))


def expert_transform_spec(expert, resize: int, crop: int | None = None):
    """The transform settings for `expert`: resize, crop (default: its input size), its
    normalisation. A bad resize or crop raises PlantkitInputError naming --resize / --crop."""
    from plantkit.data.transforms import TransformSpec

    config = expert.config
    return TransformSpec(resize=resize, crop=config["input_size"] if crop is None else crop,
                         mean=tuple(config["mean"]), std=tuple(config["std"]))


def check_runs_at(expert, size: int) -> None:
    """Refuse (naming --crop) an input size the expert's network cannot take.

    CNNs with global pooling take any size down to their total stride; a ViT (a fixed
    patch grid) or a network whose feature map would vanish does not. One forward pass of
    one black image tells.
    """
    import torch

    try:
        with torch.inference_mode():
            expert.backbone.eval()(torch.zeros(1, 3, size, size, device=expert.device))
    except Exception as exc:  # noqa: BLE001 - any failure of the network means "not at this size"
        config = expert.config
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlantkitInputError(
            f"--crop {size}: the expert's {config['arch']} cannot run on {size} px images "
            f"({first}); use its input size {config['input_size']} or another --crop"
        ) from exc


def predict_to_store(
    expert,
    dataset,
    splits: Sequence[str],
    store_path: str | os.PathLike,
    *,
    name: str | None = None,
    features: bool = False,
    dtype: str = "float32",
    batch_size: int = 64,
    workers: int = 2,
    resize: int | None = None,
    crop: int | None = None,
    append: bool = False,
    on_batch: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    cache_in: str | os.PathLike | None = None,
    announce_cache: bool = True,
) -> Path:
    """Write `expert`'s logits (and with `features` its penultimate features) for `splits`.

    The store is named `name` (default: the folder holding `store_path`) and is written to a
    temporary file renamed into place at the end: an error leaves any earlier store as it
    was. `append` keeps the earlier store's other splits. The eval transform is resize
    (default: `default_resize` of the crop) then centre crop to `crop` (default: the expert's
    input size; another size must be one the network runs at), with the expert's
    normalisation; the store's attributes record the resize, the crop (`input_size`) and the
    GFLOPs at that crop. `on_batch(n)` is called with each batch's size.

    With `features` the store also keeps the expert's last layer (plantkit.store.Classifier:
    `linear_classifier`) when it is a Linear over those features that gives the logits of
    the first batch from its features (`reproduces_logits`); else none.

    Corrupt images: more than 1 % of a split's images (or all of them) refuses it
    (PlantkitInputError) and nothing is stored; fewer are left out of the store (their paths
    recorded: `Store.skipped_paths(split)`) and announced, once the store is written, in one
    line (`plantkit.data.loading.skipped_corrupt_line`, as training's) passed to `warn`
    (default: printed on stderr).

    `cache_in`: an artifacts root whose decoded image cache of `dataset` at this resize, if
    there is one, the images are read from (announced through `warn` if `announce_cache`;
    plantkit.data.cache).
    """
    from plantkit.data.cache import cache_for_run
    from plantkit.data.loading import make_loader, skipped_corrupt_line
    from plantkit.store import StoreWriter

    store_path = Path(store_path)
    _check_can_predict(expert, dataset, splits)
    num_classes = expert.config["num_classes"]
    size = expert.config["input_size"] if crop is None else crop
    spec = expert_transform_spec(expert, default_resize(size) if resize is None else resize,
                                 crop)
    info = expert.info
    gflops = _gflops_at(expert, int(spec.crop))
    attrs = {"architecture": expert.config["arch"], "source": expert.config["source"],
             "params": int(info["params"]), "gflops": gflops,
             "input_size": int(spec.crop), "resize": int(spec.resize)}
    warn = warn or _print_on_stderr
    cache = (None if cache_in is None
             else cache_for_run(cache_in, dataset, int(spec.resize), say=warn,
                                   announce=announce_cache))
    train_counts = np.bincount(dataset.splits["train"].labels, minlength=dataset.num_classes)
    passes = []  # (split, the tally of its pass): what the warning line counts
    # Kept beside the features when the expert's last layer is a Linear over them, and only
    # once the first batch showed that it turns them into the logits (tau-normalisation).
    classifier = linear_classifier(expert) if features else None
    classifier_checked = classifier is None
    # The expert's folder is the artifact: one writer of it at a time (train holds it already).
    with artifact_lock(store_path.parent), \
            StoreWriter(store_path, name=name or store_path.parent.name, kind="expert",
                     class_ids=list(dataset.class_ids), fingerprint=dataset.fingerprint,
                     attrs=attrs, train_counts=train_counts, append=append) as writer:
        for split in splits:
            rows = dataset.splits[split]
            # uint8 crops to an accelerator: the expert normalises them there.
            loader = make_loader(dataset, split, spec=spec, train=False, batch_size=batch_size,
                                 workers=workers, cache=cache,
                                 normalize=expert.device.type == "cpu")
            out = writer.create_split(split, n_rows=len(rows), num_classes=num_classes,
                                      dtype=dtype,
                                      feature_dim=info["feature_dim"] if features else None,
                                      skippable=True)
            predicted = np.zeros(len(rows), dtype=bool)
            for images, _labels, batch_indices in loader:
                logits, feats = expert.predict_batch(images, features=features)
                if classifier is not None and not classifier_checked:
                    if not reproduces_logits(classifier, logits, feats,
                                             amp=bool(expert.config["amp"])):
                        classifier = None
                    classifier_checked = True
                indices = np.asarray(batch_indices)
                _write_rows(out, rows, indices, logits, feats)
                predicted[indices] = True
                if on_batch is not None:
                    on_batch(len(indices))
            # The loader has refused the split if more than 1 % of it was corrupt.
            skipped = np.flatnonzero(~predicted)
            if len(skipped) == len(rows):  # (the loader's limit refuses this already)
                raise PlantkitInputError(
                    f"no image of the {split} split could be decoded; no predictions were "
                    f"stored: list them with `{loader.last_pass.verify_command}`"
                )
            if len(skipped):
                out.skip_unwritten([rows.paths[i] for i in skipped])
                if on_batch is not None:
                    on_batch(len(skipped))  # read too: the progress ends at the split's size
            passes.append((split, loader.last_pass))
        if features:  # unchecked (no image predicted): none
            writer.set_classifier(classifier if classifier_checked else None)
    line = skipped_corrupt_line(f"predicting {', '.join(splits)}", passes)
    if line is not None:
        warn(line)
    return store_path


def linear_classifier(expert) -> Classifier | None:
    """The expert's last layer as a plantkit.store.Classifier when it is a torch Linear over
    the features prediction stores (its in_features the feature dim), else None."""
    import torch

    from plantkit.store import Classifier

    head = expert.backbone.get_submodule(expert.classifier_name)
    if not isinstance(head, torch.nn.Linear) or head.in_features != expert.info["feature_dim"]:
        return None
    weight = head.weight.detach().float().cpu().numpy()
    bias = (np.zeros(weight.shape[0], np.float32) if head.bias is None
            else head.bias.detach().float().cpu().numpy())
    return Classifier(weight, bias, expert.classifier_name)


# |features @ W.T + b - logits| allowed, relative to sum_d |f_d w_cd| + |b_c|: float32
# rounding (and TF32) stays far below 2^-10; bfloat16 autocast rounds the inputs and the
# output to 8 bits (2^-9 each).
REPRODUCE_RTOL = {False: 2.0 ** -10, True: 2.0 ** -6}


def reproduces_logits(classifier: Classifier, logits, features, *, amp: bool = False) -> bool:
    """Whether features @ weight.T + bias gives the logits (torch tensors or arrays of one
    batch) to rounding: a head with more than the one Linear (two heads averaged, a
    scaled cosine layer ...) does not."""
    logits = _as_float32(logits)
    features = _as_float32(features)
    weight, bias = classifier.weight, classifier.bias
    bound = np.abs(features) @ np.abs(weight).T + np.abs(bias)
    error = np.abs(features @ weight.T + bias - logits)
    return bool(np.all(error <= REPRODUCE_RTOL[bool(amp)] * bound + 1e-5))


def _as_float32(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def _check_can_predict(expert, dataset, splits: Sequence[str]) -> None:
    unknown = [s for s in splits if s not in dataset.splits]
    if unknown:
        raise PlantkitInputError(
            f"split {unknown[0]!r} is not in the dataset at {dataset.root}: use "
            f"{', '.join(dataset.splits)}"
        )
    num_classes = expert.config["num_classes"]
    if num_classes != dataset.num_classes:
        raise PlantkitInputError(
            f"the expert has {num_classes:,} classes but the dataset at {dataset.root} has "
            f"{dataset.num_classes:,}"
        )


def _gflops_at(expert, crop: int) -> float:
    """GFLOPs an image at `crop` px (refused if the network cannot run at it)."""
    if crop == int(expert.config["input_size"]):
        return float(expert.info["gflops"])
    from plantkit.models.flops import count_gflops

    check_runs_at(expert, crop)
    return float(count_gflops(expert.backbone, crop))


def _print_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _write_rows(out, rows, indices: np.ndarray, logits, feats) -> None:
    """Write a batch whose row indices may have gaps (skipped images) as contiguous runs."""
    logits = logits.float().cpu().numpy()
    labels = rows.labels[indices]
    feats = None if feats is None else feats.float().cpu().numpy()
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    for run in np.split(np.arange(len(indices)), breaks):
        if not len(run):
            continue
        first = int(indices[run[0]])
        out.write(first, logits[run], labels[run],
                  [rows.paths[i] for i in indices[run]],
                  None if feats is None else feats[run])


def predict_expert(
    expert_dir: str | os.PathLike,
    splits: Sequence[str] = ("val", "test"),
    *,
    data: str | os.PathLike | None = None,
    artifacts: str | os.PathLike | None = None,
    features: bool = False,
    dtype: str = "float32",
    batch_size: int = 64,
    workers: int | None = None,
    resize: int | None = None,
    crop: int | None = None,
    progress: Callable[[str, int], AbstractContextManager[Callable[[int], None]]] | None = None,
    warn: Callable[[str], None] | None = None,
    cache: bool = True,
) -> Path:
    """Recompute the predictions of the expert in `expert_dir` into its store; return the store.

    What `plantkit predict` runs. See `load_for_prediction` for the dataset chosen and
    refused, and the resize used unless `resize` is given; `crop` overrides the expert's
    input size for this run. Other splits already in the store are kept. `workers` None:
    `plantkit.choices.default_workers()`. `progress(description, total)`, if given, is
    entered once the images to read are known and yields `advance(n)` (e.g.
    `plantkit.progress.progress_bar`). `cache`: read the images from the decoded image
    cache under `artifacts` when it holds a matching one (plantkit.data.cache).
    """
    from plantkit.choices import default_workers

    expert_dir = Path(expert_dir)
    # One writer of the expert folder: nothing may change it between reading and writing.
    with artifact_lock(expert_dir):
        expert, dataset, recorded = load_for_prediction(expert_dir, data=data,
                                                        artifacts=artifacts)
        total = sum(len(dataset.splits[s]) for s in splits if s in dataset.splits)
        with (progress(f"predicting {', '.join(splits)}", total) if progress is not None
              else contextlib.nullcontext(None)) as advance:
            return predict_to_store(
                expert, dataset, splits, expert_dir / STORE_FILE, name=expert_dir.name,
                features=features, dtype=dtype, batch_size=batch_size,
                workers=default_workers() if workers is None else workers,
                resize=recorded if resize is None else resize, crop=crop, append=True,
                on_batch=advance, warn=warn,
                cache_in=artifacts_root(artifacts) if cache else None,
            )


def load_for_prediction(
    expert_dir: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    artifacts: str | os.PathLike | None = None,
):
    """(expert, dataset, resize) for predicting with the expert in `expert_dir`.

    The dataset is `data`, else the one the expert was trained on, else the embedded
    stand-in under `artifacts`; one whose fingerprint or class ids differ from those the
    expert records is refused. `resize` is the training run's (train_config.json), else the
    one `plantkit import plantnet` recorded in the expert's origin, else None (unknown:
    predict_to_store then uses `default_resize`).
    """
    from plantkit.data.layout import open_dataset
    from plantkit.models.expert import load_expert
    from plantkit.models.expert_files import check_expert_folder

    expert_dir = Path(expert_dir)
    document = check_expert_folder(expert_dir)
    training = read_train_config(expert_dir)
    if data is None and training is not None:
        data = training["dataset"]["root"]
    if data is None:
        from plantkit.data.embedded import ensure_embedded_dataset

        data = ensure_embedded_dataset(artifacts_root(artifacts))
    # A val split carved from train (plantkit train --val-from-train) is carved again.
    carve = training["dataset"].get("val_from_train") if training is not None else None
    if carve:
        dataset = open_dataset(data, val_from_train=carve["fraction"], seed=carve["seed"])
    else:
        dataset = open_dataset(data)
    _check_dataset_matches(expert_dir.name, document, dataset)
    return load_expert(expert_dir), dataset, recorded_resize(expert_dir, document)


def recorded_resize(expert_dir: Path, document: dict) -> int | None:
    """The resize an expert's predictions were made with: the training run's
    (train_config.json), else the one `plantkit import plantnet` recorded in its origin, else
    None (predict_to_store then uses `default_resize` of the crop)."""
    training = read_train_config(Path(expert_dir))
    if training is not None:
        return training["config"]["resize"]
    return (document.get("origin") or {}).get("resize")


def _check_dataset_matches(name: str, document: dict, dataset) -> None:
    fingerprint = document.get("fingerprint")
    if fingerprint is not None and fingerprint != dataset.fingerprint:
        raise PlantkitInputError(
            f"the dataset at {dataset.root} (fingerprint {dataset.fingerprint}) is not the one "
            f"expert {name} was trained on (fingerprint {fingerprint}); pass --data with that "
            "dataset"
        )
    class_ids = document.get("class_ids")
    if class_ids is not None and list(class_ids) != list(dataset.class_ids):
        raise PlantkitInputError(
            f"the dataset at {dataset.root} has other class ids than expert {name} "
            f"({dataset.num_classes:,} vs {len(class_ids):,} classes); use a dataset of the "
            "expert's classes"
        )
    num_classes = document["config"]["num_classes"]
    if num_classes != dataset.num_classes:
        raise PlantkitInputError(
            f"expert {name} has {num_classes:,} classes but the dataset at {dataset.root} has "
            f"{dataset.num_classes:,}"
        )
