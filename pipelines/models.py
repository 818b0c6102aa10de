"""One model on two backends: OpenVINO (compiled at startup) and PyTorch (loaded on first use).

A text model takes and returns numpy arrays on both backends: `OVEncoder` (a compiled IR) or
`OVT5Greedy` on OpenVINO, `TorchEncoder` or `TorchSeq2Seq` (transformers, in the PyTorch worker)
on PyTorch, with one call signature, so the task code is written once and the backend is a swap
of the model object. Both tokenize with `TextTokenizer` from the same `tokenizer.json`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from .memory import Growth
from .protocol import Backend
from .registry import Task, torch_model_class
from .remote import REMOTE, ModelServer, attach
from .resolve import ResolvedModel
from .runtime import Runtime
from .t5_openvino import CompiledIR

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

    def timing(self, backend: Backend, latency_ms: float, **extra) -> dict:
        """The timing dict every endpoint returns: these fields, then the task's own. On the model server:
        `backend` "OpenVINO (remote)", `server_ms` and `round_trip_ms` (see `remote`); or `remote_error`
        when the local model answered instead (its latency then leaves out the time spent waiting for the
        server, `remote_wait_ms`). A run on the server has no memory or build figure: both are the server's."""
        remote = self.server.finish() if backend is Backend.OPENVINO and self.server is not None else {}
        local = not remote or "remote_error" in remote
        ran_remote = bool(remote) and "remote_error" not in remote
        latency_ms = max(0.0, latency_ms - remote.get("remote_wait_ms", 0.0))
        return {
            "backend": REMOTE if ran_remote else backend.value,
            "precision": self.label(backend) + (" (remote)" if ran_remote else ""),
            "latency_ms": round(latency_ms, 3),
            "memory_mb": None if ran_remote else self.memory_mb(backend),
            "model": self.spec.title,
            "model_source": self.resolved.source.value,
            "standin": self.resolved.is_standin,
            "build": self.build_reason if backend is Backend.OPENVINO and local and self.build_reason else None,
            **remote,
            **extra,
        }


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


