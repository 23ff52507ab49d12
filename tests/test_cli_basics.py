"""The plantkit command itself: help, version, exit codes, the keras backend guard."""

from __future__ import annotations

import subprocess
import sys

import pytest

from plantkit import __version__


def _run(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", *args],
        capture_output=True,
        text=True,
        **kwargs,
    )


def test_help_lists_command_groups():
    result = _run("--help")
    assert result.returncode == 0
    assert "data" in result.stdout
    assert "--artifacts" in result.stdout


def test_version():
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"plantkit {__version__}"


def test_unknown_command_is_usage_error():
    result = _run("nonsense")
    assert result.returncode == 2


def test_keras_backend_is_torch_after_import():
    code = "import plantkit, keras; print(keras.backend.backend())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "torch", result.stderr


def test_keras_imported_with_another_backend_is_refused():
    # Only tensorflow-free backends import here, so stand in a keras that reports another one.
    code = (
        "import sys, types; k = types.ModuleType('keras'); "
        "k.backend = types.SimpleNamespace(backend=lambda: 'tensorflow'); "
        "sys.modules['keras'] = k; import plantkit"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "keras was imported with the 'tensorflow' backend before plantkit" in result.stderr


def _command_paths():
    from plantkit.commands.main import cli_command

    stack = [((), cli_command())]
    while stack:
        path, command = stack.pop()
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(((*path, name), sub))


@pytest.mark.parametrize("path", sorted(_command_paths()), ids=lambda p: " ".join(p) or "plantkit")
def test_help_shows_flags_without_a_value(path):
    from cli_helpers import cli

    code, out, _ = cli(*path, "--help")
    assert code == 0 and "Usage" in out
    assert "<bool>" not in out  # `--debug`, not `--debug <bool>`
