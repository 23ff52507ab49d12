"""The options of a training run and the checks that need neither torch nor keras.

`plantkit train` runs these before it imports anything heavy, so a bad option, a missing
file or a protected run folder is refused at once; plantkit.training.fit runs them again
(under the run folder's lock) before it trains, with plantkit.training.run_folder's rules
that need the resume point itself.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from plantkit.artifacts import (
    CHECKPOINT_STATE_FILE,
    CHECKPOINTS_DIR,
    EPOCH_DIR_PREFIX,
    EXPERT_FILE,
    EXPERTS_DIR,
    HISTORY_FILE,
    TRAIN_CONFIG_FILE,
    check_name,
    expert_dir,
    is_visible,
)
from plantkit.choices import (
    LOGITS_DTYPES,
    LOSS_OPTIONS,
    LOSSES,
    LR_SCALES,
    REWEIGHTING_LOSSES,
    SAMPLERS,
    default_workers,
)
from plantkit.errors import PlantkitInputError
from plantkit.models.arch_names import resolve_arch
from plantkit.models.expert_files import check_expert_folder, check_file, read_expert_json

DEFAULT_ARCH = "resnet18"


# The `plantkit train` option of a TrainConfig field where it is not --field-name.
_OPTION_OF_FIELD = {"name": "--expert", "predict_dtype": "--dtype", "cache": "--no-cache"}


def option_of(field_name: str) -> str:
    """The command-line option that sets TrainConfig field `field_name`, for messages."""
    return _OPTION_OF_FIELD.get(field_name, "--" + field_name.replace("_", "-"))


@dataclass
class TrainConfig:
    """Every option of a training run; the defaults are the Pl@ntNet-300K authors' recipe."""

    data: str | None = None  # dataset root; None: the embedded stand-in
    # A dataset without val: carve this stratified fraction of train, drawn with val_seed
    # (not --seed: experts of several seeds share one val split, so they can be combined).
    val_from_train: float | None = None
    val_seed: int = 0
    arch: str | None = None  # None: resnet18, or the architecture of the --init-from expert
    name: str | None = None  # None: the architecture
    pretrained: bool = False  # timm/torchvision ImageNet weights from the local cache
    weights: str | None = None  # a weights file to start from; another head is replaced
    # A plantkit expert folder, a Pl@ntNet-300K checkpoint file, or the name of an expert under
    # ARTIFACTS/experts (run_dir_of replaces a name by its folder, which the run records).
    init_from: str | None = None
    # cRT (Kang et al. 2020): keep the --init-from backbone frozen, retrain a new classifier.
    retrain_head: bool = False
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4  # coupled L2, as torch.optim.SGD
    milestones: tuple[int, ...] = (20, 25)
    gamma: float = 0.1
    resize: int = 256
    crop: int = 224
    augment_below: int | None = None
    sampler: str = "none"
    # Deferred re-balancing (DRS / DRW, Cao et al. 2019): the sampler and the loss's class
    # weights apply from this epoch (0-based) on; None: from the start.
    defer_epoch: int | None = None
    loss: str = "ce"
    # The --loss's own options; None: its default (plantkit.choices.LOSS_OPTIONS).
    tau: float | None = None  # logit-adjusted: the prior's exponent
    beta: float | None = None  # class-balanced: Cui et al.'s effective-number beta
    focal_gamma: float | None = None  # focal / class-balanced: the focusing exponent
    mixup: float | None = None  # mixup's Beta(alpha, alpha); None or 0: off
    cutmix: float | None = None  # CutMix's Beta(alpha, alpha); with --mixup: half the batches
    amp: bool = False
    compile: bool = False  # torch.compile the backbone (same weights, same state_dict keys)
    lr_scale: str = "none"  # "linear": --lr is multiplied by global batch / REFERENCE_BATCH
    # Data-parallel processes (torchrun's WORLD_SIZE; `--devices N` launches them). The
    # global batch, which the run's outcome depends on, is batch_size x devices.
    devices: int = 1
    sync_bn: bool = False  # BatchNorm statistics over the global batch (SyncBatchNorm)
    cache: bool = True  # read images from a matching decoded image cache when there is one
    seed: int = 0
    workers: int = field(default_factory=default_workers)
    features: bool = False  # store penultimate features with the final predictions
    predict_dtype: str = "float32"
    resume: bool = False
    overwrite: bool = False

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{k: v for k, v in values.items() if k in known})
        config.milestones = tuple(config.milestones)
        return config

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "milestones": list(self.milestones)}


