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
        ([*art, "train", "--expert", "a/b"], "--expert"),
        ([*art, "train", "--crop", "300"], "--crop"),
        ([*art, "train", "--sampler", "nope"], "--sampler"),
        ([*art, "train", "--milestones", "a,b"], "--milestones"),
        ([*art, "train", "--resume", "--overwrite"], "--resume"),
        ([*art, "train", "--data", missing], missing),
        ([*art, "train", "--weights", missing], "--weights"),
        ([*art, "train", "--init-from", missing], "--init-from"),
        ([*art, "train", "--expert", "nothing-here", "--resume"], "--resume"),
        ([*art, "train", "--expert", "kept"], "already exists"),
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
        ([*art, "import", "plantnet", missing, "--arch", "resnet18", "--expert", "new"],
         missing),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--resize", "0"], "--resize"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--normalization", "coco"],
         "--normalization"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--mean", "1,2"], "--std"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--expert", "a/b"], "--expert"),
        ([*art, "import", "plantnet", ckpt, "--arch", "resnet18", "--expert", "x",
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
    """No module but plantkit.choices defines its names or spells one of its value tuples."""
    import ast
    from pathlib import Path

    from plantkit import choices

    names = {n for n in vars(choices) if n.isupper()}
    tuples = {v for n, v in vars(choices).items() if n.isupper() and isinstance(v, tuple)}
    root = Path(choices.__file__).parents[1]
    offenders = []
    sources = [*root.joinpath("plantkit").rglob("*.py"), *root.joinpath("commands").rglob("*.py")]
    for path in sources:
        if path.name == "choices.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Assign):
                continue
            targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError):
                value = None
            spelt = isinstance(value, tuple) and any(value == t for t in tuples)
            if targets & names or spelt:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []



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


# --- unknown architectures and damaged experts / checkpoints (before torch as well) ---------

def _expert_document(weights: bytes, **changes) -> dict:
    """An expert.json as save_expert writes it, for `weights`; `changes` override keys."""
    import hashlib

    document = {
        "format": "plantkit-expert", "format_version": 1,
        "config": {"arch": "resnet18", "num_classes": 3, "source": "timm", "input_size": 224,
                   "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "amp": False},
        "info": {"params": 1, "gflops": 0.1, "feature_dim": 512},
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    document.update(changes)
    return document


def _write_expert(folder: Path, expert_json: str | None, weights: bytes | None) -> Path:
    folder.mkdir(parents=True)
    if expert_json is not None:
        (folder / "expert.json").write_text(expert_json)
    if weights is not None:
        (folder / "weights.pt").write_bytes(weights)
    return folder


@pytest.fixture
def damaged(tmp_path) -> Path:
    """ARTIFACTS whose experts are each damaged in one way, and bad checkpoint files beside."""
    import os

    root = tmp_path / "art"
    experts = root / "experts"
    good = b"weights bytes"
    valid = json.dumps(_expert_document(good))
    _write_expert(experts / "notjson", "{not json", good)
    _write_expert(experts / "notobject", "[1, 2]", good)
    _write_expert(experts / "noconfig", json.dumps(
        {k: v for k, v in _expert_document(good).items() if k != "config"}), good)
    no_arch = _expert_document(good)
    del no_arch["config"]["arch"]
    _write_expert(experts / "noarch", json.dumps(no_arch), good)
    _write_expert(experts / "badclasses", json.dumps(_expert_document(
        good, config={**_expert_document(good)["config"], "num_classes": "3"})), good)
    _write_expert(experts / "noweights", valid, None)
    (_write_expert(experts / "weightsdir", valid, None) / "weights.pt").mkdir()
    _write_expert(experts / "emptyweights", json.dumps(_expert_document(b"")), b"")
    os.mkfifo(_write_expert(experts / "fifoweights", valid, None) / "weights.pt")
    _write_expert(experts / "corrupt", valid, b"weights bytez")  # one byte differs
    (tmp_path / "empty.tar").write_bytes(b"")
    (tmp_path / "folder.tar").mkdir()
    os.mkfifo(tmp_path / "fifo.tar")
    (tmp_path / "model.tar").write_bytes(b"not read before the arch is checked")
    return root


def damaged_cases(root: Path) -> list[tuple[list[str], list[str]]]:
    """(argv, strings the one line must hold)."""
    experts = root / "experts"
    art = ["--artifacts", str(root)]
    here = root.parent
    cases = [
        # An unknown --arch, named, with close names: before timm is imported.
        ([*art, "train", "--arch", "resnet81"], ["'resnet81'", "did you mean", "resnet18"]),
        ([*art, "train", "--arch", "nope"], ["'nope'"]),
        ([*art, "import", "plantnet", str(here / "model.tar"), "--arch", "resnet81"],
         ["'resnet81'", "did you mean", "resnet18"]),
        ([*art, "import", "plantnet", str(here / "model.tar"), "--arch", "shufflenet_v2_x1_0",
          "--source", "timm"], ["'shufflenet_v2_x1_0'", "in timm"]),
        # import plantnet CHECKPOINT that cannot be read whole.
        ([*art, "import", "plantnet", str(here / "empty.tar"), "--arch", "resnet18"],
         [str(here / "empty.tar"), "empty"]),
        ([*art, "import", "plantnet", str(here / "folder.tar"), "--arch", "resnet18"],
         [str(here / "folder.tar"), "folder"]),
        ([*art, "import", "plantnet", str(here / "fifo.tar"), "--arch", "resnet18"],
         [str(here / "fifo.tar"), "not a regular file"]),
        # train --init-from: a name that is neither a path nor an expert; a bad file.
        ([*art, "train", "--init-from", "nobody"],
         ["--init-from nobody", "no such file or folder", str(experts)]),
        ([*art, "train", "--init-from", str(here / "empty.tar")], [str(here / "empty.tar")]),
    ]
    files = {
        "notjson": "expert.json", "notobject": "expert.json", "noconfig": "expert.json",
        "noarch": "expert.json", "badclasses": "expert.json", "noweights": "weights.pt",
        "weightsdir": "weights.pt", "emptyweights": "weights.pt", "fifoweights": "weights.pt",
        "corrupt": "weights.pt",
    }
    for name, file in files.items():
        named = [str(experts / name / file)]
        if name == "corrupt":
            named.append("corrupt")
        cases.append(([*art, "predict", "--expert", name], named))
        # The same expert for train --init-from, by its name and by its folder.
        cases.append(([*art, "train", "--init-from", name], named))
        cases.append(([*art, "train", "--init-from", str(experts / name)], named))
    return cases


def test_unknown_archs_and_damaged_files_are_refused_in_one_line_before_torch(damaged):
    cases = damaged_cases(damaged)
    for (argv, named), result in zip(cases, refusals([argv for argv, _ in cases]), strict=True):
        shown = " ".join(argv[2:])
        assert result["code"] == 2, (shown, result)
        assert len(result["lines"]) == 1, (shown, result["lines"])
        for part in named:
            assert part in result["lines"][0], (shown, part, result["lines"])
        assert result["heavy"] == [], (shown, result["heavy"])


def test_an_unreadable_file_is_refused_naming_it(tmp_path, monkeypatch):
    """Root reads a chmod 000 file, so the refusal of the read itself is driven by a failing
    open (what a file on a broken disk or without permission gives)."""
    from plantkit.errors import PlantkitInputError
    from plantkit.models import expert_files

    checkpoint = tmp_path / "model.tar"
    checkpoint.write_bytes(b"bytes")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(expert_files, "open", denied, raising=False)
    with pytest.raises(PlantkitInputError) as refused:
        expert_files.check_file(checkpoint, "checkpoint")
    assert str(refused.value) == f"cannot read checkpoint {checkpoint}: Permission denied"


def test_a_chmod_000_file_is_refused_when_not_root(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file: the refusal is tested with a failing open")
    checkpoint = tmp_path / "model.tar"
    checkpoint.write_bytes(b"bytes")
    checkpoint.chmod(0)
    [result] = refusals([["--artifacts", str(tmp_path / "art"), "import", "plantnet",
                          str(checkpoint), "--arch", "resnet18"]])
    assert result["code"] == 2 and len(result["lines"]) == 1
    assert str(checkpoint) in result["lines"][0] and "cannot read" in result["lines"][0]
    assert result["heavy"] == []


def test_the_weights_are_hashed_once_while_they_do_not_change(tmp_path, monkeypatch):
    """predict checks the folder before torch and loads it after: one sha256, not two; a
    replaced file is hashed again."""
    from plantkit.artifacts import integrity
    from plantkit.errors import PlantkitInputError
    from plantkit.models import expert_files

    weights = b"weights bytes"
    folder = _write_expert(tmp_path / "e", json.dumps(_expert_document(weights)), weights)
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda path: hashed.append(path) or real(path))
    expert_files.check_expert_folder(folder)
    expert_files.check_expert_folder(folder)
    assert len(hashed) == 1
    replacement = folder / "new.pt"
    replacement.write_bytes(b"weights bytez")
    replacement.replace(folder / "weights.pt")  # as the write protocol replaces a file
    with pytest.raises(PlantkitInputError, match="corrupt"):
        expert_files.check_expert_folder(folder)
    assert len(hashed) == 2
