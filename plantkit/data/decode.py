"""Decode an image file, JPEGs at reduced scale when that is enough."""

from __future__ import annotations

import os

import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor


def open_image(path: str | os.PathLike, *, min_side: int | None = None) -> Image.Image:
    """The image, decoded, in RGB; decoder errors propagate.

    With `min_side`, libjpeg decodes a JPEG at the smallest of the scales 1/8, 1/4, 1/2, 1
    whose shorter side is still >= `min_side` (PIL's draft mode): a later resize to
    `min_side` still only shrinks, as from the full image, and decoding and resizing
    cost a fraction. Other formats decode at full size.
    """
    with Image.open(path) as image:
        if min_side and image.format == "JPEG":
            image.draft("RGB", (min_side, min_side))
        image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_image(path: str | os.PathLike, *, min_side: int | None = None) -> torch.Tensor:
    """RGB uint8 tensor 3 x H x W (strided over H x W x 3 memory); see open_image."""
    return pil_to_tensor(open_image(path, min_side=min_side))
