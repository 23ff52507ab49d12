"""Unexpected failures: exit 1 with one line, and the traceback only with --debug."""

from __future__ import annotations

import subprocess
import sys

# A command whose library call fails in a way plantkit does not expect (a bug, not a bad
# input): the EDA summary raises a RuntimeError.
BROKEN = """
import sys
import plantkit.data.eda as eda
def summarize(*args, **kwargs):
    raise RuntimeError("boom in the analysis")
eda.summarize = summarize
from plantkit.commands.main import run
sys.argv = ["plantkit", *sys.argv[1:]]
run()
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BROKEN, *args], capture_output=True, text=True,
                          timeout=120)


def test_an_unexpected_error_is_exit_1_in_one_line_naming_it_and_debug():
    result = _run("data", "inspect", "--profile", "plantnet300k")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["unexpected error: RuntimeError: boom in the analysis (rerun with --debug)"]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_debug_shows_the_traceback_of_an_unexpected_error():
    result = _run("--debug", "data", "inspect", "--profile", "plantnet300k")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert 'in summarize\nRuntimeError: boom in the analysis\n' in result.stderr
    # The last line says what failed; no "rerun with --debug" once it was given.
    assert result.stderr.strip().splitlines()[-1] == (
        "unexpected error: RuntimeError: boom in the analysis")


def test_debug_does_not_turn_a_bad_input_into_a_traceback():
    result = _run("--debug", "data", "inspect", "--profile", "nope")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
