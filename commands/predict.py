"""`plantkit predict`: recompute an expert's predictions into its HDF5 store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plantkit.choices import LogitsDtype as Dtype
from plantkit.choices import Split
from plantkit.commands._cli import (
    BatchSizeOption,
    JsonFlag,
    Panel,
    PlantkitInputError,
    QuietFlag,
    WorkersOption,
    console,
    err_console,
    print_json,
    settings,
    value_of,
)


def predict(
    expert: Annotated[
        str,
        typer.Option(
            "--expert",
            help="Expert name (its folder under ARTIFACTS/experts).",
            rich_help_panel=Panel.INPUTS,
        ),
    ],
    split: Annotated[
        list[Split] | None,
        typer.Option(
            "--split",
            metavar="<train|val|test>",
            help="Split to predict; repeat for several \\[default: val and test].",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Dataset root \\[default: the one the expert was trained on].",
            rich_help_panel=Panel.INPUTS,
        ),
    ] = None,
    features: Annotated[
        bool,
        typer.Option(
            "--features",
            help="Also store penultimate features (float16, for the router).",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    dtype: Annotated[
        Dtype,
        typer.Option(
            "--dtype", help="Precision of the stored logits.", rich_help_panel=Panel.OUTPUT
        ),
    ] = Dtype.float32,
    resize: Annotated[
        int | None,
        typer.Option(
            "--resize",
            help="Shorter image side before the centre crop, for this run "
            "\\[default: the one the expert was trained or imported with; else 8/7 of the crop, "
            "as 256 for 224].",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    crop: Annotated[
        int | None,
        typer.Option(
            "--crop",
            help="Side of the square centre crop the expert sees, for this run; "
            "at most the resize, and a size the network runs at (CNNs take any) \\[default: the "
            "expert's input size].",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Read the images from the decoded image cache (`plantkit data cache`) "
            "when ARTIFACTS holds one of the dataset at this resize.",
            rich_help_panel=Panel.DATA,
        ),
    ] = True,
    batch_size: BatchSizeOption = 64,
    workers: WorkersOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Predict dataset splits with an expert into ARTIFACTS/experts/NAME/predictions.h5.

    The store records the resize and crop used (attributes resize, input_size)."""
    from plantkit.artifacts import expert_dir
    from plantkit.data.loader_options import check_loader_options
    from plantkit.models.expert_files import check_expert_folder

    # Checked before torch and keras are imported: a bad option is refused at once.
    _check_sizes(resize, crop)
    check_loader_options(batch_size, workers)
    if data is not None and not data.is_dir():
        what = "is not a folder" if data.exists() else "does not exist"
        raise PlantkitInputError(f"dataset root {data} {what}")
    splits = list(dict.fromkeys(value_of(s) for s in split or (Split.val, Split.test)))
    folder = expert_dir(settings.artifacts_root, expert)
    # The loader's own checks (expert.json, the weights and their sha256), torch-free; the
    # loader's second pass does not hash the weights again.
    check_expert_folder(folder)

    from plantkit.predict import predict_expert
    from plantkit.progress import progress_bar
    from plantkit.store import open_store

    store_path = predict_expert(
        folder,
        splits,
        data=data,
        artifacts=settings.artifacts_root,
        features=features,
        dtype=value_of(dtype),
        batch_size=batch_size,
        workers=workers,
        resize=resize,
        crop=crop,
        progress=lambda description, total: progress_bar(description, total, disable=quiet),
        warn=lambda line: err_console.print(line, highlight=False, soft_wrap=True),
        cache=cache,
    )
    with open_store(store_path) as store:
        rows = {s: store.num_rows(s) for s in splits}
        skipped = {s: len(store.skipped_paths(s)) for s in splits}
        attrs = store.attrs
    used = {"resize": attrs.get("resize"), "crop": attrs.get("input_size")}
    if as_json:
        print_json(
            {
                "expert": expert,
                "store": str(store_path),
                "rows": rows,
                "skipped_corrupt": skipped,
                **used,
            }
        )
    elif not quiet:
        counts = ", ".join(f"{s} {n:,}" for s, n in rows.items())
        console.print(
            f"predicted {counts} images (resize {used['resize']}, crop "
            f"{used['crop']}) -> {store_path}",
            highlight=False,
            soft_wrap=True,
        )


def _check_sizes(resize: int | None, crop: int | None) -> None:
    """What can be checked before the expert is read (the rest: with its recorded sizes)."""
    for option, value in (("--resize", resize), ("--crop", crop)):
        if value is not None and value < 1:
            raise PlantkitInputError(f"{option} must be a positive integer, got {value}")
    if resize is not None and crop is not None and crop > resize:
        raise PlantkitInputError(
            f"--crop ({crop}) must not exceed --resize ({resize}): the crop is taken from the "
            "image resized to that shorter side"
        )
