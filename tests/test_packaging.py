"""Packaging: commands/ installs as plantkit.commands, never as a top-level module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_normal_install_puts_commands_under_plantkit(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "plantkit" / "commands" / "main.py").is_file()
    assert not (target / "commands").exists()
    assert (target / "plantkit" / "data" / "plantnet300k_counts.csv").is_file()
    # The installed copy runs on its own, from a folder without the checkout on sys.path.
    result = subprocess.run(
        [sys.executable, "-c", "import plantkit.commands.main as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(target))


def test_installed_package_has_no_top_level_commands_module(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; print(u.find_spec('commands') is None);"
            "import plantkit.commands.data as d; print(d.__name__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.stdout.split() == ["True", "plantkit.commands.data"], result.stderr
