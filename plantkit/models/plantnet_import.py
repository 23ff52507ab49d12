"""Turn a released Pl@ntNet-300K checkpoint into a plantkit expert folder.

The dataset authors' script saves ``{'model': state_dict, 'optimizer': ..., 'epoch': N}``
for a torchvision or timm model with 1,081 outputs, ordered like torchvision's ImageFolder
over the species folders (species ids sorted). Their models were fine-tuned from
ImageNet weights on 224 px centre crops normalised with ImageNet's mean and std.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from plantkit.artifacts import EXPERT_FILE, artifact_lock, check_name, replacing_dir
from plantkit.errors import PlantkitInputError
from plantkit.models import checkpoints
from plantkit.models.expert import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Expert,
    save_expert,
)

PLANTNET300K_CLASSES = 1081
PLANTNET300K_INPUT_SIZE = 224


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
) -> Path:
    """Write experts_dir/<name>/ (expert.json, weights.pt) from a Pl@ntNet-300K checkpoint.

    The checkpoint must fit `arch` key for key and have `num_classes` outputs. With the
    Pl@ntNet-300K class count, the expert records the dataset's species ids as its
    class ids. The folder appears complete or not at all. Returns the folder.
    """
    name = check_name(name or default_expert_name(arch), "expert name (--name)")
    target = Path(experts_dir) / name
    _check_free(target, overwrite)
    state, extras = checkpoints.read_checkpoint(ckpt_path)
    expert = Expert(arch, num_classes, source=source, input_size=PLANTNET300K_INPUT_SIZE,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD)
    checkpoints.load_backbone_state(
        expert.backbone, state, classifier=expert.classifier_name, num_classes=num_classes,
        origin=str(ckpt_path),
    )
    origin = {"kind": "plantnet300k-checkpoint", "path": str(Path(ckpt_path).resolve())}
    if "epoch" in extras:
        origin["epoch"] = extras["epoch"]
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
            f"{target} already holds {what}; pass --overwrite to replace it or choose --name"
        )


def plantnet300k_class_ids() -> list[str]:
    """The species ids in the released models' output order (ImageFolder's sorted folders)."""
    from plantkit.data.profiles import plantnet300k_table

    return sorted(plantnet300k_table()["species_id"].astype(str))