# Options that may differ between an interrupted run and its --resume: they change how the
# run is executed or what is stored at the end, not what is learnt.
RESUMABLE_CHANGES = frozenset(
    {"data", "epochs", "workers", "features", "predict_dtype", "resume", "overwrite", "cache",
     "compile"}
)
# The batch size the recipe's --lr is meant for (the Pl@ntNet-300K authors'); --lr-scale
# linear multiplies --lr by (global batch / this).
REFERENCE_BATCH = 32


def global_batch(config: TrainConfig) -> int:
    """Images per optimiser step: --batch-size is per process."""
    return config.batch_size * config.devices


def effective_lr(config: TrainConfig) -> float:
    """The initial learning rate the optimiser uses (--lr, scaled when --lr-scale linear)."""
    if config.lr_scale == "linear":
        return config.lr * global_batch(config) / REFERENCE_BATCH
    return config.lr
# Options whose None means "work it out" (the run records the outcome).
DERIVED_WHEN_UNSET = frozenset({"arch", "name"})


def validate(config: TrainConfig) -> TrainConfig:
    """Check ranges and choices up front, before any file is touched."""
    _check_sizes(config)
    _check_recipe(config)
    _check_choices(config)
    _check_start(config)
    return config


def _positive(config: TrainConfig, name: str) -> None:
    value = getattr(config, name)
    if value is None or value <= 0:
        raise PlantkitInputError(f"{option_of(name)} must be positive, got {value}")


def _check_sizes(config: TrainConfig) -> None:
    """The run's length and sizes, and the data's split and loading."""
    for name in ("epochs", "batch_size", "lr", "resize", "crop", "devices"):
        _positive(config, name)
    if config.batch_size < 2:
        raise PlantkitInputError(
            f"--batch-size must be at least 2 to train, got {config.batch_size} (BatchNorm "
            "normalises over a batch; with --devices it is each process's)"
        )
    if config.val_from_train is not None and not 0.0 < config.val_from_train < 1.0:
        raise PlantkitInputError(
            f"--val-from-train must be a fraction between 0 and 1, got {config.val_from_train}"
        )
    if config.val_seed < 0:
        raise PlantkitInputError(f"--val-seed must be >= 0, got {config.val_seed}")
    if config.crop > config.resize:
        raise PlantkitInputError(
            f"--crop {config.crop} is larger than --resize {config.resize}: the crop is cut "
            "out of the resized image"
        )
    if config.augment_below is not None and config.augment_below < 1:
        raise PlantkitInputError(f"--augment-below must be >= 1, got {config.augment_below}")
    if config.workers < 0:
        raise PlantkitInputError(f"--workers must be >= 0, got {config.workers}")


def _check_recipe(config: TrainConfig) -> None:
    """The optimiser and its schedule."""
    if not 0.0 <= config.momentum < 1.0:
        raise PlantkitInputError(f"--momentum must be in [0, 1), got {config.momentum}")
    if config.nesterov and config.momentum == 0.0:
        raise PlantkitInputError("Nesterov momentum needs --momentum > 0 (or --no-nesterov)")
    if config.weight_decay < 0:
        raise PlantkitInputError(f"--weight-decay must be >= 0, got {config.weight_decay}")
    if not 0.0 < config.gamma <= 1.0:
        raise PlantkitInputError(f"--gamma must be in (0, 1], got {config.gamma}")
    if any(m < 1 for m in config.milestones):
        raise PlantkitInputError(f"--milestones must be epochs >= 1, got {config.milestones}")


def loss_option(config: TrainConfig, key: str) -> float | None:
    """The --loss's option `key` (tau, beta, focal_gamma): as given, else its default."""
    value = getattr(config, key)
    return LOSS_OPTIONS.get(config.loss, {}).get(key) if value is None else value


