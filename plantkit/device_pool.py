"""Run independent jobs one per GPU at once: `plantkit predict` over several experts.

Each job is a `python -m plantkit ...` command line run in its own process that sees one
GPU (CUDA_VISIBLE_DEVICES), so N experts on N GPUs predict side by side; with more jobs
than GPUs, a GPU takes the next job when its last one ends. Processes end with the one
that started them (Linux's parent-death signal), as the training launcher's do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from plantkit.parent_watch import die_with_parent

POLL_S = 0.2


@dataclass
class JobResult:
    args: list[str]
    device: int
    returncode: int
    stdout: str


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_one_per_device(jobs: Sequence[list[str]], devices: int, *,
                       on_done: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run `python -m plantkit JOB` for every job, at most one per device 0..devices-1 at a
    time; the results in the order of `jobs` (stdout captured, stderr passed through)."""
    if devices < 1:
        raise ValueError(f"devices must be at least 1, got {devices}")
    waiting = list(enumerate(jobs))
    running: dict[int, tuple[int, subprocess.Popen]] = {}  # device -> (job index, process)
    results: dict[int, JobResult] = {}
    try:
        while waiting or running:
            for device in range(devices):
                if device not in running and waiting:
                    index, args = waiting.pop(0)
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(device)}
                    running[device] = (index, subprocess.Popen(
                        [sys.executable, "-m", "plantkit", *args], env=env,
                        stdout=subprocess.PIPE, text=True,
                        preexec_fn=die_with_parent if sys.platform == "linux" else None))
            for device, (index, process) in list(running.items()):
                if process.poll() is None:
                    continue
                stdout = process.stdout.read() if process.stdout is not None else ""
                result = JobResult(list(jobs[index]), device, process.returncode, stdout)
                results[index] = result
                del running[device]
                if on_done is not None:
                    on_done(result)
            time.sleep(POLL_S)
    finally:
        for _, process in running.values():
            process.kill()
            process.wait()
    return [results[i] for i in range(len(jobs))]
