"""Import of released Pl@ntNet-300K checkpoints: same logits as the plain torch model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import timm
import torch
import torchvision

from plantkit.choices import IMAGENET_MEAN, IMAGENET_STD
from plantkit.errors import PlantkitInputError
from plantkit.models.expert import load_expert
from plantkit.models.expert_files import read_expert_json
from plantkit.models.plantnet_import import import_plantnet_checkpoint

CLASSES = 1081


def _randomise_batchnorm(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give BatchNorm statistics values a fresh model never has, so they must be loaded."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.rand(shape, generator=generator) * 0.2 - 0.1)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
    return model.eval()


def _write_plantnet_checkpoint(model, path, *, epoch=7, data_parallel=False):
    """What the authors' utils.save writes: {'epoch', 'model', 'optimizer'}."""
    state = model.state_dict()
    if data_parallel:
        state = {f"module.{k}": v for k, v in state.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    torch.save({"epoch": epoch, "model": state, "optimizer": optimizer.state_dict()}, path)
    return path


# (Pl@ntNet-300K name, the model the authors' get_model builds for it, DataParallel keys?)
RELEASED = [
    ("resnet18", lambda: torchvision.models.resnet18(num_classes=CLASSES), True),
    ("efficientnet_b0", lambda: timm.create_model("efficientnet_b0", num_classes=CLASSES), False),
    ("mobilenet_v3_small", lambda: torchvision.models.mobilenet_v3_small(num_classes=CLASSES),
     False),
    ("squeezenet", lambda: torchvision.models.squeezenet1_0(num_classes=CLASSES), False),
]


@pytest.mark.parametrize("arch, build, data_parallel", RELEASED, ids=[r[0] for r in RELEASED])
def test_imported_expert_gives_the_plain_torch_logits(tmp_path, arch, build, data_parallel):
    torch.manual_seed(0)
    reference = _randomise_batchnorm(build(), seed=1)
    ckpt = _write_plantnet_checkpoint(reference, tmp_path / f"{arch}_weights_best_acc.tar",
                                      data_parallel=data_parallel)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))

    folder = import_plantnet_checkpoint(ckpt, arch, name="imported", experts_dir=tmp_path / "x")
    expert = load_expert(folder)
    with torch.no_grad():
        expected = reference(images)
    logits, _ = expert.predict_batch(images)
    assert logits.shape == (3, CLASSES)
    assert (logits - expected).abs().max().item() <= 1e-5
    assert (expert(images, training=False) - expected).abs().max().item() <= 1e-5
    assert (expert.predict_batch(images, features=True)[0] - expected).abs().max() <= 1e-5

    document = read_expert_json(folder)
    assert document["config"]["mean"] == list(IMAGENET_MEAN)
    assert document["config"]["std"] == list(IMAGENET_STD)
    assert document["config"]["input_size"] == 224
    assert document["origin"]["epoch"] == 7
    # The released weights' eval transform: predict resizes to 256 and crops 224.
    assert document["origin"]["resize"] == 256 and document["origin"]["crop"] == 224
    assert document["origin"]["normalization"] == "imagenet"
    assert len(document["class_ids"]) == CLASSES and document["class_ids"][0] == "1355868"
    assert document["info"]["params"] == sum(p.numel() for p in reference.parameters())


def test_checkpoint_with_another_class_count_is_refused_and_nothing_is_written(tmp_path):
    ckpt = _write_plantnet_checkpoint(torchvision.models.resnet18(num_classes=10),
                                      tmp_path / "r18.tar")
    with pytest.raises(PlantkitInputError, match=r"r18\.tar has 10 classes .* 1,081"):
        import_plantnet_checkpoint(ckpt, "resnet18", name="r18", experts_dir=tmp_path / "x")
    assert not (tmp_path / "x" / "r18").exists()


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    ckpt = _write_plantnet_checkpoint(torchvision.models.squeezenet1_1(num_classes=CLASSES),
                                      tmp_path / "sq.tar")
    with pytest.raises(PlantkitInputError, match=r"sq\.tar does not fit .*--arch"):
        import_plantnet_checkpoint(ckpt, "squeezenet", name="sq", experts_dir=tmp_path / "x")
    with pytest.raises(PlantkitInputError, match="already holds"):
        (tmp_path / "x" / "taken").mkdir(parents=True)
        import_plantnet_checkpoint(ckpt, "squeezenet1_1", name="taken",
                                   experts_dir=tmp_path / "x")


def _cli(artifacts, *args):
    command = [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(artifacts),
               "import", "plantnet", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_imports_a_checkpoint_and_refuses_a_bad_one_in_one_line(tmp_path):
    ckpt = _write_plantnet_checkpoint(torchvision.models.resnet18(num_classes=CLASSES),
                                      tmp_path / "resnet18_weights_best_acc.tar", epoch=29)
    bad = tmp_path / "broken.tar"
    bad.write_bytes(b"this is not a checkpoint")
    # Both at once: each start-up mostly waits on importing torch and keras.
    good_run = _cli(tmp_path / "art", ckpt, "--arch", "resnet18", "--expert", "r18", "--json")
    bad_run = _cli(tmp_path / "art", bad, "--arch", "resnet18", "--expert", "broken")
    good_out, good_err = good_run.communicate(timeout=300)
    bad_out, bad_err = bad_run.communicate(timeout=300)

    assert good_run.returncode == 0, good_err
    folder = tmp_path / "art" / "experts" / "r18"
    assert (folder / "expert.json").is_file() and (folder / "weights.pt").is_file()
    summary = json.loads(good_out)
    assert summary["expert"] == "r18" and summary["origin"]["epoch"] == 29
    assert summary["info"]["gflops"] > 3  # resnet18 at 224 px: 1.8 G multiply-adds

    assert bad_run.returncode == 2
    assert len(bad_err.strip().splitlines()) == 1 and "broken.tar" in bad_err
    assert not (tmp_path / "art" / "experts" / "broken").exists()
