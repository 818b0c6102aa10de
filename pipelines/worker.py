"""The PyTorch baselines in a process of their own.

The app's process serves OpenVINO. A PyTorch request goes to one worker process, started on the
first such request (spawned: a fresh interpreter, not a fork of the app). The worker builds the
task's PyTorch side there (`Recipe`: a builder named by module and function, and its arguments),
runs `task.run(request, PYTORCH, on_step, cancel)` with the same code as ever, and sends back step
progress and the `Result`, its timing measured inside the worker. So:

- PyTorch's memory is the worker's, measured there, and freed when the worker exits (after
  `idle_s` without a request, or when the memory budget needs the room);
- PyTorch's OpenMP threads spin in their own process, not on the next OpenVINO request;
- if the worker dies (out of memory, a crash) the request gets a sentence, the next PyTorch
  request starts a new worker, and OpenVINO requests are served as before.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import MemoryBudget
from .memory import rss_mb
from .protocol import Backend, Cancelled, CancelToken, Result, StepCallback, Task

logger = logging.getLogger(__name__)

POLL_S = 0.1
PROJECT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Recipe:
    """How the worker builds a task: `module.function(*args)` gives an object; `attribute` of it,
    when given, is the task (the pose tab's two tasks share one runner)."""

    module: str
    function: str
    args: tuple = ()
    attribute: str | None = None

    @property
    def key(self) -> tuple:
        return (self.module, self.function, self.args)


class WorkerStopped(ValueError):
    """The worker process ended during a request (killed, out of memory, crashed)."""


def serve(conn, threads: int) -> None:
    """The worker's loop (in the worker process): build tasks on first use and run requests, one at
    a time, until told to stop. A reader thread takes "cancel" at any time."""
    import queue

    import diffusers  # noqa: F401 - imported up front, so no baseline's memory counts the libraries
    import torch
    import transformers  # noqa: F401

    torch.set_num_threads(threads)
    cancel, requests = threading.Event(), queue.Queue()

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the app is gone: stop what runs, then exit
                message = None
            if message == "cancel":
                cancel.set()
                continue
            if message is None:
                cancel.set()
            else:
                cancel.clear()  # here, in order: a "cancel" sent right after this request still counts
            requests.put(message)
            if message is None:
                return

    threading.Thread(target=read, name="requests", daemon=True).start()
    built: dict[tuple, Any] = {}
    while (message := requests.get()) is not None:
        recipe, request, stream = message
        try:
            if recipe.key not in built:
                builder = getattr(importlib.import_module(recipe.module), recipe.function)
                built[recipe.key] = builder(*recipe.args)
            task = built[recipe.key] if recipe.attribute is None else getattr(built[recipe.key], recipe.attribute)
            on_step = (lambda done, total, preview=None: conn.send(("step", done, total, preview))) if stream else None
            result = task.run(request, Backend.PYTORCH, on_step, cancel)
            conn.send(("result", result))
        except Cancelled as exc:
            conn.send(("cancelled", exc.done, exc.total))
        except ValueError as exc:
            conn.send(("refused", str(exc)))
        except Exception as exc:
            logger.exception("a PyTorch request failed")
            conn.send(("failed", type(exc).__name__))


class TorchWorker:
    """The app's side of the worker: start on first use, one request at a time, exit when idle."""

    def __init__(self, threads: int, idle_s: float = 900.0, on_stop: Callable[[], None] = lambda: None):
        """`on_stop()` is called whenever the worker ends (idle, asked to, or died)."""
        self.threads = threads
        self.idle_s = idle_s
        self._on_stop = on_stop
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._conn = None
        self._built: set[tuple] = set()
        self._last_used = time.monotonic()
        self._watcher: threading.Thread | None = None
        self.starts = 0

    # ----------------------------------------------------------------- state

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running else None

    def has(self, recipe: Recipe) -> bool:
        """Whether the running worker has answered this recipe's task already (its baseline is loaded)."""
        return self.running and (recipe.key, recipe.attribute) in self._built

    def rss_mb(self) -> float | None:
        """The worker's resident memory, MB; None when it is not running."""
        pid = self.pid
        if pid is None:
            return None
        try:
            return rss_mb(pid)
        except Exception:  # exited between the two calls
            return None

    # ----------------------------------------------------------------- life

    def _start(self) -> None:
        parent, child = multiprocessing.Pipe()
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        # A fresh interpreter that imports only what the tasks need (not the app, not gradio).
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.worker", str(child.fileno()), str(self.threads)],
                pass_fds=(child.fileno(),),
                env=env,
                cwd=PROJECT,
            )
        except OSError as exc:
            parent.close()
            logger.exception("the PyTorch worker could not be started")
            raise WorkerStopped(
                f"The PyTorch process could not be started ({type(exc).__name__}); the server log says why. "
                "The OpenVINO backend is not affected."
            ) from exc
        finally:
            child.close()
        self._conn, self._built = parent, set()
        self.starts += 1
        logger.info("started the PyTorch worker (pid %d, %d threads)", self._process.pid, self.threads)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._exit_when_idle, name="pytorch-worker-idle", daemon=True)
            self._watcher.start()

    def stop(self, why: str = "asked to") -> None:
        """End the worker (its memory is freed); the next PyTorch request starts a new one."""
        with self._lock:
            self._stop(why)

    def _stop(self, why: str) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        self._built = set()
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            conn.send(None)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        conn.close()
        logger.info("stopped the PyTorch worker (%s)", why)
        self._on_stop()  # must not wait for a lock: it runs under this worker's

    def _exit_when_idle(self) -> None:
        while True:
            time.sleep(min(self.idle_s, 30.0) / 2)
            if not self.running or time.monotonic() - self._last_used < self.idle_s:
                continue
            if self._lock.acquire(blocking=False):
                try:
                    if self.running and time.monotonic() - self._last_used >= self.idle_s:
                        self._stop(f"idle for {self.idle_s:.0f} s")
                finally:
                    self._lock.release()

    # ----------------------------------------------------------------- requests

    def run(
        self,
        recipe: Recipe,
        request: Any,
        on_step: StepCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        """`request` on the PyTorch side of `recipe`'s task, in the worker; progress and Stop as in-process."""
        with self._lock:
            try:
                if not self.running:
                    if self._process is not None:
                        self._stop("it had exited")
                    self._start()
                self._conn.send((recipe, request, on_step is not None))
                asked_to_stop = False
                while True:
                    if cancel is not None and cancel.is_set() and not asked_to_stop:
                        self._conn.send("cancel")
                        asked_to_stop = True
                    if not self._conn.poll(POLL_S):
                        if self._process.poll() is not None:
                            raise EOFError
                        continue
                    kind, *payload = self._conn.recv()
                    if kind == "step":
                        if on_step is not None:
                            on_step(*payload)
                        continue
                    if kind == "result":
                        self._built.add((recipe.key, recipe.attribute))
                        return payload[0]
                    if kind == "cancelled":
                        raise Cancelled(*payload)
                    if kind == "refused":
                        raise ValueError(payload[0])
                    raise RuntimeError(f"the PyTorch worker failed ({payload[0]})")
            except (EOFError, BrokenPipeError, ConnectionResetError):
                code = None
                with contextlib.suppress(subprocess.TimeoutExpired, AttributeError):
                    code = self._process.wait(timeout=5)
                self._stop("it ended during a request")
                raise WorkerStopped(
                    f"The PyTorch process stopped during this request (exit code {code}"
                    f"{', out of memory?' if code in (-9, 137) else ''}); the server log says why, and the next "
                    "PyTorch request starts a new one. The OpenVINO backend is not affected."
                ) from None
            finally:
                self._last_used = time.monotonic()


WORKER_HOLDER = "the PyTorch worker"
WORKER_BASE_MB = 700.0
"""A worker's resident memory before any model: Python, torch, transformers, diffusers."""


class Split:
    """A task whose OpenVINO side runs here and whose PyTorch side runs in the worker.

    Everything else (the task's own attributes, its checks) is the task's: a tab cannot tell.
    `before(request)` runs here before a PyTorch request (the SD tab resolves its variant first).
    With a `budget`, a PyTorch request that loads a baseline first makes room for about
    `need_mb(request)` (plus the worker itself when it is not running).
    """

    def __init__(
        self,
        task: Task,
        worker: TorchWorker,
        recipe: Recipe,
        before: Callable[[Any], object] | None = None,
        budget: MemoryBudget | None = None,
        need_mb: Callable[[Any], float] = lambda request: 0.0,
    ):
        self._task, self._worker, self._recipe, self._before = task, worker, recipe, before
        self._budget, self._need_mb = budget, need_mb

    def __getattr__(self, name: str):
        return getattr(self._task, name)

    def check(self, *inputs: Any):
        return self._task.check(*inputs)

    def first_use(self, request: Any, backend: Backend) -> str | None:
        if backend is Backend.OPENVINO:
            return self._task.first_use(request, backend)
        if not self._worker.running:
            return "Starting the PyTorch process and loading the baseline (first use only); this request takes longer."
        if not self._worker.has(self._recipe):
            return "Loading the PyTorch baseline (first use only); this request takes longer."
        return None

    def run(
        self,
        request: Any,
        backend: Backend | str = Backend.OPENVINO,
        on_step: StepCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        backend = Backend.parse(backend)
        if backend is Backend.OPENVINO:
            return self._task.run(request, backend, on_step, cancel)
        if self._before is not None:
            self._before(request)
        if self._budget is not None and not self._worker.has(self._recipe):
            need = self._need_mb(request) + (0.0 if self._worker.running else WORKER_BASE_MB)
            self._budget.make_room(need, "The PyTorch baseline", keep=WORKER_HOLDER)
        try:
            return self._worker.run(self._recipe, request, on_step, cancel)
        finally:  # whatever it loaded stays until released, even when this request failed or stopped
            if self._budget is not None and self._worker.running:
                self._budget.hold(
                    WORKER_HOLDER,
                    lambda: self._worker.stop("the memory budget needs the room"),
                    lambda: self._worker.rss_mb() or 0.0,
                )


if __name__ == "__main__":  # the worker process: `python -m pipelines.worker FD THREADS`
    from multiprocessing.connection import Connection

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s pytorch-worker %(name)s: %(message)s")
    serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
