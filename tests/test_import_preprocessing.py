"""A checkpoint of the dataset authors' main.py at its own preprocessing: `plantkit import
plantnet --resize/--crop/--normalization` records it, `plantkit predict` uses it (or
`--resize/--crop` for one run), and gives the logits of the authors' own eval loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)

import numpy as np  # isort: skip
import pytest
import torch
import torchvision
from cli_helpers import cli, one_torch_thread, refused  # noqa: F401 (an autouse fixture)
from torchvision import transforms
from torchvision.datasets import ImageFolder

from plantkit.data.profiles import make_profile
from plantkit.data.synth import generate_dataset
from plantkit.store import open_store

CLASSES = 3
# Written out, not imported: the authors' utils.get_data normalises with these when main.py
# runs without --pretrained (github.com/plantnet/PlantNet-300K, utils.py).
THEIR_MEAN = [0.4425, 0.4695, 0.3266]
THEIR_STD = [0.2353, 0.2219, 0.2325]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def files_under(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime_ns) and folder (None) under `root`, hidden ones too. A folder's
    own mtime is left out: taking and releasing a lock (a hidden file beside the expert)
    touches it."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size,
                                                               p.stat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.fixture(scope="module")
def data_72(tmp_path_factory) -> Path:
    """Images 72 px square: the authors' Resize(72) leaves them as they are (see below)."""
    return generate_dataset(tmp_path_factory.mktemp("data") / "seventy-two",
                            make_profile("uniform", classes=CLASSES, scale=0.005),
                            image_size=72, seed=0)


@pytest.fixture(scope="module")
def data_64(tmp_path_factory) -> Path:
    """Images 64 px square: a resize to 72 really resamples them."""
    return generate_dataset(tmp_path_factory.mktemp("data") / "sixty-four",
                            make_profile("uniform", classes=CLASSES, scale=0.005),
                            image_size=64, seed=1)


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """What the authors' main.py writes for `--model resnet18` without --pretrained after one
    training step: get_model's resnet18(num_classes=n), their SGD, utils.save's dict."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4,
                                nesterov=True)
    # One step of their train_epoch: moves the weights, the BatchNorm statistics (which must
    # then be imported, not left at a fresh model's) and fills the momentum buffers.
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 64, 64, generator=generator)
    model.train()
    loss = torch.nn.CrossEntropyLoss()(model(images), torch.tensor([0, 1, 2, 0]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    path = tmp_path_factory.mktemp("results") / "mine_weights_best_acc.tar"
    torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict()},
               path)
    return path, model.eval()


def reference_logits(model, root: Path, split: str, transform) -> dict[str, tuple[np.ndarray, int]]:
    """{path as plantkit records it: (logits, label)} of a plain torchvision eval loop (the
    authors' Plantnet dataset is an ImageFolder over root/split)."""
    folder = ImageFolder(str(root / "images" / split), transform=transform)
    loader = torch.utils.data.DataLoader(folder, batch_size=8, shuffle=False, num_workers=0)
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in loader]).numpy()
    paths = [Path(p).relative_to(root / "images").as_posix() for p, _ in folder.samples]
    return {p: (row, label) for p, row, (_, label) in zip(paths, logits, folder.samples,
                                                          strict=True)}


def authors_eval_transform(resize: int, crop: int, mean, std):
    """utils.get_data's transform_test, as written there (PIL resize)."""
    return transforms.Compose([transforms.Resize(size=resize), transforms.CenterCrop(size=crop),
                               transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)])


def assert_store_matches(store_path: Path, split: str, expected: dict, atol: float) -> float:
    with open_store(store_path) as store:
        paths, logits, labels = store.paths(split), store.logits(split), store.labels(split)
    assert sorted(paths) == sorted(expected)
    worst = 0.0
    for path, row, label in zip(paths, logits, labels, strict=True):
        reference, reference_label = expected[path]
        assert label == reference_label
        worst = max(worst, float(np.abs(row - reference).max()))
    assert worst <= atol, f"{split}: logits differ by up to {worst:.2e}"
    return worst


