"""Build the backbone of an architecture (timm or torchvision) and find its classifier layer.

Which names exist and which library builds each is plantkit.models.arch_names (torch-free,
so a typo is refused before torch loads); it is re-exported here, where callers find it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch

from plantkit.errors import PlantkitInputError
from plantkit.models.arch_names import (  # noqa: F401  (re-exported)
    PLANTNET300K_ARCHS,
    ArchSpec,
    close_names,
    resolve_arch,
    timm_names,
    torchvision_names,
)


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
        # timm models define get_classifier(); torch types any Module attribute it does not
        # know as Tensor | Module.
        get_classifier = cast(Callable[[], torch.nn.Module], backbone.get_classifier)
        head = get_classifier()
        for name, module in named.items():
            if module is head:
                return name, module
    last: tuple[str, torch.nn.Module] | None = None
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
