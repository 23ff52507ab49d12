"""Architecture names: which library builds each one, and close-name suggestions for typos.

Any timm model name works (source ``timm``), and so does any torchvision classification
model (source ``torchvision``). The names of the Pl@ntNet-300K benchmark (the dataset
authors' ``utils.get_model``) are pinned to the library the authors built them with, so
that their released checkpoints load key for key: most of them are torchvision models.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field

import torch

from plantkit.choices import SOURCES
from plantkit.errors import PlantkitInputError


@dataclass(frozen=True)
class ArchSpec:
    """How to build one architecture: the library, its name there, and fixed builder options."""

    source: str
    builder: str
    options: dict = field(default_factory=dict)


def _tv(builder: str, **options) -> ArchSpec:
    return ArchSpec("torchvision", builder, options)


def _timm(builder: str) -> ArchSpec:
    return ArchSpec("timm", builder)


# Every name the authors' get_model accepts. The ResNets come from torchvision there, but
# timm's ResNets have the same modules, keys and arithmetic, so timm builds them here.
PLANTNET300K_ARCHS: dict[str, ArchSpec] = {
    **{name: _timm(name) for name in ("resnet18", "resnet34", "resnet50", "resnet101",
                                      "resnet152")},
    **{name: _timm(name) for name in ("efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
                                      "efficientnet_b3", "efficientnet_b4", "inception_v4",
                                      "inception_resnet_v2", "vit_base_patch16_224")},
    **{name: _tv(name) for name in ("densenet121", "densenet161", "densenet169", "densenet201",
                                    "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
                                    "alexnet", "vgg11", "wide_resnet50_2", "wide_resnet101_2")},
    "squeezenet": _tv("squeezenet1_0"),
    "shufflenet": _tv("shufflenet_v2_x1_0"),
    # The released checkpoints were fine-tuned from ImageNet weights, and torchvision turns
    # transform_input on whenever it loads those; it is not stored in the state_dict.
    "inception_v3": _tv("inception_v3", aux_logits=False, transform_input=True,
                        init_weights=True),
}


@functools.cache
def timm_names() -> frozenset[str]:
    import timm

    return frozenset(timm.list_models())


@functools.cache
def torchvision_names() -> frozenset[str]:
    import torchvision

    return frozenset(torchvision.models.list_models(module=torchvision.models))


def resolve_arch(arch: str, source: str | None = None) -> ArchSpec:
    """How to build `arch`; `source` None tries Pl@ntNet-300K's pin, then timm, then torchvision.

    Raises PlantkitInputError naming close matches when no library knows the name.
    """
    if source is not None and source not in SOURCES:
        raise PlantkitInputError(f"unknown source '{source}': use one of {', '.join(SOURCES)}")
    pinned = PLANTNET300K_ARCHS.get(arch)
    if pinned is not None and source in (None, pinned.source):
        return pinned
    if source in (None, "timm") and arch in timm_names():
        return _timm(arch)
    if source in (None, "torchvision") and arch in torchvision_names():
        return _tv(arch)
    where = f"in {source}" if source else "in timm or torchvision"
    raise PlantkitInputError(f"unknown architecture '{arch}' {where}{_suggestion(arch, source)}")


def close_names(arch: str, source: str | None = None, n: int = 5) -> list[str]:
    """Known architecture names that look like `arch`, best first."""
    names = set()
    if source in (None, "timm"):
        names |= timm_names()
    if source in (None, "torchvision"):
        names |= torchvision_names()
    if source is None:
        names |= set(PLANTNET300K_ARCHS)
    return difflib.get_close_matches(arch, sorted(names), n=n, cutoff=0.6)


def _suggestion(arch: str, source: str | None) -> str:
    close = close_names(arch, source)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return "; `python -c \"import timm; print(timm.list_models())\"` lists the timm names"


def build_backbone(spec: ArchSpec, num_classes: int) -> torch.nn.Module:
    """A randomly initialised classifier with `num_classes` outputs."""
    if spec.source == "timm":
        import timm

        return timm.create_model(spec.builder, pretrained=False, num_classes=num_classes)
    import torchvision

    return torchvision.models.get_model(
        spec.builder, weights=None, num_classes=num_classes, **spec.options
    )


def classifier_module(backbone: torch.nn.Module, spec: ArchSpec, num_classes: int):
    """The backbone's last layer, the one that turns penultimate features into logits.

    Returns (qualified name, module). timm says which it is; for torchvision it is the last
    Linear or Conv2d with `num_classes` outputs (``fc``, ``classifier[-1]``, squeezenet's
    1x1 conv ...), as every torchvision classifier registers its head last.
    """
    named = dict(backbone.named_modules())
    if spec.source == "timm":
        head = backbone.get_classifier()
        for name, module in named.items():
            if module is head:
                return name, module
    last = None
    for name, module in named.items():
        if isinstance(module, torch.nn.Linear) and module.out_features == num_classes:
            last = name, module
        elif isinstance(module, torch.nn.Conv2d) and module.out_channels == num_classes:
            last = name, module
    if last is None:
        raise PlantkitInputError(
            f"cannot find the classifier layer of '{spec.builder}' ({spec.source})"
        )
    return last
