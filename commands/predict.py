"""`plantkit predict`: recompute an expert's predictions into its HDF5 store."""

from __future__ import annotations

from pathlib import Path

import typer

from plantkit.commands._cli import console, print_json, settings


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
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch."),
    workers: int = typer.Option(2, "--workers", help="Image-loading processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Predict dataset splits with an expert into ARTIFACTS/experts/NAME/predictions.h5."""
    from plantkit.artifacts import STORE_FILE, artifact_lock, expert_dir
    from plantkit.predict import load_for_prediction, predict_to_store
    from plantkit.progress import progress_bar
    from plantkit.store import open_store

    folder = expert_dir(settings.artifacts_root, expert)
    splits = list(dict.fromkeys(split))
    with artifact_lock(folder):  # before reading: no train or import may change it meanwhile
        model, dataset, resize = load_for_prediction(
            folder, data=data, artifacts=settings.artifacts_root
        )
        total = sum(len(dataset.splits[s]) for s in splits if s in dataset.splits)
        with progress_bar(f"predicting {', '.join(splits)}", total=total,
                          disable=quiet) as advance:
            store_path = predict_to_store(
                model, dataset, splits, folder / STORE_FILE, name=expert, features=features,
                dtype=dtype, batch_size=batch_size, workers=workers, resize=resize,
                append=True, on_batch=advance,
            )
    with open_store(store_path) as store:
        rows = {s: store.num_rows(s) for s in splits}
    if as_json:
        print_json({"expert": expert, "store": str(store_path), "rows": rows})
    elif not quiet:
        counts = ", ".join(f"{s} {n:,}" for s, n in rows.items())
        console.print(f"predicted {counts} images -> {store_path}", highlight=False)
