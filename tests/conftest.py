"""Shared fixtures: tiny image trees in any layout, built in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import plantkit.backend  # noqa: F401 - keras on the torch backend before any test imports keras


def write_image(path: Path, colour=(40, 120, 40), size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")
    return path


def make_tree(base: Path, spec: dict[str, dict[str, int]], prefix: str = "") -> Path:
    """spec = {split: {class_id: n_images}}; folders are base/<prefix><split>/<class>/i.jpg."""
    for split, classes in spec.items():
        for class_id, n in classes.items():
            for i in range(n):
                write_image(
                    base / f"{prefix}{split}" / class_id / f"img{i:03d}.jpg",
                    colour=(10 * i % 255, 100, 30),
                )
    return base


@pytest.fixture
def plantnet_root(tmp_path: Path) -> Path:
    """A Pl@ntNet-300K v1.1 layout: images/{train,val,test}/<species_id>/ plus the JSON files."""
    root = tmp_path / "plantnet_300K"
    spec = {
        "train": {"1355868": 8, "1355920": 2, "1363227": 5},
        "val": {"1355868": 1, "1355920": 1, "1363227": 1},
        "test": {"1355868": 1, "1355920": 1, "1363227": 1},
    }
    make_tree(root / "images", spec)
    names = {
        "1355868": "Lactuca virosa L.",
        "1355920": "Pelargonium capitatum",
        "1363227": "Daucus carota L.",
    }
    (root / "plantnet300K_species_id_2_name.json").write_text(json.dumps(names))
    (root / "class_idx_to_species_id.json").write_text(
        json.dumps({"0": "1355868", "1": "1355920", "2": "1363227"})
    )
    return root
