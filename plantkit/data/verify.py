"""Decode every image of a dataset and list the ones that fail."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image


def decode_error(path: Path) -> str | None:
    """None if the image decodes completely, else the decoder's complaint."""
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure makes the file corrupt
        return f"{type(exc).__name__}: {exc}"
    return None


def verify_images(
    dataset, *, on_image: Callable[[int], None] | None = None, workers: int | None = None
) -> list[dict]:
    """[{split, path, error}] for every image that does not decode; threads share the work.

    PIL releases the GIL while decoding, so threads use all cores without process start-up.
    """
    jobs = [(split, rel) for split, s in dataset.splits.items() for rel in s.paths]
    corrupt = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = pool.map(lambda job: decode_error(dataset.images_dir / job[1]), jobs)
        for (split, rel), error in zip(jobs, results):
            if error is not None:
                corrupt.append({"split": split, "path": rel, "error": error})
            if on_image:
                on_image(1)
    return corrupt