def _check_long_tail(config: TrainConfig) -> None:
    """The loss's own options, mixing, and the deferred schedule: each must change the run."""
    owners = {key: [loss for loss, keys in LOSS_OPTIONS.items() if key in keys]
              for key in ("tau", "beta", "focal_gamma")}
    for key, losses in owners.items():
        value = getattr(config, key)
        if value is None:
            continue
        if config.loss not in losses:
            raise PlantkitInputError(f"{option_of(key)} is an option of --loss "
                                     f"{' or '.join(losses)}, not of --loss {config.loss}")
        if not math.isfinite(value) or value < 0 or (key == "beta" and value >= 1):
            bound = "in [0, 1)" if key == "beta" else ">= 0"
            raise PlantkitInputError(f"{option_of(key)} must be a number {bound}, got {value}")
    for option, alpha in (("--mixup", config.mixup), ("--cutmix", config.cutmix)):
        if alpha is not None and not (alpha >= 0 and math.isfinite(alpha)):
            raise PlantkitInputError(f"{option} must be an alpha >= 0 (0: off), got {alpha}")
    if config.defer_epoch is None:
        return
    if config.defer_epoch < 1:
        raise PlantkitInputError(
            f"--defer-epoch must be an epoch >= 1 (0-based; the first epochs run without "
            f"re-balancing), got {config.defer_epoch}"
        )
    if config.defer_epoch >= config.epochs:
        raise PlantkitInputError(
            f"--defer-epoch {config.defer_epoch} is not before --epochs {config.epochs}: the "
            "re-balancing would never start")
    if config.sampler == "none" and config.loss not in REWEIGHTING_LOSSES:
        raise PlantkitInputError(
            f"--defer-epoch defers a --sampler or the class weights of --loss "
            f"{', '.join(REWEIGHTING_LOSSES)}; with --sampler none and --loss {config.loss} "
            "it changes nothing")


def _check_choices(config: TrainConfig) -> None:
    if config.sampler not in SAMPLERS:
        raise PlantkitInputError(
            f"--sampler {config.sampler!r} is unknown: use {' or '.join(SAMPLERS)}"
        )
    if config.loss not in LOSSES:
        raise PlantkitInputError(f"--loss {config.loss!r} is unknown: use {' or '.join(LOSSES)}")
    if config.lr_scale not in LR_SCALES:
        raise PlantkitInputError(
            f"--lr-scale {config.lr_scale!r} is unknown: use {' or '.join(LR_SCALES)}"
        )
    _check_long_tail(config)
    if config.predict_dtype not in LOGITS_DTYPES:
        raise PlantkitInputError(
            f"--dtype {config.predict_dtype!r} is unknown: use float32 or float16"
        )
    if config.resume and config.overwrite:
        raise PlantkitInputError("pass --resume or --overwrite, not both")


def _check_start(config: TrainConfig) -> None:
    """The starting weights: at most one source, a --weights file, a known --arch."""
    starts = [option_of(name) for name in ("pretrained", "weights", "init_from")
              if getattr(config, name)]
    if len(starts) > 1:
        raise PlantkitInputError(
            f"pass only one of {', '.join(starts)}: each sets the starting weights"
        )
    if config.weights is not None and not Path(config.weights).is_file():
        raise PlantkitInputError(f"--weights {config.weights} is not a file")
    if config.arch is not None:
        resolve_arch(config.arch)  # an unknown name, with close names, before timm loads
    if config.retrain_head and not config.init_from:
        raise PlantkitInputError(
            "--retrain-head retrains the classifier of a trained expert: pass --init-from "
            "EXPERT too")
    # --init-from may name an expert: it is checked with ARTIFACTS, by resolve_init_from.


def resolve_init_from(artifacts: Path, init_from: str | None) -> str | None:
    """--init-from as a path: an existing file or folder as given, else the folder of the
    expert of that name under ARTIFACTS/experts. Either is checked as its loader will (an
    expert folder's expert.json and weights, a checkpoint file's readability)."""
    if init_from is None:
        return None
    if not init_from.strip():  # pathlib would read "" as the current folder
        raise PlantkitInputError("--init-from is empty: give an expert name, folder or checkpoint")
    path = Path(init_from)
    if not path.exists():
        folder = expert_dir(artifacts, init_from) if _is_name(init_from) else None
        if folder is None or not (folder / EXPERT_FILE).is_file():
            raise PlantkitInputError(
                f"--init-from {init_from}: no such file or folder, and no expert {init_from} "
                f"under {Path(artifacts) / EXPERTS_DIR}"
            )
        path = folder
    if path.is_dir():
        check_expert_folder(path)
    else:
        check_file(path, "--init-from checkpoint")
    return str(path)


