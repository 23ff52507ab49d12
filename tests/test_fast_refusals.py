"""A bad option of `plantkit train`, `predict` or `import plantnet` is refused before torch
or keras is imported (issue 10: "every bad input a clear refusal, fast"): exit 2, one line
naming the option or file. Timings are not asserted; what is imported at refusal time is."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("torch", "keras", "torchvision", "timm")

# Runs each case's argv through the real entry point in one fresh interpreter and reports,
# per case, the exit code, the stderr lines and which heavy modules were loaded by then.
DRIVER = textwrap.dedent("""
    import io, json, sys
    from contextlib import redirect_stderr, redirect_stdout
    from plantkit.commands import main

    HEAVY = json.loads(sys.argv[2])
    results = []
    for argv in json.loads(sys.argv[1]):
        err, out = io.StringIO(), io.StringIO()
        sys.argv = ["plantkit", *argv]
        code = 0
        try:
            with redirect_stdout(out), redirect_stderr(err):
                main.run()
        except SystemExit as exc:
            code = exc.code
        results.append({"code": code, "lines": err.getvalue().strip().splitlines(),
                        "heavy": [m for m in HEAVY if m in sys.modules]})
    print(json.dumps(results))
""")


def refusals(cases: list[list[str]]) -> list[dict]:
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases), json.dumps(HEAVY)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """ARTIFACTS with an expert folder `kept` (an expert.json: train must not clobber it) and
    a checkpoint-shaped file."""
    root = tmp_path / "art"
    (root / "experts" / "kept").mkdir(parents=True)
    (root / "experts" / "kept" / "expert.json").write_text("{}\n")
    (root / "experts" / "plantnet300k-resnet18").mkdir()
    (root / "experts" / "plantnet300k-resnet18" / "expert.json").write_text("{}\n")
    (tmp_path / "model.tar").write_bytes(b"not read before the options are checked")
    return root


def cases_for(root: Path) -> list[tuple[list[str], str]]:
    missing = str(root.parent / "missing")
    ckpt = str(root.parent / "model.tar")
    art = ["--artifacts", str(root)]
    return [
        # plantkit train
        ([*art, "train", "--epochs", "0"], "--epochs"),
        ([*art, "train", "--name", "a/b"], "--name"),
        ([*art, "train", "--crop", "300"], "--crop"),
        ([*art, "train", "--sampler", "nope"], "--sampler"),
        ([*art, "train", "--milestones", "a,b"], "--milestones"),
        ([*art, "train", "--resume", "--overwrite"], "--resume"),
        ([*art, "train", "--data", missing], missing),
        ([*art, "train", "--weights", missing], "--weights"),
        ([*art, "train", "--init-from", missing], "--init-from"),
        ([*art, "train", "--name", "nothing-here", "--resume"], "--resume"),
        ([*art, "train", "--name", "kept"], "already exists"),
        # plantkit predict
        ([*art, "predict", "--expert", "nope", "--split", "val"], "no expert folder"),
        ([*art, "predict", "--expert", "a/b"], "expert name"),
        ([*art, "predict", "--expert", "kept", "--split", "nope"], "--split"),
        ([*art, "predict", "--expert", "kept", "--crop", "0"], "--crop"),
        ([*art, "predict", "--expert", "kept", "--resize", "50", "--crop", "60"], "--crop"),
        ([*art, "predict", "--expert", "kept", "--dtype", "float64"], "--dtype"),
        ([*art, "predict", "--expert", "kept", "--batch-size", "0"], "--batch-size"),
        ([*art, "predict", "--expert", "kept", "--data", missing], missing),
        # plantkit import plantnet
        ([*art, "import", "plantnet", missing, "--arch", "resnet18", "--name", "new"],
         missing),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--resize", "0"], "--resize"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--normalization", "coco"],
         "--normalization"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--mean", "1,2"], "--std"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--name", "a/b"], "--name"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--name", "x",
          "--source", "nope"], "source"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18"], "already holds"),
    ]


def test_bad_options_are_refused_in_one_line_before_torch_or_keras_is_imported(artifacts):
    cases = cases_for(artifacts)
    before = sorted(str(p) for p in artifacts.rglob("*"))
    for (argv, named), result in zip(cases, refusals([argv for argv, _ in cases]), strict=True):
        shown = " ".join(argv[2:])
        assert result["code"] == 2, (shown, result)
        assert len(result["lines"]) == 1, (shown, result["lines"])
        assert named in result["lines"][0], (shown, result["lines"])
        assert result["heavy"] == [], (shown, result["heavy"])
    # Nothing was written (lock files are hidden and removed again).
    assert sorted(str(p) for p in artifacts.rglob("*") if not p.name.startswith(".")) == [
        p for p in before if not Path(p).name.startswith(".")]


@pytest.mark.parametrize("module", ["plantkit.training.config",
                                    "plantkit.models.plantnet_import",
                                    "plantkit.commands.main"])
def test_the_option_checks_import_neither_torch_nor_keras(module):
    code = (f"import sys, {module}; "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shared_choices_have_one_home():
    from plantkit import choices
    from plantkit.commands import predict as predict_command
    from plantkit.data import loading, profiles
    from plantkit.models import expert, plantnet_import, registry
    from plantkit.training import config

    assert config.SAMPLERS is loading.SAMPLERS is choices.SAMPLERS
    assert predict_command.SPLITS is profiles.SPLITS is choices.SPLITS
    assert plantnet_import.SOURCES is registry.SOURCES is choices.SOURCES
    assert plantnet_import.IMAGENET_MEAN is expert.IMAGENET_MEAN is choices.IMAGENET_MEAN


def test_fit_still_offers_the_config():
    from plantkit.training import config, fit

    assert fit.TrainConfig is config.TrainConfig and fit.validate is config.validate


@pytest.mark.parametrize("bad", [
    {"resize": 0}, {"crop": -3}, {"crop": 300}, {"resize": 64, "crop": 72},
    {"mean": "nan,0.5,0.5", "std": "0.2,0.2,0.2"}, {"mean": "0.5,0.5,0.5", "std": "0.2,0,0.2"},
])
def test_import_preprocessing_refuses_as_transform_spec_does(bad):
    """The torch-free checks of import_preprocessing give TransformSpec's messages."""
    from plantkit.data.transforms import TransformSpec
    from plantkit.errors import PlantkitInputError
    from plantkit.models.plantnet_import import import_preprocessing, parse_triple

    with pytest.raises(PlantkitInputError) as ours:
        import_preprocessing(**bad)
    values = {"resize": 256, "crop": 224, "mean": (0.485, 0.456, 0.406),
              "std": (0.229, 0.224, 0.225)}
    values.update({k: parse_triple(f"--{k}", v) if k in ("mean", "std") else v
                   for k, v in bad.items()})
    with pytest.raises(PlantkitInputError) as theirs:
        TransformSpec(**values)
    assert str(ours.value) == str(theirs.value)
