"""The plantkit command itself: help, version, exit codes, the keras backend guard."""

from __future__ import annotations

import re
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
    code = "import plantkit.backend, keras; print(keras.backend.backend())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "torch", result.stderr


def test_keras_imported_with_another_backend_is_refused():
    # Only tensorflow-free backends import here, so stand in a keras that reports another one.
    code = (
        "import sys, types; k = types.ModuleType('keras'); "
        "k.backend = types.SimpleNamespace(backend=lambda: 'tensorflow'); "
        "sys.modules['keras'] = k; import plantkit.backend"
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

    from plantkit.commands.main import cli_command

    code, out, _ = cli(*path, "--help")
    assert code == 0 and "Usage" in out
    assert "<bool>" not in out  # `--debug`, not `--debug <bool>`
    # A "[default: ...]" written in a help text is shown, not eaten as rich markup.
    command = cli_command()
    for name in path:
        command = command.commands[name]
    shown = " ".join(out.replace("│", " ").split())
    for param in command.params:
        written = re.search(r"\[default: ([^\]]+)\]", getattr(param, "help", None) or "")
        if written:
            words = " ".join(written.group(1).split()[:3])
            assert f"[default: {words}" in shown, (param.name, words)


@pytest.mark.parametrize("path", sorted(_command_paths()), ids=lambda p: " ".join(p) or "plantkit")
def test_help_examples_use_real_options(path):
    """Every example line in a command's help parses (options exist, values fit)."""
    import shlex

    from plantkit.commands.main import cli_command

    command = cli_command()
    for name in path:
        command = command.commands[name]
    lines = [line.strip() for line in (command.epilog or "").splitlines()
             if line.strip().startswith("plantkit ")]
    if path and not getattr(command, "commands", None):
        assert len(lines) >= 2, f"{' '.join(path)} --help shows no examples"
    for line in lines:
        words = shlex.split(line.split(" > ")[0])[1:]
        start = next(i for i in range(len(words)) if tuple(words[i:i + len(path)]) == path)
        leaf_args = words[start + len(path):]
        context = command.make_context(path[-1], leaf_args, resilient_parsing=False)
        assert not context.args, (line, context.args)


def test_every_command_summary_is_one_short_line():
    """The first paragraph of a command's docstring is its line in the parent's command list;
    a wrapped first paragraph is shown broken mid-sentence there."""
    from plantkit.commands.main import cli_command

    stack = [cli_command()]
    long = []
    while stack:
        command = stack.pop()
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(sub)
            first = (sub.help or "").strip().split("\n\n")[0]
            if "\n" in first or len(first) > 90:
                long.append(f"{name}: {first!r}")
    assert long == []
