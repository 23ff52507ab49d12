"""Train an expert: the Pl@ntNet-300K recipe with Keras `fit`, then predict val and test.

The run folder ARTIFACTS/experts/<name>/ holds, while training:

- `train_config.json`: the TrainConfig and the dataset's fingerprint and class ids,
- `history.csv`: one row per epoch,
- `checkpoints/`: the resume point `state.json` and the epoch folders it names (the last and
  the best epoch; see plantkit.training.resume),

and once training has finished, the expert itself (`expert.json`, `weights.pt`: the
best epoch by val top-1, as the dataset authors kept it) and its `predictions.h5`.

A run that fails before its first epoch is committed (bad input found while training, a
crash, Ctrl-C) removes its folder again; one killed that early leaves only
`train_config.json`, `history.csv` and `checkpoints/` without `state.json`, which the next
fresh run of the name replaces without --overwrite. Anything else in the folder (an
expert, a finished epoch) is protected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import warnings
from pathlib import Path

import plantkit  # noqa: F401  (sets the torch backend before keras is imported)

import keras  # isort: skip

from plantkit.artifacts import (
    CHECKPOINTS_DIR,
    HISTORY_FILE,
    STORE_FILE,
    TRAIN_CONFIG_FILE,
    artifact_lock,
    artifacts_root,
    discard,
    read_json,
    write_text,
)
from plantkit.errors import PlantkitInputError
from plantkit.training import config as _config
from plantkit.training import resume

# The options and their torch-free checks live in plantkit.training.config (the CLI runs
# them before importing keras); re-exported here, where callers have always found them.
from plantkit.training.config import (  # noqa: F401
    DEFAULT_ARCH,
    DERIVED_WHEN_UNSET,
    LOSSES,
    RESUMABLE_CHANGES,
    SAMPLERS,
    TrainConfig,
    option_of,
    validate,
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the checkpoints of the last good epoch are kept."""


def train_expert(
    config: TrainConfig,
    *,
    artifacts: str | os.PathLike | None = None,
    quiet: bool = False,
    given: set[str] | None = None,
    callbacks: list[keras.callbacks.Callback] | tuple = (),
) -> Path:
    """Train an expert as `config` says and predict val and test; return its folder.

    `given` names the options the user set explicitly; on --resume, those that differ from
    the interrupted run's are refused (None: compare every option). `callbacks` are extra
    Keras callbacks, run after plantkit's. The run holds the expert folder's write lock from
    start to end: a second writer of the same expert is refused (or waits).
    """
    artifacts = artifacts_root(artifacts)
    config = validate(dataclasses.replace(config))
    run_dir = _run_dir(artifacts, config)
    config.name = run_dir.name
    with artifact_lock(run_dir):
        _train_locked(config, run_dir, artifacts, quiet=quiet, given=given, callbacks=callbacks)
    return run_dir


def _train_locked(config: TrainConfig, run_dir: Path, artifacts: Path, *, quiet: bool,
                  given: set[str] | None, callbacks) -> None:
    resume_from = _check_run_dir(run_dir, config)
    if resume_from is not None:
        config = _resumed_config(run_dir, config, given)

    dataset = _open_dataset(config, artifacts, quiet=quiet)
    if resume_from is not None:
        _check_same_dataset(run_dir, dataset)
        state = resume.read_state(resume_from)
        expert = _load_expert(resume.verified_folder(resume_from, state, "last"))
    else:
        expert = _build_expert(config, dataset)
        config.arch = expert.config["arch"]
        if run_dir.exists():  # --overwrite, or only an attempt that finished no epoch
            if not config.overwrite and not quiet and any(run_dir.iterdir()):
                _say(f"{run_dir} held an unfinished training (no finished epoch): starting "
                     "it over")
            discard(run_dir)
    try:
        _write_train_config(run_dir, config, dataset)  # a resumed run records its --epochs
        compile_expert(expert, config, dataset.num_classes, dataset.splits["train"].labels)
        initial_epoch = 0
        if resume_from is not None:
            initial_epoch, _ = resume.restore(expert, resume_from)
        if initial_epoch < config.epochs:
            _fit(expert, config, dataset, run_dir, initial_epoch, quiet=quiet, extra=callbacks)
    except BaseException:
        if resume_from is None:
            _discard_if_no_epoch(run_dir)
        raise
    _finish(run_dir, config, dataset, quiet=quiet)


