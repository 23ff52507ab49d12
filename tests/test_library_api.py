"""plantkit as a library: a facade without side effects, keras's backend chosen by the modules
that need it (plantkit.backend), the lazily exported entry points, the README's example."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import plantkit

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter, without this process's KERAS_BACKEND (conftest may set
    it) unless given."""
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, cwd=ROOT)


def test_importing_plantkit_metrics_and_store_loads_neither_keras_nor_torch():
    code = ("import json, os, sys; import plantkit, plantkit.metrics, plantkit.store; "
            "print(json.dumps({'heavy': [m for m in ('keras', 'torch') if m in sys.modules], "
            "'env': os.environ.get('KERAS_BACKEND')}))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"heavy": [], "env": None}


STORE_WITH_ANOTHER_BACKEND = """
import json, sys, types
if sys.argv[2] == "stand-in":  # a keras that says it runs on numpy (which needs jax here)
    sys.modules["keras"] = types.SimpleNamespace(
        backend=types.SimpleNamespace(backend=lambda: "numpy"))
import keras  # first, on the user's backend
import numpy as np
import plantkit
from plantkit import metrics
from plantkit.store import StoreWriter, open_store

path = sys.argv[1]
with StoreWriter(path, name="m", class_ids=["a", "b", "c"], fingerprint="fp") as writer:
    split = writer.create_split("val", n_rows=4)
    logits = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 2], [2, 1, 0]], dtype=np.float32)
    split.write(0, logits, np.array([0, 1, 2, 1]), ["p0", "p1", "p2", "p3"])
with open_store(path) as store:
    top1 = metrics.split_accuracy(store, "val")["top1"]
    evaluated = plantkit.evaluate_store(store, splits=["val"])["splits"]["val"]["top1"]
refusals = []
for name in ("plantkit.training.fit", "plantkit.models.expert"):
    try:
        __import__(name)
    except ImportError as exc:
        refusals.append(str(exc))
try:
    plantkit.train_expert
except ImportError as exc:
    refusals.append(str(exc))
print(json.dumps({"backend": keras.backend.backend(), "top1": top1, "evaluated": evaluated,
                  "refusals": refusals}))
"""


def _numpy_keras_imports() -> bool:
    probe = run_python("import keras, keras.ops", KERAS_BACKEND="numpy")
    return probe.returncode == 0


@pytest.mark.parametrize("keras_kind", ["numpy", "stand-in"])
def test_a_keras_on_another_backend_reads_stores_and_is_refused_only_for_models(tmp_path,
                                                                              keras_kind):
    if keras_kind == "numpy" and not _numpy_keras_imports():
        pytest.skip("keras's numpy backend does not import here (it needs jax)")
    result = subprocess.run(
        [sys.executable, "-c", STORE_WITH_ANOTHER_BACKEND, str(tmp_path / "m.h5"), keras_kind],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "numpy"},
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["backend"] == "numpy"
    assert outcome["top1"] == pytest.approx(0.75) and outcome["evaluated"] == pytest.approx(0.75)
    assert len(outcome["refusals"]) == 3
    for message in outcome["refusals"]:
        assert "keras was imported with the 'numpy' backend" in message
        assert "KERAS_BACKEND=torch" in message  # the fix


def test_the_backend_module_selects_torch_when_keras_is_not_imported_yet():
    code = ("import os, sys; from plantkit.backend import keras; "
            "print(os.environ['KERAS_BACKEND'], keras.backend.backend(), "
            "sys.modules['keras'] is keras)")
    result = run_python(code, KERAS_BACKEND="numpy")  # not imported yet: torch wins
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch", "torch", "True"]


def test_every_exported_name_resolves_to_its_home_modules_object():
    homes = plantkit._EXPORTS
    assert set(plantkit.__all__) == {"__version__", *homes}
    assert set(plantkit.__all__) <= set(dir(plantkit))
    for name in plantkit.__all__:
        value = getattr(plantkit, name)
        assert value is not None, name
        if name in homes:
            assert value is getattr(importlib.import_module(homes[name]), name), name
    assert callable(plantkit.train_expert) and callable(plantkit.run_combine)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        plantkit.nonsense  # noqa: B018


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Use as a library"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section holds one python example"
    return blocks[0]


def test_the_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    import torch

    code = readme_example()
    assert "plantkit.train_expert" in code and "test_resnet" in code
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest so on a busy machine
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "3 classes" in out and "test top-1:" in out
    run_dir = tmp_path / "artifacts" / "experts" / "test_resnet"
    assert (run_dir / "expert.json").is_file() and (run_dir / "predictions.h5").is_file()
