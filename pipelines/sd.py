"""Stable Diffusion text-to-image on OpenVINO (three variants of one fine-tune) and PyTorch.

The OpenVINO side is optimum-intel's `OVStableDiffusionPipeline`, reshaped to a static
image size and compiled with the model cache; the PyTorch side is diffusers'
`StableDiffusionPipeline` of the checkpoint the IRs were made from, loaded on first
use. Both take the same `DiffusionRequest` (prompt, negative prompt, steps, guidance,
seed) and the same scheduler class and config, and draw their initial latents from
the same seeded CPU generator.

Guidance scale <= 1: diffusers then skips classifier-free guidance and calls the UNet
with batch 1, while the static UNet was reshaped for the CFG batch of 2. Such requests
are served, not refused: the batch is padded to 2 for the UNet call and the extra half
is dropped (`_serve_batch_one`), so the result equals the dynamic pipeline's; that
request costs the compute of a guided one on OpenVINO.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .diffusion import (
    DiffusionRequest,
    GenerationCancelled,
    StepTimer,
    make_scheduler,
    prompt_is_truncated,
    torch_generator,
)
from .models import Backend, LazyBaseline
from .registry import ModelSpec
from .resolve import ResolvedModel, resolve
from .runtime import Runtime

logger = logging.getLogger(__name__)

CFG_BATCH = 2


@dataclass
class SDResult:
    """A generated image and the timing dict every endpoint returns."""

    image: object  # PIL.Image.Image
    timing: dict


def native_image_size(ir_dir: Path) -> tuple[int, int]:
    """(height, width) a checkpoint was made for: UNet sample size times the VAE scale factor."""
    unet = json.loads((Path(ir_dir) / "unet" / "config.json").read_text())
    vae = json.loads((Path(ir_dir) / "vae_decoder" / "config.json").read_text())
    size = int(unet["sample_size"]) * 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
    return size, size


def image_size(resolved: ResolvedModel) -> tuple[int, int]:
    """The static shape: the registry's (512x512) for real models; a stand-in's own size
    (64x64 for the tiny test stand-in) otherwise."""
    if resolved.is_standin or not resolved.spec.static_shape:
        return native_image_size(resolved.ir_dir)
    return tuple(resolved.spec.static_shape[-2:])


def _serve_batch_one(unet, static_batch: int) -> None:
    """Let the static-batch OpenVINO UNet serve a smaller batch: pad by repeating, crop the result."""
    import torch

    forward = unet.forward

    def padded(sample, timestep, encoder_hidden_states, *args, **kwargs):
        n = sample.shape[0]
        if n == static_batch:
            return forward(sample, timestep, encoder_hidden_states, *args, **kwargs)
        if static_batch % n:
            raise ValueError(f"The UNet was compiled for batch {static_batch}; batch {n} cannot be padded to it.")
        k = static_batch // n
        out = forward(torch.cat([sample] * k), timestep, torch.cat([encoder_hidden_states] * k), *args, **kwargs)
        for key in list(out.keys()):
            out[key] = out[key][:n]
        return out

    unet.forward = padded


class SDVariant:
    """One OpenVINO variant: resolved IR folder, compiled pipeline, static size."""

    def __init__(self, resolved: ResolvedModel, runtime: Runtime):
        from optimum.intel import OVStableDiffusionPipeline

        self.resolved = resolved
        self.spec = resolved.spec
        self.height, self.width = image_size(resolved)

        def load():
            pipe = OVStableDiffusionPipeline.from_pretrained(
                resolved.ir_dir,
                device=runtime.settings.device,
                ov_config=runtime.ov_config(),
                compile=False,
            )
            pipe.reshape(batch_size=1, height=self.height, width=self.width, num_images_per_prompt=1)
            return pipe

        self.pipe = runtime.compile(self.spec.key, load, lambda pipe: pipe.compile())
        _serve_batch_one(self.pipe.unet, CFG_BATCH)

    @property
    def label(self) -> str:
        return self.spec.defaults.get("variant", self.spec.precision_label)


class SDRunner:
    """Text-to-image with a choice of OpenVINO variants and the PyTorch baseline.

    The default variant is compiled when the runner is made (startup); the others on
    first use (`load`). The PyTorch pipeline loads on first use. `lock` serialises
    generation: two image requests on two cores only slow each other down.
    """

    def __init__(self, specs: tuple[ModelSpec, ...], runtime: Runtime, default: str | None = None, resolver=resolve):
        if not specs:
            raise ValueError("SDRunner needs at least one model spec.")
        self.specs = {s.defaults.get("variant", s.key): s for s in specs}
        self.default = default or next(iter(self.specs))
        if self.default not in self.specs:
            raise ValueError(f"Unknown default variant {self.default!r}; choose one of {list(self.specs)}.")
        self.runtime = runtime
        self.settings = runtime.settings
        self._resolver = resolver
        self.variants: dict[str, SDVariant] = {}
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

    def load(self, variant: str) -> SDVariant:
        """Resolve and compile `variant` once; ValueError (with the reason) when it cannot load."""
        if variant not in self.specs:
            raise ValueError(f"Unknown variant {variant!r}; choose one of {self.variant_names}.")
        with self._load_lock:
            if variant in self.variants:
                return self.variants[variant]
            spec = self.specs[variant]
            logger.info("loading Stable Diffusion variant %s (%s)", variant, spec.key)
            try:
                self.variants[variant] = SDVariant(self._resolver(spec, self.settings), self.runtime)
            except Exception as exc:
                logger.exception("variant %s failed to load", variant)
                self.failures[variant] = f"{type(exc).__name__}: {exc}"  # for the server, not the page
                raise ValueError(
                    f"The {variant} variant could not be loaded ({type(exc).__name__}). "
                    "Pick another variant; the server log has the details."
                ) from exc
            self.failures.pop(variant, None)
            return self.variants[variant]

    @property
    def torch_loaded(self) -> bool:
        return self.baseline.loaded

    def torch_pipe(self, variant: SDVariant):
        """The diffusers PyTorch fp32 pipeline the IRs were made from, loaded once on first use."""
        return self.baseline.get(lambda: self._load_torch(variant), key=variant.resolved.torch_ref)

    @staticmethod
    def _load_torch(variant: SDVariant):
        import torch
        from diffusers import StableDiffusionPipeline

        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                variant.resolved.torch_ref,
                torch_dtype=torch.float32,
                safety_checker=None,
                requires_safety_checker=False,
            )
        except OSError as exc:
            logger.exception("the PyTorch baseline failed to load from %s", variant.resolved.torch_ref)
            raise ValueError(
                f"The PyTorch baseline could not be loaded from {variant.resolved.baseline_label} "
                f"({type(exc).__name__}); use the OpenVINO backend, or check the server's access to that checkpoint."
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def check_inputs(self, request: DiffusionRequest, variant: str, backend: Backend | str) -> DiffusionRequest:
        """`request` checked (with a concrete seed), or ValueError quoting the bad value."""
        if variant not in self.specs:
            raise ValueError(f"Unknown variant {variant!r}; choose one of {self.variant_names}.")
        Backend.parse(backend)
        return request.checked()

    def __call__(
        self,
        request: DiffusionRequest,
        variant: str | None = None,
        backend: Backend | str = Backend.OPENVINO,
        on_step: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> SDResult:
        """Generate one image for `request` with `variant` on `backend`.

        `on_step(done, total)` is called after each denoising step; setting `cancel`
        stops the generation after the current step (GenerationCancelled).
        """
        import torch

        # 1. Check inputs and make the seed concrete
        variant = variant or self.default
        request = self.check_inputs(request, variant, backend)
        backend = Backend.parse(backend)
        # 2. The OpenVINO variant (compiled on first selection) and, if asked, the PyTorch pipeline
        ov = self.load(variant)
        pipe = ov.pipe if backend is Backend.OPENVINO else self.torch_pipe(ov)
        truncated = prompt_is_truncated(ov.pipe.tokenizer, request.prompt) or (
            bool(request.negative_prompt) and prompt_is_truncated(ov.pipe.tokenizer, request.negative_prompt)
        )
        with self.lock, torch.inference_mode():
            # 3. The same scheduler class and config on both backends, fresh per request
            pipe.scheduler = make_scheduler(type(ov.pipe.scheduler).__name__, ov.pipe.scheduler.config)
            timer = StepTimer()

            def step_end(p, step, timestep, kwargs):
                timer.step()
                if on_step is not None:
                    on_step(step + 1, request.steps)
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled(f"Stopped after step {step + 1} of {request.steps}.")
                return kwargs

            # 4. Denoise and decode, timed end to end
            start = time.perf_counter()
            timer.started = start
            output = pipe(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance_scale,
                height=ov.height,
                width=ov.width,
                generator=torch_generator(request.seed),
                callback_on_step_end=step_end,
                output_type="pil",
            )
            latency_ms = (time.perf_counter() - start) * 1000
        # 5. The timing dict
        timing = {
            "backend": backend.value,
            "precision": f"OpenVINO {ov.label}" if backend is Backend.OPENVINO else "PyTorch fp32",
            "variant": ov.label,
            "latency_ms": round(latency_ms, 1),
            "step_ms": round(timer.step_ms, 1),
            "steps": request.steps,
            "seed": request.seed,
            "guidance_scale": request.guidance_scale,
            "guidance": "classifier-free" if request.uses_guidance else "off (guidance scale <= 1)",
            "size": f"{ov.width}x{ov.height}",
            "scheduler": type(pipe.scheduler).__name__,
            "truncated": truncated,
            "model": ov.spec.title,
            "model_source": ov.resolved.source.value,
            "pytorch_from": ov.resolved.baseline_label,
            "standin": ov.resolved.is_standin,
            "task": "text-to-image",
        }
        return SDResult(output.images[0], timing)