def _say(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(escape(message))


def _discard_if_no_epoch(run_dir: Path) -> None:
    """After a failed fresh run: remove its folder unless an epoch was committed (then it is
    resumable). Errors here must not hide the failure being reported."""
    with contextlib.suppress(Exception):
        if resume.read_state(run_dir / CHECKPOINTS_DIR) is None:
            discard(run_dir)


def _holds_only_an_unfinished_attempt(run_dir: Path) -> bool:
    return _config.holds_only_an_unfinished_attempt(run_dir)


def _run_dir(artifacts: Path, config: TrainConfig) -> Path:
    # Also turns an --init-from expert name into its folder, which train_config.json records.
    return _config.run_dir_of(artifacts, config)


def _check_run_dir(run_dir: Path, config: TrainConfig) -> Path | None:
    """The checkpoints folder to resume from, or None for a fresh run; refuses to clobber."""
    return _config.check_run_dir(
        run_dir, config,
        has_resume_point=lambda checkpoints: resume.read_state(checkpoints) is not None,
    )


def _resumed_config(run_dir: Path, requested: TrainConfig, given: set[str] | None) -> TrainConfig:
    saved = _read_train_config(run_dir)
    previous = TrainConfig.from_dict(saved["config"])
    requested_values, previous_values = requested.to_dict(), previous.to_dict()
    compared = set(requested_values) if given is None else set(given)
    for name in sorted(compared - RESUMABLE_CHANGES):
        if name in DERIVED_WHEN_UNSET and requested_values.get(name) is None:
            continue
        if name in requested_values and requested_values[name] != previous_values.get(name):
            raise PlantkitInputError(
                f"--resume: {option_of(name)} {requested_values[name]} differs from "
                f"the interrupted run's {previous_values.get(name)}; drop it, or train a new "
                "expert with --expert"
            )
    changes = {name: requested_values[name] for name in RESUMABLE_CHANGES}
    if given is not None:
        changes = {name: value for name, value in changes.items()
                   if name in given or name in ("resume", "overwrite")}
    return validate(TrainConfig.from_dict({**previous_values, **changes}))


def _read_train_config(run_dir: Path) -> dict:
    return read_json(run_dir / TRAIN_CONFIG_FILE, "the training's options")


def _write_train_config(run_dir: Path, config: TrainConfig, dataset) -> None:
    carve = None
    if dataset.val_from_train is not None:
        carve = {"fraction": dataset.val_from_train, "seed": dataset.val_seed}
    document = {
        "config": config.to_dict(),
        "dataset": {
            "root": str(dataset.root),
            "fingerprint": dataset.fingerprint,
            "class_ids": list(dataset.class_ids),
            # Open the root with open_dataset(root, val_from_train=fraction, seed=seed) to
            # get the same splits (None: the dataset's own val folder).
            "val_from_train": carve,
        },
    }
    write_text(run_dir / TRAIN_CONFIG_FILE, json.dumps(document, indent=2) + "\n")


def _open_dataset(config: TrainConfig, artifacts: Path, *, quiet: bool):
    from plantkit.data.layout import NoValSplit

    try:
        return _open_dataset_of(config, artifacts, quiet=quiet)
    except NoValSplit as exc:
        raise PlantkitInputError(
            f"{exc.root} has no val split; pass --val-from-train 0.1 to carve a stratified "
            "val split from train (--val-seed picks it, default 0)"
        ) from None


def _open_dataset_of(config: TrainConfig, artifacts: Path, *, quiet: bool):
    from plantkit.data.layout import open_dataset

    def opened(root):
        return open_dataset(root, val_from_train=config.val_from_train, seed=config.val_seed)

    if config.data is not None:
        return opened(config.data)
    from plantkit.data.embedded import EMBEDDED, embedded_root, ensure_embedded_dataset
    from plantkit.data.profiles import SPLITS, make_profile
    from plantkit.progress import progress_bar

    if (embedded_root(artifacts) / "images").is_dir():
        return opened(embedded_root(artifacts))
    counts = make_profile(EMBEDDED["profile"], classes=EMBEDDED["classes"], scale=EMBEDDED["scale"])
    total = int(counts[list(SPLITS)].to_numpy().sum())
    with progress_bar("drawing the embedded dataset", total=total, disable=quiet) as advance:
        return opened(ensure_embedded_dataset(artifacts, on_image=advance))


def _check_same_dataset(run_dir: Path, dataset) -> None:
    recorded = _read_train_config(run_dir)["dataset"]
    if recorded["fingerprint"] != dataset.fingerprint:
        raise PlantkitInputError(
            f"--resume: the dataset at {dataset.root} (fingerprint {dataset.fingerprint}) is "
            f"not the one the run was trained on ({recorded['root']}, fingerprint "
            f"{recorded['fingerprint']}); pass --data with that dataset"
        )


def _load_expert(directory: Path):
    from plantkit.models.expert import load_expert

    return load_expert(directory)


def _build_expert(config: TrainConfig, dataset):
    """A new expert for `dataset`: random, pretrained (cache or --weights), or --init-from."""
    import torch

    from plantkit.models import checkpoints
    from plantkit.models.expert import IMAGENET_MEAN, IMAGENET_STD, create_expert, load_expert

    num_classes = dataset.num_classes
    init = Path(config.init_from) if config.init_from else None
    torch.manual_seed(config.seed)  # the random initial weights, too, follow --seed
    if init is not None and init.is_dir():
        expert = load_expert(init)
        _check_init_expert(expert, init, config, dataset)
        return expert
    arch = config.arch or DEFAULT_ARCH
    if init is not None:
        mean, std = IMAGENET_MEAN, IMAGENET_STD  # the released models' normalisation
    elif config.pretrained or config.weights:
        mean, std = None, None  # create_expert picks the pretrained weights' own
    else:
        mean, std = _dataset_mean_std(config, dataset)
    expert = create_expert(arch, num_classes, pretrained=config.pretrained,
                           weights=config.weights, input_size=config.crop, mean=mean, std=std,
                           amp=config.amp)
    if init is not None:
        # Unlike create_expert(weights=...), a head for another number of classes is an error:
        # continuing training means keeping the classifier.
        state, _ = checkpoints.read_checkpoint(init)
        checkpoints.load_backbone_state(
            expert.backbone, state, classifier=expert.classifier_name,
            num_classes=num_classes, origin=f"--init-from {init}",
        )
    return expert


def _check_init_expert(expert, init: Path, config: TrainConfig, dataset) -> None:
    from plantkit.models.expert_files import read_expert_json

    expert_config = expert.config
    if expert_config["num_classes"] != dataset.num_classes:
        raise PlantkitInputError(
            f"--init-from {init} has {expert_config['num_classes']:,} classes but the dataset "
            f"at {dataset.root} has {dataset.num_classes:,}; use an expert of the same classes"
        )
    class_ids = read_expert_json(init).get("class_ids")
    if class_ids is not None and list(class_ids) != list(dataset.class_ids):
        raise PlantkitInputError(
            f"--init-from {init} was trained on other class ids than the dataset at "
            f"{dataset.root}; use an expert of the same classes"
        )
    if config.arch is not None and config.arch != expert_config["arch"]:
        raise PlantkitInputError(
            f"--arch {config.arch} differs from the --init-from expert's {expert_config['arch']}; "
            "drop --arch"
        )


def _dataset_mean_std(config: TrainConfig, dataset):
    from plantkit.data.transforms import dataset_mean_std

    return dataset_mean_std(dataset, "train", seed=config.seed, min_side=config.resize)


def compile_expert(expert, config: TrainConfig, num_classes: int, train_labels=None) -> None:
    """Compile `expert` for training: TorchSGD, (weighted) cross-entropy, top-1/top-5/macro.

    `train_labels` are needed for `config.loss == "weighted"` (balanced class weights).
    """
    from plantkit.training.losses import CrossEntropy, balanced_class_weights
    from plantkit.training.metrics import accuracy_metrics
    from plantkit.training.optim import TorchSGD

    class_weights = None
    if config.loss == "weighted":
        class_weights = balanced_class_weights(train_labels, num_classes)
    expert.compile(
        optimizer=TorchSGD(config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           l2_weight_decay=config.weight_decay),
        loss=CrossEntropy(class_weights),
        metrics=accuracy_metrics(num_classes),
        jit_compile=False,
    )


def _fit(expert, config: TrainConfig, dataset, run_dir: Path, initial_epoch: int, *,
         quiet: bool, extra) -> None:
    from plantkit.data.loading import CorruptImageTally, make_loader
    from plantkit.models.expert import save_expert
    from plantkit.predict import expert_transform_spec
    from plantkit.training import callbacks as cb
    from plantkit.training.batches import EpochBatches, keras_input
    from plantkit.training.schedule import multistep_lr_callback

    spec = expert_transform_spec(expert, config.resize)
    # One tally per split: more than 1 % of a split's images corrupt stops the run.
    train_tally, val_tally = CorruptImageTally(), CorruptImageTally()
    train_loader = make_loader(dataset, "train", spec=spec, train=True,
                               batch_size=config.batch_size, workers=config.workers,
                               sampler=config.sampler, augment_below=config.augment_below,
                               seed=config.seed, epoch=initial_epoch, tally=train_tally)
    val_loader = make_loader(dataset, "val", spec=spec, train=False,
                             batch_size=config.batch_size, workers=config.workers,
                             tally=val_tally)

    def train_loader_at(epoch: int):
        train_loader.set_epoch(epoch)
        return train_loader

    train_batches = EpochBatches(train_loader_at, len(train_loader), device=expert.device,
                                 min_batch=2)
    val_batches = EpochBatches(lambda _epoch: val_loader, len(val_loader), device=expert.device)
    n_train, n_val = train_loader.num_images, val_loader.num_images

    def save_to(directory: Path) -> None:
        save_expert(expert, directory, class_ids=list(dataset.class_ids),
                    fingerprint=dataset.fingerprint, origin={"trained_by": "plantkit train"})

    checkpoints = run_dir / CHECKPOINTS_DIR
    stop_on_nan = cb.StopOnNaN()
    progress = cb.RichProgress(config.epochs, n_train, n_val, config.batch_size, disable=quiet)
    plantkit_callbacks = [
        cb.EpochDeterminism(config.seed, [train_batches]),
        multistep_lr_callback(config.lr, config.milestones, config.gamma),
        cb.EpochStats(train_batches,
                      corrupt_count=lambda: train_tally.corrupt + val_tally.corrupt),
        stop_on_nan,
        progress,
        CorruptImagesWarning([train_loader, val_loader], config.epochs),
        resume.EpochCommit(run_dir, checkpoints, run_dir / HISTORY_FILE, save_to),
    ]
    try:
        with warnings.catch_warnings():
            # A pass shortened by a batch of only corrupt images ends the epoch early, which
            # Keras announces as running out of data; the corrupt images have their own line.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            expert.fit(keras_input(train_batches), validation_data=keras_input(val_batches),
                       epochs=config.epochs, initial_epoch=initial_epoch, verbose=0,
                       shuffle=False, callbacks=[*plantkit_callbacks, *extra])
    finally:
        progress.close()
    if stop_on_nan.diverged_at is not None:
        epoch, batch = stop_on_nan.diverged_at
        kept = resume.read_state(checkpoints)
        where = (f"the checkpoints of epoch {kept['next_epoch'] - 1} are kept in {checkpoints}"
                 if kept else "no epoch finished, so no checkpoint was written")
        raise TrainingDiverged(
            f"the training loss became NaN or infinite in epoch {epoch + 1}, batch {batch + 1}; "
            f"{where}; a lower --lr may help"
        )


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
        passes = [(loader.split, loader.last_pass) for loader in self.loaders
                  if loader.last_pass.corrupt]
        if not passes:
            return None
        total = sum(tally.corrupt for _, tally in passes)
        counts = ", ".join(f"{tally.corrupt} of {tally.seen} {split}" for split, tally in passes)
        files = "; ".join(tally.named_files() for _, tally in passes)
        command = passes[0][1].verify_command
        return (f"warning: epoch {epoch + 1}/{self.epochs} skipped {total} corrupt "
                f"image{'s' if total != 1 else ''} ({counts} images): {files}; list them all "
                f"with `{command}`, then remove or replace them")

    def on_epoch_end(self, epoch, logs=None):
        line = self.line(epoch)
        if line is not None:
            print(line, file=self.stream or sys.stderr, flush=True)


