"""Turn a released Pl@ntNet-300K checkpoint into a plantkit expert folder.

The dataset authors' script saves ``{'model': state_dict, 'optimizer': ..., 'epoch': N}``
for a torchvision or timm model with 1,081 outputs, ordered like torchvision's ImageFolder
over the species folders (species ids sorted). Their released models were fine-tuned from
ImageNet weights (`main.py --pretrained`) and evaluated on images resized to 256 (shorter
side) and centre-cropped to 224, normalised with ImageNet's mean and std. A run of their
`main.py` without `--pretrained` normalises with the dataset's own statistics instead, and
`--image_size` / `--crop_size` change the resize and the crop: the import records what the
checkpoint was trained with, and `plantkit predict` uses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from plantkit.artifacts import EXPERT_FILE, artifact_lock, check_name, replacing_dir
from plantkit.choices import IMAGENET_MEAN, IMAGENET_STD, Normalization
from plantkit.errors import PlantkitInputError
from plantkit.models.arch_names import resolve_arch
from plantkit.models.expert_files import check_file

# This module imports neither torch nor keras at its top (they come with the import itself):
# `plantkit import plantnet` checks its options first.
PLANTNET300K_CLASSES = 1081
# The defaults of the authors' main.py (cli.py: --image_size 256, --crop_size 224).
PLANTNET300K_INPUT_SIZE = 224
PLANTNET300K_RESIZE = 256
# The authors' normalisation without --pretrained: the dataset's mean and std (0-1 scale),
# hard-coded in get_data() of utils.py in github.com/plantnet/PlantNet-300K (commit
# 224544b), `transforms.Normalize(mean=[0.4425, 0.4695, 0.3266], std=[0.2353, 0.2219, 0.2325])`.
PLANTNET300K_MEAN = (0.4425, 0.4695, 0.3266)
PLANTNET300K_STD = (0.2353, 0.2219, 0.2325)

# --normalization NAME -> (mean, std): the released weights' (main.py --pretrained) and the
# authors' main.py without --pretrained.
NORMALIZATIONS = {
    Normalization.imagenet.value: (IMAGENET_MEAN, IMAGENET_STD),
    Normalization.plantnet300k.value: (PLANTNET300K_MEAN, PLANTNET300K_STD),
}
DEFAULT_NORMALIZATION = Normalization.imagenet.value
CUSTOM_NORMALIZATION = "custom"  # recorded for an explicit --mean/--std


@dataclass(frozen=True)
class ImportPreprocessing:
    """How the checkpoint's images were prepared: shorter side resized, centre crop, mean/std."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalization: str  # a NORMALIZATIONS name, or "custom"


