"""`plantkit import`: bring released checkpoints and outside predictions into plantkit."""

from __future__ import annotations

from pathlib import Path

import typer

from plantkit.artifacts import EXPERTS_DIR
from plantkit.commands._cli import console, examples, print_json, settings

app = typer.Typer(
    help="Bring released checkpoints and outside predictions into plantkit.",
    no_args_is_help=True,
)


@app.command("plantnet", epilog=examples(
    "plantkit import plantnet resnet18_weights_best_acc.tar --arch resnet18",
    "plantkit import plantnet mine.tar --arch resnet18 --num-classes 1081 --resize 256 "
    "--crop 224 --normalization plantnet300k --name r18-mine",
))
def plantnet(
    checkpoint: Path = typer.Argument(
        ..., help="A Pl@ntNet-300K checkpoint, released or written by the authors' main.py "
        "(torch.save dict: model, optimizer, epoch)."
    ),
    arch: str = typer.Option(
        ..., "--arch", help="Architecture it was trained with, by its Pl@ntNet-300K name "
        "(resnet18, mobilenet_v3_small, squeezenet, efficientnet_b0 ...)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Expert name, its folder under ARTIFACTS/experts/ "
        "\\[default: plantnet300k-ARCH]."
    ),
    num_classes: int = typer.Option(1081, "--num-classes", help="Outputs of the checkpoint."),
    source: str | None = typer.Option(
        None, "--source", help="Library that builds --arch: timm or torchvision "
        "\\[default: as the Pl@ntNet-300K authors did]."
    ),
    resize: int | None = typer.Option(
        None, "--resize", help="Shorter image side the checkpoint's images were resized to "
        "before the centre crop (main.py's --image_size); `plantkit predict` resizes to it "
        "\\[default: 256, as the released weights and main.py's default]."
    ),
    crop: int | None = typer.Option(
        None, "--crop", help="Side of the square centre crop the checkpoint saw, the expert's "
        "input size (main.py's --crop_size); at most --resize \\[default: 224, as the released "
        "weights and main.py's default]."
    ),
    normalization: str | None = typer.Option(
        None, "--normalization", help="Mean/std the checkpoint's images were normalised with: "
        "imagenet (0.485,0.456,0.406 / 0.229,0.224,0.225: the released weights, main.py "
        "--pretrained) or plantnet300k (0.4425,0.4695,0.3266 / 0.2353,0.2219,0.2325: the "
        "dataset's, main.py without --pretrained) \\[default: imagenet]."
    ),
    mean: str | None = typer.Option(
        None, "--mean", help="Explicit per-channel mean R,G,B on the 0-1 scale, with --std, "
        "instead of --normalization."
    ),
    std: str | None = typer.Option(
        None, "--std", help="Explicit per-channel std R,G,B on the 0-1 scale (each > 0), with "
        "--mean, instead of --normalization."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing expert."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Turn a Pl@ntNet-300K checkpoint (released, or of the authors' main.py) into an expert
    (then `plantkit predict`)."""
    from plantkit.models.plantnet_import import (
        check_import_options,
        import_plantnet_checkpoint,
        import_preprocessing,
    )

    # Checked before the checkpoint is read, and before torch is imported: a bad value
    # writes nothing and is refused at once (an unknown --arch only once timm is loaded).
    preprocessing = import_preprocessing(resize=resize, crop=crop, normalization=normalization,
                                         mean=mean, std=std)
    experts_dir = settings.artifacts_root / EXPERTS_DIR
    check_import_options(checkpoint, arch, name=name, experts_dir=experts_dir,
                         num_classes=num_classes, source=source, overwrite=overwrite)
    from plantkit.models.expert import read_expert_json

    folder = import_plantnet_checkpoint(
        checkpoint, arch, name=name, experts_dir=experts_dir,
        num_classes=num_classes, source=source, overwrite=overwrite,
        preprocessing=preprocessing,
    )
    document = read_expert_json(folder)
    origin = document.get("origin", {})
    if as_json:
        print_json({"expert": folder.name, "folder": folder, "config": document["config"],
                    "info": document["info"], "origin": origin})
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


@app.command("logits", epilog=examples(
    "plantkit import logits --expert outside --split test --logits test.npy --labels y.npy "
    "--data /data/plantnet_300K",
    "plantkit import logits --expert outside --split val --logits val.npy --labels yv.npy "
    "--classes class_ids.json",
))
def logits(
    expert: str = typer.Option(
        ..., "--expert", help="Expert name: the store is ARTIFACTS/experts/EXPERT/predictions.h5."
    ),
    split: str = typer.Option(
        ..., "--split", help="Split the predictions are for (val, test ...)."
    ),
    logits_file: Path = typer.Option(
        ..., "--logits", help=".npy array of logits, rows x classes, float16 or float32."
    ),
    labels_file: Path = typer.Option(
        ..., "--labels", help=".npy vector of integer class indices, one per row."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset root: class ids, fingerprint, row paths and train counts; "
        "rows must follow its order (sorted by relative path)."
    ),
    classes: Path | None = typer.Option(
        None, "--classes", help="Class ids without a dataset: class_idx_to_species_id.json-style "
        "mapping or a text file with one id per line."
    ),
    train_counts: Path | None = typer.Option(
        None, "--train-counts", help="CSV of (class id, train images), header optional: the "
        "train priors for buckets and logit adjustment (without --data)."
    ),
    paths: Path | None = typer.Option(
        None, "--paths", help="Text file of the rows' image paths, one per line (without --data)."
    ),
    dtype: str = typer.Option("float32", "--dtype", help="Stored logits: float32 or float16."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the split if the store already holds it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Bring logits computed elsewhere (.npy) into an expert's store; repeat to add splits."""
    from plantkit.logits_import import import_logits

    result = import_logits(
        settings.artifacts_root, expert=expert, split=split, logits_path=logits_file,
        labels_path=labels_file, data_root=data, classes_path=classes,
        train_counts_path=train_counts, paths_path=paths, dtype=dtype, overwrite=overwrite,
    )
    if as_json:
        print_json({"expert": expert, "store": result.store, "split": result.split,
                    "rows": result.rows, "classes": result.num_classes, "dtype": result.dtype,
                    "splits": result.splits, "fingerprint": result.fingerprint})
        return
    console.print(
        f"imported {result.rows:,} {result.split} rows x {result.num_classes:,} classes "
        f"({result.dtype}) into {expert} at {result.store}; its splits: "
        f"{', '.join(result.splits)}",
        highlight=False,
        soft_wrap=True,
    )
