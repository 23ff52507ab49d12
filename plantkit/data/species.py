"""What a synthetic species looks like: a parameter set derived from its id and genus.

Species of one genus share the organ, the shape family, the margin, the venation and
most of the colour; they differ by smaller offsets (hue, proportions, part counts,
texture). Siblings are therefore genuinely confusable, like congeneric species in
Pl@ntNet-300K. The parameters depend on the class id and the genus only, not on the
dataset seed: two seeds draw fresh images of the same species.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Organ names as in the Pl@ntNet-300K metadata ("habit" is the whole plant).
ORGANS = ("leaf", "flower", "fruit", "bark", "habit")
ORGAN_WEIGHTS = (0.34, 0.30, 0.14, 0.08, 0.14)
SHAPES = {
    "leaf": ("ovate", "lanceolate", "obovate", "cordate", "lobed", "palmate", "linear"),
    "flower": ("round", "pointed", "notched", "narrow"),
    "fruit": ("berries", "round", "elongated", "grapes"),
    "bark": ("fissured", "plated", "lenticels", "peeling"),
    "habit": ("upright", "rosette", "grass", "shrub"),
}
MARGINS = ("smooth", "serrated", "crenate")
VENATIONS = ("pinnate", "palmate", "parallel")
TEXTURES = ("plain", "spots", "stripes")

# Fallback genus size when the names are not binomials ("Species 007"): consecutive
# class indices are grouped by this many.
FALLBACK_GENUS_SIZE = 3
_BINOMIAL = re.compile(r"^([A-Z][A-Za-z-]+)\s+(?:×\s*)?[a-z]")


def stable_int(*parts: object) -> int:
    """A 64-bit integer from the parts' text: stable across runs, platforms and Pythons."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "little")


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(stable_int(*parts)))


def genus_of(name: str) -> str | None:
    """The genus of a binomial ("Lactuca virosa L." -> "Lactuca"), else None."""
    match = _BINOMIAL.match(str(name or "").strip())
    return match.group(1) if match else None


def assign_genera(class_ids: Sequence[str], names: Sequence[str]) -> list[str]:
    """One genus per class: from the names when they are all binomials, else by index groups.

    `class_ids` must be in class-index order; the fallback puts classes
    0-2, 3-5, ... into one genus each.
    """
    genera = [genus_of(n) for n in names]
    if genera and all(g is not None for g in genera):
        return [str(g) for g in genera]
    return [f"genus-{i // FALLBACK_GENUS_SIZE:04d}" for i in range(len(class_ids))]


@dataclass(frozen=True)
class Species:
    """Everything the renderer needs to draw one species (colours are HSV in [0, 1])."""

    class_id: str
    genus: str
    organ: str
    shape: str
    hue: float
    sat: float
    val: float
    hue2: float  # secondary colour: veins, flower centre, fruit stalk, bark fissures
    sat2: float
    val2: float
    aspect: float  # width / length of the main part
    n_parts: int  # petals, lobes, berries, leaves, fissures: depends on the organ
    margin: str
    teeth: int  # teeth per leaf side
    tooth_depth: float
    venation: str
    n_veins: int
    texture: str
    texture_density: float
    part_size: float  # relative size of sub-parts (flower centre, berries, leaflets)
    curvature: float  # bend of the main axis


def _wrap(h: float) -> float:
    return float(h % 1.0)


