"""The PyTorch baselines in a process of their own.

The app's process serves OpenVINO. A PyTorch request goes to one worker process, started on the
first such request (spawned: a fresh interpreter, not a fork of the app). The worker builds the
task's PyTorch side there (`Recipe`: a builder function the app passes in, pickled by reference, and its
arguments), runs `task.run(request, PYTORCH, on_step, cancel)` with the same code as ever, and sends back step
progress and the `Result`, its timing measured inside the worker. A task's side in the app is `WorkerSide`,
set as the task's `pytorch_elsewhere` (`protocol.TwoBackends`). So:

- PyTorch's memory is the worker's, measured there, and freed when the worker exits (after
  `idle_s` without a request, or when the memory budget needs the room);
- PyTorch's OpenMP threads spin in their own process, not on the next OpenVINO request;
- if the worker dies (out of memory, a crash) the request gets a sentence, the next PyTorch
  request starts a new worker, and OpenVINO requests are served as before.
"""

from __future__ import annotations

import contextlib
import itertools
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

from pipelines.core.memory import rss_mb
from pipelines.core.protocol import Backend, Cancelled, CancelToken, Result, StepCallback
from pipelines.serving.budget import MemoryBudget

logger = logging.getLogger(__name__)

POLL_S = 0.1
PROJECT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Recipe:
    """How the worker builds a task: `build(*args)` gives an object; `attribute` of it, when given, is the
    task (the pose tab's two tasks share one runner). `build` is a module-level function (the composition
    root's, `pipelines.startup`): it travels to the worker by reference, as pickle sends every function."""

    build: Callable[..., Any]
    args: tuple = ()
    attribute: str | None = None

    @property
    def name(self) -> str:
        return f"{self.build.__module__}.{self.build.__qualname__}"

    @property
    def key(self) -> tuple:
        return (self.name, self.args)


KILL_GRACE_S = 2.0
"""What a request waiting behind a silent one allows on top of the bound: the silent one's kill."""
HEARTBEAT_S = 1.0
"""While the worker imports its libraries, or a request has not reached its first step (building its task,
loading its baseline: seconds to minutes), it says so this often. A step, or what follows the last one,
says nothing until it is done: a worker silent for longer than the bound is hung."""


def serve(conn, threads: int) -> None:
    """The worker's loop (in the worker process): build tasks on first use and run requests, one at
    a time, until told to stop. Every message carries its request's id, both ways: a reader thread takes
    ("cancel", id) at any time and sets the cancel token only if that request is the one running, and the
    app drops any answer whose id is not the request it waits for."""
    import queue

    sending = threading.Lock()

    def send(*message) -> None:
        with sending:
            conn.send(message)

    def beat(rid, done: threading.Event) -> None:
        """("loading") every `HEARTBEAT_S` until `done`: the worker is busy, not hung."""
        while not done.wait(HEARTBEAT_S):
            send(rid, "loading")

    imported = threading.Event()  # the imports take seconds: the first request's wait hears from them
    threading.Thread(target=beat, args=(None, imported), name="heartbeat", daemon=True).start()
    import diffusers  # noqa: F401 - imported up front, so no baseline's memory counts the libraries
    import torch
    import transformers  # noqa: F401

    imported.set()
    torch.set_num_threads(threads)
    cancel, requests = threading.Event(), queue.Queue()
    current = {"id": None}

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the app is gone: stop what runs, then exit
                message = None
            if message is None:
                cancel.set()
                requests.put(None)
                return
            if message[0] == "cancel":
                if message[1] == current["id"]:
                    cancel.set()
                continue
            current["id"] = message[1]  # here, in order: a cancel sent right after this request still counts
            cancel.clear()
            requests.put(message)

    threading.Thread(target=read, name="requests", daemon=True).start()
    built: dict[tuple, Any] = {}
    while (message := requests.get()) is not None:
        _, rid, recipe, request, stream = message
        # Until its first step, a request may be building its task or loading its baseline: it says so.
        loading = threading.Event()
        threading.Thread(target=beat, args=(rid, loading), name="heartbeat", daemon=True).start()

        def on_step(done, total, preview=None, rid=rid, loading=loading) -> None:
            loading.set()
            send(rid, "step", done, total, preview)

        try:
            if cancel.is_set():
                raise Cancelled(0, 0)
            if recipe.key not in built:
                built[recipe.key] = recipe.build(*recipe.args)
            task = built[recipe.key] if recipe.attribute is None else getattr(built[recipe.key], recipe.attribute)
            result = task.run(request, Backend.PYTORCH, on_step if stream else None, cancel)
            loading.set()
            send(rid, "result", result)
        except Cancelled as exc:
            send(rid, "cancelled", exc.done, exc.total)
        except ValueError as exc:
            send(rid, "refused", str(exc))
        except Exception as exc:
            logger.exception("a PyTorch request failed")
            send(rid, "failed", type(exc).__name__)
        finally:
            loading.set()


