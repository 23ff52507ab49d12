"""The training/prediction loader: order, determinism, rare-species augmentation, sampler,
corrupt images, JPEG draft decoding."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tree
from PIL import Image
from scipy import stats

from plantkit.data.decode import decode_image
from plantkit.data.layout import open_dataset
from plantkit.data.loading import (
    CorruptImage,
    CorruptImageTally,
    ImageDataset,
    make_loader,
)
from plantkit.data.sampling import inverse_frequency_sampler
from plantkit.data.transforms import TransformSpec, eval_transform, train_transform
from plantkit.errors import PlantkitInputError

SPEC = TransformSpec(resize=24, crop=20)
TRAIN_COUNTS = {"1": 12, "2": 5, "3": 3, "4": 2}  # with augment_below=5: classes 2 and 3 rare


def textured_jpeg(path: Path, seed: int, size=(40, 30)) -> None:
    """Gradients plus noise: every crop position and augmentation shows in the pixels."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, seed * 37 % 255)], -1)
    pixels = pixels + rng.normal(0, 20, pixels.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


@pytest.fixture(scope="module")
def textured(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("textured")
    spec = {"train": TRAIN_COUNTS, "val": {c: 2 for c in TRAIN_COUNTS},
            "test": {c: 1 for c in TRAIN_COUNTS}}
    seed = 0
    for split, classes in spec.items():
        for class_id, n in classes.items():
            for i in range(n):
                seed += 1
                textured_jpeg(root / split / class_id / f"img{i:02d}.jpg", seed)
    return root


def collect(loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels, rows = zip(*loader)
    return torch.cat(images), torch.cat(labels), torch.cat(rows)


def test_eval_loader_reads_rows_in_split_order(textured):
    dataset = open_dataset(textured)
    loader = make_loader(dataset, "val", spec=SPEC, train=False, batch_size=3, workers=0)
    images, labels, rows = collect(loader)
    split = dataset.splits["val"]
    assert rows.tolist() == list(range(len(split)))
    assert labels.dtype == rows.dtype == torch.int64
    assert labels.tolist() == split.labels.tolist()
    assert images.shape == (len(split), 3, 20, 20) and images.dtype == torch.float32
    for row in (0, len(split) - 1):
        expected = eval_transform(SPEC)(decode_image(dataset.image_path("val", row)))
        torch.testing.assert_close(images[row], expected)
    assert len(loader) == 3 and loader.num_images == len(split)


def test_train_order_and_augmentation_fixed_by_seed_and_epoch(textured):
    dataset = open_dataset(textured)

    def run(workers, seed=0, epoch=0, augment_below=5):
        loader = make_loader(dataset, "train", spec=SPEC, train=True, batch_size=5,
                             workers=workers, augment_below=augment_below, seed=seed, epoch=epoch)
        return collect(loader)

    reference = run(workers=0)
    assert sorted(reference[2].tolist()) == list(range(len(dataset.splits["train"])))
    # Equal across processes and worker counts: nothing but (seed, epoch) decides.
    for a, b in zip(reference, run(workers=2)):
        assert torch.equal(a, b)
    for other in (run(workers=0, epoch=1, augment_below=None), run(workers=0, seed=1)):
        assert other[2].tolist() != reference[2].tolist()


def test_each_pass_is_the_next_epoch_like_a_resumed_run(textured):
    dataset = open_dataset(textured)
    kwargs = dict(spec=SPEC, train=True, batch_size=8, workers=2, seed=3)
    loader = make_loader(dataset, "train", epoch=0, **kwargs)
    collect(loader)
    second_pass = collect(loader)
    resumed = collect(make_loader(dataset, "train", epoch=1, **kwargs))
    for a, b in zip(second_pass, resumed):
        assert torch.equal(a, b)
    loader.set_epoch(0)
    assert collect(loader)[2].tolist() != second_pass[2].tolist()


def test_training_loader_leaves_the_global_rng_alone(textured):
    state = torch.get_rng_state()
    loader = make_loader(open_dataset(textured), "train", spec=SPEC, train=True, batch_size=8,
                         workers=0, augment_below=5)
    collect(loader)
    assert torch.equal(torch.get_rng_state(), state)


def test_rare_classes_and_only_they_get_the_extra_augmentation(textured):
    dataset = open_dataset(textured)
    train = ImageDataset(dataset, "train", spec=SPEC, train=True, augment_below=5)
    assert train.augmented_classes == {2, 3}  # 3 and 2 train images; classes 0, 1 have 12, 5
    standard = train_transform(SPEC)
    for row, label in enumerate(dataset.splits["train"].labels.tolist()):
        out, out_label, out_row = train[(row, 1000 + row)]
        assert (out_label, out_row) == (label, row)
        assert out.shape == (3, 20, 20) and out.dtype == torch.float32
        torch.manual_seed(1000 + row)
        plain = standard(decode_image(dataset.image_path("train", row)))
        if label in (2, 3):
            assert not torch.allclose(out, plain, atol=1e-3), f"rare row {row} not augmented"
            # Normalised like the rest: same scale of values, not the raw 0-1 range.
            assert abs(out.mean() - plain.mean()) < 1.0 and out.min() < -0.5
        else:
            torch.testing.assert_close(out, plain)
    assert not ImageDataset(dataset, "val", spec=SPEC, train=False,
                            augment_below=5).augmented_classes


def test_inverse_sampler_draws_classes_equally_and_rows_uniformly():
    counts = np.array([60, 15, 4, 1])
    labels = np.repeat(np.arange(4), counts)
    sampler = inverse_frequency_sampler(
        labels, num_samples=40_000, generator=torch.Generator().manual_seed(0))
    drawn = np.array(list(sampler))
    per_class = np.bincount(labels[drawn], minlength=4)
    assert stats.chisquare(per_class).pvalue > 1e-3  # expected: 10,000 each
    per_row_of_class0 = np.bincount(drawn[labels[drawn] == 0], minlength=60)
    assert stats.chisquare(per_row_of_class0).pvalue > 1e-3
    assert len(inverse_frequency_sampler(labels)) == len(labels)  # one epoch = split size


def test_inverse_sampler_loader_draws_with_replacement(textured):
    dataset = open_dataset(textured)
    loader = make_loader(dataset, "train", spec=SPEC, train=True, batch_size=8, workers=0,
                         sampler="inverse", seed=1)
    _, labels, rows = collect(loader)
    n = len(dataset.splits["train"])
    assert loader.num_images == len(rows) == n
    assert len(set(rows.tolist())) < n  # repeats: with replacement
    assert labels.tolist() == dataset.splits["train"].labels[rows.numpy()].tolist()


def _tree_with_corrupt(root: Path, n_images: int, n_corrupt: int) -> Path:
    make_tree(root, {"train": {"a": n_images - n_images // 2, "b": n_images // 2},
                     "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}})
    files = sorted((root / "train").rglob("*.jpg"))
    for path in files[:: max(1, len(files) // max(1, n_corrupt))][:n_corrupt]:
        path.write_bytes(path.read_bytes()[:40])  # truncated mid-header
    return root


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    dataset = open_dataset(_tree_with_corrupt(tmp_path / "ds", n_images=150, n_corrupt=1))
    tally = CorruptImageTally()
    loader = make_loader(dataset, "train", spec=TransformSpec(resize=8, crop=8), train=False,
                         batch_size=16, workers=2, tally=tally)
    images, _, rows = collect(loader)
    assert len(images) == len(rows) == 149
    missing = sorted(set(range(150)) - set(rows.tolist()))
    assert len(missing) == 1
    assert (tally.seen, tally.corrupt, loader.epoch_corrupt) == (150, 1, 1)
    assert list(tally.errors) == [str(dataset.image_path("train", missing[0]))]
    collect(loader)
    assert (tally.seen, tally.corrupt, loader.epoch_corrupt) == (300, 2, 1)


def _read_until_error(loader) -> tuple[int, str]:
    """(images yielded before the loader raised PlantkitInputError, its message)."""
    n = 0
    with pytest.raises(PlantkitInputError) as raised:
        for images, _, _ in loader:
            n += len(images)
    return n, str(raised.value)


def test_more_than_one_percent_corrupt_stops_with_the_files_named(tmp_path):
    spec = TransformSpec(resize=8, crop=8)
    dataset = open_dataset(_tree_with_corrupt(tmp_path / "few", n_images=200, n_corrupt=3))
    loader = make_loader(dataset, "train", spec=spec, train=True, batch_size=16, workers=0)
    n_yielded, message = _read_until_error(loader)
    assert n_yielded == 197  # 1.5 % could be chance mid-pass: judged at the end
    assert re.match(r"3 of 200 images read are corrupt, more than 1%: \S+img\d+\.jpg", message)
    assert "--verify" in message

    many = open_dataset(_tree_with_corrupt(tmp_path / "many", n_images=200, n_corrupt=40))
    loader = make_loader(many, "train", spec=spec, train=True, batch_size=16, workers=0)
    assert _read_until_error(loader)[0] < 160  # 20 %: beyond doubt, stops mid-pass

    small = open_dataset(_tree_with_corrupt(tmp_path / "small", n_images=20, n_corrupt=1))
    loader = make_loader(small, "train", spec=spec, train=False, batch_size=4, workers=0)
    n_yielded, message = _read_until_error(loader)
    assert n_yielded == 19 and message.startswith("1 of 20 images")


def test_tally_judges_mid_pass_only_past_doubt():
    tally = CorruptImageTally()
    tally.record(50, [CorruptImage(0, "x.jpg", "OSError: truncated")] * 10)
    tally.check()  # 20 % of 50: too few images to judge mid-pass
    with pytest.raises(PlantkitInputError, match="x.jpg"):
        tally.check(end_of_pass=True)
    tally.record(50, [])
    with pytest.raises(PlantkitInputError, match="10 of 100"):
        tally.check()  # 10 % of 100: beyond doubt
    tally = CorruptImageTally()
    tally.record(1000, [CorruptImage(i, f"{i}.jpg", "e") for i in range(15)])
    tally.check()  # 1.5 % of 1000 could be chance from <= 1 %
    with pytest.raises(PlantkitInputError, match="15 of 1000"):
        tally.check(end_of_pass=True)
    tally.record(1000, [CorruptImage(i, f"{i}.jpg", "e") for i in range(15, 60)])
    with pytest.raises(PlantkitInputError, match="60 of 2000"):
        tally.check()  # 3 %: beyond doubt
    tally = CorruptImageTally()
    tally.record(1000, [CorruptImage(i, f"{i}.jpg", "e") for i in range(10)])
    tally.check(end_of_pass=True)  # exactly 1 % is allowed


def test_draft_decoding_matches_full_decoding(tmp_path):
    path = tmp_path / "large.jpg"
    textured_jpeg(path, seed=5, size=(600, 450))
    drafted, full = decode_image(path, min_side=64), decode_image(path)
    assert full.shape == (3, 450, 600)
    assert 64 <= min(drafted.shape[1:]) < 128  # the smallest libjpeg scale (1/4) that keeps 64
    spec = TransformSpec(resize=64, crop=56, mean=(0, 0, 0), std=(1 / 255,) * 3)  # 0-255 units
    a, b = eval_transform(spec)(drafted), eval_transform(spec)(full)
    assert a.shape == b.shape == (3, 56, 56)
    # Measured ~1.6 grey levels; a one-pixel misalignment of these gradients costs ~4.5.
    assert (a - b).abs().mean() < 3.0

    png = tmp_path / "large.png"
    Image.open(path).save(png)
    assert decode_image(png, min_side=64).shape == (3, 450, 600)  # only JPEGs have draft mode


def test_loader_with_and_without_draft_agree(tmp_path):
    root = tmp_path / "ds"
    for split in ("train", "val", "test"):
        textured_jpeg(root / split / "a" / "x.jpg", seed=1, size=(600, 450))
    dataset = open_dataset(root)
    spec = TransformSpec(resize=64, crop=56)
    outs = [collect(make_loader(dataset, "val", spec=spec, train=False, workers=0, draft=d))[0]
            for d in (True, False)]
    assert outs[0].shape == outs[1].shape == (1, 3, 56, 56)
    assert (outs[0] - outs[1]).abs().mean() < 3.0 / 255 / 0.22


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "holdout"}, "unknown split"),
        ({"batch_size": 0}, "--batch-size"),
        ({"workers": -1}, "--workers"),
        ({"sampler": "uniform"}, "--sampler"),
        ({"sampler": "inverse", "train": False}, "evaluation reads rows in order"),
        ({"augment_below": 0}, "--augment-below"),
    ],
)
def test_bad_options_are_refused(textured, kwargs, message):
    options = {"split": "train", "spec": SPEC, "train": True, **kwargs}
    with pytest.raises(PlantkitInputError, match=message):
        make_loader(open_dataset(textured), **options)
