"""`plantkit classify`: the top species of new photos with an expert or a combination."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
)


def classify(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="Image files or folders (searched recursively).",
            show_default=False,
        ),
    ],
    name: Annotated[
        str,
        typer.Option(
            "--with",
            help="An expert or a combination (its folder under ARTIFACTS/experts or "
            "ARTIFACTS/combos).",
            rich_help_panel=Panel.INPUTS,
        ),
    ],
    top: Annotated[
        int,
        typer.Option("--top", help="Species shown per image.", rich_help_panel=Panel.OUTPUT),
    ] = 5,
    csv_path: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Also write one row per image and rank: path, rank, species_id, "
            "species_name, probability, experts.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = None,
    batch_size: BatchSizeOption = 64,
    workers: WorkersOption = None,
    amp: Annotated[
        bool,
        typer.Option(
            "--amp",
            help="bfloat16 autocast (CUDA, CPU): faster, probabilities differ slightly from "
            "the stored predictions.",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = False,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Classify photos with an expert or a combination: the top species of each.

    Per image also the experts that ran on it (a cascade runs its later experts only on the
    images still unsure, a top-k router only the experts it picks); at the end the measured
    cost next to the one `plantkit combine` expected, also kept for `plantkit report`.

    Examples:

      plantkit classify photo.jpg --with resnet18

      plantkit classify photos/ --with cascade --top 3 --csv species.csv
    """
    from plantkit.choices import default_workers
    from plantkit.classify import check_csv_target, find_images, resolve_model
    from plantkit.data.layout import IMAGE_EXTENSIONS
    from plantkit.data.loader_options import check_loader_options

    # Everything checked before torch is imported: a bad input is refused at once.
    if top < 1:
        raise PlantkitInputError(f"--top must be at least 1, got {top}")
    check_loader_options(batch_size, workers)
    check_csv_target(csv_path)
    images = find_images(paths)
    model = resolve_model(settings.artifacts_root, name)
    if not images:
        raise PlantkitInputError(
            f"no image found in {', '.join(map(str, paths))} (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))})")

    from plantkit.classify import classify_images, write_csv
    from plantkit.measured_cost import record_measured_cost
    from plantkit.progress import progress_bar

    result = classify_images(
        model, images, top=top, batch_size=batch_size,
        workers=default_workers() if workers is None else workers, amp=amp,
        progress=lambda description, total: progress_bar(description, total, disable=quiet),
        warn=lambda line: err_console.print(line, highlight=False, soft_wrap=True))
    if csv_path is not None:
        write_csv(result, csv_path)
    try:  # for `plantkit report`; classifying does not need a writable artifacts root
        record_measured_cost(model.folder, result["cost"])
    except OSError as exc:
        err_console.print(f"warning: the measured cost was not recorded in {model.folder}: "
                          f"{exc.strerror or exc}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(result)
        return
    from plantkit.report.classify_tables import print_classification

    print_classification(result, console)
