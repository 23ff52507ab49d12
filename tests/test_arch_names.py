"""plantkit.models.arch_names reads the architecture names from the installed timm and
torchvision sources; these tests hold the scan to what the libraries themselves list, so a
release that registers its models otherwise fails here rather than refusing real names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from plantkit.errors import PlantkitInputError
from plantkit.models import arch_names


def test_the_timm_scan_finds_exactly_the_names_timm_lists():
    import timm

    assert arch_names.timm_names() == set(timm.list_models())


def test_the_torchvision_scan_finds_exactly_its_classification_models():
    import torchvision

    expected = set(torchvision.models.list_models(module=torchvision.models))
    assert arch_names.torchvision_names() == expected
    # Detection, segmentation, video, optical flow and quantized models are not classifiers.
    assert "fasterrcnn_resnet50_fpn" not in arch_names.torchvision_names()


def test_the_registry_uses_the_same_names():
    from plantkit.models import registry

    assert registry.resolve_arch is arch_names.resolve_arch
    assert registry.timm_names() == arch_names.timm_names()
    assert registry.torchvision_names() == arch_names.torchvision_names()


def test_resolving_a_name_imports_neither_torch_nor_timm():
    code = ("import sys; from plantkit.models.arch_names import resolve_arch; "
            "assert resolve_arch('convnext_atto').source == 'timm'; "
            "assert resolve_arch('regnet_x_400mf').source == 'torchvision'; "
            "heavy = [m for m in ('torch', 'timm', 'torchvision') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("arch", "source", "close"), [
    ("resnet81", None, "resnet18"),
    ("squeezenet1_O", "torchvision", "squeezenet1_0"),
    ("efficientnet_b9", "timm", "efficientnet_b8"),
])
def test_an_unknown_name_is_refused_with_close_names(arch, source, close):
    with pytest.raises(PlantkitInputError) as refused:
        arch_names.resolve_arch(arch, source)
    message = str(refused.value)
    assert f"'{arch}'" in message and "did you mean" in message
    assert close in message.split("did you mean", 1)[1]


def test_a_name_of_the_other_library_is_refused_under_source():
    with pytest.raises(PlantkitInputError, match="in timm"):
        arch_names.resolve_arch("shufflenet_v2_x1_0", "timm")
    assert arch_names.resolve_arch("shufflenet_v2_x1_0", "torchvision").source == "torchvision"
