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

This module runs the training; its parts live beside it: plantkit.training.config (the
options, keras-free checks), .run_folder (resume and overwrite rules, train_config.json),
.build (dataset, expert, compiled recipe), .resume (epoch commits), .result (TrainResult).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from plantkit.artifacts import (
    CHECKPOINTS_DIR,
    HISTORY_FILE,
    STORE_FILE,
    TRAIN_CONFIG_FILE,
    artifact_lock,
    artifacts_root,
    discard,
)
from plantkit.backend import keras
from plantkit.data.loading import CorruptImageTally, make_loader
from plantkit.errors import PlantkitInputError
from plantkit.models.expert import load_expert, save_expert
from plantkit.predict import expert_transform_spec, predict_to_store
from plantkit.progress import progress_bar
from plantkit.training import callbacks as cb
from plantkit.training import resume, run_folder
from plantkit.training.batches import EpochBatches, keras_input
from plantkit.training.build import build_expert, compile_expert, open_training_dataset
from plantkit.training.config import TrainConfig, run_dir_of, validate
from plantkit.training.result import TrainResult
from plantkit.training.schedule import multistep_lr_callback


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the checkpoints of the last good epoch are kept."""


def train_expert(
    config: TrainConfig,
    *,
    artifacts: str | os.PathLike | None = None,
    quiet: bool = False,
    given: set[str] | None = None,
    callbacks: list[keras.callbacks.Callback] | tuple = (),
) -> TrainResult:
    """Train an expert as `config` says and predict val and test; return its TrainResult.

    `given` names the options the user set explicitly; on --resume, those that differ from
    the interrupted run's are refused (None: compare every option). `callbacks` are extra
    Keras callbacks, run after plantkit's. The run holds the expert folder's write lock from
    start to end: a second writer of the same expert is refused (or waits). Raises
    TrainingDiverged when the loss becomes NaN or infinite.
    """
    artifacts = artifacts_root(artifacts)
    config = validate(dataclasses.replace(config))
    # Also turns an --init-from expert name into its folder, which train_config.json records.
    run_dir = run_dir_of(artifacts, config)
    config.name = run_dir.name
    with artifact_lock(run_dir):
        _train_locked(config, run_dir, artifacts, quiet=quiet, given=given, callbacks=callbacks)
        return TrainResult.of_run(run_dir)


def _train_locked(config: TrainConfig, run_dir: Path, artifacts: Path, *, quiet: bool,
                  given: set[str] | None, callbacks) -> None:
    resume_from = run_folder.check_run_dir(run_dir, config)
    if resume_from is not None:
        config = run_folder.resumed_config(run_dir, config, given)
    dataset = open_training_dataset(config, artifacts, quiet=quiet)
    expert = _starting_expert(config, dataset, run_dir, resume_from, quiet=quiet)
    try:
        run_folder.write_train_config(run_dir, config, dataset)  # a resumed run: its --epochs
        compile_expert(expert, config, dataset.num_classes, dataset.splits["train"].labels)
        initial_epoch = 0
        if resume_from is not None:
            initial_epoch, _ = resume.restore(expert, resume_from)
        if initial_epoch < config.epochs:
            fit_expert(expert, config, dataset, run_dir, initial_epoch, quiet=quiet,
                       extra=callbacks)
    except BaseException:
        if resume_from is None:
            run_folder.discard_if_no_epoch(run_dir)
        raise
    _finish(run_dir, config, dataset, quiet=quiet)


def _starting_expert(config: TrainConfig, dataset, run_dir: Path, resume_from: Path | None, *,
                     quiet: bool):
    """The expert of the last committed epoch (--resume), or a new one in a clean folder."""
    if resume_from is not None:
        run_folder.check_same_dataset(run_dir, dataset)
        state = resume.read_state(resume_from)
        if state is None:  # run_folder found a resume point there; it must still be there
            raise PlantkitInputError(f"{resume_from} lost its resume point during the run")
        return load_expert(resume.verified_folder(resume_from, state, "last"))
    expert = build_expert(config, dataset)
    config.arch = expert.config["arch"]
    if run_dir.exists():  # --overwrite, or only an attempt that finished no epoch
        if not config.overwrite and not quiet and any(run_dir.iterdir()):
            _say(f"{run_dir} held an unfinished training (no finished epoch): starting it over")
        discard(run_dir)
    return expert


def _say(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(escape(message))


def fit_expert(expert, config: TrainConfig, dataset, run_dir: Path, initial_epoch: int, *,
               quiet: bool = False, extra=()) -> None:
    """Keras `fit` from `initial_epoch` to `config.epochs`, committing every epoch to
    `run_dir` (plantkit.training.resume); raises TrainingDiverged at a NaN or infinite loss."""
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

    def save_to(directory: Path) -> None:
        save_expert(expert, directory, class_ids=list(dataset.class_ids),
                    fingerprint=dataset.fingerprint, origin={"trained_by": "plantkit train"})

    checkpoints = run_dir / CHECKPOINTS_DIR
    stop_on_nan = cb.StopOnNaN()
    progress = cb.RichProgress(config.epochs, train_loader.num_images, val_loader.num_images,
                               config.batch_size, disable=quiet)
    plantkit_callbacks = [
        cb.EpochDeterminism(config.seed, [train_batches]),
        multistep_lr_callback(config.lr, config.milestones, config.gamma),
        cb.EpochStats(train_batches,
                      corrupt_count=lambda: train_tally.corrupt + val_tally.corrupt),
        stop_on_nan,
        progress,
        cb.CorruptImagesWarning([train_loader, val_loader], config.epochs),
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
        raise _diverged(stop_on_nan.diverged_at, checkpoints)


def _diverged(at: tuple[int, int], checkpoints: Path) -> TrainingDiverged:
    epoch, batch = at  # 0-based; the message counts from 1, as the progress lines do
    kept = resume.read_state(checkpoints)
    where = (f"the checkpoints of epoch {kept['next_epoch']} are kept in {checkpoints}"
             if kept else "no epoch finished, so no checkpoint was written")
    return TrainingDiverged(
        f"the training loss became NaN or infinite in epoch {epoch + 1}, batch {batch + 1}; "
        f"{where}; a lower --lr may help"
    )


def _finish(run_dir: Path, config: TrainConfig, dataset, *, quiet: bool) -> None:
    """Make the best epoch the expert of the folder and store its val and test predictions."""
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
