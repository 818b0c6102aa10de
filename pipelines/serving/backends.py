"""One model on two backends: OpenVINO (compiled at startup) and PyTorch (loaded on first use).

`BackendPair` is the one abstraction every task runs through; `DualModel` is a text model's pair (its
parts in `pipelines.models.text`), the image tasks build theirs from their pipelines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from pipelines.core.memory import Growth
from pipelines.core.protocol import Backend, Timing
from pipelines.core.registry import Task, torch_model_class
from pipelines.core.resolved import ResolvedModel
from pipelines.models.text import TextTokenizer, TorchEncoder, TorchSeq2Seq, input_limit, read_json, serving_class
from pipelines.serving.remote import REMOTE, ModelServer, attach
from pipelines.serving.runtime import Runtime

logger = logging.getLogger(__name__)
T = TypeVar("T")
OV = TypeVar("OV")


class LazyBaseline(Generic[T]):
    """The PyTorch side of a model: loaded on first use (never at startup), once, under a lock, with the
    app's thread count, so both backends run on the same cores. `key` names what is loaded: asking
    for another key loads that instead (the SD variants share one checkpoint, so this is rare)."""

    def __init__(self, name: str, threads: int):
        self.name = name
        self._threads = threads
        self._lock = threading.Lock()
        self._value: T | None = None
        self._key: object = None
        self.memory_mb: float | None = None
        """How much this process's resident memory grew while the baseline loaded."""

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self, load: Callable[[], T], key: object = None) -> T:
        with self._lock:
            if self._value is None or self._key != key:
                import torch

                torch.set_num_threads(self._threads)
                logger.info("loading the PyTorch baseline of %s%s", self.name, f" from {key}" if key else "")
                self._value = None  # the one it replaces goes first
                with Growth() as grown:
                    self._value, self._key = load(), key
                    make_resident(self._value)
                self.memory_mb = round(grown.mb, 1)
            return self._value


class BackendPair(Generic[OV, T]):
    """One model on both backends, the one abstraction every task runs through.

    - OpenVINO: `ov`, compiled at startup.
    - PyTorch: loaded by `baseline` on first use (`load_torch`, under `torch_key`).
    - `lock`: one request at a time on this model, whichever backend (two requests on two
      cores only slow each other down). Pairs that share one set of cores may share a lock.
    - `label` and `timing`: how each backend is named, and the timing dict every endpoint returns.
    """

    def __init__(
        self,
        resolved: ResolvedModel,
        ov: OV,
        baseline: LazyBaseline[T],
        load_torch: Callable[[], T],
        *,
        ov_label: str | None = None,
        name: str | None = None,
        ov_memory: Callable[[], float | None] = lambda: None,
        torch_key: object = None,
        lock: threading.Lock | None = None,
        build_reason: str | None = None,
    ):
        self.resolved = resolved
        self.spec = resolved.spec
        self.ov = ov
        self.baseline = baseline
        self._torch_loader = load_torch
        self._torch_key = torch_key
        self.ov_label = ov_label or f"OpenVINO {self.spec.precision_label}"
        self._ov_memory = ov_memory
        self.name = name or self.spec.title
        """What the PyTorch side is called where a person reads it."""
        self.lock = lock or threading.Lock()
        self.build_reason = self.spec.build_reason if build_reason is None else build_reason
        """Why this OpenVINO build runs on this CPU (`cpu.build_for`); "" when there is nothing to say."""
        self.server: ModelServer | None = None
        self.remote: OV | None = None
        """The OpenVINO side on a model server (`remote`), with `ov` answering when the server does not."""

    def use_server(self, server: ModelServer, remote: OV) -> None:
        """Send this model's OpenVINO inference to `server`, through `remote` (the same calls as `ov`)."""
        self.server, self.remote = server, remote

    @property
    def torch_loaded(self) -> bool:
        return self.baseline.loaded

    def torch(self) -> T:
        """The PyTorch fp32 model, loaded once on first use."""
        return self.baseline.get(self._torch_loader, key=self._torch_key)

    def model(self, backend: Backend) -> OV | T:
        """The model a request on `backend` calls (outside its timed region: this may load, or read the
        model server's metrics)."""
        if backend is Backend.PYTORCH:
            return self.torch()
        if self.remote is not None:
            self.server.begin()
            return self.remote
        return self.ov

    def first_use(self, backend: Backend) -> str | None:
        if backend is Backend.PYTORCH and not self.torch_loaded:
            return f"Loading the PyTorch baseline of {self.name} (first use only); this request takes longer."
        return None

    def label(self, backend: Backend) -> str:
        return self.ov_label if backend is Backend.OPENVINO else "PyTorch fp32"

    def memory_mb(self, backend: Backend) -> float | None:
        """What this model added to its process's resident memory on `backend`; None if unknown."""
        return self._ov_memory() if backend is Backend.OPENVINO else self.baseline.memory_mb

    def timing(self, backend: Backend, latency_ms: float, record: type[Timing], **task_fields) -> dict:
        """The timing dict of a request on this model: a `record` (the task's `Timing`) of `task_fields` and the
        fields every run has. On the model server: `backend` "OpenVINO (remote)" and the server's accounting;
        or, when the local model answered instead, `remote_error`, and a latency that leaves out the time spent
        waiting for the server. A run on the server has no memory or build figure: both are the server's."""
        remote = self.server.finish() if backend is Backend.OPENVINO and self.server is not None else {}
        local = not remote or "remote_error" in remote
        ran_remote = bool(remote) and "remote_error" not in remote
        latency_ms = max(0.0, latency_ms - remote.get("remote_wait_ms", 0.0))
        return record(
            backend=REMOTE if ran_remote else backend.value,
            precision=self.label(backend) + (" (remote)" if ran_remote else ""),
            latency_ms=round(latency_ms, 3),
            memory_mb=None if ran_remote else self.memory_mb(backend),
            model=self.spec.title,
            model_source=self.resolved.source.value,
            standin=self.resolved.is_standin,
            build=self.build_reason if backend is Backend.OPENVINO and local and self.build_reason else None,
            remote=remote,
            **task_fields,
        ).to_dict()


