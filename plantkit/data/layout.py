"""Find a dataset on disk: the Pl@ntNet-300K v1.1 layout or any ImageFolder-style root.

Accepted roots (first match wins):
- `ROOT/images/{train,val,test}/<class>/<image>` (Pl@ntNet-300K v1.1),
- `ROOT/images_{train,val,test}/<class>/<image>`,
- `ROOT/{train,val,test}/<class>/<image>` (the `images` folder itself, or ImageFolder).

Class index = rank of the class id in ascending order (numeric when every id is a number),
the order of the released Pl@ntNet-300K weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from plantkit.data.fingerprint import dataset_fingerprint
from plantkit.data.profiles import SPLITS
from plantkit.errors import PlantkitInputError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
NAMES_FILE = "plantnet300K_species_id_2_name.json"
METADATA_FILE = "plantnet300K_metadata.json"
CLASS_INDEX_FILE = "class_idx_to_species_id.json"


@dataclass
class Split:
    """One split's images in a fixed order (sorted by path): the row order of every store."""

    paths: list[str]  # posix, relative to Dataset.images_dir
    labels: np.ndarray  # int64 class indices
    sizes: np.ndarray  # int64 bytes

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class Dataset:
    """An image-classification dataset with train/val/test splits and ordered class ids."""

    root: Path
    images_dir: Path
    layout: str  # "plantnet" or "imagefolder"
    class_ids: list[str]
    splits: dict[str, Split]
    class_names: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # non-image files per split
    json_dir: Path | None = None
    val_source: str = "folder"  # or "train (stratified FRACTION, seed S)"
    val_from_train: float | None = None  # the carve of val_source, to open it again
    val_seed: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def n_images(self) -> int:
        return sum(len(s) for s in self.splits.values())

    @cached_property
    def fingerprint(self) -> str:
        return dataset_fingerprint(
            self.class_ids, {name: (s.paths, s.sizes) for name, s in self.splits.items()}
        )

    def image_path(self, split: str, index: int) -> Path:
        return self.images_dir / self.splits[split].paths[index]

    def counts(self) -> pd.DataFrame:
        """Images per class and split, shaped like a class-count profile."""
        frame = pd.DataFrame(
            {
                name: np.bincount(self.splits[name].labels, minlength=self.num_classes)
                if name in self.splits
                else np.zeros(self.num_classes, dtype=np.int64)
                for name in SPLITS
            },
            index=pd.Index(self.class_ids, name="class_id"),
        )
        frame.insert(0, "species_name", [self.class_names.get(c, c) for c in self.class_ids])
        return frame


class NoValSplit(PlantkitInputError):
    """The dataset has no val split (and none was carved): commands say how to carve one."""

    def __init__(self, message: str, root: Path) -> None:
        super().__init__(message)
        self.root = root


def class_order(class_ids) -> list[str]:
    """Class ids in index order (the released weights'): numeric ascending when all are
    numbers ("01" before "1" if both exist), else string order."""
    ids = [str(c) for c in class_ids]
    if ids and all(c.isdigit() for c in ids):
        return sorted(ids, key=lambda c: (int(c), c))
    return sorted(ids)


