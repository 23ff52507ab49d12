"""What a training starts from: its dataset, its expert (random, pretrained, --weights or
--init-from) and the compiled recipe (TorchSGD, (weighted) cross-entropy, the metrics)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from plantkit.choices import IMAGENET_MEAN, IMAGENET_STD, SPLITS
from plantkit.data.layout import NoValSplit, open_dataset
from plantkit.data.transforms import dataset_mean_std
from plantkit.errors import PlantkitInputError
from plantkit.models import checkpoints
from plantkit.models.expert import create_expert, load_expert
from plantkit.models.expert_files import read_expert_json
from plantkit.progress import progress_bar
from plantkit.training.config import DEFAULT_ARCH, TrainConfig, effective_lr
from plantkit.training.losses import make_loss
from plantkit.training.metrics import accuracy_metrics
from plantkit.training.optim import TorchSGD


def open_training_dataset(config: TrainConfig, artifacts: Path, *, quiet: bool):
    """The dataset of `config.data` (or the embedded stand-in, drawn on first use)."""
    try:
        return _open(config, artifacts, quiet=quiet)
    except NoValSplit as exc:
        raise PlantkitInputError(
            f"{exc.root} has no val split; pass --val-from-train 0.1 to carve a stratified "
            "val split from train (--val-seed picks it, default 0)"
        ) from None


def _open(config: TrainConfig, artifacts: Path, *, quiet: bool):
    def opened(root):
        return open_dataset(root, val_from_train=config.val_from_train, seed=config.val_seed)

    if config.data is not None:
        return opened(config.data)
    # Only for the embedded stand-in: its drawing needs pandas and the image synthesis.
    from plantkit.data.embedded import EMBEDDED, embedded_root, ensure_embedded_dataset
    from plantkit.data.profiles import make_profile

    if (embedded_root(artifacts) / "images").is_dir():
        return opened(embedded_root(artifacts))
    counts = make_profile(EMBEDDED["profile"], classes=EMBEDDED["classes"], scale=EMBEDDED["scale"])
    total = int(counts[list(SPLITS)].to_numpy().sum())
    with progress_bar("drawing the embedded dataset", total=total, disable=quiet) as advance:
        return opened(ensure_embedded_dataset(artifacts, on_image=advance))


def build_expert(config: TrainConfig, dataset):
    """A new expert for `dataset`: random, pretrained (cache or --weights), or --init-from."""
    init = Path(config.init_from) if config.init_from else None
    torch.manual_seed(config.seed)  # the random initial weights, too, follow --seed
    if init is not None and init.is_dir():
        expert = load_expert(init)
        check_init_expert(expert, init, config, dataset)
        return expert
    if init is not None:
        mean, std = IMAGENET_MEAN, IMAGENET_STD  # the released models' normalisation
    elif config.pretrained or config.weights:
        mean, std = None, None  # create_expert picks the pretrained weights' own
    else:
        mean, std = dataset_mean_std(dataset, "train", seed=config.seed, min_side=config.resize)
    expert = create_expert(config.arch or DEFAULT_ARCH, dataset.num_classes,
                           pretrained=config.pretrained, weights=config.weights,
                           input_size=config.crop, mean=mean, std=std, amp=config.amp)
    if init is not None:
        # Unlike create_expert(weights=...), a head for another number of classes is an error:
        # continuing training means keeping the classifier.
        state, _ = checkpoints.read_checkpoint(init)
        checkpoints.load_backbone_state(
            expert.backbone, state, classifier=expert.classifier_name,
            num_classes=dataset.num_classes, origin=f"--init-from {init}",
        )
    return expert


def check_init_expert(expert, init: Path, config: TrainConfig, dataset) -> None:
    """An --init-from expert folder must have the dataset's classes and the --arch given."""
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


def compile_expert(expert, config: TrainConfig, num_classes: int, train_labels=None) -> None:
    """Compile `expert` for training: TorchSGD, the --loss (plantkit.training.losses), top-1 /
    top-5 / macro. `train_labels` give the per-class counts the long-tail losses need."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes)
    try:
        loss = make_loss(config.loss, counts, tau=config.tau, beta=config.beta,
                         focal_gamma=config.focal_gamma,
                         deferred=config.defer_epoch is not None)
    except ValueError as exc:
        raise PlantkitInputError(f"--loss {config.loss}: {exc}") from None
    expert.compile(
        optimizer=TorchSGD(effective_lr(config), momentum=config.momentum,
                           nesterov=config.nesterov, l2_weight_decay=config.weight_decay),
        loss=loss,
        metrics=accuracy_metrics(num_classes),
        jit_compile=False,
    )
