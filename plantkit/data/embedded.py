"""The embedded default dataset: a synthetic stand-in generated on first use.

60 species spread over Pl@ntNet-300K's frequency range (half of them in pairs of one genus,
so that some are confusable) at a fifth of their real sizes
(5,364 images of 64 px): small enough for a laptop, long-tailed like the real thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from plantkit.artifacts import artifact_lock, data_dir

EMBEDDED_NAME = "embedded"


class EmbeddedSpec(TypedDict):
    """How the embedded dataset is drawn: class-count profile and synth settings."""

    profile: str
    classes: int
    scale: float
    image_size: int
    seed: int


EMBEDDED: EmbeddedSpec = {
    "profile": "plantnet300k", "classes": 60, "scale": 0.2, "image_size": 64, "seed": 0
}


def embedded_root(artifacts: Path) -> Path:
    return data_dir(artifacts) / EMBEDDED_NAME


def embedded_counts():
    """The embedded dataset's class-count profile."""
    from plantkit.data.profiles import make_profile

    return make_profile(EMBEDDED["profile"], classes=EMBEDDED["classes"], scale=EMBEDDED["scale"])


def ensure_embedded_dataset(artifacts: Path, *, on_image=None) -> Path:
    """The embedded dataset's root under `artifacts`, generated if it is not there yet."""
    from plantkit.data.synth import generate_dataset

    root = embedded_root(artifacts)
    if (root / "images").is_dir():
        return root
    # Two commands started on a fresh root both need it: the second waits for the first.
    with artifact_lock(root, wait=True):
        if (root / "images").is_dir():
            return root
        counts = embedded_counts()
        return generate_dataset(root, counts, image_size=EMBEDDED["image_size"],
                                seed=EMBEDDED["seed"], on_image=on_image)
