"""The synthetic stand-in for Pl@ntNet-300K: drawn plants in the v1.1 folder layout.

`generate_dataset(target, counts)` writes, under `target`:

- `images/{train,val,test}/<species_id>/<image_id>.jpg`
- `plantnet300K_species_id_2_name.json`: {species_id: name}
- `plantnet300K_metadata.json`: {image_id: {species_id, split, organ, author, license, obs_id}}
- `class_idx_to_species_id.json`: {"0": species_id, ...}, class index = rank of the id
  (numeric order when every id is digits, as in Pl@ntNet-300K, else text order)
- `synth.json`: the generator's parameters and a summary of the counts

The same counts, image size and seed give byte-identical files, whatever the number of
drawing processes (`workers`). The folder appears only once complete (written under a
temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import pandas as pd
import PIL

from plantkit import __version__
from plantkit.artifacts import SYNTH_FILE, artifact_lock, replacing_dir
from plantkit.choices import default_workers
from plantkit.data.drawing import render
from plantkit.data.layout import CLASS_INDEX_FILE, METADATA_FILE, NAMES_FILE, class_order
from plantkit.data.loader_options import check_workers
from plantkit.data.profiles import SPLITS
from plantkit.data.species import Species, make_species_table, stable_int
from plantkit.errors import PlantkitInputError
from plantkit.parent_watch import exit_with

MIN_IMAGE_SIZE = 16
JPEG_QUALITY = 90
PROGRESS_EVERY = 32
FORMAT = "plantnet300K-v1.1"


def image_id(seed: int, class_id: str, split: str, index: int) -> str:
    """A 40-hex-digit id like Pl@ntNet's, unique per (seed, class, split, index)."""
    return hashlib.sha1(f"plantkit-synth/{seed}/{class_id}/{split}/{index}".encode()).hexdigest()


def image_rng(seed: int, class_id: str, split: str, index: int) -> np.random.Generator:
    """The generator that draws one image: depends on nothing else."""
    entropy = [int(seed), stable_int(class_id), SPLITS.index(split), int(index)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def draw_image(sp: Species, seed: int, split: str, index: int, image_size: int) -> bytes:
    """The JPEG bytes of one image."""
    img = render(sp, image_rng(seed, sp.class_id, split, index), image_size)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=False)
    return buf.getvalue()


