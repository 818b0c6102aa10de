"""Stable Diffusion text-to-image on OpenVINO (three variants of one fine-tune) and PyTorch.

The OpenVINO side is OpenVINO GenAI's `Text2ImagePipeline` (C++: tokenizer, text encoder,
scheduler, UNet and VAE in OpenVINO, no torch in the app's process), reshaped to a static image
size and compiled with the model cache; the PyTorch side is diffusers' `StableDiffusionPipeline`
of the checkpoint the IRs were made from, loaded on first use in the PyTorch worker. Both take the
same `DiffusionRequest` (prompt, negative prompt, steps, guidance, seed) and the same scheduler
config, and draw their initial latents from the same seed: `torch.Generator` on PyTorch, the same
numbers from `diffusion.torch_randn` (no torch) fed to GenAI through `SeededLatents` on OpenVINO.

Guidance scale <= 1: diffusers then skips classifier-free guidance and calls the UNet with batch 1,
while the static UNet was reshaped for the CFG batch of 2. Such requests are served, not refused:
OpenVINO runs guidance with the prompt as its own negative prompt, so both halves of the batch are
the same and `uncond + g * (cond - uncond)` is the unguided prediction for any g. That request costs
the compute of a guided one on OpenVINO.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipelines.core.checks import quoted
from pipelines.core.diffusion import (
    CLIP_MAX_TOKENS,
    DEFAULT_GUIDANCE,
    DiffusionRequest,
    DiffusionTiming,
    StepTimer,
    latent_preview,
    make_scheduler,
    native_size,
    torch_generator,
    torch_randn,
)
from pipelines.core.protocol import Backend, Cancelled, CancelToken, Result, StepCallback, Steps, TwoBackends, holding
from pipelines.core.registry import ModelSpec
from pipelines.core.resolved import ResolvedModel
from pipelines.models.text import TextTokenizer
from pipelines.serving.backends import BackendPair, LazyBaseline
from pipelines.serving.budget import MemoryBudget, weights_mb
from pipelines.serving.runtime import Runtime
from pipelines.sources.resolve import resolve

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SDRequest:
    """A checked request: the image's description and the OpenVINO variant to run it on."""

    diffusion: DiffusionRequest
    variant: str


def image_size(resolved: ResolvedModel) -> tuple[int, int]:
    """The static shape: the registry's (512x512) for real models; a stand-in's own size
    (64x64 for the tiny test stand-in) otherwise."""
    if resolved.is_standin or not resolved.spec.static_shape:
        return native_size(resolved.ir_dir)
    return tuple(resolved.spec.static_shape[-2:])