def test_authors_checkpoint_predicts_the_logits_of_their_eval_loop(
        data_72, authors_checkpoint, tmp_path):
    ckpt, model = authors_checkpoint
    artifacts = tmp_path / "art"
    code, out, err = cli("--artifacts", artifacts, "import", "plantnet", ckpt, "--arch",
                         "resnet18", "--num-classes", CLASSES, "--resize", 72, "--crop", 64,
                         "--normalization", "plantnet300k", "--expert", "mine", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["config"]["input_size"] == 64
    assert summary["config"]["mean"] == pytest.approx(THEIR_MEAN)
    assert summary["config"]["std"] == pytest.approx(THEIR_STD)
    assert summary["origin"]["resize"] == 72 and summary["origin"]["crop"] == 64
    assert summary["origin"]["normalization"] == "plantnet300k"
    assert summary["origin"]["epoch"] == 3
    folder = artifacts / "experts" / "mine"
    document = json.loads((folder / "expert.json").read_text())
    assert "class_ids" not in document  # 3 != 1,081: no species ids to record

    code, out, err = cli("--artifacts", artifacts, "predict", "--expert", "mine", "--data",
                         data_72, "--split", "val", "--split", "test", "--workers", 0, "--json")
    assert code == 0, err
    assert (json.loads(out)["resize"], json.loads(out)["crop"]) == (72, 64)
    store_path = folder / "predictions.h5"
    with open_store(store_path) as store:
        assert (store.attrs["resize"], store.attrs["input_size"]) == (72, 64)
    # The authors' exact transform (PIL's resize). The images are 72 px, so Resize(72) leaves
    # them unchanged in PIL and in torchvision alike and the comparison is exact; the crop,
    # the normalisation and the recorded resize (another one would resample) all count.
    transform = authors_eval_transform(72, 64, THEIR_MEAN, THEIR_STD)
    for split in ("val", "test"):
        expected = reference_logits(model, data_72, split, transform)
        assert_store_matches(store_path, split, expected, atol=1e-4)


def test_predict_resize_and_crop_override_the_recorded_ones_for_one_run(
        data_64, authors_checkpoint, tmp_path):
    ckpt, model = authors_checkpoint
    artifacts = tmp_path / "art"
    code, _, err = cli("--artifacts", artifacts, "import", "plantnet", ckpt, "--arch",
                       "resnet18", "--num-classes", CLASSES, "--mean", ",".join(map(str,
                       THEIR_MEAN)), "--std", ",".join(map(str, THEIR_STD)), "--expert", "mine")
    assert code == 0, err
    folder = artifacts / "experts" / "mine"
    before = (folder / "expert.json").read_bytes()
    document = json.loads(before)
    assert document["origin"]["normalization"] == "custom"
    assert (document["config"]["input_size"], document["origin"]["resize"]) == (224, 256)

    code, _, err = cli("--artifacts", artifacts, "predict", "--expert", "mine", "--data",
                       data_64, "--split", "val", "--resize", 72, "--crop", 64, "--workers", 0,
                       "--quiet")
    assert code == 0, err
    store_path = folder / "predictions.h5"
    with open_store(store_path) as store:
        attrs = store.attrs
    assert (attrs["resize"], attrs["input_size"]) == (72, 64)
    assert attrs["gflops"] < document["info"]["gflops"] / 10  # counted at 64 px, not 224
    assert (folder / "expert.json").read_bytes() == before  # for that run only
    # 64 -> 72 px really resamples. plantkit resizes uint8 tensors with torchvision's
    # antialiased kernel, so torchvision's tensor path is the exact reference; PIL's bilinear
    # (the authors' transform on PIL images) rounds some pixels one level apart.
    transform = torchvision.transforms.v2.Compose([
        torchvision.transforms.v2.ToImage(),
        torchvision.transforms.v2.Resize(72, antialias=True),
        torchvision.transforms.v2.CenterCrop(64),
        torchvision.transforms.v2.ToDtype(torch.float32, scale=True),
        torchvision.transforms.v2.Normalize(THEIR_MEAN, THEIR_STD),
    ])
    assert_store_matches(store_path, "val", reference_logits(model, data_64, "val", transform),
                         atol=1e-4)


def test_default_import_records_the_released_weights_preprocessing(
        data_64, authors_checkpoint, tmp_path):
    from plantkit.predict import load_for_prediction

    ckpt, _ = authors_checkpoint
    artifacts = tmp_path / "art"
    code, out, err = cli("--artifacts", artifacts, "import", "plantnet", ckpt, "--arch",
                         "resnet18", "--num-classes", CLASSES, "--expert", "plain", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["config"]["input_size"] == 224
    assert summary["config"]["mean"] == pytest.approx(IMAGENET_MEAN)
    assert summary["config"]["std"] == pytest.approx(IMAGENET_STD)
    assert (summary["origin"]["resize"], summary["origin"]["crop"]) == (256, 224)
    assert summary["origin"]["normalization"] == "imagenet"
    _, _, resize = load_for_prediction(artifacts / "experts" / "plain", data=data_64)
    assert resize == 256


MEAN = ",".join(map(str, THEIR_MEAN))
STD = ",".join(map(str, THEIR_STD))
BAD_IMPORTS = [
    (["--resize", "0"], "--resize"),
    (["--crop", "-3"], "--crop"),
    (["--crop", "300"], "--crop"),  # more than the default resize, 256
    (["--resize", "64", "--crop", "72"], "--crop"),
    (["--normalization", "coco"], "--normalization"),
    (["--normalization", "plantnet300k", "--mean", MEAN, "--std", STD], "--normalization"),
    (["--mean", MEAN], "--std"),
    (["--std", STD], "--mean"),
    (["--mean", "0.5,0.5", "--std", STD], "--mean"),
    (["--mean", "a,b,c", "--std", STD], "--mean"),
    (["--mean", "nan,0.5,0.5", "--std", STD], "--mean"),
    (["--mean", MEAN, "--std", "0.2,0,0.2"], "--std"),
    (["--mean", MEAN, "--std", "0.2,0.2,0.2,0.2"], "--std"),
]


@pytest.mark.parametrize("options, named", BAD_IMPORTS,
                         ids=[" ".join(o) for o, _ in BAD_IMPORTS])
def test_bad_import_values_exit_2_in_one_line_and_write_nothing(
        authors_checkpoint, tmp_path, options, named):
    ckpt, _ = authors_checkpoint
    artifacts = tmp_path / "art"
    line = refused("--artifacts", artifacts, "import", "plantnet", ckpt, "--arch", "resnet18",
                   "--num-classes", CLASSES, "--expert", "bad", *options)
    assert named in line
    assert files_under(artifacts) == {}


@pytest.fixture(scope="module")
def imported(tmp_path_factory, authors_checkpoint) -> Path:
    """ARTIFACTS with experts/mine imported at resize 72, crop 64."""
    artifacts = tmp_path_factory.mktemp("imported")
    code, _, err = cli("--artifacts", artifacts, "import", "plantnet", authors_checkpoint[0],
                       "--arch", "resnet18", "--num-classes", CLASSES, "--resize", 72, "--crop",
                       64, "--normalization", "plantnet300k", "--expert", "mine")
    assert code == 0, err
    return artifacts


BAD_PREDICTS = [
    (["--crop", "0"], "--crop"),
    (["--resize", "0"], "--resize"),
    (["--resize", "50", "--crop", "60"], "--crop"),
    (["--crop", "80"], "--crop"),  # more than the recorded resize, 72
    (["--resize", "60"], "--resize"),  # less than the recorded crop, 64
]


@pytest.mark.parametrize("options, named", BAD_PREDICTS,
                         ids=[" ".join(o) for o, _ in BAD_PREDICTS])
def test_bad_predict_sizes_exit_2_in_one_line_and_write_nothing(
        imported, data_64, options, named):
    before = files_under(imported)
    line = refused("--artifacts", imported, "predict", "--expert", "mine", "--data", data_64,
                   "--workers", 0, "--quiet", *options)
    assert named in line
    assert files_under(imported) == before


def test_a_vit_runs_at_its_own_size_only(data_64, tmp_path):
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("test_vit3", num_classes=CLASSES)  # a fixed 160 px patch grid
    ckpt = tmp_path / "vit.tar"
    torch.save({"epoch": 0, "model": vit.state_dict(), "optimizer": {}}, ckpt)
    artifacts = tmp_path / "art"
    base = ["--artifacts", artifacts, "import", "plantnet", ckpt, "--arch", "test_vit3",
            "--num-classes", CLASSES, "--expert", "vit"]
    line = refused(*base)  # the default crop, 224
    assert "--crop 224" in line and "test_vit3" in line
    assert files_under(artifacts) == {}

    code, _, err = cli(*base, "--resize", 176, "--crop", 160)
    assert code == 0, err
    before = files_under(artifacts)
    line = refused("--artifacts", artifacts, "predict", "--expert", "vit", "--data", data_64,
                   "--crop", 64, "--workers", 0, "--quiet")
    assert "--crop 64" in line and "test_vit3" in line
    assert files_under(artifacts) == before
