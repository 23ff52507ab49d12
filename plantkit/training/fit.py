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

import contextlib
import dataclasses
import math
import os
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from torch.nn import SyncBatchNorm

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
from plantkit.choices import REWEIGHTING_LOSSES
from plantkit.data.cache import cache_for_run
from plantkit.data.loading import CorruptImageTally, ImageLoader, make_loader
from plantkit.errors import PlantkitInputError
from plantkit.models.expert import load_expert, save_expert
from plantkit.predict import expert_transform_spec, predict_to_store
from plantkit.progress import progress_bar
from plantkit.training import callbacks as cb
from plantkit.training import distributed, resume, run_folder
from plantkit.training.batches import EpochBatches, keras_input
from plantkit.training.build import build_expert, compile_expert, open_training_dataset
from plantkit.training.config import (
    REFERENCE_BATCH,
    TrainConfig,
    effective_lr,
    global_batch,
    option_of,
    run_dir_of,
    validate,
)
from plantkit.training.head_features import (
    FeatureLoader,
    images_needed_by,
    stored_train_features,
)
from plantkit.training.launch import SYNC_BN_NEEDS_GPUS
from plantkit.training.losses import DeferredReweighting
from plantkit.training.mixing import BatchMixer, mixing_active
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
) -> TrainResult | None:
    """Train an expert as `config` says and predict val and test; return its TrainResult.

    `given` names the options the user set explicitly; on --resume, those that differ from
    the interrupted run's are refused (None: compare every option). `callbacks` are extra
    Keras callbacks, run after plantkit's. The run holds the expert folder's write lock from
    start to end: a second writer of the same expert is refused (or waits). Raises
    TrainingDiverged when the loss becomes NaN or infinite.

    Started by torchrun (or `plantkit train --devices N`) in each of several processes, it
    trains data-parallel (plantkit.training.distributed): `config.devices` is the number of
    processes, rank 0 holds the lock, writes and returns the TrainResult; the other
    processes return None.
    """
    artifacts = artifacts_root(artifacts)
    world = distributed.world_from_env()
    config = dataclasses.replace(config)
    if world.distributed:
        if given is not None and "devices" in given and config.devices != world.size:
            raise PlantkitInputError(f"--devices {config.devices} differs from the "
                                     f"{world.size} processes torchrun started; drop it")
        config.devices = world.size
    elif config.devices > 1:
        raise PlantkitInputError(
            f"--devices {config.devices} trains in {config.devices} processes: run "
            f"`plantkit train --devices {config.devices} ...` or torchrun (this is one process)"
        )
    distributed.init(world)
    with contextlib.ExitStack() as held:
        claimed = _claim(config, artifacts, held) if world.main else None
        run_dir = Path(distributed.broadcast_object(claimed, world))
        config.name = run_dir.name
        _train_locked(config, run_dir, artifacts, world, quiet=quiet, given=given,
                      callbacks=callbacks)
        return TrainResult.of_run(run_dir) if world.main else None


def _claim(config: TrainConfig, artifacts: Path, held: contextlib.ExitStack) -> str:
    """Rank 0: check the options, take the run folder's lock (held until `held` closes)."""
    validate(config)
    # Also turns an --init-from expert name into its folder, which train_config.json records.
    run_dir = run_dir_of(artifacts, config)
    held.enter_context(artifact_lock(run_dir))
    return str(run_dir)


def _train_locked(config: TrainConfig, run_dir: Path, artifacts: Path, world, *, quiet: bool,
                  given: set[str] | None, callbacks) -> None:
    config.name = run_dir.name
    quiet = quiet or not world.main
    resume_from = None
    if world.main:
        # Rank 0 decides the run (resumed options and point) and draws a missing embedded
        # dataset; the others follow once it has. A process that fails ends them all (the
        # launcher's rule: torchrun's and --devices').
        resume_from = run_folder.check_run_dir(run_dir, config)
        if resume_from is not None:
            config = run_folder.resumed_config(run_dir, config, given)
        dataset = open_training_dataset(config, artifacts, quiet=quiet)
    decided = distributed.broadcast_object((config.to_dict(), resume_from), world)
    if not world.main:
        config, resume_from = TrainConfig.from_dict(decided[0]), decided[1]
        dataset = open_training_dataset(config, artifacts, quiet=True)
    expert = _starting_expert(config, dataset, run_dir, resume_from, quiet=quiet, world=world)
    if config.retrain_head:
        _for_head_retraining(expert, config, fresh=resume_from is None)
    try:
        if world.main:
            run_folder.write_train_config(run_dir, config, dataset)  # a resumed run: its --epochs
            _say_batch(config, quiet)
        compile_expert(expert, config, dataset.num_classes, dataset.splits["train"].labels)
        initial_epoch = 0
        if resume_from is not None:
            initial_epoch, _ = resume.restore(expert, resume_from)
        if world.distributed:
            distributed.broadcast_module(expert.backbone)  # rank 0's weights everywhere
        if initial_epoch < config.epochs:
            fit_expert(expert, config, dataset, run_dir, initial_epoch, quiet=quiet,
                       extra=callbacks, cache_in=artifacts, world=world)
        distributed.barrier()  # every process has trained every epoch
    except BaseException:
        if resume_from is None and world.main:
            run_folder.discard_if_no_epoch(run_dir)
        raise
    if world.main:
        _finish(run_dir, config, dataset, quiet=quiet, cache_in=artifacts)


