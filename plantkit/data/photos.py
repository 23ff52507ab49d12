"""Photo-like stand-in JPEGs of Pl@ntNet-300K's sizes (500-800 px on the longer side, 4:3,
30 % portrait): smooth colour fields, soft blobs and sensor-like noise. The drawn species of
plantkit.data.drawing are small and clean; these are what the image pipeline's costs and the
image cache's JPEG error were measured on (benchmarks/bench_input_pipeline.py,
benchmarks/gpu, tests/test_cache.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

LONG_SIDES = (500, 800)  # Pl@ntNet-300K-like: about 500 x 375 up to 800 x 600
PORTRAIT_SHARE = 0.3


def plant_like_jpeg(path: Path, rng: np.random.Generator) -> None:
    """A 4:3 photo-like JPEG: smooth colour fields, soft blobs and sensor-like noise."""
    long_side = int(rng.integers(LONG_SIDES[0], LONG_SIDES[1] + 1))
    width, height = long_side, long_side * 3 // 4
    if rng.random() < PORTRAIT_SHARE:
        width, height = height, width
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, phase = rng.uniform(-1, 1, 3)
        pixels[..., c] = 128 + 60 * np.sin(a * x / 60 + b * y / 45 + 3 * phase)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 120)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        pixels += blob[..., None] * rng.uniform(-80, 80, 3).astype(np.float32)
    pixels += rng.normal(0, rng.uniform(5, 9), pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90)