def _modules(value, seen: set[int], depth: int = 0):
    """The torch modules in `value`: itself, a diffusers pipeline's components, or attributes a few levels down."""
    import torch

    if id(value) in seen or depth > 3:
        return
    seen.add(id(value))
    if isinstance(value, torch.nn.Module):
        yield value
        return
    children = getattr(value, "components", None)
    children = children.values() if isinstance(children, dict) else getattr(value, "__dict__", {}).values()
    for child in children:
        if isinstance(child, torch.nn.Module) or hasattr(child, "__dict__"):
            yield from _modules(child, seen, depth + 1)


def make_resident(value) -> None:
    """Read one number per memory page of every weight of `value`, so that weights mapped from their
    files (safetensors) are resident now: what a model costs shows when it loads, not on first use."""
    import itertools

    import torch

    pages: set[int] = set()
    with torch.no_grad():
        for module in _modules(value, set()):
            for tensor in itertools.chain(module.parameters(), module.buffers()):
                if tensor.numel() == 0 or tensor.data_ptr() in pages:
                    continue
                pages.add(tensor.data_ptr())
                tensor.detach().reshape(-1)[:: max(1, 4096 // tensor.element_size())].sum()


class DualModel(BackendPair):
    """A transformers model: its IR compiled now (`serving_class`), the PyTorch original on demand
    (wrapped to take the same numpy inputs), and the tokenizer and labels both share, read from the
    IR folder."""

    def __init__(self, resolved: ResolvedModel, runtime: Runtime):
        spec = resolved.spec
        ov = runtime.compile(spec.key, self._load_ov(resolved, runtime), lambda model: model.compile())
        baseline: LazyBaseline = LazyBaseline(spec.key, runtime.settings.threads)
        super().__init__(resolved, ov, baseline, self._load_torch, ov_memory=lambda: runtime.memory_mb(spec.key))
        self.config = read_json(Path(resolved.ir_dir) / "config.json")
        """The model's `config.json` (labels, special token ids), the same for both backends."""
        # Each text at its own length, up to what the model takes, on both backends.
        self.tokenizer = TextTokenizer(resolved.ir_dir, input_limit(spec, self.config))

    def serve_on(self, server: ModelServer) -> None:
        """Run this model's OpenVINO inference on `server` (the repository `python -m pipelines.scale_out` wrote)."""
        translation = self.spec.task is Task.TRANSLATION
        outputs = [] if translation else self.ov.output_names
        self.use_server(server, attach(server, self.spec.key, translation, self.ov, outputs))

    @staticmethod
    def _load_ov(resolved: ResolvedModel, runtime: Runtime):
        return lambda: serving_class(resolved.spec.task).from_pretrained(
            resolved.ir_dir,
            device=runtime.settings.device,
            ov_config=runtime.ov_config(resolved.spec.precision_hint),
            compile=False,
        )

    def _load_torch(self):
        import torch

        try:
            model = torch_model_class(self.spec.task).from_pretrained(self.resolved.torch_ref, dtype=torch.float32)
        except OSError as exc:
            logger.exception("the PyTorch baseline of %s failed to load", self.spec.key)
            raise ValueError(
                f"The PyTorch baseline of {self.spec.title} could not be loaded from "
                f"{self.resolved.baseline_label} ({type(exc).__name__}); use the OpenVINO backend, "
                "or check the server's access to that checkpoint."
            ) from exc
        model = model.eval()
        return TorchSeq2Seq(model) if self.spec.task is Task.TRANSLATION else TorchEncoder(model)
