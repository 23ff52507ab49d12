"""`plantkit train`: train an expert with the Pl@ntNet-300K recipe and the rare-species options."""

from __future__ import annotations

from pathlib import Path

import typer

from plantkit.commands._cli import console, fail, print_json, settings
from plantkit.errors import PlantkitInputError


def train(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", help="Dataset root \\[default: the embedded stand-in, made on first use]."
    ),
    val_from_train: float | None = typer.Option(
        None, "--val-from-train", help="The dataset has no val split: carve this stratified "
        "fraction of train into one (recorded; --resume and predict use the same)."
    ),
    val_seed: int = typer.Option(
        0, "--val-seed", help="Seed of --val-from-train's draw (apart from --seed, so experts "
        "of several seeds share one val split and can be combined)."
    ),
    arch: str | None = typer.Option(
        None, "--arch", help="Architecture: any timm name or a Pl@ntNet-300K one \\[default: "
        "resnet18, or the --init-from expert's]."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Expert name, its folder under ARTIFACTS/experts \\[default: arch]."
    ),
    pretrained: bool = typer.Option(
        False, "--pretrained", help="Start from ImageNet weights in the local timm/torch cache."
    ),
    weights: Path | None = typer.Option(
        None, "--weights", help="Start from a weights file (state_dict or checkpoint, e.g. "
        "ImageNet's); a classifier for another number of classes is replaced."
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Continue training a plantkit expert folder or a released "
        "Pl@ntNet-300K checkpoint (same classes)."
    ),
    epochs: int = typer.Option(30, "--epochs", help="Epochs to train."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per batch."),
    lr: float = typer.Option(0.01, "--lr", help="Initial learning rate."),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    nesterov: bool = typer.Option(True, "--nesterov/--no-nesterov", help="Nesterov momentum."),
    weight_decay: float = typer.Option(
        1e-4, "--weight-decay", help="L2 weight decay, added to the gradients as torch SGD does."
    ),
    milestones: str = typer.Option(
        "20,25", "--milestones", help="Epochs (0-based) at whose start the rate is multiplied "
        "by --gamma, comma-separated."
    ),
    gamma: float = typer.Option(0.1, "--gamma", help="Learning-rate factor at each milestone."),
    resize: int = typer.Option(256, "--resize", help="Shorter image side before cropping."),
    crop: int = typer.Option(224, "--crop", help="Side of the square crop the model sees."),
    augment_below: int | None = typer.Option(
        None, "--augment-below", help="Extra augmentation for species with fewer train images."
    ),
    sampler: str = typer.Option(
        "none", "--sampler", help="none, or inverse: draw images with weight 1/n per species."
    ),
    loss: str = typer.Option(
        "ce", "--loss", help="ce, or weighted: cross-entropy with balanced class weights."
    ),
    amp: bool = typer.Option(False, "--amp", help="bfloat16 autocast and channels_last on CUDA."),
    seed: int = typer.Option(0, "--seed", help="Seed of shuffling, augmentation and dropout."),
    workers: int | None = typer.Option(
        None, "--workers", help="Image-loading processes \\[default: up to 4, one per core]."
    ),
    features: bool = typer.Option(
        False, "--features", help="Also store penultimate features (for the router)."
    ),
    dtype: str = typer.Option("float32", "--dtype", help="Stored logits: float32 or float16."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run exactly."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing expert."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train an expert (SGD, lr 0.01 x0.1 at epochs 20 and 25, 30 epochs) and store its
    val and test predictions."""
    # Everything that needs neither torch nor keras is checked first: a bad option, a missing
    # file or a protected run folder is refused before the heavy imports.
    from plantkit.artifacts import artifact_lock
    from plantkit.training import config as train_config
    from plantkit.training.config import TrainConfig

    config = TrainConfig(
        data=None if data is None else str(data), val_from_train=val_from_train,
        val_seed=val_seed, arch=arch, name=name, pretrained=pretrained,
        weights=None if weights is None else str(weights),
        init_from=None if init_from is None else str(init_from), epochs=epochs,
        batch_size=batch_size, lr=lr, momentum=momentum, nesterov=nesterov,
        weight_decay=weight_decay, milestones=_parse_milestones(milestones), gamma=gamma,
        resize=resize, crop=crop, augment_below=augment_below, sampler=sampler, loss=loss,
        amp=amp, seed=seed, features=features, predict_dtype=dtype, resume=resume,
        overwrite=overwrite,
    )
    if workers is not None:
        config.workers = workers
    given = _given_options(ctx)
    artifacts = settings.artifacts_root
    train_config.validate(config)
    run_dir = train_config.run_dir_of(artifacts, config)
    # The lock first, as train_expert takes it (again: it is re-entrant): a folder another
    # process is writing is refused as busy (or waited for), as before.
    with artifact_lock(run_dir):
        train_config.check_run_dir(run_dir, config)
        train_config.check_data_root(config)
        from plantkit.training.fit import TrainingDiverged, train_expert

        try:
            run_dir = train_expert(config, artifacts=artifacts, quiet=quiet, given=given)
        except TrainingDiverged as exc:
            raise fail(str(exc), code=1) from None
    summary = _summary(run_dir)
    if as_json:
        print_json(summary)
    elif not quiet:
        console.print(
            f"expert {summary['name']}: best epoch {summary['best_epoch'] + 1}, "
            f"val top-1 {100 * summary['val_top1']:.2f}%, test top-1 "
            f"{100 * summary['test_top1']:.2f}% -> {run_dir}",
            highlight=False,
        )


# TrainConfig field -> the option's parameter name here (they differ only for --dtype).
_FIELD_OF_PARAMETER = {"dtype": "predict_dtype"}


def _given_options(ctx: typer.Context) -> set[str]:
    """TrainConfig fields set on the command line (or by environment), not left at defaults."""
    given = set()
    for parameter in ctx.command.params:
        # By name: Typer vendors its own click, whose enum is not click's.
        source = ctx.get_parameter_source(parameter.name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given.add(_FIELD_OF_PARAMETER.get(parameter.name, parameter.name))
    return given


def _parse_milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise PlantkitInputError(
            f"--milestones {text!r} is not a comma-separated list of epochs (e.g. 20,25)"
        ) from None


def _summary(run_dir: Path) -> dict:
    """The finished run in a few numbers: each stored split's top-1 is plantkit.metrics'
    (its tie rule: the same value `plantkit report` and `plantkit combine` print)."""
    from plantkit import metrics
    from plantkit.artifacts import CHECKPOINTS_DIR, STORE_FILE
    from plantkit.store import open_store
    from plantkit.training.resume import read_state

    state = read_state(run_dir / CHECKPOINTS_DIR)
    summary = {"name": run_dir.name, "directory": str(run_dir),
               "best_epoch": state["best_epoch"], "val_top1": state["best_value"]}
    with open_store(run_dir / STORE_FILE) as store:
        for split in store.splits:
            top1 = metrics.split_accuracy(store, split)["top1"]
            summary[f"{split}_top1"] = top1 if top1 == top1 else 0.0  # NaN: an empty split
    return metrics.to_plain(summary)