class WorkerStopped(ValueError):
    """The worker process ended during a request (killed, out of memory, crashed, or silent too long)."""


class TorchWorker:
    """The app's side of the worker: start on first use, one request at a time, exit when idle.

    Nothing here waits on a worker that does not answer: a request whose worker sends nothing (no step,
    no result, no sign of loading) for `timeout_s` ends with a sentence and the worker is killed (the next
    PyTorch request starts a new one); a request that waits for the worker behind another one gives up
    after `timeout_s` too, or at once when cancelled. `stop()` (the memory budget, the idle timer) and the
    state the System tab reads take no request's lock."""

    def __init__(
        self,
        threads: int,
        idle_s: float = 900.0,
        on_stop: Callable[[], None] = lambda: None,
        timeout_s: float = 120.0,
    ):
        """`on_stop()` is called whenever the worker ends (idle, asked to, or died)."""
        self.threads = threads
        self.idle_s = idle_s
        self.timeout_s = timeout_s
        self._on_stop = on_stop
        self._lock = threading.Lock()
        """Held by the request the worker runs."""
        self._state = threading.Lock()
        """Held only while the process and its pipe are swapped (start, stop): never while waiting for it."""
        self._process: subprocess.Popen | None = None
        self._conn = None
        self._built: set[tuple] = set()
        self._last_used = time.monotonic()
        self._watcher: threading.Thread | None = None
        self._ids = itertools.count(1)
        self.starts = 0

    # ----------------------------------------------------------------- state

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

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
            process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.serving.worker", str(child.fileno()), str(self.threads)],
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
        with self._state:
            self._process, self._conn, self._built = process, parent, set()
        self.starts += 1
        logger.info("started the PyTorch worker (pid %d, %d threads)", process.pid, self.threads)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._exit_when_idle, name="pytorch-worker-idle", daemon=True)
            self._watcher.start()

    def stop(self, why: str = "asked to", kill: bool = False) -> None:
        """End the worker (its memory is freed); the next PyTorch request starts a new one. Never waits for
        the request it may be running: that request ends with `WorkerStopped`."""
        # A request running: the worker reads nothing before its step ends, so it is not asked, it is killed.
        self._stop(why, graceful=not kill and not self._lock.locked())

    def _stop(self, why: str, graceful: bool) -> None:
        with self._state:
            process, conn = self._process, self._conn
            self._process = self._conn = None
            self._built = set()
        if process is None:
            return
        if graceful:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        with contextlib.suppress(OSError):
            conn.close()
        logger.info("stopped the PyTorch worker (%s)", why)
        self._on_stop()  # must not wait for a lock a request may hold

    def _exit_when_idle(self) -> None:
        while True:
            time.sleep(min(self.idle_s, 30.0) / 2)
            if not self.running or time.monotonic() - self._last_used < self.idle_s:
                continue
            if self._lock.acquire(blocking=False):  # a request running: not idle
                try:
                    if self.running and time.monotonic() - self._last_used >= self.idle_s:
                        self._stop(f"idle for {self.idle_s:.0f} s", graceful=True)
                finally:
                    self._lock.release()

    # ----------------------------------------------------------------- requests

    def _take(self, cancel: CancelToken | None, timeout_s: float) -> None:
        """The worker for one request: waits for the one before it at most `timeout_s` (and `KILL_GRACE_S`, in
        which a silent one before it is killed), and not at all once `cancel` is set."""
        deadline = time.monotonic() + timeout_s + KILL_GRACE_S
        while not self._lock.acquire(timeout=POLL_S):
            if cancel is not None and cancel.is_set():
                raise Cancelled(0, 0)
            if time.monotonic() > deadline:
                raise ValueError(
                    f"The PyTorch process is busy with another visitor's request and has been for over "
                    f"{timeout_s:.0f} s; try again in a minute. The OpenVINO backend is not affected."
                )

    def run(
        self,
        recipe: Recipe,
        request: Any,
        on_step: StepCallback | None = None,
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> Result:
        """`request` on the PyTorch side of `recipe`'s task, in the worker; progress and Stop as in-process.
        `timeout_s`: this request's bound, when shorter than the worker's (a text request's steps take ms)."""
        bound = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        self._take(cancel, bound)
        try:
            return self._run(recipe, request, on_step, cancel, bound)
        finally:
            self._last_used = time.monotonic()
            self._lock.release()

    def _run(
        self, recipe: Recipe, request: Any, on_step: StepCallback | None, cancel: CancelToken | None, bound: float
    ) -> Result:
        if not self.running:
            if self._process is not None:
                self.stop("it had exited")
            self._start()
        process, conn, rid = self._process, self._conn, next(self._ids)
        try:
            conn.send(("run", rid, recipe, request, on_step is not None))
            heard, asked_to_stop = time.monotonic(), False
            while True:
                if cancel is not None and cancel.is_set() and not asked_to_stop:
                    conn.send(("cancel", rid))
                    asked_to_stop = True
                if not conn.poll(POLL_S):
                    if process.poll() is not None:
                        raise EOFError
                    if time.monotonic() - heard > bound:
                        return self._hung(recipe, bound)
                    continue
                answered, kind, *payload = conn.recv()
                heard = time.monotonic()
                if kind == "loading":  # importing its libraries, or building this request's task
                    continue
                if answered != rid:  # an answer to a request this side no longer waits for
                    logger.warning("dropped a PyTorch worker message for request %s (waiting for %s)", answered, rid)
                    continue
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
        except (EOFError, OSError):  # died, or stopped by the budget or an operator in the meantime
            code = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=5)
            if self._process is process:
                self.stop("it ended during a request")
            raise WorkerStopped(
                f"The PyTorch process stopped during this request (exit code {code}"
                f"{', out of memory?' if code in (-9, 137) else ''}); the server log says why, and the next "
                "PyTorch request starts a new one. The OpenVINO backend is not affected."
            ) from None

    def _hung(self, recipe: Recipe, bound: float) -> Result:
        logger.error("the PyTorch worker sent nothing for %.0f s (%s): killing it", bound, recipe.name)
        self.stop(f"silent for over {bound:.0f} s", kill=True)
        raise WorkerStopped(
            f"The PyTorch process did not answer for {bound:.0f} s, so it was stopped; the next PyTorch "
            "request starts a new one. The OpenVINO backend is not affected."
        )