def _is_name(text: str) -> bool:
    try:
        check_name(text)
    except PlantkitInputError:
        return False
    return True


def check_data_root(config: TrainConfig) -> None:
    """Refuse a --data that is no folder (the messages of plantkit.data.layout.open_dataset)."""
    if config.data is None:
        return
    root = Path(config.data)
    if not root.exists():
        raise PlantkitInputError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise PlantkitInputError(f"dataset root {root} is not a folder")


def init_expert_arch(config: TrainConfig) -> str | None:
    """The architecture of the --init-from expert folder (None: no folder given), read from
    its expert.json without loading it (run resolve_init_from first: a name is no folder)."""
    if not (config.init_from and Path(config.init_from).is_dir()):
        return None
    return read_expert_json(config.init_from)["config"]["arch"]


def run_dir_of(artifacts: Path, config: TrainConfig) -> Path:
    """The run's folder ARTIFACTS/experts/<name>; the name (given, or the architecture) is
    checked. Resolves `config.init_from` in place first (resolve_init_from), as this is the
    first step that knows ARTIFACTS, and the name may come from that expert's architecture;
    plantkit train and train_expert both call it before anything is written."""
    config.init_from = resolve_init_from(artifacts, config.init_from)
    if config.name is not None:
        return expert_dir(artifacts, check_name(config.name, "expert name (--expert)"))
    name = config.arch or init_expert_arch(config) or DEFAULT_ARCH
    return expert_dir(artifacts, check_name(name, "expert name (the architecture; pass --expert)"))


# What a fresh run writes before its first epoch is committed (see plantkit.training.fit).
ATTEMPT_ENTRIES = frozenset({TRAIN_CONFIG_FILE, HISTORY_FILE, CHECKPOINTS_DIR})


def holds_only_an_unfinished_attempt(run_dir: Path) -> bool:
    """True when `run_dir` holds nothing but what a training killed before it finished an
    epoch leaves: no expert (expert.json, weights, a store), no resume point, nothing else.
    Hidden names (the write protocol's leftovers, locks) do not count."""
    try:
        visible = [p for p in run_dir.iterdir() if is_visible(p)]
        if any(p.name not in ATTEMPT_ENTRIES for p in visible):
            return False
        checkpoints = run_dir / CHECKPOINTS_DIR
        if os.path.lexists(checkpoints):
            if checkpoints.is_symlink() or not checkpoints.is_dir():
                return False
            if os.path.lexists(checkpoints / CHECKPOINT_STATE_FILE):
                return False
            return all(p.name.startswith(EPOCH_DIR_PREFIX) and p.is_dir()
                       for p in checkpoints.iterdir() if is_visible(p))
        return True
    except OSError:
        return False


def _has_resume_point(checkpoints: Path) -> bool:
    return (checkpoints / CHECKPOINT_STATE_FILE).is_file()


def check_run_dir(run_dir: Path, config: TrainConfig, *,
                  has_resume_point: Callable[[Path], bool] = _has_resume_point) -> Path | None:
    """The checkpoints folder to resume from, or None for a fresh run; refuses to clobber.

    `has_resume_point(checkpoints)` says whether an epoch was committed (the default looks
    for the state file; plantkit.training.run_folder reads and checks it)."""
    checkpoints = run_dir / CHECKPOINTS_DIR
    exists = run_dir.exists() and any(run_dir.iterdir())
    if config.resume:
        if not exists:
            raise PlantkitInputError(
                f"--resume: there is no run to resume at {run_dir}; check --expert (default: the "
                "architecture), or drop --resume to start training"
            )
        if not has_resume_point(checkpoints) or not (run_dir / TRAIN_CONFIG_FILE).is_file():
            again = ("drop --resume (or pass --overwrite) to train it again"
                     if holds_only_an_unfinished_attempt(run_dir)
                     else "pass --overwrite to train it again")
            raise PlantkitInputError(
                f"--resume: {run_dir} holds no resumable training (no finished epoch in "
                f"{CHECKPOINTS_DIR}/); {again}"
            )
        return checkpoints
    if exists and not config.overwrite and not holds_only_an_unfinished_attempt(run_dir):
        raise PlantkitInputError(
            f"{run_dir} already exists: pass --resume to continue its training, --overwrite "
            "to replace it, or --expert to train another expert"
        )
    return None
