"""`plantkit train`: train an expert with the Pl@ntNet-300K recipe and the rare-species options."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from plantkit.choices import LogitsDtype as Dtype
from plantkit.choices import Loss, LrScale, Sampler
from plantkit.commands._cli import (
    DataRootOption,
    JsonFlag,
    Panel,
    WorkersOption,
    console,
    fail,
    print_json,
    settings,
    value_of,
)
from plantkit.errors import PlantkitInputError


def train(
    ctx: typer.Context,
    data: DataRootOption = None,
    val_from_train: Annotated[
        float | None,
        typer.Option(
            "--val-from-train",
            help="The dataset has no val split: carve this stratified "
            "fraction of train into one (recorded; --resume and predict use the same).",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    val_seed: Annotated[
        int,
        typer.Option(
            "--val-seed",
            help="Seed of --val-from-train's draw (apart from --seed, so experts "
            "of several seeds share one val split and can be combined).",
            rich_help_panel=Panel.DATA,
        ),
    ] = 0,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            help="Architecture: any timm name or a Pl@ntNet-300K one \\[default: "
            "resnet18, or the --init-from expert's].",
            rich_help_panel=Panel.MODEL,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--expert",
            help="Name of the new expert, its folder under ARTIFACTS/experts "
            "\\[default: the architecture].",
            rich_help_panel=Panel.MODEL,
        ),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option(
            "--pretrained",
            help="Start from ImageNet weights in the local timm/torch cache.",
            rich_help_panel=Panel.MODEL,
        ),
    ] = False,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="Start from a weights file (state_dict or checkpoint, e.g. "
            "ImageNet's); a classifier for another number of classes is replaced.",
            rich_help_panel=Panel.MODEL,
        ),
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            "--init-from",
            help="Continue training an expert (its name under ARTIFACTS/experts, or its "
            "folder) or a released Pl@ntNet-300K checkpoint file (same classes).",
            rich_help_panel=Panel.MODEL,
        ),
    ] = None,
    retrain_head: Annotated[
        bool,
        typer.Option(
            "--retrain-head",
            help="With --init-from: freeze its backbone and train a new classifier (cRT, "
            "Kang et al. 2020), e.g. with --sampler balanced for a few --epochs.",
            rich_help_panel=Panel.RARE,
        ),
    ] = False,
    epochs: Annotated[
        int, typer.Option("--epochs", help="Epochs to train.", rich_help_panel=Panel.RECIPE)
    ] = 30,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Images per batch.", rich_help_panel=Panel.RECIPE)
    ] = 32,
    lr: Annotated[
        float, typer.Option("--lr", help="Initial learning rate.", rich_help_panel=Panel.RECIPE)
    ] = 0.01,
    momentum: Annotated[
        float, typer.Option("--momentum", help="SGD momentum.", rich_help_panel=Panel.RECIPE)
    ] = 0.9,
    nesterov: Annotated[
        bool,
        typer.Option(
            "--nesterov/--no-nesterov", help="Nesterov momentum.", rich_help_panel=Panel.RECIPE
        ),
    ] = True,
    weight_decay: Annotated[
        float,
        typer.Option(
            "--weight-decay",
            help="L2 weight decay, added to the gradients as torch SGD does.",
            rich_help_panel=Panel.RECIPE,
        ),
    ] = 1e-4,
    milestones: Annotated[
        str,
        typer.Option(
            "--milestones",
            help="Epochs (0-based) at whose start the rate is multiplied "
            "by --gamma, comma-separated.",
            rich_help_panel=Panel.RECIPE,
        ),
    ] = "20,25",
    gamma: Annotated[
        float,
        typer.Option(
            "--gamma", help="Learning-rate factor at each milestone.", rich_help_panel=Panel.RECIPE
        ),
    ] = 0.1,
    resize: Annotated[
        int,
        typer.Option(
            "--resize", help="Shorter image side before cropping.", rich_help_panel=Panel.DATA
        ),
    ] = 256,
    crop: Annotated[
        int,
        typer.Option(
            "--crop", help="Side of the square crop the model sees.", rich_help_panel=Panel.DATA
        ),
    ] = 224,
    augment_below: Annotated[
        int | None,
        typer.Option(
            "--augment-below",
            help="Extra augmentation for species with fewer train images.",
            rich_help_panel=Panel.RARE,
        ),
    ] = None,
    sampler: Annotated[
        Sampler,
        typer.Option(
            "--sampler",
            help="none: each image once per epoch; inverse: the reference study's, weight "
            "1/n per image; sqrt: species in proportion to sqrt(n); balanced: species "
            "uniformly, each species' images in turn; progressive: from none to balanced "
            "over the epochs (docs/longtail.md).",
            rich_help_panel=Panel.RARE,
        ),
    ] = Sampler.none,
    defer_epoch: Annotated[
        int | None,
        typer.Option(
            "--defer-epoch",
            metavar="<int>",
            help="Deferred re-balancing (DRS/DRW): the --sampler and the --loss's class "
            "weights apply from this epoch (0-based) on, plain before.",
            rich_help_panel=Panel.RARE,
        ),
    ] = None,
    loss: Annotated[
        Loss,
        typer.Option(
            "--loss",
            help="ce: cross-entropy; weighted: with balanced class weights (the reference "
            "study's); balanced-softmax; logit-adjusted (--tau); class-balanced (--beta, "
            "--focal-gamma); focal (--focal-gamma); ldam (margins from the train counts; "
            "with --defer-epoch: LDAM-DRW).",
            rich_help_panel=Panel.RARE,
        ),
    ] = Loss.ce,
    tau: Annotated[
        float | None,
        typer.Option("--tau", metavar="<float>",
                     help="logit-adjusted: weight of log(prior) added to the logits "
                     "\\[default: 1].", rich_help_panel=Panel.RARE),
    ] = None,
    beta: Annotated[
        float | None,
        typer.Option("--beta", metavar="<float>",
                     help="class-balanced: the effective number's beta, in [0, 1) "
                     "\\[default: 0.999].", rich_help_panel=Panel.RARE),
    ] = None,
    focal_gamma: Annotated[
        float | None,
        typer.Option("--focal-gamma", metavar="<float>",
                     help="focal / class-balanced: the focusing exponent \\[default: 2 for "
                     "focal, 0 for class-balanced].", rich_help_panel=Panel.RARE),
    ] = None,
    mixup: Annotated[
        float | None,
        typer.Option("--mixup", metavar="<alpha>",
                     help="Mixup (timm's): each image blended with another, lambda ~ "
                     "Beta(alpha, alpha); 0.2 is common. The loss charges both labels.",
                     rich_help_panel=Panel.RARE),
    ] = None,
    cutmix: Annotated[
        float | None,
        typer.Option("--cutmix", metavar="<alpha>",
                     help="CutMix (timm's): a box of another image pasted in; 1.0 is common. "
                     "With --mixup, each batch uses one of the two at random.",
                     rich_help_panel=Panel.RARE),
    ] = None,
    amp: Annotated[
        bool,
        typer.Option(
            "--amp",
            help="bfloat16 autocast (CUDA and CPU), and channels_last on CUDA.",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = False,
    compile_backbone: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the backbone (the first steps wait for the compiler; same "
            "weights and files).",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = False,
    devices: Annotated[
        int,
        typer.Option(
            "--devices",
            metavar="<int>",
            help="Data-parallel processes on this machine: one per GPU where there are GPUs, "
            "else CPU processes (gloo). --batch-size is per process; the global batch is "
            "--batch-size x --devices. Several machines: torchrun (README).",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = 1,
    sync_bn: Annotated[
        bool,
        typer.Option(
            "--sync-bn",
            help="With several GPUs: BatchNorm statistics over the global batch "
            "(SyncBatchNorm) instead of each process's own.",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = False,
    lr_scale: Annotated[
        LrScale,
        typer.Option(
            "--lr-scale",
            help="linear: multiply --lr by global batch / 32 (the recipe's batch); none: use "
            "--lr as given, whatever the batch.",
            rich_help_panel=Panel.RECIPE,
        ),
    ] = LrScale.none,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Read the images from the decoded image cache (`plantkit data cache`) "
            "when ARTIFACTS holds one of the dataset at --resize.",
            rich_help_panel=Panel.DATA,
        ),
    ] = True,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Seed of shuffling, augmentation and dropout.",
            rich_help_panel=Panel.RECIPE,
        ),
    ] = 0,
    workers: WorkersOption = None,
    features: Annotated[
        bool,
        typer.Option(
            "--features",
            help="Also store penultimate features (for the router).",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    dtype: Annotated[
        Dtype,
        typer.Option(
            "--dtype", help="Precision of the stored logits.", rich_help_panel=Panel.OUTPUT
        ),
    ] = Dtype.float32,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue an interrupted run exactly.", rich_help_panel=Panel.OUTPUT
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace an existing expert of that name.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars.", rich_help_panel=Panel.OUTPUT)
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train an expert and store its val and test predictions.

    The default recipe is the dataset authors': SGD, lr 0.01 x0.1 at epochs 20 and 25, 30 epochs.
    """
    # Everything that needs neither torch nor keras is checked first: a bad option, a missing
    # file or a protected run folder is refused before the heavy imports.
    from plantkit.artifacts import artifact_lock
    from plantkit.training import config as train_config
    from plantkit.training.config import TrainConfig

    config = TrainConfig(
        data=None if data is None else str(data),
        val_from_train=val_from_train,
        val_seed=val_seed,
        arch=arch,
        name=name,
        pretrained=pretrained,
        weights=None if weights is None else str(weights),
        init_from=init_from,
        retrain_head=retrain_head,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        milestones=_parse_milestones(milestones),
        gamma=gamma,
        resize=resize,
        crop=crop,
        augment_below=augment_below,
        sampler=value_of(sampler),
        defer_epoch=defer_epoch,
        loss=value_of(loss),
        tau=tau,
        beta=beta,
        focal_gamma=focal_gamma,
        mixup=mixup,
        cutmix=cutmix,
        amp=amp,
        compile=compile_backbone,
        devices=devices,
        sync_bn=sync_bn,
        lr_scale=value_of(lr_scale),
        cache=cache,
        seed=seed,
        features=features,
        predict_dtype=value_of(dtype),
        resume=resume,
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
    launching = config.devices > 1 and "WORLD_SIZE" not in os.environ
    # In a data-parallel run, rank 0 alone holds the lock (train_expert takes it there).
    follower = os.environ.get("RANK", "0") != "0"
    with contextlib.nullcontext() if follower else artifact_lock(run_dir):
        train_config.check_run_dir(run_dir, config)
        train_config.check_data_root(config)
        if launching:
            from plantkit.training.launch import check_devices

            check_devices(config.devices, sync_bn=config.sync_bn)
    if launching:
        # The checked command again, in --devices processes (rank 0 takes the lock).
        from plantkit.training.launch import launch

        raise typer.Exit(launch(config.devices, sys.argv[1:]))
    with contextlib.nullcontext() if follower else artifact_lock(run_dir):
        from plantkit.training.fit import TrainingDiverged, train_expert

        try:
            result = train_expert(config, artifacts=artifacts, quiet=quiet, given=given)
        except TrainingDiverged as exc:
            raise fail(str(exc), code=1) from None
    if result is None:  # a data-parallel process other than rank 0: rank 0 reports
        return
    if as_json:
        print_json(result.to_dict())
    elif not quiet:
        console.print(_summary(result), highlight=False)


# TrainConfig field -> the option's parameter name here, where they differ.
_FIELD_OF_PARAMETER = {"dtype": "predict_dtype", "compile_backbone": "compile"}


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


def _summary(result) -> str:
    """The finished run (a plantkit.training.result.TrainResult) in one line, from the values
    `--json` prints."""
    summary = result.to_dict()
    return (f"expert {summary['expert']}: best epoch {summary['best_epoch'] + 1}, val top-1 "
            f"{100 * summary['val_top1']:.2f}%, test top-1 {100 * summary['test_top1']:.2f}% "
            f"-> {summary['folder']}")
