"""`plantkit predict`: recompute an expert's predictions into its HDF5 store."""

from __future__ import annotations

from pathlib import Path

import typer

from plantkit.choices import LOGITS_DTYPES, SPLITS
from plantkit.commands._cli import PlantkitInputError, console, print_json, settings


def predict(
    expert: str = typer.Option(
        ..., "--expert", help="Expert name (its folder under ARTIFACTS/experts)."
    ),
    split: list[str] = typer.Option(
        ["val", "test"], "--split", help="Split to predict; repeat for several."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset root \\[default: the one the expert was trained on]."
    ),
    features: bool = typer.Option(
        False, "--features", help="Also store penultimate features (float16, for the router)."
    ),
    dtype: str = typer.Option("float32", "--dtype", help="Stored logits: float32 or float16."),
    resize: int | None = typer.Option(
        None, "--resize", help="Shorter image side before the centre crop, for this run "
        "\\[default: the one the expert was trained or imported with; else 8/7 of the crop, "
        "as 256 for 224]."
    ),
    crop: int | None = typer.Option(
        None, "--crop", help="Side of the square centre crop the expert sees, for this run; "
        "at most the resize, and a size the network runs at (CNNs take any) \\[default: the "
        "expert's input size]."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch."),
    workers: int = typer.Option(2, "--workers", help="Image-loading processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Predict dataset splits with an expert into ARTIFACTS/experts/NAME/predictions.h5.

    The store records the resize and crop used (attributes resize, input_size)."""
    from plantkit.artifacts import STORE_FILE, artifact_lock, expert_dir

    # Checked before torch and keras are imported: a bad option is refused at once.
    _check_sizes(resize, crop)
    splits = list(dict.fromkeys(split))
    _check_options(splits, dtype, batch_size, workers, data)
    folder = expert_dir(settings.artifacts_root, expert)
    _check_expert_folder(folder)

    from plantkit.predict import load_for_prediction, predict_to_store
    from plantkit.progress import progress_bar
    from plantkit.store import open_store

    with artifact_lock(folder):  # before reading: no train or import may change it meanwhile
        model, dataset, recorded = load_for_prediction(
            folder, data=data, artifacts=settings.artifacts_root
        )
        resize = recorded if resize is None else resize
        total = sum(len(dataset.splits[s]) for s in splits if s in dataset.splits)
        with progress_bar(f"predicting {', '.join(splits)}", total=total,
                          disable=quiet) as advance:
            store_path = predict_to_store(
                model, dataset, splits, folder / STORE_FILE, name=expert, features=features,
                dtype=dtype, batch_size=batch_size, workers=workers, resize=resize,
                crop=crop, append=True, on_batch=advance,
            )
    with open_store(store_path) as store:
        rows = {s: store.num_rows(s) for s in splits}
        attrs = store.attrs
    used = {"resize": attrs.get("resize"), "crop": attrs.get("input_size")}
    if as_json:
        print_json({"expert": expert, "store": str(store_path), "rows": rows, **used})
    elif not quiet:
        counts = ", ".join(f"{s} {n:,}" for s, n in rows.items())
        console.print(f"predicted {counts} images (resize {used['resize']}, crop "
                      f"{used['crop']}) -> {store_path}", highlight=False, soft_wrap=True)


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


# Which of the SPLITS a dataset holds is checked once it is opened.


def _check_options(splits: list[str], dtype: str, batch_size: int, workers: int,
                   data: Path | None) -> None:
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise PlantkitInputError(
            f"--split {unknown[0]!r} is unknown: use {', '.join(SPLITS)}"
        )
    if dtype not in LOGITS_DTYPES:
        raise PlantkitInputError(f"--dtype {dtype!r} is unknown: use float32 or float16")
    if batch_size < 1:
        raise PlantkitInputError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise PlantkitInputError(f"--workers must be 0 or more, got {workers}")
    if data is not None:
        if not data.exists():
            raise PlantkitInputError(f"dataset root {data} does not exist")
        if not data.is_dir():
            raise PlantkitInputError(f"dataset root {data} is not a folder")


def _check_expert_folder(folder: Path) -> None:
    """The messages of plantkit.predict.load_for_prediction and read_expert_json, early."""
    from plantkit.artifacts import EXPERT_FILE

    if not folder.is_dir():
        raise PlantkitInputError(f"no expert folder {folder}: train or import it first")
    if not (folder / EXPERT_FILE).is_file():
        raise PlantkitInputError(f"{folder} is not an expert folder: no {EXPERT_FILE}")