def _read_json(path: Path):
    try:
        with path.open("r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise PlantkitInputError(f"cannot read {path}: {exc}") from exc


def _find_split_dirs(root: Path) -> tuple[Path, dict[str, Path], Path]:
    """(images_dir, {split: folder}, folder holding the JSON files)."""
    candidates = [
        (root / "images", {s: root / "images" / s for s in SPLITS}, root),
        (root, {s: root / f"images_{s}" for s in SPLITS}, root),
        (root, {s: root / s for s in SPLITS}, root),
    ]
    for images_dir, dirs, json_dir in candidates:
        present = {s: d for s, d in dirs.items() if d.is_dir()}
        if present:
            # A root that is the `images` folder itself keeps its JSON files one level up.
            if images_dir == root and not any((root / f).is_file() for f in (NAMES_FILE,)):
                if (root.parent / NAMES_FILE).is_file():
                    json_dir = root.parent
            return images_dir, present, json_dir
    raise PlantkitInputError(
        f"no split folders under {root}: expected images/{{train,val,test}}/<class>/, "
        "images_{train,val,test}/<class>/ or {train,val,test}/<class>/"
    )


def _scan_split(split_dir: Path, images_dir: Path) -> tuple[dict[str, list], int]:
    """{class id: [(relative path, size), ...]} for one split, and non-image files skipped."""
    classes: dict[str, list] = {}
    skipped = 0
    prefix = split_dir.relative_to(images_dir).as_posix()
    with os.scandir(split_dir) as entries:
        class_dirs = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    for class_id in class_dirs:
        files = []
        class_dir = split_dir / class_id
        with os.scandir(class_dir) as entries:
            for entry in entries:
                if Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS or entry.name.startswith(
                    "."
                ):
                    skipped += entry.is_file()
                    continue
                try:
                    size = entry.stat().st_size
                    readable = os.access(entry.path, os.R_OK)
                except OSError as exc:
                    raise PlantkitInputError(
                        f"unreadable file {entry.path}: {exc.strerror}"
                    ) from exc
                if not readable:
                    raise PlantkitInputError(f"unreadable file {entry.path}: permission denied")
                files.append((f"{prefix}/{class_id}/{entry.name}", size))
        if not files:
            raise PlantkitInputError(
                f"empty class folder {class_dir}: it holds no images; remove it or add images"
            )
        files.sort()
        classes[class_id] = files
    return classes, skipped


def carve_val_from_train(
    train: dict[str, list], fraction: float, seed: int
) -> tuple[dict[str, list], dict[str, list]]:
    """Split train stratified: each class gives round(fraction * n) images, keeping >= 2 in train.

    Classes with fewer than 3 train images give none (a class needs 2 train images).
    """
    rng = np.random.default_rng(seed)
    new_train: dict[str, list] = {}
    val: dict[str, list] = {}
    for class_id in sorted(train):
        files = train[class_id]
        n = len(files)
        k = min(max(1, round(fraction * n)), n - 2) if n >= 3 else 0
        chosen = set(rng.choice(n, size=k, replace=False).tolist()) if k else set()
        new_train[class_id] = [f for i, f in enumerate(files) if i not in chosen]
        if chosen:
            val[class_id] = [f for i, f in enumerate(files) if i in chosen]
    return new_train, val


def open_dataset(
    root: str | os.PathLike, *, val_from_train: float | None = None, seed: int = 0
) -> Dataset:
    """Read a dataset's layout (no image is decoded); bad layouts raise PlantkitInputError."""
    root = Path(root)
    if not root.exists():
        raise PlantkitInputError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise PlantkitInputError(f"dataset root {root} is not a folder")
    images_dir, split_dirs, json_dir = _find_split_dirs(root)
    scanned, skipped = _scan_splits(root, images_dir, split_dirs)

    val_source = "folder"
    if val_from_train is not None:
        val_source = _carve_val(root, scanned, skipped, val_from_train, seed)
    _require_all_splits(root, scanned)

    class_ids = class_order(scanned["train"])
    _check_classes_in_train(scanned, class_ids)

    layout = (
        "plantnet"
        if any((json_dir / f).is_file() for f in (NAMES_FILE, METADATA_FILE, CLASS_INDEX_FILE))
        else "imagefolder"
    )
    class_names = {}
    if (json_dir / NAMES_FILE).is_file():
        class_names = {str(k): str(v) for k, v in _read_json(json_dir / NAMES_FILE).items()}
    if (json_dir / CLASS_INDEX_FILE).is_file():
        _check_class_index(json_dir / CLASS_INDEX_FILE, class_ids)

    return Dataset(
        root=root,
        images_dir=images_dir,
        layout=layout,
        class_ids=class_ids,
        splits=_build_splits(scanned, class_ids),
        class_names=class_names,
        skipped=skipped,
        json_dir=json_dir,
        val_source=val_source,
        val_from_train=val_from_train,
        val_seed=seed if val_from_train is not None else 0,
    )


def _scan_splits(
    root: Path, images_dir: Path, split_dirs: dict[str, Path]
) -> tuple[dict[str, dict[str, list]], dict[str, int]]:
    """({split: {class id: files}}, {split: non-image files skipped}); empty splits raise."""
    if "train" not in split_dirs:
        raise PlantkitInputError(f"{root} has no train split (looked for {images_dir}/train)")
    scanned: dict[str, dict[str, list]] = {}
    skipped: dict[str, int] = {}
    for split, folder in split_dirs.items():
        scanned[split], skipped[split] = _scan_split(folder, images_dir)

    for split in SPLITS:
        if split in scanned and not scanned[split]:
            raise PlantkitInputError(
                f"{root}: the {split} split ({split_dirs[split]}) holds no images"
            )
    return scanned, skipped


def _carve_val(
    root: Path,
    scanned: dict[str, dict[str, list]],
    skipped: dict[str, int],
    val_from_train: float,
    seed: int,
) -> str:
    """Carve a stratified val split out of train (in place); returns the val source text."""
    if "val" in scanned:
        raise PlantkitInputError(f"{root} already has a val split; drop --val-from-train")
    if not 0.0 < val_from_train < 1.0:
        raise PlantkitInputError(
            f"--val-from-train must be a fraction between 0 and 1, got {val_from_train}"
        )
    scanned["train"], scanned["val"] = carve_val_from_train(scanned["train"], val_from_train, seed)
    skipped["val"] = 0
    return f"train (stratified {val_from_train:g}, seed {seed})"


def _require_all_splits(root: Path, scanned: dict[str, dict[str, list]]) -> None:
    for split in SPLITS:
        if split not in scanned:
            hint = (
                "; pass --val-from-train 0.1 --seed 0 to carve a stratified val split from train"
                if split == "val"
                else ""
            )
            if split == "val":
                raise NoValSplit(f"{root} has no val split{hint}", root)
            raise PlantkitInputError(f"{root} has no {split} split{hint}")


def _check_classes_in_train(scanned: dict[str, dict[str, list]], class_ids: list[str]) -> None:
    for split in ("val", "test"):
        missing = sorted(set(scanned[split]) - set(class_ids))
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise PlantkitInputError(
                f"{len(missing)} class(es) in {split} are absent from train: {shown}"
            )


def _build_splits(scanned: dict[str, dict[str, list]], class_ids: list[str]) -> dict[str, Split]:
    index_of = {c: i for i, c in enumerate(class_ids)}
    splits = {}
    for split in SPLITS:
        rows = sorted(
            (path, size, index_of[c]) for c, files in scanned[split].items() for path, size in files
        )
        splits[split] = Split(
            paths=[r[0] for r in rows],
            labels=np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows)),
            sizes=np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)),
        )
    return splits


def _check_class_index(path: Path, class_ids: list[str]) -> None:
    mapping = _read_json(path)
    try:
        given = {int(k): str(v) for k, v in mapping.items()}
    except (AttributeError, ValueError) as exc:
        raise PlantkitInputError(f"{path} is not a {{class index: species id}} mapping") from exc
    expected = dict(enumerate(class_ids))
    if given != expected:
        diff = sorted(i for i in set(given) | set(expected) if given.get(i) != expected.get(i))
        i = diff[0]
        raise PlantkitInputError(
            f"{path} disagrees with the class folders at {len(diff)} index(es), first at {i}: "
            f"file says {given.get(i)}, folders (species ids in ascending order) say "
            f"{expected.get(i)}"
        )