def _finish(run_dir: Path, config: TrainConfig, dataset, *, quiet: bool) -> None:
    """Make the best epoch the expert of the folder and store its val and test predictions."""
    from plantkit.models.expert import load_expert, save_expert
    from plantkit.predict import predict_to_store
    from plantkit.progress import progress_bar

    checkpoints = run_dir / CHECKPOINTS_DIR
    state = resume.read_state(checkpoints)
    if state is None or not math.isfinite(state["best_value"]):
        raise TrainingDiverged(f"no epoch of {run_dir.name} ended with a finite val top-1")
    expert = load_expert(resume.verified_folder(checkpoints, state, "best"))
    origin = {"trained_by": "plantkit train", "best_epoch": state["best_epoch"],
              "val_top1": state["best_value"], "train_config": TRAIN_CONFIG_FILE}
    save_expert(expert, run_dir, class_ids=list(dataset.class_ids),
                fingerprint=dataset.fingerprint, origin=origin)
    splits = ["val", "test"]
    total = sum(len(dataset.splits[s]) for s in splits)
    with progress_bar("predicting val and test", total=total, disable=quiet) as advance:
        predict_to_store(expert, dataset, splits, run_dir / STORE_FILE,
                         features=config.features, dtype=config.predict_dtype,
                         batch_size=config.batch_size, workers=config.workers,
                         resize=config.resize, on_batch=advance)