def import_preprocessing(
    *,
    resize: int | None = None,
    crop: int | None = None,
    normalization: str | None = None,
    mean: Sequence[float] | str | None = None,
    std: Sequence[float] | str | None = None,
) -> ImportPreprocessing:
    """Checked preprocessing of an import; a bad value raises PlantkitInputError naming its option.

    Defaults are the released weights': resize 256, crop 224, ImageNet's mean and std.
    `normalization` names a NORMALIZATIONS entry; `mean` and `std` (three numbers each, or a
    "R,G,B" string) give one explicitly, together and instead of `normalization`.
    """
    if (mean is None) != (std is None):
        given, missing = ("--mean", "--std") if std is None else ("--std", "--mean")
        raise PlantkitInputError(f"{given} needs {missing} too: pass both, as R,G,B")
    if mean is not None and std is not None:  # both or neither, as checked above
        if normalization is not None:
            raise PlantkitInputError(
                f"--normalization {normalization} and --mean/--std both give the normalisation: "
                "pass one of them"
            )
        mean, std = parse_triple("--mean", mean), parse_triple("--std", std)
        normalization = CUSTOM_NORMALIZATION
    else:
        normalization = DEFAULT_NORMALIZATION if normalization is None else normalization
        if normalization not in NORMALIZATIONS:
            raise PlantkitInputError(
                f"--normalization must be {' or '.join(NORMALIZATIONS)}, got {normalization!r} "
                "(or pass --mean R,G,B --std R,G,B)"
            )
        mean, std = NORMALIZATIONS[normalization]
    resize = PLANTNET300K_RESIZE if resize is None else resize
    crop = PLANTNET300K_INPUT_SIZE if crop is None else crop
    # The rules and messages of plantkit.data.transforms.TransformSpec (positive sizes,
    # crop <= resize, 3 finite values, std > 0), without its torch.
    for option, value in (("resize", resize), ("crop", crop)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlantkitInputError(f"--{option} must be a positive integer, got {value!r}")
    if crop > resize:
        raise PlantkitInputError(
            f"--crop ({crop}) must not exceed --resize ({resize}): the crop is "
            "taken from the image resized to that shorter side"
        )
    mean, std = _channel_triple("mean", mean), _channel_triple("std", std)
    if min(std) <= 0:
        raise PlantkitInputError(f"--std must be positive per channel, got {std}")
    return ImportPreprocessing(int(resize), int(crop), mean, std, normalization)


def _channel_triple(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    try:
        triple = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        triple = ()
    if len(triple) != 3 or not all(math.isfinite(v) for v in triple):
        raise PlantkitInputError(f"--{name} must be three finite numbers (R, G, B), got {values!r}")
    return triple  # type: ignore[return-value]


def parse_triple(option: str, value: Sequence[float] | str) -> tuple[float, ...]:
    """Three numbers from "R,G,B" (or a sequence); PlantkitInputError naming `option` if not."""
    if not isinstance(value, str):
        return tuple(value)
    parts = [part.strip() for part in value.split(",")]
    try:
        numbers = tuple(float(part) for part in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 3:
        raise PlantkitInputError(
            f"{option} must be three numbers R,G,B separated by commas (0-1 scale), got {value!r}"
        )
    return numbers




def check_checkpoint_path(ckpt_path: str | PathLike) -> None:
    """Refuse a checkpoint that cannot be read whole: missing, a folder, empty, unreadable."""
    check_file(ckpt_path, "checkpoint")


def check_import_options(ckpt_path: str | PathLike, arch: str, *, name: str | None = None,
                         experts_dir: str | PathLike, num_classes: int = 1081,
                         source: str | None = None, overwrite: bool = False) -> None:
    """What import_plantnet_checkpoint refuses without torch: the checkpoint file, --source,
    --num-classes, the expert name, a protected target folder, and an --arch that neither
    timm nor torchvision (nor `source`) knows."""
    name = check_name(name or default_expert_name(arch), "expert name (--expert)")
    _check_free(Path(experts_dir) / name, overwrite)
    check_checkpoint_path(ckpt_path)
    resolve_arch(arch, source)  # --source too; reads the names without importing timm
    if int(num_classes) < 1:
        raise PlantkitInputError(f"number of classes must be at least 1, got {num_classes}")


def default_expert_name(arch: str) -> str:
    return f"plantnet300k-{arch}"


def import_plantnet_checkpoint(
    ckpt_path: str | PathLike,
    arch: str,
    *,
    name: str | None = None,
    experts_dir: str | PathLike,
    num_classes: int = PLANTNET300K_CLASSES,
    source: str | None = None,
    overwrite: bool = False,
    preprocessing: ImportPreprocessing | None = None,
) -> Path:
    """Write experts_dir/<name>/ (expert.json, weights.pt) from a Pl@ntNet-300K checkpoint.

    The checkpoint must fit `arch` key for key and have `num_classes` outputs. With the
    Pl@ntNet-300K class count, the expert records the dataset's species ids as its
    class ids. `preprocessing` (default: the released weights', see import_preprocessing)
    gives the expert's input size (the crop), mean and std; its resize and normalisation
    name are recorded in the expert's origin, where `plantkit predict` takes the resize from.
    The folder appears complete or not at all. Returns the folder.
    """
    prep = preprocessing if preprocessing is not None else import_preprocessing()
    name = check_name(name or default_expert_name(arch), "expert name (--expert)")
    target = Path(experts_dir) / name
    _check_free(target, overwrite)
    check_checkpoint_path(ckpt_path)

    from plantkit.models import checkpoints
    from plantkit.models.expert import Expert, save_expert
    from plantkit.predict import check_runs_at

    state, extras = checkpoints.read_checkpoint(ckpt_path)
    expert = Expert(arch, num_classes, source=source, input_size=prep.crop, mean=prep.mean,
                    std=prep.std)
    checkpoints.load_backbone_state(
        expert.backbone, state, classifier=expert.classifier_name, num_classes=num_classes,
        origin=str(ckpt_path),
    )
    check_runs_at(expert, prep.crop)  # a ViT, say, runs at its own size only
    origin: dict[str, str | int | float] = {
        "kind": "plantnet300k-checkpoint", "path": str(Path(ckpt_path).resolve())
    }
    if "epoch" in extras:
        origin["epoch"] = extras["epoch"]
    # The eval transform the checkpoint was made for: predict resizes to origin["resize"].
    origin.update({"resize": prep.resize, "crop": prep.crop,
                   "normalization": prep.normalization})
    class_ids = plantnet300k_class_ids() if num_classes == PLANTNET300K_CLASSES else None
    with artifact_lock(target):
        _check_free(target, overwrite)  # again, now that no other writer can come between
        with replacing_dir(target) as tmp:
            save_expert(expert, tmp, class_ids=class_ids, origin=origin)
    return target


def _check_free(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        what = "an expert" if (target / EXPERT_FILE).is_file() else "a folder"
        raise PlantkitInputError(
            f"{target} already holds {what}; pass --overwrite to replace it, or choose another "
            "--expert"
        )


def plantnet300k_class_ids() -> list[str]:
    """The species ids in the released models' output order (ImageFolder's sorted folders)."""
    from plantkit.data.profiles import plantnet300k_table

    return sorted(plantnet300k_table()["species_id"].astype(str))