def _for_head_retraining(expert, config: TrainConfig, *, fresh: bool) -> None:
    """--retrain-head (cRT): a new classifier (a resumed run's is its checkpoint's) over the
    frozen backbone."""
    if fresh:
        torch.manual_seed(config.seed)
        expert.reset_classifier()
    expert.freeze_backbone()


def _say_batch(config: TrainConfig, quiet: bool) -> None:
    """The global batch (and the scaled rate) when they differ from what the user typed."""
    lr = effective_lr(config)
    if quiet or (config.devices == 1 and lr == config.lr):
        return
    scaled = (f"; --lr-scale linear: lr {config.lr:g} x {global_batch(config)}/"
              f"{REFERENCE_BATCH} = {lr:g}" if lr != config.lr else "")
    _say(f"global batch {global_batch(config)} ({config.batch_size} per process x "
         f"{config.devices} processes){scaled}")


def _starting_expert(config: TrainConfig, dataset, run_dir: Path, resume_from: Path | None, *,
                     quiet: bool, world):
    """The expert of the last committed epoch (--resume), or a new one in a clean folder
    (cleaned by rank 0)."""
    if resume_from is not None:
        if world.main:
            run_folder.check_same_dataset(run_dir, dataset)
        state = resume.read_state(resume_from)
        if state is None:  # run_folder found a resume point there; it must still be there
            raise PlantkitInputError(f"{resume_from} lost its resume point during the run")
        return load_expert(resume.verified_folder(resume_from, state, "last"))
    expert = build_expert(config, dataset)
    config.arch = expert.config["arch"]
    if world.main and run_dir.exists():  # --overwrite, or only an attempt that finished no epoch
        if not config.overwrite and not quiet and any(run_dir.iterdir()):
            _say(f"{run_dir} held an unfinished training (no finished epoch): starting it over")
        discard(run_dir)
    return expert


