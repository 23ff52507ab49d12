"""The decoded image cache: every image of a dataset decoded and resized once, in a few files.

The dataset authors' loop decodes each full-size JPEG (500-800 px) and resizes it on the CPU
in every epoch; that is most of an epoch's CPU time. `build_cache` does it once: each image
is decoded as the loader decodes it (JPEG draft mode) and resized as the loader resizes it
(shorter side to `resize`, aspect kept, torchvision's antialiased resize), then stored
re-encoded as JPEG (`jpeg`, quality DEFAULT_QUALITY) or as raw uint8 pixels (`raw`). The
loader's own Resize(resize) is then an identity, so its random and centre crops are exactly
the recipe's; the only difference from the uncached path is the JPEG re-encoding error
(none with `raw`): JPEG_ERROR_BOUND states it and tests/test_cache.py checks it.

Measured on Pl@ntNet-like 500-800 px photos resized to 256 (benchmarks/bench_input_pipeline.py):
quality 90 (4:2:0) takes ~13.5 KB an image (~4.2 GB for Pl@ntNet-300K) and decodes in
~0.6 ms; raw takes ~260 KB (~80 GB) and needs no decoding. `jpeg` is the default: it fits
in the page cache of an ordinary machine, which keeps reads off the disk.

A cache lives in ARTIFACTS/cache/<files>-r<resize>/ where <files> hashes every image's
relative path and size (the dataset fingerprint's rows, without the split assignment, so a
--val-from-train carve reads the same cache). It holds `cache.json` (what it is, the shard
sizes, the images that did not decode), `index.npz` (per image: path, shard, offset,
length, height, width) and SHARD_FILE files of at most SHARD_BYTES. It is written as a whole
folder through the write protocol (plantkit.artifacts.replacing_dir): a kill leaves the old
cache or none, never half of one.
"""

from __future__ import annotations

import io
import json
import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import v2

from plantkit.artifacts import CACHE_DIR, artifact_lock, replacing_dir
from plantkit.choices import CACHE_FORMATS
from plantkit.data.decode import open_image
from plantkit.data.fingerprint import dataset_fingerprint
from plantkit.data.layout import Dataset
from plantkit.errors import PlantkitInputError

CACHE_VERSION = 1
CACHE_FILE = "cache.json"
INDEX_FILE = "index.npz"
SHARD_FILE = "shard-{:03d}.bin"
SHARD_BYTES = 1 << 30
FORMATS = CACHE_FORMATS
DEFAULT_FORMAT = "jpeg"
DEFAULT_QUALITY = 90
# Eval tensors of a `jpeg` cache against the uncached path, in pixel levels (0-255): the mean
# absolute difference over an image's pixels. Measured 1.4-1.6 at quality 90 on photo-like
# images with sensor noise; single pixels at sharp edges differ by up to ~15.
JPEG_ERROR_BOUND = 2.5
IMAGES_PER_TASK = 16  # images a worker encodes per task: few messages, a smooth progress bar


def files_fingerprint(dataset: Dataset) -> str:
    """The hash of every image's (relative path, size), whatever split holds it."""
    paths = [p for split in dataset.splits.values() for p in split.paths]
    sizes = [int(s) for split in dataset.splits.values() for s in split.sizes]
    return dataset_fingerprint([], {"files": (paths, sizes)})


def cache_folder(artifacts: str | os.PathLike, dataset: Dataset, resize: int) -> Path:
    """Where the cache of `dataset` at shorter side `resize` lives under `artifacts`."""
    return Path(artifacts) / CACHE_DIR / f"{files_fingerprint(dataset)}-r{int(resize)}"


@dataclass(frozen=True)
class CachedImageError(Exception):
    """The image did not decode when the cache was built (its file is corrupt)."""

    error: str

    def __str__(self) -> str:
        return self.error


