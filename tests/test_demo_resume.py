"""`plantkit demo` killed (SIGKILL) while training an expert continues that expert on rerun."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from plantkit.artifacts.protocol import FAULT_LOG_ENV
from plantkit.demo import DemoPlan

FIRST = DemoPlan.make(quick=True).experts[0].name


def _demo(out, **env):
    return [sys.executable, "-m", "plantkit.commands.main", "demo", "--quick", "--out", str(out),
            "--json"], {**os.environ, **env}


def _history(out):
    with open(out / "experts" / FIRST / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_demo_killed_during_an_expert_resumes_it_and_finishes(tmp_path):
    out, log = tmp_path / "demo", tmp_path / "steps.log"
    command, env = _demo(out, **{FAULT_LOG_ENV: str(log)})
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    # Kill it as soon as the first expert's first epoch is committed (its resume point is
    # the last file an epoch writes), before the second epoch can end.
    state = f"replace {out / 'experts' / FIRST / 'checkpoints' / 'state.json'}"
    deadline = time.monotonic() + 300
    while not (log.is_file() and state in log.read_text()):
        assert process.poll() is None, "the demo ended before its first epoch was committed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = _history(out)
    assert [row["epoch"] for row in killed] == ["0"]
    assert not (out / "experts" / FIRST / "predictions.h5").exists()

    command, env = _demo(out)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert "experts" in json.loads(again.stdout)["ran"]
    resumed = _history(out)
    assert [row["epoch"] for row in resumed] == ["0", "1"]
    # Epoch 0 was not trained again: its row, timings included, is the killed run's.
    assert resumed[0] == killed[0]
    assert (out / "experts" / FIRST / "predictions.h5").is_file()
    report = json.loads((out / "reports" / "report.json").read_text())
    assert FIRST in {model["name"] for model in report["models"]}
