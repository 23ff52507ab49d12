"""`plantkit data`: generate the synthetic stand-in and inspect datasets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from plantkit.artifacts import data_dir
from plantkit.choices import MAX_DEFAULT_WORKERS, CacheFormat, Profile
from plantkit.commands._cli import (
    DataRootOption,
    Panel,
    QuietFlag,
    console,
    err_console,
    examples,
    print_json,
    settings,
    value_of,
)
from plantkit.errors import PlantkitInputError

app = typer.Typer(
    help="Generate the synthetic stand-in dataset, inspect datasets (EDA), cache their images.",
    no_args_is_help=True,
)


@app.command(
    epilog=examples(
        "plantkit data synth",
        "plantkit data synth --profile plantnet300k --scale 0.01 --out artifacts/data/pn1pct",
        "plantkit data synth --profile zipf --classes 200 --alpha 1.2 --image-size 96",
        "plantkit data synth --scale 1 --workers 8",
    )
)
def synth(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Target folder \\[default: ARTIFACTS/data/<profile>-synth].",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = None,
    profile: Annotated[
        Profile,
        typer.Option(
            "--profile",
            help="Class counts: Pl@ntNet-300K's real ones (scaled), uniform or zipf.",
            rich_help_panel=Panel.DATA,
        ),
    ] = Profile.plantnet300k,
    scale: Annotated[
        float,
        typer.Option(
            "--scale",
            help="Multiply every class's image count by this (min 2/1/1 per split).",
            rich_help_panel=Panel.DATA,
        ),
    ] = 0.01,
    classes: Annotated[
        int | None,
        typer.Option(
            "--classes",
            help="Number of species; for plantnet300k, K species spread over the frequency range.",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option("--alpha", help="Exponent of the zipf profile.", rich_help_panel=Panel.DATA),
    ] = 1.0,
    image_size: Annotated[
        int,
        typer.Option(
            "--image-size", help="Side of the square images, pixels.", rich_help_panel=Panel.DATA
        ),
    ] = 64,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Same seed, byte-identical files.", rich_help_panel=Panel.DATA),
    ] = 0,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace a dataset plantkit generated there before.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            metavar="<int>",
            help="Processes drawing the images, e.g. --workers 8 (0 or 1: this one; at most "
            "one per 1,000 images); any number writes the same files "
            f"\\[default: one per core, at most {MAX_DEFAULT_WORKERS}].",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = None,
    quiet: QuietFlag = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print what was written as JSON.", rich_help_panel=Panel.OUTPUT
        ),
    ] = False,
) -> None:
    """Draw a synthetic long-tailed plant dataset in the Pl@ntNet-300K v1.1 layout."""
    from plantkit.data.loader_options import check_workers
    from plantkit.data.profiles import make_profile, total_counts
    from plantkit.data.synth import generate_dataset
    from plantkit.progress import progress_bar

    check_workers(workers)
    profile = value_of(profile)
    if not math.isfinite(scale):
        raise PlantkitInputError(f"--scale must be a positive number, got {scale}")
    if profile == "zipf" and not (math.isfinite(alpha) and alpha > 0):
        raise PlantkitInputError(f"--alpha must be a positive number, got {alpha}")
    counts = make_profile(profile, scale=scale, classes=classes, alpha=alpha)
    target = out or data_dir(settings.artifacts_root) / f"{profile}-synth"
    n_images = int(total_counts(counts).sum())
    with progress_bar("drawing images", total=n_images, disable=quiet) as advance:
        root = generate_dataset(
            target, counts, image_size=image_size, seed=seed, overwrite=overwrite,
            on_image=advance, workers=workers,
        )
    if as_json:
        print_json({"root": str(root), "images": n_images, "species": len(counts)})
    elif not quiet:
        err_console.print(
            f"wrote {n_images:,} images of {len(counts):,} species to {root}", highlight=False
        )


def _embedded_dataset(quiet: bool) -> Path:
    from plantkit.data.embedded import embedded_counts, embedded_root, ensure_embedded_dataset
    from plantkit.data.profiles import total_counts
    from plantkit.progress import progress_bar

    root = embedded_root(settings.artifacts_root)
    if (root / "images").is_dir():
        return root
    counts = embedded_counts()
    total = int(total_counts(counts).sum())
    with progress_bar("drawing the embedded dataset", total=total, disable=quiet) as advance:
        return ensure_embedded_dataset(settings.artifacts_root, on_image=advance)


def _rare_augmentation_preview(seed: int):
    """PIL -> PIL: the --augment-below augmentation, one seeded draw per sample shown."""
    from itertools import count

    from plantkit.data.transforms import augment_preview

    draws = count(seed)
    return lambda image: augment_preview(image, next(draws))


@app.command(
    epilog=examples(
        "plantkit data inspect --profile plantnet300k",
        "plantkit data inspect --data /data/plantnet_300K --html eda.html --verify",
        "plantkit data inspect --data /data/my_images --val-from-train 0.1 --val-seed 0",
    )
)
def inspect(
    root: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Dataset root (Pl@ntNet-300K layout or {train,val,test}/<class>/ folders) "
            "\\[default: the embedded stand-in, made on first use].",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    profile: Annotated[
        Profile | None,
        typer.Option(
            "--profile",
            help="Analyse a class-count profile instead of a dataset.",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    val_from_train: Annotated[
        float | None,
        typer.Option(
            "--val-from-train",
            help="If the dataset has no val split, carve this stratified fraction out of train.",
            rich_help_panel=Panel.DATA,
        ),
    ] = None,
    val_seed: Annotated[
        int,
        typer.Option(
            "--val-seed", help="Seed of --val-from-train's draw.", rich_help_panel=Panel.DATA
        ),
    ] = 0,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Decode every image and list the corrupt ones.",
            rich_help_panel=Panel.DATA,
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the numbers as JSON.", rich_help_panel=Panel.OUTPUT),
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Write an interactive HTML report.", rich_help_panel=Panel.OUTPUT
        ),
    ] = None,
    quiet: QuietFlag = False,
) -> None:
    """Analyse a dataset: splits, long tail, class buckets (the reference study's EDA)."""
    from plantkit.artifacts import check_output_file
    from plantkit.data.eda import summarize
    from plantkit.report.eda_tables import print_summary

    if root is not None and profile is not None:
        raise PlantkitInputError("give --data ROOT or --profile NAME, not both")
    profile = value_of(profile)
    if html is not None:
        check_output_file(html, "--html")
    dataset = None
    if profile is not None:
        from plantkit.data.profiles import make_profile

        counts = make_profile(profile)
        source = f"profile {profile}"
    else:
        from plantkit.data.layout import open_dataset

        if root is None:
            root = _embedded_dataset(quiet)
        dataset = open_dataset(root, val_from_train=val_from_train, seed=val_seed)
        counts = dataset.counts()
        source = str(dataset.root)
    summary = summarize(counts, source=source, dataset=dataset)
    if verify:
        if dataset is None:
            raise PlantkitInputError("--verify needs --data ROOT, not a --profile")
        from plantkit.data.verify import verify_images
        from plantkit.progress import progress_bar

        with progress_bar("decoding images", total=dataset.n_images, disable=quiet) as advance:
            corrupt = verify_images(dataset, on_image=advance)
        summary["corrupt_images"] = corrupt
    if html is not None:
        from plantkit.report.eda_html import write_eda_html

        write_eda_html(html, summary, dataset=dataset, augment=_rare_augmentation_preview(seed=0))
    if as_json:
        print_json(summary)
    else:
        print_summary(summary, console)
        if html is not None:
            console.print(f"HTML report: {html}")


@app.command(
    epilog=examples(
        "plantkit data cache --data /data/plantnet_300K",
        "plantkit data cache --data /data/plantnet_300K --resize 320 --format raw",
        "plantkit data cache --workers 8",
    )
)
def cache(
    root: DataRootOption = None,
    resize: Annotated[
        int,
        typer.Option(
            "--resize",
            metavar="<int>",
            help="Shorter image side the images are stored at: the --resize of the train and "
            "predict runs that are to read it.",
            rich_help_panel=Panel.DATA,
        ),
    ] = 256,
    fmt: Annotated[
        CacheFormat,
        typer.Option(
            "--format",
            help="jpeg: re-encoded (~13.5 KB an image at 256 px; mean error < 2.5 of 255 "
            "levels); raw: uint8 pixels, exact (~256 KB an image).",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = CacheFormat.jpeg,
    quality: Annotated[
        int,
        typer.Option(
            "--quality", metavar="<1-100>", help="JPEG quality of --format jpeg.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = 90,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            metavar="<int>",
            help="Processes decoding and encoding (0: this one) "
            f"\\[default: one per core, at most {MAX_DEFAULT_WORKERS}].",
            rich_help_panel=Panel.HARDWARE,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Rebuild a cache that is already up to date.",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = False,
    quiet: QuietFlag = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the outcome as JSON.", rich_help_panel=Panel.OUTPUT),
    ] = False,
) -> None:
    """Decode and resize every image once into ARTIFACTS/cache (a few large files).

    plantkit train and predict read a cache of their dataset at their --resize by themselves
    (one line says so); their --no-cache reads the image files instead."""
    from plantkit.choices import default_workers
    from plantkit.data.cache import build_cache, cache_folder, check_cache_options, find_cache
    from plantkit.data.layout import NoValSplit, open_dataset
    from plantkit.progress import progress_bar

    fmt = value_of(fmt)
    workers = default_workers() if workers is None else workers
    check_cache_options(resize, fmt, quality, workers)
    if root is not None and not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise PlantkitInputError(f"dataset root {root} {what}")
    if root is None:
        root = _embedded_dataset(quiet)
    try:
        dataset = open_dataset(root)
    except NoValSplit:
        # The cache holds files, not splits: any carve of val reads the same images.
        dataset = open_dataset(root, val_from_train=0.1, seed=0)
    artifacts = settings.artifacts_root
    current = find_cache(artifacts, dataset, resize)
    if current is None and cache_folder(artifacts, dataset, resize).is_dir() and not quiet:
        err_console.print(f"replacing the unusable cache at "
                          f"{cache_folder(artifacts, dataset, resize)}", highlight=False)
    fresh = current is None or overwrite or current.format != fmt or (
        fmt == "jpeg" and current.meta.get("quality") != quality)
    if fresh:
        with progress_bar("caching images", total=dataset.n_images, disable=quiet) as advance:
            folder = build_cache(dataset, artifacts, resize=resize, fmt=fmt, quality=quality,
                                 workers=workers, on_image=advance)
        from plantkit.data.cache import DecodedCache

        current = DecodedCache(folder)
    assert current is not None
    size = int(sum(current.meta["shard_bytes"]))
    summary = {
        "folder": str(current.folder), "images": len(current), "format": current.format,
        "quality": current.meta.get("quality"), "resize": current.resize,
        "bytes": size, "undecodable": len(current.errors),
        "built": fresh,
    }
    if as_json:
        print_json(summary)
    elif not quiet:
        done = "cached" if fresh else "already up to date:"
        console.print(
            f"{done} {summary['images']:,} images at {resize} px ({current.format}, "
            f"{size / 2**20:,.1f} MiB; {len(current.errors)} did not decode) "
            f"-> {current.folder}", highlight=False, soft_wrap=True)