def read_json(path: Path) -> dict:
    """A JSON file of a model folder; {} when it is not there."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


class TextTokenizer:
    """A model's `tokenizer.json`, run by the `tokenizers` library (Rust, no torch): the engine
    transformers' fast tokenizers run, configured as a transformers call with `truncation=True,
    max_length=max_length` (and `padding="max_length"` when `pad`) would."""

    def __init__(self, folder: Path, max_length: int, pad: bool = False):
        from tokenizers import Tokenizer

        config = read_json(Path(folder) / "special_tokens_map.json") | read_json(Path(folder) / "tokenizer_config.json")
        self._tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length, direction=config.get("truncation_side", "right"))
        self._tokenizer.no_padding()
        token = config.get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        pad_id = self._tokenizer.token_to_id(token) if token else None
        # A batch is padded to its longest text (transformers' `padding=True`); without a padding token,
        # with id 0: padded positions are masked, so what they hold does not count.
        self._batch = Tokenizer.from_str(self._tokenizer.to_str())
        side = config.get("padding_side", "right")
        self._batch.enable_padding(direction=side, pad_id=pad_id or 0, pad_token=token or "[PAD]")
        if pad:
            if pad_id is None:
                raise ValueError(f"The tokenizer in {Path(folder).name} names no padding token.")
            side = config.get("padding_side", "right")
            self._tokenizer.enable_padding(direction=side, pad_id=pad_id, pad_token=token, length=max_length)
        self.clean_up = bool(config.get("clean_up_tokenization_spaces", False))
        self.max_length = max_length

    def __call__(self, text: str) -> tuple[dict[str, np.ndarray], bool]:
        """The model inputs of `text` (batch of one) and whether it was cut to `max_length` tokens."""
        encoding = self._tokenizer.encode(text)
        return _arrays([encoding]), bool(encoding.overflowing)

    def batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The model inputs of `texts` in one batch, padded to the longest (each cut to `max_length`)."""
        return _arrays(self._batch.encode_batch(texts))

    def decode(self, ids) -> str:
        """Text of `ids`, special tokens skipped, cleaned up as the model's transformers tokenizer does."""
        text = self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
        if self.clean_up:  # transformers' `clean_up_tokenization`, for checkpoints that ask for it
            for before, after in CLEAN_UP:
                text = text.replace(before, after)
        return text


def _arrays(encodings) -> dict[str, np.ndarray]:
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


CLEAN_UP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


class OVEncoder(CompiledIR):
    """An encoder IR (`openvino_model.xml`: classification logits, or hidden states for embeddings),
    compiled with one infer request, called with numpy arrays and returning numpy arrays by output
    name (`logits`, `last_hidden_state`). Loads as `OVT5Greedy` does. The caller locks."""

    def __init__(self, folder: Path, device: str, ov_config: dict[str, str]):
        import openvino as ov

        self.folder = Path(folder)
        self.device, self.ov_config = device, ov_config
        self._core = ov.Core()
        self.model = self._core.read_model(self.folder / "openvino_model.xml")
        self._request = None

    def reshape(self, *shape: int) -> None:
        """Every input to `shape` (batch, sequence length)."""
        self.model.reshape({port.get_any_name(): list(shape) for port in self.model.inputs})

    @property
    def input_names(self) -> set[str]:
        self.compile()
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        self.compile()
        return self._outputs

    def compile(self) -> None:
        if self._request is None:
            compiled = self._core.compile_model(self.model, self.device, self.ov_config)
            self._inputs = {port.get_any_name() for port in compiled.inputs}
            self._outputs = [port.get_any_name() for port in compiled.outputs]
            self._request = compiled.create_infer_request()

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        self.compile()
        # start_async + wait releases the GIL while the model runs.
        self._request.start_async({name: arrays[name] for name in self._inputs}, share_inputs=True)
        self._request.wait()
        return {name: self._request.get_output_tensor(i).data.copy() for i, name in enumerate(self._outputs)}


class TorchEncoder:
    """A transformers encoder with `OVEncoder`'s numpy call (in the PyTorch worker)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            outputs = self.model(**{name: torch.from_numpy(value) for name, value in arrays.items()})
        return {name: value.float().numpy() for name, value in outputs.items() if isinstance(value, torch.Tensor)}


class TorchSeq2Seq:
    """A transformers seq2seq model with `OVT5Greedy`'s numpy `generate` (in the PyTorch worker)."""

    def __init__(self, model):
        self.model = model

    def generate(
        self, input_ids, attention_mask, max_new_tokens: int, min_new_tokens: int = 0, on_token=None
    ) -> np.ndarray:
        """transformers' greedy `generate`; `on_token(tokens)` after each new token, through its streamer."""
        import torch

        with torch.inference_mode():
            output = self.model.generate(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                do_sample=False,
                num_beams=1,
                streamer=None if on_token is None else token_streamer(on_token),
            )
        return output.numpy()


def token_streamer(on_token):
    """A transformers streamer calling `on_token(tokens)` with the new tokens so far after each step
    (`generate` puts the decoder start token first, then each new token). Made on first use: transformers
    is imported lazily."""
    from transformers.generation.streamers import BaseStreamer

    class TokenStreamer(BaseStreamer):
        def __init__(self):
            self.tokens: list[int] | None = None

        def put(self, value) -> None:
            if self.tokens is None:  # the decoder start token
                self.tokens = []
                return
            self.tokens.extend(int(t) for t in value.reshape(-1))
            on_token(list(self.tokens))

        def end(self) -> None:
            pass

    return TokenStreamer()


def input_limit(spec, config: dict) -> int:
    """The most tokens a text model is given: the app's limit for it, or fewer if the model takes fewer."""
    return min(spec.defaults.get("max_input_tokens", 512), config.get("max_position_embeddings", 1 << 30))


def serving_class(task: Task):
    """The class that serves an exported IR folder on OpenVINO."""
    if task is Task.TRANSLATION:
        from .t5_openvino import OVT5Greedy

        return OVT5Greedy
    return OVEncoder


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
        if spec.static_shape:  # padded to the static length, on both backends
            self.tokenizer = TextTokenizer(resolved.ir_dir, spec.static_shape[1], pad=True)
        else:  # each text at its own length, up to what the model takes
            self.tokenizer = TextTokenizer(resolved.ir_dir, input_limit(spec, self.config))

    def serve_on(self, server: ModelServer) -> None:
        """Run this model's OpenVINO inference on `server` (the repository `python -m pipelines.ovms` wrote)."""
        translation = self.spec.task is Task.TRANSLATION
        outputs = [] if translation else self.ov.output_names
        self.use_server(server, attach(server, self.spec.key, translation, self.ov, outputs))

    @staticmethod
    def _load_ov(resolved: ResolvedModel, runtime: Runtime):
        def load():
            model = serving_class(resolved.spec.task).from_pretrained(
                resolved.ir_dir,
                device=runtime.settings.device,
                ov_config=runtime.ov_config(resolved.spec.precision_hint),
                compile=False,
            )
            if resolved.spec.static_shape:
                model.reshape(*resolved.spec.static_shape)
            return model

        return load

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
