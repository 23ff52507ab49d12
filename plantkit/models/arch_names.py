"""Architecture names: which library builds each one, and close-name suggestions for typos.

Any timm model name works (source ``timm``), and so does any torchvision classification
model (source ``torchvision``). The names of the Pl@ntNet-300K benchmark (the dataset
authors' ``utils.get_model``) are pinned to the library the authors built them with, so
that their released checkpoints load key for key: most of them are torchvision models.

Nothing here imports torch, timm or torchvision: importing timm takes seconds, so the names
are read from the installed packages' source files instead (the ``@register_model``
decorators that fill their registries), and a typo is refused before either is loaded.
tests/test_arch_names.py checks that the scan finds exactly what the libraries list.
plantkit.models.registry builds the models.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

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

# timm registers every model with a bare `@register_model` right above its `def`, and the
# registry key is the function's name (timm._registry.register_model).
_TIMM_REGISTRATION = re.compile(r"^@register_model\s*\ndef\s+(\w+)", re.MULTILINE)
# torchvision: `@register_model()` or `@register_model(name="...")`, possibly followed by
# other decorators (handle_legacy_interface, over several lines) before the `def`; the key
# is the given name, else the function's (torchvision.models._api.register_model).
_TORCHVISION_REGISTRATION = re.compile(
    r"^@register_model\((?:\s*name\s*=\s*)?(?:[\"'](\w+)[\"'])?\s*\)(?:.*?)^def\s+(\w+)",
    re.MULTILINE | re.DOTALL,
)


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _read_sources(files) -> list[str]:
    texts = []
    for path in sorted(files):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return texts


@functools.cache
def timm_names() -> frozenset[str]:
    """Every name timm.list_models() gives (without pretrained tags), read from timm's sources.

    Falls back to importing timm where its sources cannot be read (a zipped install)."""
    root = _package_dir("timm")
    texts = _read_sources((root / "models").rglob("*.py")) if root is not None else []
    names = frozenset(m.group(1) for text in texts for m in _TIMM_REGISTRATION.finditer(text))
    if names:
        return names
    import timm

    return frozenset(timm.list_models())


@functools.cache
def torchvision_names() -> frozenset[str]:
    """The classification models of torchvision.models.list_models(module=torchvision.models):
    those registered in the modules directly in torchvision/models/ (detection, video ... are
    subpackages), read from the sources. Falls back to importing torchvision."""
    root = _package_dir("torchvision")
    texts = _read_sources((root / "models").glob("*.py")) if root is not None else []
    names = frozenset(m.group(1) or m.group(2) for text in texts
                      for m in _TORCHVISION_REGISTRATION.finditer(text))
    if names:
        return names
    import torchvision

    return frozenset(torchvision.models.list_models(module=torchvision.models))


def check_source(source: str | None) -> None:
    if source is not None and source not in SOURCES:
        raise PlantkitInputError(f"unknown source '{source}': use one of {', '.join(SOURCES)}")


def resolve_arch(arch: str, source: str | None = None) -> ArchSpec:
    """How to build `arch`; `source` None tries Pl@ntNet-300K's pin, then timm, then torchvision.

    Raises PlantkitInputError naming close matches when no library knows the name. Loads
    neither library: `plantkit train` and `import plantnet` call it before torch."""
    check_source(source)
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
    names: set[str] = set()
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
