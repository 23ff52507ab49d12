"""The dataset authors' transforms, the rare-species augmentation, dataset statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from plantkit.data.layout import open_dataset
from plantkit.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ToNormalizedFloat,
    TransformSpec,
    augment_preview,
    dataset_mean_std,
    eval_transform,
    rare_augmentation,
    train_transform,
)
from plantkit.errors import PlantkitInputError

SPEC = TransformSpec(resize=32, crop=24)


def gradient_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus noise: every crop and every resize is visible in the pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    pixels = pixels + rng.normal(0, 8, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("as_tensor", [False, True])
def test_constant_colour_normalises_to_expected_values(as_tensor):
    colour = (200, 100, 50)
    spec = TransformSpec(resize=32, crop=24, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.1))
    image = Image.new("RGB", (48, 40), colour)
    source = v2.functional.pil_to_tensor(image) if as_tensor else image
    expected = [(c / 255 - m) / s for c, m, s in zip(colour, spec.mean, spec.std)]
    torch.manual_seed(0)
    for transform in (eval_transform(spec), train_transform(spec)):
        out = transform(source)
        assert type(out) is torch.Tensor and out.dtype == torch.float32
        assert out.shape == (3, 24, 24)
        for channel, value in enumerate(expected):
            torch.testing.assert_close(out[channel], torch.full((24, 24), value), atol=1e-5,
                                       rtol=0)


def test_eval_transform_matches_the_dataset_authors_pil_pipeline():
    """Shorter side to `resize`, centre crop: same geometry as torchvision v1 on PIL."""
    image = gradient_image(90, 60)  # landscape: the long side is cropped
    reference = T.Compose([T.Resize(32), T.CenterCrop(24), T.ToTensor(),
                           T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(image)
    out = eval_transform(SPEC)(image)
    assert out.shape == reference.shape == (3, 24, 24)
    # Tensor and PIL antialiased resizes differ by rounding (<= 1-2 grey levels), a one-pixel
    # shift of these gradients would differ by ~4 levels per pixel.
    assert (out - reference).abs().mean() < 0.01
    portrait = eval_transform(SPEC)(image.transpose(Image.Transpose.ROTATE_90))
    assert portrait.shape == (3, 24, 24)


def test_train_crop_is_random_and_reproducible_under_a_seed():
    image = gradient_image(64, 48)
    transform = train_transform(SPEC)
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        outs.append(transform(image))
    assert outs[0].shape == (3, 24, 24)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_to_normalized_float_equals_todtype_then_normalize():
    pixels = torch.randint(0, 256, (30, 20, 3), dtype=torch.uint8).permute(2, 0, 1)
    expected = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)(
        v2.ToDtype(torch.float32, scale=True)(pixels))
    out = ToNormalizedFloat(IMAGENET_MEAN, IMAGENET_STD)(pixels)
    assert out.is_contiguous() and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="uint8"):
        ToNormalizedFloat(IMAGENET_MEAN, IMAGENET_STD)(pixels.float())


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"resize": 32, "crop": 64}, "--crop"),
        ({"resize": 0}, "--resize"),
        ({"crop": 2.5}, "--crop"),
        ({"mean": (0.5, 0.5)}, "--mean"),
        ({"std": (0.2, 0.0, 0.2)}, "--std"),
    ],
)
def test_transform_spec_rejects_bad_values(kwargs, option):
    with pytest.raises(PlantkitInputError, match=option):
        TransformSpec(**kwargs)


def test_rare_augmentation_has_the_reference_studys_parameters():
    steps = {type(t).__name__: t for t in rare_augmentation().transforms}
    assert list(steps) == ["RandomRotation", "RandomHorizontalFlip", "RandomVerticalFlip",
                           "RandomPerspective", "GaussianBlur", "ColorJitter"]
    assert list(steps["RandomRotation"].degrees) == [-15.0, 15.0]
    assert steps["RandomPerspective"].distortion_scale == 0.1
    assert list(steps["GaussianBlur"].sigma) == [0.1, 2.0]
    assert all(k % 2 == 1 and k >= 7 for k in steps["GaussianBlur"].kernel_size)
    jitter = steps["ColorJitter"]
    assert (jitter.brightness, jitter.contrast) == ((0.8, 1.2), (0.8, 1.2))
    assert jitter.saturation == (0.5, 1.5)
    assert jitter.hue == (-0.05, 0.05)


def test_rare_train_transform_keeps_shape_dtype_and_normalisation():
    """The reference study's bug: rare images were neither cropped nor normalised."""
    white = Image.new("RGB", (50, 40), (255, 255, 255))
    standard = train_transform(SPEC)(white)
    torch.manual_seed(0)
    for _ in range(5):
        out = train_transform(SPEC, rare=True)(white)
        assert out.shape == standard.shape == (3, 24, 24) and out.dtype == standard.dtype
        # Brightness jitter (>= x0.8) keeps white above 0.8, normalised above 1.37 in every
        # channel; rotation's black corners stay a minority. Unnormalised, it would be <= 1.
        assert (out.flatten(1).median(dim=1).values > 1.3).all()


def test_augment_preview_is_fixed_by_its_seed_and_leaves_the_rng_alone():
    image = gradient_image(64, 48)
    state = torch.get_rng_state()
    first, again, other = (augment_preview(image, s) for s in (3, 3, 4))
    assert torch.equal(torch.get_rng_state(), state)
    assert first.size == image.size and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    assert not np.array_equal(np.asarray(first), np.asarray(image))


def _png_dataset(root: Path, colours: dict[str, tuple[int, int, int]]) -> Path:
    """One 20 x 10 PNG per class in train (lossless: exact statistics), one in val and test."""
    for split in ("train", "val", "test"):
        for class_id, colour in colours.items():
            folder = root / split / class_id
            folder.mkdir(parents=True)
            Image.new("RGB", (20, 10), colour).save(folder / "a.png")
    return root


def test_dataset_mean_std_are_pixel_statistics(tmp_path):
    root = _png_dataset(tmp_path / "ds", {"a": (255, 0, 51), "b": (51, 102, 51)})
    one_mean, one_std = dataset_mean_std(open_dataset(root), max_images=1)
    np.testing.assert_allclose(one_std, 0.0, atol=1e-6)
    colours = ((1.0, 0.0, 0.2), (0.2, 0.4, 0.2))
    assert min(np.abs(np.subtract(one_mean, c)).max() for c in colours) < 1e-9

    (root / "train" / "b" / "broken.png").write_bytes(b"not a png")  # left out, not fatal
    mean, std = dataset_mean_std(open_dataset(root))
    np.testing.assert_allclose(mean, [153 / 255, 51 / 255, 51 / 255], atol=1e-9)
    np.testing.assert_allclose(std, [102 / 255, 51 / 255, 0.0], atol=1e-6)
    with pytest.raises(PlantkitInputError, match="max_images"):
        dataset_mean_std(open_dataset(root), max_images=0)