def _say(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(escape(message))


def fit_expert(expert, config: TrainConfig, dataset, run_dir: Path, initial_epoch: int, *,
               quiet: bool = False, extra=(), cache_in: Path | None = None,
               world: distributed.World = distributed.World()) -> None:
    """Keras `fit` from `initial_epoch` to `config.epochs`, committing every epoch to
    `run_dir` (plantkit.training.resume); raises TrainingDiverged at a NaN or infinite loss.

    With `config.cache`, the images come from the decoded image cache under `cache_in` (an
    artifacts root) when it holds one of `dataset` at `config.resize`. In a data-parallel
    run (`world`), this process trains on its share of every global batch and only rank 0
    writes the epochs and shows progress."""
    spec = expert_transform_spec(expert, config.resize)
    cache = None if cache_in is None else cache_for_run(
        cache_in, dataset, config.resize, enabled=config.cache, say=None if quiet else _say)
    # On an accelerator the loaders hand over uint8 crops, which the expert normalises there.
    normalize = expert.device.type == "cpu"
    if expert.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: the fastest kernels, once
    if config.sync_bn and world.distributed:
        if expert.device.type != "cuda":
            raise PlantkitInputError(SYNC_BN_NEEDS_GPUS)
        # In place: the Parameter objects (Keras's variables) and state_dict keys stay.
        SyncBatchNorm.convert_sync_batchnorm(expert.backbone)
    if config.compile:
        # In place (nn.Module.compile): the same parameters, state_dict keys and files.
        expert.backbone.compile()
    # One tally per split: more than 1 % of a split's images corrupt stops the run.
    train_tally, val_tally = CorruptImageTally(), CorruptImageTally()
    features = _stored_features_for_head(config, dataset, quiet=quiet or not world.main)
    train_loader: ImageLoader | FeatureLoader
    if features is not None:
        train_loader = FeatureLoader(features, dataset.splits["train"].labels,
                                     batch_size=config.batch_size, sampler=config.sampler,
                                     seed=config.seed, epoch=initial_epoch, rank=world.rank,
                                     world=world.size, epochs=config.epochs,
                                     defer_epoch=config.defer_epoch)
    else:
        train_loader = make_loader(dataset, "train", spec=spec, train=True,
                                   batch_size=config.batch_size, workers=config.workers,
                                   sampler=config.sampler, augment_below=config.augment_below,
                                   seed=config.seed, epoch=initial_epoch, tally=train_tally,
                                   cache=cache, normalize=normalize, rank=world.rank,
                                   world=world.size, epochs=config.epochs,
                                   defer_epoch=config.defer_epoch)
    val_loader = make_loader(dataset, "val", spec=spec, train=False,
                             batch_size=config.batch_size, workers=config.workers,
                             tally=val_tally, cache=cache, normalize=normalize)

    def train_loader_at(epoch: int):
        train_loader.set_epoch(epoch)
        return train_loader

    mixer = (BatchMixer(config.mixup, config.cutmix, config.batch_size, config.seed)
             if mixing_active(config.mixup, config.cutmix) else None)
    train_batches = EpochBatches(train_loader_at, len(train_loader), device=expert.device,
                                 min_batch=2, exact=world.distributed, mix=mixer)
    val_batches = EpochBatches(lambda _epoch: val_loader, len(val_loader), device=expert.device)

    def save_to(directory: Path) -> None:
        save_expert(expert, directory, class_ids=list(dataset.class_ids),
                    fingerprint=dataset.fingerprint, origin={"trained_by": "plantkit train"})

    checkpoints = run_dir / CHECKPOINTS_DIR
    stop_on_nan = cb.StopOnNaN()
    # Counted over every process: the global batch, the images of all shares.
    progress = cb.RichProgress(config.epochs, train_loader.num_images * world.size,
                               val_loader.num_images, global_batch(config),
                               disable=quiet or not world.main)
    plantkit_callbacks = [
        cb.EpochDeterminism(config.seed, [train_batches]),
        multistep_lr_callback(effective_lr(config), config.milestones, config.gamma),
        cb.EpochStats(train_batches, processes=world.size,
                      corrupt_count=lambda: train_tally.corrupt + val_tally.corrupt),
        stop_on_nan,
    ]
    if config.defer_epoch is not None and config.loss in REWEIGHTING_LOSSES:
        plantkit_callbacks.append(DeferredReweighting(expert.loss, config.defer_epoch))
    if world.distributed and not config.sync_bn:
        plantkit_callbacks.append(cb.BroadcastBuffers(expert.backbone))
    if world.main:  # the one writer
        plantkit_callbacks += [
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


def _stored_features_for_head(config: TrainConfig, dataset, *, quiet: bool):
    """--retrain-head: the --init-from expert's stored train features when they can stand in
    for the images (plantkit.training.head_features), else None (and why, unless quiet)."""
    if not config.retrain_head:
        return None
    features = stored_train_features(config.init_from, dataset)
    needs_images = images_needed_by(config)
    if features is not None and not needs_images:
        if not quiet:
            _say(f"--retrain-head: training the classifier on {config.init_from}'s stored "
                 f"train features ({len(features):,} rows); no image is read for training")
        return features
    if not quiet:
        if features is not None:
            why = (f"{' and '.join(option_of(k) for k in needs_images)} "
                   f"need{'s' if len(needs_images) == 1 else ''} the images")
        elif not Path(str(config.init_from)).is_dir():
            why = "--init-from is a checkpoint file, without a prediction store"
        else:
            why = ("its store holds no features of every train image (plantkit predict "
                   "--split train --features makes them)")
        _say(f"--retrain-head: training on the images, through the frozen backbone: {why}")
    return None


def _diverged(at: tuple[int, int], checkpoints: Path) -> TrainingDiverged:
    epoch, batch = at  # 0-based; the message counts from 1, as the progress lines do
    kept = resume.read_state(checkpoints)
    where = (f"the checkpoints of epoch {kept['next_epoch']} are kept in {checkpoints}"
             if kept else "no epoch finished, so no checkpoint was written")
    return TrainingDiverged(
        f"the training loss became NaN or infinite in epoch {epoch + 1}, batch {batch + 1}; "
        f"{where}; a lower --lr may help"
    )


def _finish(run_dir: Path, config: TrainConfig, dataset, *, quiet: bool,
            cache_in: Path | None = None) -> None:
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
                         resize=config.resize, on_batch=advance,
                         cache_in=cache_in if config.cache else None,
                         announce_cache=False,  # fit_expert has said it
                         warn=None if quiet else _say)
