"""`plantkit import`: bring released checkpoints and outside predictions into plantkit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plantkit.artifacts import EXPERTS_DIR
from plantkit.choices import LogitsDtype as Dtype
from plantkit.choices import Normalization, Source, Split
from plantkit.commands._cli import (
    JsonFlag,
    Panel,
    console,
    examples,
    print_json,
    settings,
    value_of,
)

app = typer.Typer(
    help="Bring released checkpoints and outside predictions into plantkit.",
    no_args_is_help=True,
)


@app.command(
    "plantnet",
    epilog=examples(
        "plantkit import plantnet resnet18_weights_best_acc.tar --arch resnet18",
        "plantkit import plantnet mine.tar --arch resnet18 --num-classes 1081 --resize 256 "
        "--crop 224 --normalization plantnet300k --expert r18-mine",
    ),
)
def plantnet(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A Pl@ntNet-300K checkpoint, released or written by the authors' main.py "
            "(torch.save dict: model, optimizer, epoch).",
            rich_help_panel=Panel.INPUTS,
        ),
    ],
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            help="Architecture it was trained with, by its Pl@ntNet-300K name "
            "(resnet18, mobilenet_v3_small, squeezenet, efficientnet_b0 ...).",
            rich_help_panel=Panel.MODEL,
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--expert",
            help="Name of the new expert, its folder under ARTIFACTS/experts/ "
            "\\[default: plantnet300k-ARCH].",
            rich_help_panel=Panel.MODEL,
        ),
    ] = None,
    num_classes: Annotated[
        int,
        typer.Option(
            "--num-classes", help="Outputs of the checkpoint.", rich_help_panel=Panel.MODEL
        ),
    ] = 1081,
    source: Annotated[
        Source | None,
        typer.Option(
            "--source",
            help="Library that builds --arch \\[default: as the Pl@ntNet-300K authors did].",
            rich_help_panel=Panel.MODEL,
        ),
    ] = None,
    resize: Annotated[
        int | None,
        typer.Option(
            "--resize",
            help="Shorter image side the checkpoint's images were resized to "
            "before the centre crop (main.py's --image_size); `plantkit predict` resizes to it "
            "\\[default: 256, as the released weights and main.py's default].",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    crop: Annotated[
        int | None,
        typer.Option(
            "--crop",
            help="Side of the square centre crop the checkpoint saw, the expert's "
            "input size (main.py's --crop_size); at most --resize \\[default: 224, as the released "
            "weights and main.py's default].",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    normalization: Annotated[
        Normalization | None,
        typer.Option(
            "--normalization",
            help="Mean/std the checkpoint's images were normalised with: "
            "imagenet (0.485,0.456,0.406 / 0.229,0.224,0.225: the released weights, main.py "
            "--pretrained) or plantnet300k (0.4425,0.4695,0.3266 / 0.2353,0.2219,0.2325: the "
            "dataset's, main.py without --pretrained) \\[default: imagenet].",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    mean: Annotated[
        str | None,
        typer.Option(
            "--mean",
            help="Explicit per-channel mean R,G,B on the 0-1 scale, with --std, "
            "instead of --normalization.",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    std: Annotated[
        str | None,
        typer.Option(
            "--std",
            help="Explicit per-channel std R,G,B on the 0-1 scale (each > 0), with "
            "--mean, instead of --normalization.",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace an existing expert of that name.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    as_json: JsonFlag = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print nothing but errors.", rich_help_panel=Panel.OUTPUT
        ),
    ] = False,
) -> None:
    """Turn a Pl@ntNet-300K checkpoint (released, or of the authors' main.py) into an expert.

    Then `plantkit predict --expert NAME` stores its predictions.
    """
    source = value_of(source)
    normalization = value_of(normalization)
    from plantkit.models.plantnet_import import (
        check_import_options,
        import_plantnet_checkpoint,
        import_preprocessing,
    )

    # Checked before the checkpoint is read, and before torch (or timm) is imported: a bad
    # value, an unknown --arch or an unreadable checkpoint writes nothing and is refused at once.
    preprocessing = import_preprocessing(
        resize=resize, crop=crop, normalization=normalization, mean=mean, std=std
    )
    experts_dir = settings.artifacts_root / EXPERTS_DIR
    check_import_options(
        checkpoint,
        arch,
        name=name,
        experts_dir=experts_dir,
        num_classes=num_classes,
        source=source,
        overwrite=overwrite,
    )
    from plantkit.models.expert_files import read_expert_json

    folder = import_plantnet_checkpoint(
        checkpoint,
        arch,
        name=name,
        experts_dir=experts_dir,
        num_classes=num_classes,
        source=source,
        overwrite=overwrite,
        preprocessing=preprocessing,
    )
    document = read_expert_json(folder)
    origin = document.get("origin", {})
    if as_json:
        print_json(
            {
                "expert": folder.name,
                "folder": folder,
                "config": document["config"],
                "info": document["info"],
                "origin": origin,
            }
        )
        return
    if quiet:
        return
    info = document["info"]
    config = document["config"]
    epoch = origin.get("epoch")
    console.print(
        f"imported {checkpoint}{f' (epoch {epoch})' if epoch is not None else ''} as expert "
        f"{folder.name} in {folder}: {info['params']:,} parameters, "
        f"{info['gflops']:.2f} GFLOPs per image at {config['input_size']} px; predict resizes "
        f"to {origin.get('resize')}, crops {config['input_size']}, normalises with "
        f"{origin.get('normalization')} mean/std",
        highlight=False,
        soft_wrap=True,
    )


@app.command(
    "logits",
    epilog=examples(
        "plantkit import logits --expert outside --split test --logits test.npy --labels y.npy "
        "--data /data/plantnet_300K",
        "plantkit import logits --expert outside --split val --logits val.npy --labels yv.npy "
        "--classes class_ids.json",
    ),
)
def logits(
    expert: Annotated[
        str,
        typer.Option(
            "--expert",
            help="Expert name: the store is ARTIFACTS/experts/EXPERT/predictions.h5.",
            rich_help_panel=Panel.INPUTS,
        ),
    ],
    split: Annotated[
        Split,
        typer.Option(
            "--split",
            help="Split the predictions are for.",
            rich_help_panel=Panel.INPUTS,
        ),
    ],
    logits_file: Annotated[
        Path,
        typer.Option(
            "--logits",
            help=".npy array of logits, rows x classes, float16 or float32.",
            rich_help_panel=Panel.INPUTS,
        ),
    ],
    labels_file: Annotated[
        Path,
        typer.Option(
            "--labels",
            help=".npy vector of integer class indices, one per row.",
            rich_help_panel=Panel.INPUTS,
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Dataset root: class ids, fingerprint, row paths and train counts; "
            "rows must follow its order (sorted by relative path).",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    classes: Annotated[
        Path | None,
        typer.Option(
            "--classes",
            help="Class ids without a dataset: class_idx_to_species_id.json-style "
            "mapping or a text file with one id per line.",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    train_counts: Annotated[
        Path | None,
        typer.Option(
            "--train-counts",
            help="CSV of (class id, train images), header optional: the "
            "train priors for buckets and logit adjustment (without --data).",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    paths: Annotated[
        Path | None,
        typer.Option(
            "--paths",
            help="Text file of the rows' image paths, one per line (without --data).",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    dtype: Annotated[
        Dtype,
        typer.Option(
            "--dtype", help="Precision of the stored logits.", rich_help_panel=Panel.OUTPUT
        ),
    ] = Dtype.float32,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the split if the store already holds it.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    as_json: JsonFlag = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print nothing but errors.", rich_help_panel=Panel.OUTPUT
        ),
    ] = False,
) -> None:
    """Bring logits computed elsewhere (.npy) into an expert's store; repeat to add splits."""
    from plantkit.logits_import import import_logits

    result = import_logits(
        settings.artifacts_root,
        expert=expert,
        split=value_of(split),
        logits_path=logits_file,
        labels_path=labels_file,
        data_root=data,
        classes_path=classes,
        train_counts_path=train_counts,
        paths_path=paths,
        dtype=value_of(dtype),
        overwrite=overwrite,
    )
    if as_json:
        print_json(
            {
                "expert": expert,
                "store": result.store,
                "split": result.split,
                "rows": result.rows,
                "classes": result.num_classes,
                "dtype": result.dtype,
                "splits": result.splits,
                "fingerprint": result.fingerprint,
            }
        )
        return
    if quiet:
        return
    console.print(
        f"imported {result.rows:,} {result.split} rows x {result.num_classes:,} classes "
        f"({result.dtype}) into {expert} at {result.store}; its splits: "
        f"{', '.join(result.splits)}",
        highlight=False,
        soft_wrap=True,
    )
