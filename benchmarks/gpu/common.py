"""What the GPU suite's scripts share: paths, the result protocol, the compile backend switch.

A case process prints its measurement as one line ``@@RESULT {json}`` on stdout; anything
else it prints (progress, warnings) is only logged. Wall-clock windows are `time.time()`
seconds, so the suite can match them with the GPU utilisation samples it takes meanwhile.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
BENCHMARKS = ROOT / "benchmarks"
RESULT_PREFIX = "@@RESULT "
# Set by the suite's dry run only: every torch.compile (plantkit's own too) uses this backend
# instead of inductor, whose C++ code generation takes minutes on a small CPU.
COMPILE_BACKEND_ENV = "PLANTKIT_BENCH_COMPILE_BACKEND"


def add_paths() -> None:
    """Make the checkout's plantkit and benchmarks/ importable (plantkit need not be installed)."""
    for path in (str(BENCHMARKS), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def print_result(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def force_compile_backend() -> str | None:
    """With $PLANTKIT_BENCH_COMPILE_BACKEND set, make every torch.compile use that backend."""
    backend = os.environ.get(COMPILE_BACKEND_ENV)
    if not backend:
        return None
    import torch

    original = torch.compile
    if getattr(original, "_bench_backend", None) == backend:
        return backend

    @functools.wraps(original)
    def compile_with_backend(*args, **kwargs):
        kwargs["backend"] = backend
        kwargs.pop("mode", None)  # inductor's modes and options mean nothing to other backends
        kwargs.pop("options", None)
        return original(*args, **kwargs)

    compile_with_backend._bench_backend = backend  # type: ignore[attr-defined]
    torch.compile = compile_with_backend  # type: ignore[assignment]
    return backend


def plantkit_compile_support() -> dict[str, bool]:
    """Where plantkit takes a torch.compile switch, read from its source (nothing imported):
    {'create_expert': compile= parameter, 'train_config': TrainConfig.compile field}."""
    import ast

    found = {"create_expert": False, "train_config": False}
    expert = ast.parse((ROOT / "plantkit/models/expert.py").read_text())
    for node in ast.walk(expert):
        if isinstance(node, ast.FunctionDef) and node.name == "create_expert":
            names = [a.arg for a in node.args.args + node.args.kwonlyargs]
            found["create_expert"] = "compile" in names
    config = ast.parse((ROOT / "plantkit/training/config.py").read_text())
    for node in ast.walk(config):
        if isinstance(node, ast.ClassDef) and node.name == "TrainConfig":
            for item in node.body:
                if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                        and item.target.id == "compile"):
                    found["train_config"] = True
    return found
