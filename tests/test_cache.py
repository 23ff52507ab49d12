"""The decoded image cache (plantkit.data.cache, `plantkit data cache`): tensors against the
uncached path (the stated JPEG bound, raw exact), corrupt images, damaged caches, random
access by every sampler, a kill mid-build, and the command's refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli, one_torch_thread  # noqa: F401 (an autouse fixture)

from plantkit.choices import SAMPLERS
from plantkit.data.cache import (
    CACHE_FILE,
    INDEX_FILE,
    JPEG_ERROR_BOUND,
    SHARD_FILE,
    build_cache,
    cache_folder,
    find_cache,
)
from plantkit.data.layout import open_dataset
from plantkit.data.loading import CorruptImageTally, ImageDataset, make_loader
from plantkit.data.photos import plant_like_jpeg
from plantkit.data.transforms import TransformSpec

SPEC = TransformSpec(resize=256, crop=224)  # the recipe's: the bound is stated for it


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """3 species, train/val/test: photo-like JPEGs of Pl@ntNet-300K's sizes (500-800 px)."""
    root = tmp_path_factory.mktemp("photos") / "ds"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for c in range(3):
            for i in range(n):
                plant_like_jpeg(root / split / str(c) / f"{split}{c}{i}.jpg", rng)
    return root


def _pixels(dataset, cache=None, *, train=False, split="val", keys=None) -> list[torch.Tensor]:
    images = ImageDataset(dataset, split, spec=SPEC, train=train, cache=cache, normalize=False)
    keys = keys if keys is not None else range(len(images))
    return [images[k][0] for k in keys]


def test_jpeg_cache_eval_tensors_are_within_the_stated_bound(photos, tmp_path):
    dataset = open_dataset(photos)
    cache = find_cache(tmp_path, dataset, SPEC.resize)
    assert cache is None
    build_cache(dataset, tmp_path, resize=SPEC.resize, workers=0)
    cache = find_cache(tmp_path, dataset, SPEC.resize)
    assert cache is not None and cache.format == "jpeg"
    for split in ("train", "val", "test"):
        for plain, cached in zip(_pixels(dataset, split=split),
                                 _pixels(dataset, cache, split=split), strict=True):
            assert plain.shape == cached.shape == (3, SPEC.crop, SPEC.crop)
            difference = (plain.float() - cached.float()).abs().mean().item()
            assert difference <= JPEG_ERROR_BOUND
            assert difference > 0  # re-encoded: not the same pixels (the bound is a bound)


def test_raw_cache_tensors_are_the_uncached_ones_for_eval_and_seeded_train_crops(photos,
                                                                                tmp_path):
    dataset = open_dataset(photos)
    build_cache(dataset, tmp_path, resize=SPEC.resize, fmt="raw", workers=2)
    cache = find_cache(tmp_path, dataset, SPEC.resize)
    assert cache is not None and cache.format == "raw"
    for plain, cached in zip(_pixels(dataset), _pixels(dataset, cache), strict=True):
        assert torch.equal(plain, cached)
    keys = [(row, 1000 + row) for row in range(len(dataset.splits["train"]))]
    plain = _pixels(dataset, split="train", train=True, keys=keys)
    cached = _pixels(dataset, cache, split="train", train=True, keys=keys)
    assert all(torch.equal(a, b) for a, b in zip(plain, cached, strict=True))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_reads_the_cache_by_random_access(photos, tmp_path, sampler):
    dataset = open_dataset(photos)
    build_cache(dataset, tmp_path, resize=SPEC.resize, fmt="raw", workers=0)
    cache = find_cache(tmp_path, dataset, SPEC.resize)

    def batches(with_cache):
        loader = make_loader(dataset, "train", spec=SPEC, train=True, batch_size=4, workers=0,
                             sampler=sampler, seed=5, epoch=1, cache=with_cache)
        return list(loader)

    for (a, la, ra), (b, lb, rb) in zip(batches(None), batches(cache), strict=True):
        assert torch.equal(ra, rb) and torch.equal(la, lb) and torch.equal(a, b)


def test_a_corrupt_image_is_recorded_and_skipped_as_without_a_cache(photos, tmp_path):
    root = tmp_path / "ds"
    subprocess.run(["cp", "-r", str(photos), str(root)], check=True)
    victim = root / "val" / "1" / "val10.jpg"
    victim.write_bytes(victim.read_bytes()[:60])
    dataset = open_dataset(root)
    build_cache(dataset, tmp_path / "art", resize=SPEC.resize, workers=0)
    cache = find_cache(tmp_path / "art", dataset, SPEC.resize)
    assert list(cache.errors) and len(cache.errors) == 1

    def rows(with_cache):
        loader = make_loader(dataset, "val", spec=SPEC, train=False, batch_size=2, workers=0,
                             cache=with_cache, tally=CorruptImageTally(max_fraction=0.5))
        delivered = [r for _, _, batch_rows in loader for r in batch_rows.tolist()]
        return delivered, loader.last_pass.corrupt

    assert rows(cache) == rows(None)
    delivered, corrupt = rows(cache)
    assert corrupt == 1 and len(delivered) == len(dataset.splits["val"]) - 1


