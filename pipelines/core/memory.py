"""Resident memory, per process: what a model added when it loaded, and what the machine allows.

A model's memory is the growth of its process's resident set (RSS) while it loaded and
compiled, measured in the process that holds it: the OpenVINO models in the app's process,
the PyTorch baselines in the worker's (which imports its libraries before any model). It is
an estimate: loads run one at a time in each process, but other requests of the same process
may allocate meanwhile, and memory freed earlier may be reused.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path

MB = 2**20


def return_freed_memory() -> None:
    """Ask glibc to hand pages already freed back to the system, so resident memory really drops (a no-op
    elsewhere). Freed memory otherwise stays in the heaps of the threads that used it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), MB."""
    import psutil

    return psutil.Process(pid or os.getpid()).memory_info().rss / MB


def memory_limit_mb() -> float:
    """What this process may use: the container's limit (cgroup v2 or v1) when it has one, else the machine's RAM."""
    import psutil

    total = psutil.virtual_memory().total / MB
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) / MB < total:
            return int(text) / MB
    return total


class Growth:
    """`with Growth() as g: load()` -> `g.mb`, how much this process's resident memory grew."""

    def __enter__(self) -> Growth:
        self.mb = 0.0
        self._before = rss_mb()
        return self

    def __exit__(self, *exc) -> None:
        self.mb = max(0.0, rss_mb() - self._before)
