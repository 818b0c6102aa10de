"""The one protocol every tab's task follows.

    request = task.check(*inputs)                  # every check of the request, once, here
    result  = task.run(request, backend, on_step, cancel)
    result.output, result.timing                   # what the tab shows; the timing dict

`check` turns the values an endpoint received into a checked, frozen request, or raises
ValueError with a sentence for the person. `run` trusts that request: it checks nothing
again. Long tasks (the image tabs) call `on_step(done, total)` after every step and stop
after the current step once `cancel` is set, raising `Cancelled`; short tasks take both
arguments and ignore them, so the UI calls every task the same way.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pipelines.core.checks import quoted

if TYPE_CHECKING:
    from typing_extensions import Self

R = TypeVar("R")

StepCallback = Callable[..., None]
"""`on_step(done, total, preview=None)`: called after each of `total` steps; `preview` is what the request
has made so far where the task shows it (the translation's text, an image tab's rough image), else None."""
CancelToken = threading.Event
"""Set it (from any thread: the Stop button, an API client's cancel) and the task stops after its current step."""


class Backend(str, Enum):
    OPENVINO = "OpenVINO"
    PYTORCH = "PyTorch"

    @classmethod
    def parse(cls, value: str | Backend) -> Backend:
        for backend in cls:
            if value == backend or str(value).strip().lower() == backend.value.lower():
                return backend
        raise ValueError(f"Unknown backend {quoted(value)}; choose one of {[b.value for b in cls]}.")


BOTH = "Both"
"""The third backend choice of every endpoint: the same request on OpenVINO, then on PyTorch."""
CHOICES = (Backend.OPENVINO.value, Backend.PYTORCH.value, BOTH)


def backends(value: str | Backend) -> tuple[Backend, ...]:
    """The backends a request runs on: one, or both (OpenVINO first) for "Both"."""
    if str(value).strip().lower() == BOTH.lower():
        return (Backend.OPENVINO, Backend.PYTORCH)
    try:
        return (Backend.parse(value),)
    except ValueError:
        raise ValueError(f"Unknown backend {quoted(value)}; choose one of {list(CHOICES)}.") from None


def both_timing(results: dict[Backend, Result], outputs: dict[str, Any] | None = None) -> dict:
    """The timing dict of a "Both" request: each backend's own dict under its name, the speed-up
    (PyTorch's latency over OpenVINO's) and the memory ratio (OpenVINO's over PyTorch's), and
    `outputs` (each backend's output, where it fits in JSON)."""
    ov, pt = results[Backend.OPENVINO].timing, results[Backend.PYTORCH].timing
    timing: dict[str, Any] = {"backend": BOTH, "task": ov.get("task"), "runs": [ov, pt]}
    timing["speedup"] = round(pt["latency_ms"] / ov["latency_ms"], 3) if ov["latency_ms"] > 0 else None
    if ov.get("memory_mb") and pt.get("memory_mb"):
        timing["memory_ratio"] = round(ov["memory_mb"] / pt["memory_mb"], 3)
    if outputs is not None:
        timing["outputs"] = outputs
    return timing


class Cancelled(Exception):
    """Raised between two steps when the request's cancel token was set (`done` 0: before the first)."""

    def __init__(self, done: int, total: int):
        super().__init__(f"Stopped after step {done} of {total}." if done else "Stopped before the first step.")
        self.done, self.total = done, total


WAIT_POLL_S = 0.05
"""How often a request waiting for a model's lock looks at its cancel token."""


@contextmanager
def holding(lock: threading.Lock, cancel: CancelToken | None, total: int = 0) -> Iterator[None]:
    """`with holding(pair.lock, cancel, steps):` takes `lock` for a request, unless the request is cancelled
    first: a cancelled request waiting behind another one leaves the queue at once (`Cancelled` before its
    first step) instead of taking the lock and running a step nobody waits for."""
    if cancel is None:
        with lock:
            yield
        return
    while not lock.acquire(timeout=WAIT_POLL_S):
        if cancel.is_set():
            raise Cancelled(0, total)
    try:
        if cancel.is_set():
            raise Cancelled(0, total)
        yield
    finally:
        lock.release()


OMITTED_WHEN_NONE = {"omitted_when_none": True}
"""A `Timing` field's metadata: the key is left out of the dict when the value is None (not asked, not had)."""


@dataclass(kw_only=True)
class Timing:
    """One request on one backend, as every endpoint returns it (`to_dict()`; a "Both" request returns
    `both_timing` of two). The keys are the API's contract; each task adds its own fields in a subclass
    next to it (`pipelines.tasks`), and `serving.backends.BackendPair.timing` fills in these."""

    backend: str
    """ "OpenVINO", "PyTorch", or "OpenVINO (remote)" when a model server ran it."""
    precision: str
    """The build that ran: "OpenVINO INT8", "PyTorch fp32", … (with " (remote)" on a model server)."""
    latency_ms: float
    """The request on its backend, in ms: the region each task's `run_here` times (its docstring says)."""
    memory_mb: float | None
    """What the model added to its process's resident memory on this backend, MB; None when unknown or remote."""
    model: str
    """The model's title."""
    model_source: str
    """Where the model came from (`core.resolved.Source`): the Hub's IR, a local folder, a stand-in, …"""
    standin: bool
    """A stand-in with random weights: its outputs mean nothing, its latency is real."""
    build: str | None
    """Why this OpenVINO build runs on this CPU (measured or the rule); None on PyTorch and on a model server."""
    remote: dict[str, Any] = field(default_factory=dict)
    """On a model server, its accounting, as keys of their own (`serving.remote.ModelServer.finish`):
    `remote_calls`, `round_trip_ms`, `server_ms` (None when the server's metrics cannot tell), maybe
    `server_ms_note`; or `remote_error` and `remote_wait_ms` when the local model answered instead."""
    task: str
    """What ran: "translate", "sentiment", "zero-shot", "text-to-image", "detect" or "generate"."""

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for each in fields(self):
            value = getattr(self, each.name)
            if each.name == "remote":
                found.update(value)
            elif value is not None or not each.metadata.get("omitted_when_none"):
                found[each.name] = value
        return found


@dataclass(frozen=True)
class Result:
    """A task's output (text, scores, an image) and the timing dict every endpoint returns (`Timing.to_dict()`)."""

    output: Any
    timing: dict


class Runner(Protocol[R]):
    """What a tab runs (every task of `pipelines.tasks`). `action` names it in messages ("Translation failed …")."""

    action: str

    def check(self, *inputs: Any) -> R: ...

    def first_use(self, request: R, backend: Backend) -> str | None:
        """A sentence when this request is the one that loads something (slower), else None."""
        ...

    def run(
        self, request: R, backend: Backend, on_step: StepCallback | None = None, cancel: CancelToken | None = None
    ) -> Result: ...


class PyTorchElsewhere(Protocol):
    """Where a task's PyTorch requests run when not in the task's own process (`serving.worker.WorkerSide`)."""

    def first_use(self, request: Any) -> str | None: ...

    def run(self, request: Any, on_step: StepCallback | None, cancel: CancelToken | None) -> Result: ...


class TwoBackends:
    """The base of every tab's task: `run` and `first_use` take a request on either backend. A task runs both
    itself (`run_here`, `first_use_here`) unless `pytorch_elsewhere` is set: then its PyTorch requests go
    there (the app's process, whose PyTorch baselines run in the worker process)."""

    pytorch_elsewhere: PyTorchElsewhere | None = None

    def run_here(
        self, request: Any, backend: Backend, on_step: StepCallback | None, cancel: CancelToken | None
    ) -> Result:
        raise NotImplementedError

    def first_use_here(self, request: Any, backend: Backend) -> str | None:
        raise NotImplementedError

    def first_use(self, request: Any, backend: Backend | str) -> str | None:
        backend = Backend.parse(backend)
        if backend is Backend.PYTORCH and self.pytorch_elsewhere is not None:
            return self.pytorch_elsewhere.first_use(request)
        return self.first_use_here(request, backend)

    def run(
        self,
        request: Any,
        backend: Backend | str = Backend.OPENVINO,
        on_step: StepCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Result:
        backend = Backend.parse(backend)
        if backend is Backend.PYTORCH and self.pytorch_elsewhere is not None:
            return self.pytorch_elsewhere.run(request, on_step, cancel)
        return self.run_here(request, backend, on_step, cancel)

    def with_pytorch_elsewhere(self, side: PyTorchElsewhere) -> Self:
        """This task, its PyTorch requests sent to `side`: a second object sharing this one's models, locks and
        caches (a shallow copy), so OpenVINO requests of either are the same requests on the same models."""
        twin = copy.copy(self)
        twin.pytorch_elsewhere = side
        return twin


class Steps:
    """A long task's step bookkeeping: calls `on_step`, then stops if `cancel` is set."""

    preview_every = 2
    """A step whose number is a multiple of this carries a preview (not the last: the image follows)."""

    def __init__(self, total: int, on_step: StepCallback | None, cancel: CancelToken | None):
        self.total, self.done = total, 0
        self._on_step, self._cancel = on_step, cancel

    def check(self) -> None:
        """Before the first step (the lock taken, the prompt not encoded yet): stop if cancelled already."""
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(self.done, self.total)

    def wants_preview(self) -> bool:
        """Whether the step about to be reported should carry a preview: someone is watching, and it is
        every `preview_every`th step but not the last."""
        upcoming = self.done + 1
        return self._on_step is not None and upcoming % self.preview_every == 0 and upcoming < self.total

    def __call__(self, *_: Any, preview: Any = None) -> None:
        """After a step (any arguments a pipeline's callback passes are ignored), with its `preview`."""
        self.done += 1
        if self._on_step is not None:
            self._on_step(self.done, self.total, preview)
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(self.done, self.total)


def ask(task: Runner, backend: Backend | str, *inputs: Any) -> Result:
    """Check `inputs`, then run them on `backend`: a task from a script or a test, as the UI calls it."""
    return task.run(task.check(*inputs), Backend.parse(backend))