@pytest.mark.parametrize("damage", ["truncated shard", "garbled json", "no index",
                                    "other version"])
def test_a_damaged_cache_is_passed_over_with_a_warning(photos, tmp_path, damage):
    dataset = open_dataset(photos)
    folder = build_cache(dataset, tmp_path, resize=SPEC.resize, workers=0)
    if damage == "truncated shard":
        with open(folder / SHARD_FILE.format(0), "r+b") as shard:
            shard.truncate(100)
    elif damage == "garbled json":
        (folder / CACHE_FILE).write_text("{not json")
    elif damage == "no index":
        (folder / INDEX_FILE).unlink()
    else:
        meta = json.loads((folder / CACHE_FILE).read_text())
        (folder / CACHE_FILE).write_text(json.dumps({**meta, "version": 99}))
    warnings: list[str] = []
    assert find_cache(tmp_path, dataset, SPEC.resize, warn=warnings.append) is None
    assert len(warnings) == 1 and "is unusable" in warnings[0]
    assert "reading the image files instead" in warnings[0]
    # The command rebuilds it without --overwrite.
    code, out, err = cli("--artifacts", tmp_path, "data", "cache", "--data", photos,
                         "--resize", SPEC.resize, "--workers", 0, "--json")
    assert code == 0, err
    assert json.loads(out)["built"] is True
    assert find_cache(tmp_path, dataset, SPEC.resize) is not None


def test_the_command_builds_once_then_is_up_to_date(photos, tmp_path):
    args = ("--artifacts", tmp_path, "data", "cache", "--data", photos, "--resize", 256,
            "--workers", 0)
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["built"] is True and first["images"] == 30 and first["undecodable"] == 0
    assert first["format"] == "jpeg" and first["quality"] == 90 and first["resize"] == 256
    folder = Path(first["folder"])
    assert folder == cache_folder(tmp_path, open_dataset(photos), 256)
    assert first["bytes"] == sum(p.stat().st_size for p in folder.glob("shard-*.bin"))
    code, out, err = cli(*args)
    assert code == 0 and "already up to date" in out
    code, out, _ = cli(*args, "--format", "raw", "--json")  # another format: rebuilt
    assert json.loads(out)["built"] is True and json.loads(out)["format"] == "raw"
    # Another resize is another cache beside it.
    code, out, _ = cli(*args[:-4], "--resize", 48, "--workers", 0, "--json")
    assert json.loads(out)["folder"] != first["folder"]


@pytest.mark.parametrize(("args", "message"), [
    (["--resize", "0"], "--resize must be a positive integer"),
    (["--resize", "abc"], "--resize"),
    (["--format", "bmp"], "--format"),
    (["--quality", "0"], "--quality must be between 1 and 100"),
    (["--quality", "101"], "--quality must be between 1 and 100"),
    (["--workers", "-1"], "--workers must be 0 or more"),
    (["--data", "/nonexistent/x"], "does not exist"),
    (["--data", "/etc/hostname"], "is not a folder"),
])
def test_bad_inputs_are_one_line_exit_2(tmp_path, args, message):
    code, out, err = cli("--artifacts", tmp_path, "data", "cache", *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "cache").exists()


def test_a_dataset_without_val_is_cached_whole(photos, tmp_path):
    root = tmp_path / "trainonly"
    root.mkdir()
    for split in ("train", "test"):
        subprocess.run(["cp", "-r", str(photos / split), str(root / split)], check=True)
    code, out, err = cli("--artifacts", tmp_path, "data", "cache", "--data", root,
                         "--workers", 0, "--json")
    assert code == 0, err
    assert json.loads(out)["images"] == 24
    # A carve of val reads the same cache: it belongs to the files, not the splits.
    carved = open_dataset(root, val_from_train=0.2, seed=3)
    assert find_cache(tmp_path, carved, 256) is not None


def _kill_once_writing(command: list[str], cache_dir: Path) -> None:
    """Start `command`, kill -9 it while its temporary cache folder is being filled."""
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if cache_dir.is_dir() and any(".tmp-" in p.name and any(p.glob("shard-*"))
                                      for p in cache_dir.iterdir()):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the build ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_a_build_killed_mid_way_leaves_the_old_cache_or_none(photos, tmp_path):
    dataset = open_dataset(photos)
    command = [sys.executable, "-m", "plantkit", "--artifacts", str(tmp_path), "data", "cache",
               "--data", str(photos), "--resize", "256", "--workers", "0", "--quiet"]
    folder = cache_folder(tmp_path, dataset, 256)
    _kill_once_writing(command, tmp_path / "cache")
    assert find_cache(tmp_path, dataset, 256, warn=pytest.fail) is None  # none, not half
    subprocess.run(command, check=True)  # the next build recovers
    before = (folder / CACHE_FILE).read_text()
    _kill_once_writing([*command, "--overwrite"], tmp_path / "cache")
    cache = find_cache(tmp_path, dataset, 256, warn=pytest.fail)
    assert cache is not None and len(cache) == 30  # the old one, whole
    assert (folder / CACHE_FILE).read_text() == before
    visible = [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert visible == [folder.name]