def load_torch_sd(resolved: ResolvedModel):
    """diffusers' PyTorch fp32 pipeline of the checkpoint the IRs were made from."""
    import torch
    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            resolved.torch_ref,
            torch_dtype=torch.float32,
            safety_checker=None,
            requires_safety_checker=False,
        )
    except OSError as exc:
        logger.exception("the PyTorch baseline failed to load from %s", resolved.torch_ref)
        raise ValueError(
            f"The PyTorch baseline could not be loaded from {resolved.baseline_label} "
            f"({type(exc).__name__}); use the OpenVINO backend, or check the server's access to that checkpoint."
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


@dataclass(kw_only=True)
class ImageTiming(DiffusionTiming):
    """The SD tab's timing dict: `DiffusionTiming`'s fields and these."""

    variant: str
    """The OpenVINO variant asked for (its PyTorch baseline is the one checkpoint they share)."""
    guidance: str
    """ "classifier-free", or "off (guidance scale <= 1)": the UNet then runs once a step, not twice."""
    size: str
    """The image's size, "WIDTHxHEIGHT"."""
    pytorch_from: str
    """Where the PyTorch baseline comes from (a Hub repo id, or a neutral label)."""


class SDVariant(BackendPair):
    """One OpenVINO variant (compiled pipeline at its static size) and the PyTorch pipeline it was
    made from. The variants share one baseline (one checkpoint) and one lock (one set of cores)."""

    def __init__(self, resolved: ResolvedModel, runtime: Runtime, baseline: LazyBaseline, lock: threading.Lock):
        height, width = image_size(resolved)

        def load():
            import openvino_genai

            pipe = openvino_genai.Text2ImagePipeline(resolved.ir_dir)
            # One image, with classifier-free guidance (UNet batch 2): see the module's docstring.
            pipe.reshape(1, height, width, DEFAULT_GUIDANCE)
            return pipe

        settings = runtime.settings
        pipe = runtime.compile(
            resolved.spec.key,
            load,
            lambda pipe: pipe.compile(settings.device, **runtime.ov_config(resolved.spec.precision_hint)),
        )
        # What both backends share, read from the IR folder (the files the OpenVINO pipeline reads too).
        folder = Path(resolved.ir_dir)
        self.tokenizer = TextTokenizer(folder / "tokenizer", CLIP_MAX_TOKENS)
        self.scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        self.variant = resolved.spec.defaults.get("variant", resolved.spec.precision_label)
        super().__init__(
            resolved,
            pipe,
            baseline,
            lambda: load_torch_sd(resolved),
            ov_label=f"OpenVINO {self.variant}",
            name="Stable Diffusion",
            ov_memory=lambda: runtime.memory_mb(resolved.spec.key),
            torch_key=resolved.torch_ref,
            lock=lock,
        )
        self.height, self.width = height, width

    @property
    def pipe(self):
        """OpenVINO GenAI's compiled `Text2ImagePipeline`."""
        return self.ov

    def truncated(self, request: DiffusionRequest) -> bool:
        """Whether CLIP cuts the prompt or the negative prompt (both backends cut to 77 tokens)."""
        texts = (request.prompt, request.negative_prompt) if request.negative_prompt else (request.prompt,)
        return any(self.tokenizer(text)[1] for text in texts)


class SDRunner(TwoBackends):
    """The SD-ToMe-INT8 tab's task (see `protocol`): text-to-image with a choice of OpenVINO
    variants and the PyTorch baseline.

    The default variant is compiled when the runner is made (startup); the others on first
    use (`load`). The PyTorch pipeline loads on first use.
    """

    action = "Image generation"

    def __init__(
        self,
        specs: tuple[ModelSpec, ...],
        runtime: Runtime,
        default: str | None = None,
        resolver=resolve,
        budget: MemoryBudget | None = None,
    ):
        """`budget`: the variants other than the default are optional; loading one makes room first."""
        if not specs:
            raise ValueError("SDRunner needs at least one model spec.")
        self.specs = {s.defaults.get("variant", s.key): s for s in specs}
        self.default = default or next(iter(self.specs))
        if self.default not in self.specs:
            raise ValueError(f"Unknown default variant {self.default!r}; choose one of {list(self.specs)}.")
        self.runtime = runtime
        self.settings = runtime.settings
        self._resolver = resolver
        self.budget = budget
        self.variants: dict[str, SDVariant] = {}
        self._resolved: dict[str, ResolvedModel] = {}
        self.failures: dict[str, str] = {}
        self.lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.baseline: LazyBaseline = LazyBaseline("Stable Diffusion", self.settings.threads)
        self.load(self.default)

    @property
    def variant_names(self) -> list[str]:
        return list(self.specs)

    def is_loaded(self, variant: str) -> bool:
        return variant in self.variants

    @property
    def default_variant(self) -> SDVariant:
        return self.variants[self.default]

    def check_variant(self, variant: object) -> str:
        if not isinstance(variant, str) or variant not in self.specs:
            raise ValueError(f"Unknown variant {quoted(variant)}; choose one of {self.variant_names}.")
        return variant

    def load(self, variant: str) -> SDVariant:
        """Resolve and compile `variant` once; ValueError (with the reason) when it cannot load."""
        return self._compiled(self.check_variant(variant))

    def _compiled(self, variant: str) -> SDVariant:
        if (loaded := self.variants.get(variant)) is not None:  # no waiting for another variant's compile
            return loaded
        with self._load_lock:
            if variant in self.variants:
                return self.variants[variant]
            spec = self.specs[variant]
            logger.info("loading Stable Diffusion variant %s (%s)", variant, spec.key)
            resolved = self._resolve(variant)
            admitted = contextlib.nullcontext()
            if self._optional(variant):  # about the IR read, and the plugin's copy of the weights
                need = 1.5 * (weights_mb(resolved.ir_dir) or 0.0)
                admitted = self.budget.make_room(
                    need, f"The {variant} variant", instead=f"Use the {self.default} variant."
                )
            with admitted:  # reserved until the compile ends
                try:
                    self.variants[variant] = SDVariant(resolved, self.runtime, self.baseline, self.lock)
                except Exception as exc:
                    raise self._failed(variant, exc) from exc
            self.failures.pop(variant, None)
            self._hold(variant)
            return self.variants[variant]

    def resolve_variant(self, variant: str) -> ResolvedModel:
        """`variant`'s folder, built first when it must be, and not compiled: what a PyTorch request in the
        worker process needs here (the worker then finds it built, and this process compiles nothing).
        Resolved once for all such requests."""
        variant = self.check_variant(variant)
        if (loaded := self.variants.get(variant)) is not None:
            return loaded.resolved
        if (found := self._resolved.get(variant)) is not None:
            return found
        with self._load_lock:
            return self._resolved.get(variant) or self._resolve(variant)

    def _resolve(self, variant: str) -> ResolvedModel:
        """`variant` resolved now (a compile always resolves again: the folder may have changed); the caller
        holds `_load_lock`."""
        try:
            found = self._resolved[variant] = self._resolver(self.specs[variant], self.settings)
        except Exception as exc:
            raise self._failed(variant, exc) from exc
        return found

    def _optional(self, variant: str) -> bool:
        """Whether the budget may drop `variant` (every one but the default, when there is a budget)."""
        return self.budget is not None and variant != self.default

    def _hold(self, variant: str) -> None:
        """Mark an optional `variant` used now: the budget drops the least recently used first (a dropped
        variant compiles again when next asked for)."""
        loaded = self.variants.get(variant)
        if not self._optional(variant) or loaded is None:  # not optional, or released in the meantime
            return
        size = lambda: self.runtime.memory_mb(loaded.spec.key) or 0.0
        self.budget.hold(f"the {variant} SD variant", lambda: self.variants.pop(variant, None), size)

    def _failed(self, variant: str, exc: Exception) -> ValueError:
        logger.error("variant %s failed to load", variant, exc_info=exc)
        self.failures[variant] = f"{type(exc).__name__}: {exc}"  # for the server, not the page
        return ValueError(
            f"The {variant} variant could not be loaded ({type(exc).__name__}). "
            "Pick another variant; the server log has the details."
        )

    # ----------------------------------------------------------------- the task

    def check(
        self,
        prompt: str,
        negative_prompt: str | None,
        steps: object,
        guidance_scale: object,
        seed: object,
        variant: object,
        random_seed: object = False,
    ) -> SDRequest:
        """The endpoint's values as a request with a concrete seed (a random one when `random_seed`
        or the seed is None), or ValueError quoting the bad value."""
        seed = None if random_seed else seed
        diffusion = DiffusionRequest(prompt, negative_prompt, steps, guidance_scale, seed).checked()
        return SDRequest(diffusion, self.check_variant(variant))

    def first_use_here(self, request: SDRequest, backend: Backend) -> str | None:
        compiling = not self.is_loaded(request.variant)
        loading = backend is Backend.PYTORCH and not self.baseline.loaded
        if compiling and loading:
            return (
                f"Compiling the {request.variant} variant and loading the PyTorch baseline of Stable Diffusion "
                "(first use only); this request takes longer."
            )
        if compiling:
            return f"Compiling the {request.variant} variant (first use only); this request takes longer."
        return self.variants[request.variant].first_use(backend)

    def run_here(
        self, request: SDRequest, backend: Backend, on_step: StepCallback | None, cancel: CancelToken | None
    ) -> Result:
        """One image for `request` on `backend`; stops after the current step once `cancel` is set."""
        asked = request.diffusion
        # 1. The OpenVINO variant (compiled on first selection) and, if asked, the PyTorch pipeline
        steps = Steps(asked.steps, on_step, cancel)
        steps.check()  # a request stopped while it waited compiles and loads nothing
        variant = self._compiled(request.variant)
        self._hold(request.variant)
        pipe = variant.model(backend)
        generate = _generate_openvino if backend is Backend.OPENVINO else _generate_pytorch
        with holding(variant.lock, cancel, asked.steps):
            # 2. Denoise and decode, timed end to end
            timer = StepTimer()
            start = timer.started = time.perf_counter()
            image = generate(pipe, variant, asked, timer, steps)
            latency_ms = (time.perf_counter() - start) * 1000
        timing = variant.timing(
            backend,
            latency_ms,
            ImageTiming,
            variant=variant.variant,
            step_ms=round(timer.step_ms, 1),
            steps=asked.steps,
            seed=asked.seed,
            guidance_scale=asked.guidance_scale,
            guidance="classifier-free" if asked.uses_guidance else "off (guidance scale <= 1)",
            size=f"{variant.width}x{variant.height}",
            scheduler=variant.scheduler_config["_class_name"],
            truncated=variant.truncated(asked),
            pytorch_from=variant.resolved.baseline_label,
            task="text-to-image",
        )
        return Result(image, timing)


@cache
def _latents_class():
    """`SeededLatents(seed)`: an OpenVINO GenAI generator whose initial latents are `torch_randn(seed)`."""
    import openvino as ov
    import openvino_genai

    class SeededLatents(openvino_genai.Generator):
        def __init__(self, seed: int):
            super().__init__()
            self._seed = seed

        def next(self) -> float:
            raise ValueError("SeededLatents gives whole latent tensors only (randn_tensor).")

        def randn_tensor(self, shape):
            return ov.Tensor(torch_randn(self._seed, tuple(shape)))

    return SeededLatents


def _generate_openvino(pipe, variant: SDVariant, asked: DiffusionRequest, timer: StepTimer, steps: Steps):
    """One image on OpenVINO GenAI; its step callback returns True to stop (Stop pressed)."""
    from PIL import Image

    stopped: list[Cancelled] = []

    def step_end(step: int, num_steps: int, latent) -> bool:
        timer.step()
        try:
            steps(preview=latent_preview(latent.data) if steps.wants_preview() else None)
        except Cancelled as cancelled:
            stopped.append(cancelled)
        return bool(stopped)

    # Guidance <= 1: the prompt as its own negative prompt (see the module's docstring).
    negative = asked.negative_prompt if asked.uses_guidance else asked.prompt
    try:
        images = pipe.generate(
            asked.prompt,
            negative_prompt=negative,
            num_inference_steps=asked.steps,
            guidance_scale=asked.guidance_scale if asked.uses_guidance else DEFAULT_GUIDANCE,
            height=variant.height,
            width=variant.width,
            generator=_latents_class()(asked.seed),
            callback=step_end,
        )
    except RuntimeError as exc:  # its tokenizer (openvino-tokenizers) throws on text it has no token for
        if "Tokenizer" not in str(exc):
            raise
        logger.error("the OpenVINO tokenizer refused a prompt: %s", exc)
        raise ValueError(
            "The prompt has a character this model's OpenVINO tokenizer cannot read; remove unusual symbols "
            "or emoji and try again."
        ) from None
    if stopped:
        raise stopped[0]
    return Image.fromarray(images.data[0])


def _generate_pytorch(pipe, variant: SDVariant, asked: DiffusionRequest, timer: StepTimer, steps: Steps):
    """One image on diffusers, with a fresh scheduler of the IR's config."""
    import torch

    def step_end(p, step, timestep, kwargs):
        timer.step()
        steps(preview=latent_preview(kwargs["latents"].numpy()) if steps.wants_preview() else None)
        return kwargs

    with torch.inference_mode():
        pipe.scheduler = make_scheduler(variant.scheduler_config["_class_name"], variant.scheduler_config)
        output = pipe(
            prompt=asked.prompt,
            negative_prompt=asked.negative_prompt or None,
            num_inference_steps=asked.steps,
            guidance_scale=asked.guidance_scale,
            height=variant.height,
            width=variant.width,
            generator=torch_generator(asked.seed),
            callback_on_step_end=step_end,
            output_type="pil",
        )
    return output.images[0]