def dumps(payload) -> str:
    """Deterministic JSON: sorted keys, fixed separators, UTF-8 text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_counts(counts: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(counts, pd.DataFrame):
        raise PlantkitInputError("counts must be a profile DataFrame (see make_profile)")
    missing = [s for s in SPLITS if s not in counts.columns]
    if missing:
        raise PlantkitInputError(f"counts lacks the column(s) {', '.join(missing)}")
    if len(counts) == 0:
        raise PlantkitInputError("counts has no classes")
    ids = [str(c) for c in counts.index]
    if len(set(ids)) != len(ids):
        raise PlantkitInputError("counts has duplicate class ids")
    bad = [c for c in ids if not c or c in (".", "..") or "/" in c or "\\" in c]
    if bad:
        raise PlantkitInputError(f"class id {bad[0]!r} cannot be a folder name")
    values = counts[list(SPLITS)]
    try:
        ints = values.to_numpy(dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise PlantkitInputError("counts' train/val/test must be integers") from exc
    if (ints < 0).any() or not np.array_equal(ints, values.to_numpy(dtype=float)):
        raise PlantkitInputError("counts' train/val/test must be non-negative integers")
    out = pd.DataFrame(ints, columns=list(SPLITS), index=pd.Index(ids, name="class_id"))
    names = counts["species_name"] if "species_name" in counts.columns else counts.index
    out.insert(0, "species_name", [str(n) for n in names])
    return out.loc[class_order(ids)]


def _check_target(target: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise PlantkitInputError(f"{target} is a file, not a folder; choose another --out")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise PlantkitInputError(f"{target} is not empty; pass --overwrite to replace it")
        # --overwrite replaces a generated dataset, never an arbitrary folder (think `--out ~`).
        if not (target / SYNTH_FILE).is_file():
            raise PlantkitInputError(
                f"{target} is not empty and holds no synth.json, so it is not a generated "
                "dataset; --overwrite replaces only those: choose another --out"
            )


def _summary(counts: pd.DataFrame, species: list[Species], image_size: int, seed: int) -> dict:
    totals = counts[list(SPLITS)].sum(axis=1)
    organs: dict[str, int] = {}
    for sp in species:
        organs[sp.organ] = organs.get(sp.organ, 0) + 1
    return {
        "generator": "plantkit.data.synth",
        "format": FORMAT,
        "plantkit_version": __version__,
        # Byte-identical output needs the same drawing and JPEG libraries.
        "numpy_version": np.__version__,
        "pillow_version": PIL.__version__,
        "image_size": int(image_size),
        "seed": int(seed),
        "jpeg_quality": JPEG_QUALITY,
        "classes": len(counts),
        "genera": len({sp.genus for sp in species}),
        "organs": organs,
        "images": {s: int(counts[s].sum()) for s in SPLITS} | {"total": int(totals.sum())},
        "images_per_class": {
            "min": int(totals.min()),
            "median": float(totals.median()),
            "max": int(totals.max()),
        },
    }


def generate_dataset(
    target: str | os.PathLike,
    counts: pd.DataFrame,
    *,
    image_size: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    on_image: Callable[[int], None] | None = None,
    workers: int | None = 1,
) -> Path:
    """Draw `counts` images per class and split under `target`; return `target`.

    Refuses a non-empty `target` unless `overwrite` (then it is replaced once the new
    dataset is complete). `on_image(n)` is called after every few images with the
    number drawn since the last call. `workers`: processes drawing the images (0 or 1:
    this one; None: plantkit.choices.default_workers(); at most one per
    MIN_IMAGES_PER_WORKER images); the files do not depend on it.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise PlantkitInputError(f"--image-size must be an integer, got {image_size!r}")
    if image_size < MIN_IMAGE_SIZE:
        raise PlantkitInputError(
            f"--image-size must be at least {MIN_IMAGE_SIZE}, got {image_size}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PlantkitInputError(f"--seed must be a non-negative integer, got {seed!r}")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise PlantkitInputError(f"--workers must be an integer, got {workers!r}")
    check_workers(int(workers))
    image_size, seed, workers = int(image_size), int(seed), int(workers)
    counts = _check_counts(counts)
    target = Path(target)
    _check_target(target, overwrite)
    with artifact_lock(target):
        _check_target(target, overwrite)  # again, now that no other writer can come between
        return _generate_locked(target, counts, image_size, seed, on_image, workers)


# (species, split, first index, end index): a run of one class's images in one split.
Segment = tuple[Species, str, int, int]


def _generate_locked(target: Path, counts: pd.DataFrame, image_size: int, seed: int,
                     on_image: Callable[[int], None] | None, workers: int) -> Path:
    ids = counts.index.to_list()
    species = make_species_table(ids, counts["species_name"].to_list())
    runs: list[Segment] = [
        (sp, split, 0, n)
        for split in SPLITS
        for sp, n in zip(species, counts[split].to_list(), strict=True)
        if n > 0
    ]
    total = sum(stop - start for _, _, start, stop in runs)
    # A process takes ~0.5 s to start (Python, NumPy, pandas): a small dataset gets fewer.
    workers = min(workers, max(1, total // MIN_IMAGES_PER_WORKER))
    chunks = _chunks(runs, workers)
    with replacing_dir(target) as tmp:
        for sp, split, _, _ in runs:
            (tmp / "images" / split / sp.class_id).mkdir(parents=True)
        if min(workers, len(chunks)) > 1:
            _draw_in_pool(tmp, chunks, seed, image_size, workers, on_image)
        else:
            _draw_here(tmp, runs, seed, image_size, on_image)
        metadata: dict[str, dict] = {}
        for sp, split, _, n in runs:
            for index in range(n):
                iid = image_id(seed, sp.class_id, split, index)
                metadata[iid] = {
                    "species_id": sp.class_id,
                    "split": split,
                    "organ": sp.organ,
                    "author": "plantkit synth",
                    "license": "cc0",
                    "obs_id": iid[:20],
                }
        names = dict(zip(ids, counts["species_name"], strict=True))
        (tmp / NAMES_FILE).write_text(dumps(names), encoding="utf-8")
        (tmp / METADATA_FILE).write_text(dumps(metadata), encoding="utf-8")
        class_idx = {str(i): c for i, c in enumerate(ids)}
        (tmp / CLASS_INDEX_FILE).write_text(dumps(class_idx), encoding="utf-8")
        summary = _summary(counts, species, image_size, seed)
        (tmp / SYNTH_FILE).write_text(
            json.dumps(summary, sort_keys=True, indent=2) + "\n", encoding="utf-8"
        )
    return target


def _write_images(tmp: Path, segment: Segment, seed: int, images: Iterable[bytes]) -> None:
    sp, split, start, stop = segment
    folder = tmp / "images" / split / sp.class_id
    for index, data in zip(range(start, stop), images, strict=True):
        # "x": a new file (the folder is new); the plain call, as fast as a hand-written
        # os.open loop was not (benchmarks/bench_kernels.py).
        with open(folder / f"{image_id(seed, sp.class_id, split, index)}.jpg", "xb") as file:
            file.write(data)


def _draw_here(tmp: Path, runs: list[Segment], seed: int, image_size: int,
               on_image: Callable[[int], None] | None) -> None:
    pending = 0
    for sp, split, start, stop in runs:
        for index in range(start, stop):
            data = draw_image(sp, seed, split, index, image_size)
            _write_images(tmp, (sp, split, index, index + 1), seed, [data])
            pending += 1
            if on_image is not None and pending >= PROGRESS_EVERY:
                on_image(pending)
                pending = 0
    if on_image is not None and pending:
        on_image(pending)


# Images a pool process must have to draw (~1.5 s at 64 px) for it to be started.
MIN_IMAGES_PER_WORKER = 1000
# Images per task of a pool: ~0.1 s of drawing, against ~1 ms of passing a task around;
# smaller when the dataset is small, so that every process gets a few.
CHUNK_IMAGES = 64
CHUNKS_PER_WORKER = 4
# Tasks handed out ahead per process: the drawn images wait in memory until written.
IN_FLIGHT_PER_WORKER = 2


def _chunks(runs: list[Segment], workers: int) -> list[list[Segment]]:
    """`runs` cut into tasks of about the same number of images, in order."""
    total = sum(stop - start for _, _, start, stop in runs)
    size = max(1, min(CHUNK_IMAGES, -(-total // (max(workers, 1) * CHUNKS_PER_WORKER))))
    chunks: list[list[Segment]] = []
    chunk: list[Segment] = []
    filled = 0
    for sp, split, start, stop in runs:
        while start < stop:
            end = min(stop, start + size - filled)
            chunk.append((sp, split, start, end))
            filled += end - start
            start = end
            if filled == size:
                chunks.append(chunk)
                chunk, filled = [], 0
    if chunk:
        chunks.append(chunk)
    return chunks


def _draw_chunk(chunk: list[Segment], seed: int, image_size: int) -> list[list[bytes]]:
    """In a pool process: the JPEG bytes of each segment's images."""
    return [
        [draw_image(sp, seed, split, index, image_size) for index in range(start, stop)]
        for sp, split, start, stop in chunk
    ]


def _start_worker(parent: int) -> None:
    """A pool process exits with its parent and leaves Ctrl-C to it (the parent stops the
    pool; a worker's KeyboardInterrupt would only add a traceback per process)."""
    exit_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _draw_in_pool(tmp: Path, chunks: list[list[Segment]], seed: int, image_size: int,
                  workers: int, on_image: Callable[[int], None] | None) -> None:
    """Draw in `workers` processes, write here: only this process touches `tmp`, so the
    folder and its clean-up on error stay replacing_dir's alone."""
    workers = min(workers, len(chunks))
    # Spawned, not forked: the caller may hold torch's threads or open files, and a fork
    # server's processes would be its children, which exit_with cannot watch.
    context = multiprocessing.get_context("spawn")
    todo = iter(chunks)
    pending: dict[Future, list[Segment]] = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(os.getpid(),)) as pool:

        def submit() -> None:
            chunk = next(todo, None)
            if chunk is not None:
                pending[pool.submit(_draw_chunk, chunk, seed, image_size)] = chunk

        try:
            for _ in range(workers * IN_FLIGHT_PER_WORKER):
                submit()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk = pending.pop(future)
                    images = future.result()
                    submit()
                    for segment, data in zip(chunk, images, strict=True):
                        _write_images(tmp, segment, seed, data)
                    if on_image is not None:
                        on_image(sum(stop - start for _, _, start, stop in chunk))
        except BaseException:
            # An error or Ctrl-C: do not wait for the chunks not yet started.
            pool.shutdown(wait=False, cancel_futures=True)
            raise


__all__ = [
    "SYNTH_FILE",
    "draw_image",
    "generate_dataset",
    "image_id",
]