def _genus_params(genus: str) -> dict:
    rng = _rng("plantkit-genus", genus)
    organ = str(rng.choice(ORGANS, p=ORGAN_WEIGHTS))
    shape = str(rng.choice(SHAPES[organ]))
    if organ == "leaf":
        hue, sat, val = rng.uniform(0.20, 0.42), rng.uniform(0.45, 0.85), rng.uniform(0.35, 0.75)
        hue2, sat2, val2 = hue + rng.uniform(-0.05, 0.05), sat * 0.5, min(1.0, val + 0.3)
    elif organ == "flower":
        hue = rng.choice([rng.uniform(0.0, 0.18), rng.uniform(0.55, 1.0)])
        sat, val = rng.uniform(0.25, 0.95), rng.uniform(0.70, 1.0)
        hue2, sat2, val2 = rng.uniform(0.08, 0.17), rng.uniform(0.6, 1.0), rng.uniform(0.4, 0.95)
    elif organ == "fruit":
        hue = rng.choice([rng.uniform(0.95, 1.0), rng.uniform(0.0, 0.16), rng.uniform(0.7, 0.9)])
        sat, val = rng.uniform(0.55, 1.0), rng.uniform(0.35, 0.95)
        hue2, sat2, val2 = rng.uniform(0.22, 0.35), 0.6, 0.45
    elif organ == "bark":
        hue, sat, val = rng.uniform(0.04, 0.14), rng.uniform(0.10, 0.55), rng.uniform(0.30, 0.75)
        hue2, sat2, val2 = hue, sat * 0.8, val * rng.uniform(0.3, 0.6)
    else:  # habit
        hue, sat, val = rng.uniform(0.18, 0.42), rng.uniform(0.4, 0.85), rng.uniform(0.3, 0.7)
        hue2, sat2, val2 = rng.uniform(0.0, 1.0), rng.uniform(0.5, 1.0), rng.uniform(0.6, 1.0)
    n_parts = {
        "leaf": int(rng.integers(2, 6)),
        "flower": int(rng.integers(4, 10)),
        "fruit": int(rng.integers(1, 8)),
        "bark": int(rng.integers(3, 9)),
        "habit": int(rng.integers(4, 11)),
    }[organ]
    if organ == "leaf" and shape == "palmate":
        n_parts = int(rng.integers(3, 8))
    return {
        "organ": organ,
        "shape": shape,
        "hue": float(hue),
        "sat": float(sat),
        "val": float(val),
        "hue2": float(hue2),
        "sat2": float(sat2),
        "val2": float(val2),
        "aspect": float(rng.uniform(0.25, 0.75)),
        "n_parts": n_parts,
        "margin": str(rng.choice(MARGINS, p=(0.45, 0.35, 0.20))),
        "teeth": int(rng.integers(5, 14)),
        "tooth_depth": float(rng.uniform(0.04, 0.12)),
        "venation": str(rng.choice(VENATIONS)) if shape != "linear" else "parallel",
        "n_veins": int(rng.integers(3, 8)),
        "texture": str(rng.choice(TEXTURES, p=(0.6, 0.25, 0.15))),
        "texture_density": float(rng.uniform(0.2, 1.0)),
        "part_size": float(rng.uniform(0.2, 0.45)),
        "curvature": float(rng.uniform(-0.15, 0.15)),
    }


def make_species(class_id: str, genus: str) -> Species:
    """The species' parameters: its genus's, moved by species-level offsets."""
    p = _genus_params(genus)
    rng = _rng("plantkit-species", genus, class_id)
    # Offsets small enough that siblings overlap once images vary, large enough to learn.
    hue = p["hue"] + rng.uniform(-0.07, 0.07)
    # Flowers and fruits may wrap round red; green and brown organs stay green and brown.
    p["hue"] = _wrap(hue) if p["organ"] in ("flower", "fruit") else float(np.clip(hue, 0.0, 0.5))
    p["sat"] = float(np.clip(p["sat"] + rng.uniform(-0.2, 0.2), 0.1, 1.0))
    p["val"] = float(np.clip(p["val"] + rng.uniform(-0.15, 0.15), 0.2, 1.0))
    p["hue2"] = _wrap(p["hue2"] + rng.uniform(-0.1, 0.1))
    p["val2"] = float(np.clip(p["val2"] + rng.uniform(-0.2, 0.2), 0.1, 1.0))
    p["aspect"] = float(np.clip(p["aspect"] * rng.uniform(0.75, 1.33), 0.15, 0.9))
    p["n_parts"] = max(1, p["n_parts"] + int(rng.integers(-1, 2)))
    if p["organ"] == "flower":
        p["n_parts"] = max(3, p["n_parts"])
    p["teeth"] = max(3, p["teeth"] + int(rng.integers(-2, 3)))
    p["tooth_depth"] = float(p["tooth_depth"] * rng.uniform(0.7, 1.4))
    p["n_veins"] = max(2, p["n_veins"] + int(rng.integers(-1, 2)))
    if rng.random() < 0.35:
        p["texture"] = str(rng.choice(TEXTURES, p=(0.5, 0.3, 0.2)))
    p["texture_density"] = float(np.clip(p["texture_density"] * rng.uniform(0.6, 1.5), 0.1, 1.2))
    p["part_size"] = float(np.clip(p["part_size"] * rng.uniform(0.8, 1.25), 0.12, 0.55))
    p["curvature"] = float(p["curvature"] + rng.uniform(-0.1, 0.1))
    return Species(class_id=str(class_id), genus=genus, **p)


def make_species_table(class_ids: Sequence[str], names: Sequence[str]) -> list[Species]:
    """Species parameters for classes given in class-index order."""
    genera = assign_genera(class_ids, names)
    return [make_species(c, g) for c, g in zip(class_ids, genera, strict=True)]


__all__ = [
    "ORGANS",
    "Species",
    "assign_genera",
    "genus_of",
    "make_species",
    "make_species_table",
    "stable_int",
]
