"""The dataset authors' image transforms, the rare-species augmentation, dataset statistics.

Every transform takes a PIL image or a uint8 tensor 3 x H x W. The loader feeds PIL
images: the rare-species augmentation runs on PIL's kernels (rotation 8x, hue shifts 2x
cheaper than torchvision's tensor kernels), then ToImage hands the image to torchvision's
uint8 antialiased resize (3x faster than PIL's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from plantkit.choices import IMAGENET_MEAN, IMAGENET_STD
from plantkit.data.decode import decode_image
from plantkit.data.layout import Dataset
from plantkit.errors import PlantkitInputError

# +-2 sigma at the largest sigma (2.0), all of +-3 sigma up to 1.33. torchvision blurs
# with a 2-D kernel: 13 (+-3 sigma at 2.0) would cost twice as much, for the 5 % of a
# Gaussian's weight that lies past 2 sigma, at the strongest blurs only.
RARE_BLUR_KERNEL = 9


@dataclass(frozen=True)
class TransformSpec:
    """Shorter side to `resize`, a `crop` x `crop` crop, normalised by mean/std (0-1 scale)."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise PlantkitInputError(f"--{name} must be a positive integer, got {value!r}")
        if self.crop > self.resize:
            raise PlantkitInputError(
                f"--crop ({self.crop}) must not exceed --resize ({self.resize}): the crop is "
                "taken from the image resized to that shorter side"
            )
        object.__setattr__(self, "mean", _channel_triple("mean", self.mean))
        object.__setattr__(self, "std", _channel_triple("std", self.std))
        if min(self.std) <= 0:
            raise PlantkitInputError(f"--std must be positive per channel, got {self.std}")


def _channel_triple(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    try:
        triple = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        triple = ()
    if len(triple) != 3 or not all(np.isfinite(triple)):
        raise PlantkitInputError(f"--{name} must be three finite numbers (R, G, B), got {values!r}")
    return triple  # type: ignore[return-value]


def rare_augmentation() -> v2.Compose:
    """The reference study's extra augmentation for rare species (before resize/crop/normalise)."""
    return v2.Compose(
        [
            v2.RandomRotation(15),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomPerspective(distortion_scale=0.1),
            v2.GaussianBlur(kernel_size=RARE_BLUR_KERNEL, sigma=(0.1, 2.0)),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.5, hue=0.05),
        ]
    )


class ToNormalizedFloat(torch.nn.Module):
    """uint8 image(s) ... x 3 x H x W -> float32 (x / 255 - mean) / std, contiguous, one pass.

    Equals v2.ToDtype(float32, scale=True) + v2.Normalize to float rounding (7e-7), at
    1.5-2.8x less time on the loader's channels-last crops (benchmarks/bench_kernels.py).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_ = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        std_ = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.scale = 1.0 / (255.0 * std_)
        self.shift = -mean_ / std_

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype != torch.uint8:
            raise TypeError(f"ToNormalizedFloat takes uint8 images, got {image.dtype}")
        pixels = image.as_subclass(torch.Tensor)
        out = torch.empty(pixels.shape, dtype=torch.float32)
        return torch.addcmul(self.shift, pixels, self.scale, out=out)


@contextlib.contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator (which the v2 transforms draw from), then restore its state.

    torch.manual_seed with torch.random.fork_rng costs 34-50x more (about 0.2 ms a call: it
    also records a stack trace for lazy CUDA seeding; benchmarks/bench_kernels.py), a tenth
    of the loader's whole work on an image.
    """
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


def normalize_uint8(images: torch.Tensor, mean: Sequence[float],
                   std: Sequence[float]) -> torch.Tensor:
    """uint8 images ... x 3 x H x W -> float32 (x / 255 - mean) / std on their own device.

    What ToNormalizedFloat does in the loader's workers, for loaders that hand uint8 crops
    to an accelerator (a quarter of the bytes through pinned memory, the arithmetic there;
    plantkit.models.expert normalises uint8 input with it). The same operation with the
    same constants: equal to it bit for bit on the CPU.
    """
    mean_ = torch.tensor(mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    std_ = torch.tensor(std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return torch.addcmul(-mean_ / std_, images.to(torch.float32), 1.0 / (255.0 * std_))


def _to_output(spec: TransformSpec, normalize: bool) -> list:
    return [ToNormalizedFloat(spec.mean, spec.std)] if normalize else [v2.ToPureTensor()]


def train_transform(spec: TransformSpec, *, rare: bool = False,
                    normalize: bool = True) -> v2.Compose:
    """Resize shorter side, random crop, float, normalise; `rare` puts rare_augmentation() first.

    Takes a PIL image or a uint8 tensor 3 x H x W; returns float32 3 x crop x crop (uint8
    without `normalize`).
    """
    return v2.Compose(
        [
            *([rare_augmentation()] if rare else []),
            v2.ToImage(),
            v2.Resize(spec.resize, antialias=True),
            v2.RandomCrop(spec.crop),
            *_to_output(spec, normalize),
        ]
    )


def eval_transform(spec: TransformSpec, *, normalize: bool = True) -> v2.Compose:
    """Resize shorter side, centre crop, float, normalise; deterministic."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(spec.resize, antialias=True),
            v2.CenterCrop(spec.crop),
            *_to_output(spec, normalize),
        ]
    )


def augment_preview(image: Image.Image, seed: int) -> Image.Image:
    """`image` after one draw of rare_augmentation() fixed by `seed` (for the EDA's previews).

    The same PIL kernels as training, before its resize and crop; torch's global RNG is
    left as it was.
    """
    with seeded_cpu_rng(seed):
        return rare_augmentation()(image.convert("RGB"))


def dataset_mean_std(
    dataset: Dataset,
    split: str = "train",
    max_images: int = 500,
    seed: int = 0,
    *,
    min_side: int = 256,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel pixel mean and std (0-1 scale) over a random sample of a split's images.

    Images are decoded with their shorter side reduced towards `min_side` (the resize the
    network sees); images that do not decode are left out.
    """
    if split not in dataset.splits or len(dataset.splits[split]) == 0:
        raise PlantkitInputError(f"dataset {dataset.root} has no images in split {split!r}")
    if max_images < 1:
        raise PlantkitInputError(f"max_images must be at least 1, got {max_images}")
    paths = dataset.splits[split].paths
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(paths), size=min(max_images, len(paths)), replace=False))
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    n_pixels = 0
    for row in rows:
        try:
            pixels = decode_image(dataset.images_dir / paths[row], min_side=min_side)
        except Exception:  # noqa: BLE001 - a corrupt image is left out of the statistics
            continue
        values = pixels.reshape(3, -1).to(torch.float64) / 255.0
        total += values.sum(dim=1)
        total_sq += (values * values).sum(dim=1)
        n_pixels += values.shape[1]
    if n_pixels == 0:
        raise PlantkitInputError(
            f"none of the {len(rows)} sampled {split} images of {dataset.root} could be decoded"
        )
    mean = total / n_pixels
    std = (total_sq / n_pixels - mean * mean).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())  # type: ignore[return-value]