WORKER_HOLDER = "the PyTorch worker"
WORKER_BASE_MB = 700.0
"""A worker's resident memory before any model: Python, torch, transformers, diffusers."""


class WorkerSide:
    """A task's PyTorch side in the worker, as the app's process sees it: the task's `pytorch_elsewhere`.

    `before(request)` runs here before a PyTorch request (the SD tab resolves its variant first, without
    compiling it). With a `budget`, a PyTorch request that loads a baseline first makes room for about
    `need_mb(request)` (plus the worker itself when it is not running). `timeout_s`: the task's own bound on
    the worker's silence, when shorter than the worker's (a text task's steps take milliseconds).
    """

    def __init__(
        self,
        worker: TorchWorker,
        recipe: Recipe,
        before: Callable[[Any], object] | None = None,
        budget: MemoryBudget | None = None,
        need_mb: Callable[[Any], float] = lambda request: 0.0,
        timeout_s: float | None = None,
    ):
        self._worker, self._recipe, self._before = worker, recipe, before
        self._budget, self._need_mb, self._timeout_s = budget, need_mb, timeout_s

    def first_use(self, request: Any) -> str | None:
        if not self._worker.running:
            return "Starting the PyTorch process and loading the baseline (first use only); this request takes longer."
        if not self._worker.has(self._recipe):
            return "Loading the PyTorch baseline (first use only); this request takes longer."
        return None

    def run(self, request: Any, on_step: StepCallback | None, cancel: CancelToken | None) -> Result:
        if self._before is not None:
            self._before(request)
        admitted = contextlib.nullcontext()
        if self._budget is not None and not self._worker.has(self._recipe):
            need = self._need_mb(request) + (0.0 if self._worker.running else WORKER_BASE_MB)
            admitted = self._budget.make_room(need, "The PyTorch baseline", keep=WORKER_HOLDER)
        try:
            with admitted:  # reserved until this request ends: by then what it loaded is in the worker's RSS
                return self._worker.run(self._recipe, request, on_step, cancel, self._timeout_s)
        finally:  # whatever it loaded stays until released, even when this request failed or stopped
            if self._budget is not None and self._worker.running:
                self._budget.hold(
                    WORKER_HOLDER,
                    lambda: self._worker.stop("the memory budget needs the room"),
                    lambda: self._worker.rss_mb() or 0.0,
                )


if __name__ == "__main__":  # the worker process: `python -m pipelines.serving.worker FD THREADS`
    from multiprocessing.connection import Connection

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s pytorch-worker %(name)s: %(message)s")
    serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
