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
    experts: Annotated[
        list[str],
        typer.Option(
            "--expert",
            help="Expert name (its folder under ARTIFACTS/experts); repeat for several "
            "(on a machine with several GPUs, one expert per GPU at once).",
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
    experts = list(dict.fromkeys(experts))
    for name in experts:
        # The loader's own checks (expert.json, the weights and their sha256), torch-free;
        # the loader's second pass does not hash the weights again.
        check_expert_folder(expert_dir(settings.artifacts_root, name))
    options = dict(splits=splits, data=data, features=features, dtype=value_of(dtype),
                   resize=resize, crop=crop, cache=cache, batch_size=batch_size,
                   workers=workers)
    from plantkit.device_pool import gpu_count

    gpus = gpu_count()
    if len(experts) > 1 and gpus > 1:
        summaries = _on_gpus(experts, gpus, options, quiet=quiet or as_json)
    else:
        summaries = [_predict_one(name, options, quiet=quiet) for name in experts]
    if as_json:
        print_json(summaries[0] if len(summaries) == 1 else summaries)
    elif not quiet:
        for summary in summaries:
            console.print(_summary_line(summary), highlight=False, soft_wrap=True)


def _predict_one(name: str, options: dict, *, quiet: bool) -> dict:
    """Predict with one expert in this process; the summary `--json` prints."""
    from plantkit.artifacts import expert_dir
    from plantkit.predict import predict_expert
    from plantkit.progress import progress_bar
    from plantkit.store import open_store

    splits = options["splits"]
    store_path = predict_expert(
        expert_dir(settings.artifacts_root, name),
        splits,
        data=options["data"],
        artifacts=settings.artifacts_root,
        features=options["features"],
        dtype=options["dtype"],
        batch_size=options["batch_size"],
        workers=options["workers"],
        resize=options["resize"],
        crop=options["crop"],
        progress=lambda description, total: progress_bar(description, total, disable=quiet),
        warn=lambda line: err_console.print(line, highlight=False, soft_wrap=True),
        cache=options["cache"],
    )
    with open_store(store_path) as store:
        rows = {s: store.num_rows(s) for s in splits}
        skipped = {s: len(store.skipped_paths(s)) for s in splits}
        attrs = store.attrs
    return {"expert": name, "store": str(store_path), "rows": rows, "skipped_corrupt": skipped,
            "resize": attrs.get("resize"), "crop": attrs.get("input_size")}


def _summary_line(summary: dict) -> str:
    counts = ", ".join(f"{s} {n:,}" for s, n in summary["rows"].items())
    return (f"predicted {counts} images (resize {summary['resize']}, crop {summary['crop']}) "
            f"-> {summary['store']}")


def _on_gpus(experts: list[str], gpus: int, options: dict, *, quiet: bool) -> list[dict]:
    """One `plantkit predict --expert NAME --json` process per expert, one per GPU at once."""
    import json

    from plantkit.device_pool import run_one_per_device

    common = [f"--split={s}" for s in options["splits"]]
    for option in ("data", "resize", "crop", "batch_size", "workers"):
        if options[option] is not None:
            common.append(f"--{option.replace('_', '-')}={options[option]}")
    common += [f"--dtype={options['dtype']}", "--features" if options["features"] else "",
               "--cache" if options["cache"] else "--no-cache", "--json", "--quiet"]
    jobs = [["--artifacts", str(settings.artifacts_root), "predict", f"--expert={name}",
             *filter(None, common)] for name in experts]

    def done(result) -> None:
        if not quiet and result.returncode == 0:
            err_console.print(f"GPU {result.device}: {result.args[3].split('=', 1)[1]} done",
                              highlight=False)

    results = run_one_per_device(jobs, gpus, on_done=done)
    failed = [r for r in results if r.returncode != 0]
    if failed:
        raise typer.Exit(failed[0].returncode)
    return [json.loads(r.stdout) for r in results]


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
