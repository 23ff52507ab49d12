"""What the CLI tests share: run `plantkit` in this process, expect a one-line refusal, and
keep torch on one thread (tiny models run fastest so; two threads spin against each other on
a busy 2-core machine). Import `one_torch_thread` into a test module to use it there."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch

from plantkit.commands import main


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cli(*args) -> tuple[int, str, str]:
    """Run `plantkit ARGS` in this process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["plantkit", *map(str, args)]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main.run()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def refused(*args) -> str:
    """The one error line of `plantkit ARGS`, which must exit with code 2."""
    code, _, err = cli(*args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def process_running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie no one reaped has exited too)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