class DecodedCache:
    """A built cache, read by row of its index; picklable (each process maps the shards itself).

    `image(entry)` returns the resized image as a PIL image (`jpeg`) or a uint8 tensor
    3 x H x W (`raw`); an image that did not decode when cached raises CachedImageError.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.meta = _read_meta(self.folder)
        self.format: str = self.meta["format"]
        self.resize: int = int(self.meta["resize"])
        try:
            with np.load(self.folder / INDEX_FILE, allow_pickle=False) as index:
                self.paths = index["paths"]
                self.shard = index["shard"]
                self.offset = index["offset"]
                self.length = index["length"]
                self.height = index["height"]
                self.width = index["width"]
        except (OSError, KeyError, ValueError) as exc:
            raise _broken(self.folder, f"its {INDEX_FILE} does not read ({exc})") from exc
        self.errors: dict[int, str] = {int(k): v for k, v in self.meta["errors"].items()}
        self._maps: list[mmap.mmap] | None = None  # opened on first read, per process

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = None  # mappings do not travel to worker processes
        return state

    def entries_of(self, paths: Sequence[str]) -> np.ndarray:
        """The index row of each relative path; refuses a path the cache does not hold."""
        wanted = np.array([p.encode() for p in paths], dtype=self.paths.dtype)
        rows = np.searchsorted(self.paths, wanted)
        rows = np.minimum(rows, len(self.paths) - 1)
        missing = np.flatnonzero(self.paths[rows] != wanted)
        if len(missing):
            raise PlantkitInputError(
                f"the image cache at {self.folder} does not hold {paths[missing[0]]} "
                f"({len(missing)} images missing); rebuild it with `plantkit data cache`"
            )
        return rows.astype(np.int64)

    def image(self, entry: int) -> Image.Image | torch.Tensor:
        if entry in self.errors:
            raise CachedImageError(self.errors[entry])
        start, n = int(self.offset[entry]), int(self.length[entry])
        data = memoryview(self._map(int(self.shard[entry])))[start:start + n]  # no copy
        if self.format == "jpeg":
            with Image.open(io.BytesIO(data)) as image:
                image.load()
            return image if image.mode == "RGB" else image.convert("RGB")
        h, w = int(self.height[entry]), int(self.width[entry])
        if len(data) != h * w * 3:
            raise CachedImageError(f"the cache's entry holds {len(data)} bytes, not {h * w * 3}")
        # A copy: the tensor must outlive the mapping, and torch wants writable memory.
        pixels = np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3).copy()
        return torch.from_numpy(pixels).permute(2, 0, 1)

    def _map(self, shard: int) -> mmap.mmap:
        if self._maps is None:
            maps = []
            for i in range(len(self.meta["shard_bytes"])):
                with open(self.folder / SHARD_FILE.format(i), "rb") as f:
                    maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                                if os.fstat(f.fileno()).st_size else b"")
            self._maps = maps  # type: ignore[assignment]
        return self._maps[shard]  # type: ignore[index]


def _broken(folder: Path, why: str) -> PlantkitInputError:
    return PlantkitInputError(
        f"the image cache at {folder} is unusable: {why}; rebuild it with `plantkit data cache "
        "--data ROOT`, or pass --no-cache"
    )


def _read_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _broken(folder, f"its {CACHE_FILE} does not read ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("version") != CACHE_VERSION:
        raise _broken(folder, f"it is not a version-{CACHE_VERSION} plantkit cache")
    if meta.get("format") not in FORMATS:
        raise _broken(folder, f"unknown format {meta.get('format')!r}")
    try:
        shard_bytes = [int(n) for n in meta["shard_bytes"]]
        int(meta["resize"]), dict(meta["errors"]), str(meta["files"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _broken(folder, f"its {CACHE_FILE} is malformed ({type(exc).__name__}: {exc})"
                      ) from exc
    for i, expected in enumerate(shard_bytes):
        shard = folder / SHARD_FILE.format(i)
        size = shard.stat().st_size if shard.is_file() else None
        if size != expected:
            raise _broken(folder, f"{shard.name} holds {size} bytes, not {expected}")
    return meta


def find_cache(artifacts: str | os.PathLike, dataset: Dataset, resize: int,
               warn: Callable[[str], None] | None = None) -> DecodedCache | None:
    """The cache of `dataset` at `resize` under `artifacts`, or None when there is none.

    A cache that is there but unusable (damaged, of another version) is passed over with a
    line to `warn`: the run reads the image files instead.
    """
    folder = cache_folder(artifacts, dataset, resize)
    if not folder.is_dir():
        return None
    try:
        cache = DecodedCache(folder)
    except PlantkitInputError as exc:
        if warn is not None:
            warn(f"warning: {exc}; reading the image files instead")
        return None
    if cache.meta.get("files") != files_fingerprint(dataset) or cache.resize != int(resize):
        return None
    return cache


class _Encoder(TorchDataset):
    """Task t: the encoded images IMAGES_PER_TASK * t ... (for a DataLoader's workers)."""

    def __init__(self, images_dir: Path, paths: np.ndarray, resize: int, fmt: str,
                 quality: int) -> None:
        self.images_dir = images_dir
        self.paths = paths
        self.fmt = fmt
        self.quality = quality
        self.resize = resize
        # The loader's own resize (plantkit.data.transforms), so its Resize is an identity.
        self.transform = v2.Compose([v2.ToImage(), v2.Resize(resize, antialias=True)])

    def __len__(self) -> int:
        return -(-len(self.paths) // IMAGES_PER_TASK)

    def __getitem__(self, task: int) -> list[tuple[bytes, int, int, str | None]]:
        rows = range(task * IMAGES_PER_TASK, min(len(self.paths), (task + 1) * IMAGES_PER_TASK))
        return [self._encode(row) for row in rows]

    def _encode(self, row: int) -> tuple[bytes, int, int, str | None]:
        path = self.images_dir / self.paths[row].decode()
        try:
            image = open_image(path, min_side=self.resize)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means a corrupt file
            return b"", 0, 0, f"{type(exc).__name__}: {exc}"
        pixels = self.transform(image).permute(1, 2, 0).contiguous().numpy()
        height, width = pixels.shape[:2]
        if self.fmt == "raw":
            return pixels.tobytes(), height, width, None
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=self.quality)
        return out.getvalue(), height, width, None


def check_cache_options(resize: int, fmt: str, quality: int, workers: int) -> None:
    """The options of `plantkit data cache`, checked before anything is read."""
    if isinstance(resize, bool) or resize < 1:
        raise PlantkitInputError(f"--resize must be a positive integer, got {resize}")
    if fmt not in FORMATS:
        raise PlantkitInputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not 1 <= quality <= 100:
        raise PlantkitInputError(f"--quality must be between 1 and 100, got {quality}")
    if workers < 0:
        raise PlantkitInputError(f"--workers must be 0 or more, got {workers}")


def build_cache(dataset: Dataset, artifacts: str | os.PathLike, *, resize: int = 256,
                fmt: str = DEFAULT_FORMAT, quality: int = DEFAULT_QUALITY, workers: int = 2,
                on_image: Callable[[int], None] | None = None) -> Path:
    """Write the cache of every image of `dataset` at shorter side `resize`; return its folder.

    `workers` processes decode and encode (0: this process); `on_image(n)` is called as
    images are written. Images that do not decode are recorded, not fatal: the loaders skip
    them as they skip a corrupt file. An existing cache of the same key is replaced.
    """
    check_cache_options(resize, fmt, quality, workers)
    # Sorted relative paths: the index is looked up by binary search.
    paths = np.array(sorted({p.encode() for s in dataset.splits.values() for p in s.paths}))
    if len(paths) == 0:
        raise PlantkitInputError(f"the dataset at {dataset.root} has no images to cache")
    folder = cache_folder(artifacts, dataset, resize)
    encoder = _Encoder(dataset.images_dir, paths, resize, fmt, quality)
    tasks = DataLoader(encoder, batch_size=None, num_workers=workers,
                       prefetch_factor=4 if workers else None)
    n = len(paths)
    shard = np.zeros(n, np.int16)
    offset = np.zeros(n, np.int64)
    length = np.zeros(n, np.int64)
    height = np.zeros(n, np.int32)
    width = np.zeros(n, np.int32)
    errors: dict[str, str] = {}
    shard_bytes: list[int] = []
    # One writer of a cache at a time (another is refused as busy, or waited for: --wait).
    with artifact_lock(folder), replacing_dir(folder) as tmp:
        out = None
        row = 0
        try:
            for task in tasks:
                for data, h, w, error in task:
                    if out is None or (shard_bytes[-1] and shard_bytes[-1] + len(data)
                                       > SHARD_BYTES):
                        if out is not None:
                            out.close()
                        out = open(tmp / SHARD_FILE.format(len(shard_bytes)), "wb")  # noqa: SIM115
                        shard_bytes.append(0)
                    shard[row], offset[row] = len(shard_bytes) - 1, shard_bytes[-1]
                    length[row] = len(data)
                    height[row], width[row] = h, w
                    if error is not None:
                        errors[str(row)] = error
                    out.write(data)
                    shard_bytes[-1] += len(data)
                    row += 1
                if on_image is not None:
                    on_image(len(task))
        finally:
            if out is not None:
                out.close()
        np.savez(tmp / INDEX_FILE, paths=paths, shard=shard, offset=offset, length=length,
                 height=height, width=width)
        meta = {
            "version": CACHE_VERSION, "format": fmt, "quality": quality if fmt == "jpeg" else None,
            "resize": int(resize), "files": files_fingerprint(dataset), "images": n,
            "root": str(dataset.root), "shard_bytes": shard_bytes, "errors": errors,
        }
        (tmp / CACHE_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


# The one line a run that reads a cache prints (train, predict).
USING_CACHE_LINE = "using the decoded image cache at {folder} (--no-cache: read the image files)"


def cache_for_run(artifacts: str | os.PathLike, dataset: Dataset, resize: int, *,
                  enabled: bool = True, say: Callable[[str], None] | None = None,
                  announce: bool = True) -> DecodedCache | None:
    """The cache `plantkit train` / `predict` read from: find_cache's, announced through `say`
    in USING_CACHE_LINE (a damaged one is passed over with a warning through `say`), silently
    without `announce` (said before); None when `enabled` is False (--no-cache) or there is
    no matching one."""
    if not enabled:
        return None
    cache = find_cache(artifacts, dataset, resize, warn=say if announce else None)
    if cache is not None and say is not None and announce:
        say(USING_CACHE_LINE.format(folder=cache.folder))
    return cache
