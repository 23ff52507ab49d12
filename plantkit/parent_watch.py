"""Pool processes that exit once the process that started them is gone: a parent killed
with SIGKILL cannot stop its pool, whose processes would otherwise wait for work forever.
Pass `exit_with` as a pool's initializer with `initargs=(os.getpid(),)`; it needs a
"spawn" pool (a fork server's processes are the server's children, not the caller's).
Processes started with subprocess take `die_with_parent` as their preexec_fn instead."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

# How often a pool process looks whether its parent still runs.
PARENT_CHECK_S = 1.0


def exit_with(parent: int) -> None:
    """In each pool process: exit once `parent` is gone."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:  # re-parented: the parent died
                os._exit(1)

    threading.Thread(target=watch, name="plantkit-parent-watch", daemon=True).start()


def die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """subprocess.Popen's preexec_fn (Linux): SIGKILL this process when its parent dies,
    even by kill -9 (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
