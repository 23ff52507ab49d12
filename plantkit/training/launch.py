"""`plantkit train --devices N`: start N training processes on this machine.

What `torchrun --standalone --nproc_per_node N -m plantkit train ...` does, in the same
environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; plantkit.training
.distributed reads them), kept small and local so that plantkit's own rules hold: the first
process that fails ends the others and its exit status (2 for a bad input, 1 for a failed
run) is the command's, with its one-line message and no launcher traceback; a process whose
parent is killed ends too. torchrun remains the way to several machines (README).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time

from plantkit.errors import PlantkitInputError
from plantkit.parent_watch import die_with_parent

POLL_S = 0.2
SYNC_BN_NEEDS_GPUS = ("--sync-bn needs GPUs (torch's SyncBatchNorm runs on CUDA only); drop it "
                      "on CPU")
# Seconds the other processes get to stop (SIGTERM) before they are killed.
STOP_GRACE_S = 10.0


def check_devices(devices: int, *, sync_bn: bool = False) -> None:
    """Refuse a --devices that this machine cannot give (more GPUs than it has), and
    --sync-bn without GPUs, before any process starts."""
    if devices < 1:
        raise PlantkitInputError(f"--devices must be at least 1, got {devices}")
    import torch

    if torch.cuda.is_available() and devices > torch.cuda.device_count():
        raise PlantkitInputError(f"--devices {devices}: this machine has "
                                 f"{torch.cuda.device_count()} GPUs")
    cores = os.cpu_count() or 1
    if not torch.cuda.is_available() and devices > cores:
        raise PlantkitInputError(f"--devices {devices}: this machine has no GPU and {cores} "
                                 f"cores; start at most {cores} processes")
    if sync_bn and not torch.cuda.is_available():
        raise PlantkitInputError(SYNC_BN_NEEDS_GPUS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(devices: int, args: list[str]) -> int:
    """Run `python -m plantkit ARGS` in `devices` processes of one data-parallel training;
    return the exit status: rank 0's if it failed, else the first failing process's, else 0.

    Rank 0 speaks; the others' stderr is kept aside and shown only when one of them failed
    on its own (a process whose peer died fails too, with a message that would only hide
    rank 0's)."""
    port = _free_port()
    threads = max(1, (os.cpu_count() or 1) // devices)
    processes, follower_logs = [], []
    with contextlib.ExitStack() as files:
        for rank in range(devices):
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                   "WORLD_SIZE": str(devices), "LOCAL_WORLD_SIZE": str(devices),
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            # N processes share the cores: a thread pool each of the full size would thrash.
            env.setdefault("OMP_NUM_THREADS", str(threads))
            log = None if rank == 0 else files.enter_context(tempfile.TemporaryFile())
            follower_logs.append(log)
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "plantkit", *args], env=env, stderr=log,
                preexec_fn=die_with_parent if sys.platform == "linux" else None))
        try:
            code, rank = _wait(processes)
        except KeyboardInterrupt:
            return 130  # they got the Ctrl-C too (one process group); _stop ends the rest
        finally:
            _stop(processes)
        log = follower_logs[rank]
        if code and log is not None:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
        return code


def _wait(processes: list[subprocess.Popen]) -> tuple[int, int]:
    """(exit status, rank) of the process that failed first, else (0, 0) once all are done.

    Exit times are taken by one waiting thread a process, not by polling: a process whose
    peer has died fails milliseconds later, and the first failure is the one to report."""
    exits: queue.Queue[tuple[int, int]] = queue.Queue()
    for rank, process in enumerate(processes):
        threading.Thread(target=lambda r=rank, p=process: exits.put((r, p.wait())),
                         daemon=True).start()
    for _ in processes:
        while True:
            try:
                rank, code = exits.get(timeout=POLL_S)  # a timeout lets Ctrl-C through
                break
            except queue.Empty:
                continue
        if code:
            return code, rank
    return 0, 0


def _stop(processes: list[subprocess.Popen]) -> None:
    running = [p for p in processes if p.poll() is None]
    for p in running:
        p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in running:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
