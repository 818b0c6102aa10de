"""What the image tabs share: SD 1.x facts, request checks, seeds and latents, schedulers, step timing.

Both image pipelines (Stable Diffusion through OpenVINO GenAI, ControlNet through the
hand-built loop) and both backends take a `DiffusionRequest`, so the same request
really is the same on OpenVINO and PyTorch; `torch_randn` gives the OpenVINO side the
initial latents torch draws for a seed, without torch.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.core.checks import check_unicode, printable, real_number, whole_number
from pipelines.core.protocol import Timing

if TYPE_CHECKING:
    from PIL.Image import Image

MIN_STEPS, MAX_STEPS, DEFAULT_STEPS = 1, 50, 20
MIN_GUIDANCE, MAX_GUIDANCE, DEFAULT_GUIDANCE = 0.0, 20.0, 7.5
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 1000

# Stable Diffusion 1.x, as both image tabs' models are built.
CLIP_MAX_TOKENS = 77
"""CLIP's context: prompts are padded or cut to 77 tokens."""
CFG_BATCH = 2
"""Classifier-free guidance runs the unconditional and the conditional half in one UNet call."""
LATENT_CHANNELS = 4


def vae_scale_factor(vae_config: dict) -> int:
    """Image pixels per latent pixel: 2 per VAE down block after the first (8 for SD 1.x)."""
    return 2 ** (len(vae_config.get("block_out_channels", [0] * 4)) - 1)


def native_size(folder: str | Path) -> tuple[int, int]:
    """(height, width) a Stable Diffusion folder was made for: UNet sample size times the VAE scale factor
    (512×512 for SD 1.x). A diffusers checkpoint (`vae/`) or its OpenVINO IR (`vae_decoder/`); a Hub id that
    is not a local folder: SD 1.x's 512."""
    unet = Path(folder) / "unet" / "config.json"
    vae = next((v for v in (Path(folder) / p / "config.json" for p in ("vae", "vae_decoder")) if v.is_file()), None)
    if not unet.is_file() or vae is None:
        return 512, 512
    side = int(json.loads(unet.read_text())["sample_size"]) * vae_scale_factor(json.loads(vae.read_text()))
    return side, side


@dataclass(kw_only=True)
class DiffusionTiming(Timing):
    """An image generation's timing dict (both image tabs): `Timing`'s fields and these."""

    step_ms: float
    """The median denoising step, ms."""
    steps: int
    """Denoising steps run."""
    seed: int
    """The seed the initial latents were drawn from (the same on both backends)."""
    guidance_scale: float
    """Classifier-free guidance scale."""
    scheduler: str
    """The scheduler's class name."""
    truncated: bool
    """Whether CLIP cut the prompt (or the negative prompt) to 77 tokens."""


@dataclass(frozen=True)
class DiffusionRequest:
    prompt: str
    negative_prompt: str | None = ""
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    seed: int | None = None
    """None draws a random seed; the one used is returned with the result."""

    def checked(self) -> DiffusionRequest:
        """This request with a concrete seed and its prompts cleaned (`checks.printable`: what CLIP's
        tokenizers cannot take removed, the same text for both backends), or ValueError quoting the bad value.

        A missing negative prompt (None) is an empty one, on every endpoint."""
        negative = "" if self.negative_prompt is None else self.negative_prompt
        cleaned = []
        for name, text in (("prompt", self.prompt), ("negative prompt", negative)):
            if not isinstance(text, str):
                raise ValueError(f"The {name} must be text, got {type(text).__name__}.")
            if len(text) > MAX_PROMPT_CHARS:
                raise ValueError(f"The {name} is {len(text):,} characters long; shorten it to {MAX_PROMPT_CHARS:,}.")
            check_unicode(text, name)
            cleaned.append(" ".join(printable(text).split()))
        prompt, negative = cleaned
        if not prompt:
            raise ValueError("The prompt is empty: describe the image you want.")
        steps = whole_number(self.steps, "Steps", MIN_STEPS, MAX_STEPS)
        guidance = real_number(self.guidance_scale, "Guidance scale", MIN_GUIDANCE, MAX_GUIDANCE)
        seed = secrets.randbelow(MAX_SEED + 1) if self.seed is None else whole_number(self.seed, "Seed", 0, MAX_SEED)
        return DiffusionRequest(prompt, negative, steps, guidance, seed)

    @property
    def uses_guidance(self) -> bool:
        """Classifier-free guidance runs only above 1, as in diffusers."""
        return self.guidance_scale > 1.0


def torch_randn(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """`torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))` in float32, without torch.

    Written here because the OpenVINO process has no torch, and no other library draws torch's
    numbers (OpenVINO GenAI's `TorchGenerator` calls torch). torch's CPU `normal_` for a float
    tensor of 16 or more values: MT19937 seeded with `seed` (numpy's `RandomState` is the same
    engine, seeded the same way) gives one 32-bit draw per value, whose low 24 bits make a uniform
    u in [0, 1); then Box-Muller on each block of 16: values j and j + 8 come from u1 = 1 - u[j] and
    u2 = u[j + 8]; a tail shorter than 16 recomputes the last 16 values from 16 new draws. Equal to
    torch's to float rounding (torch's vectorised log/sin/cos; tests check 1e-6).
    """
    n = math.prod(shape)
    if n < 16:
        raise ValueError(f"torch_randn draws 16 values or more (torch takes another path below), got {n}.")
    tail = 16 if n % 16 else 0
    bits = np.random.RandomState(seed).randint(0, 2**32, size=n + tail, dtype=np.uint64)
    uniform = (bits & 0xFFFFFF).astype(np.float32) * np.float32(2.0**-24)

    def box_muller(blocks: np.ndarray) -> np.ndarray:  # (k, 16) uniforms -> (k, 16) normals
        radius = np.sqrt(np.float32(-2.0) * np.log(np.float32(1.0) - blocks[:, :8]))
        theta = np.float32(2.0 * math.pi) * blocks[:, 8:]
        return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1)

    values = uniform[:n].copy()
    whole = n - n % 16
    values[:whole] = box_muller(values[:whole].reshape(-1, 16)).ravel()
    if tail:
        values[n - 16 :] = box_muller(uniform[n:].reshape(1, 16)).ravel()
    return values.reshape(shape)


def torch_generator(seed: int):
    """The CPU `torch.Generator` both backends draw their initial latents from."""
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def make_scheduler(name: str, config: dict):
    """A diffusers scheduler by class name, from a pipeline's scheduler config."""
    import diffusers

    cls = getattr(diffusers, name, None)
    if cls is None or not name.endswith("Scheduler"):
        raise ValueError(f"Unknown scheduler {name!r}.")
    return cls.from_config(config)


@dataclass
class StepTimer:
    """Per-step wall time, fed from a diffusers `callback_on_step_end` or a hand-written loop."""

    started: float = field(default_factory=time.perf_counter)
    marks: list[float] = field(default_factory=list)

    def step(self) -> None:
        self.marks.append(time.perf_counter())

    @property
    def step_ms(self) -> float:
        """Median step time, ms (the first step's time counts from `started`)."""
        if not self.marks:
            return 0.0
        edges = [self.started, *self.marks]
        durations = sorted(b - a for a, b in pairwise(edges))
        return durations[len(durations) // 2] * 1000


# SD 1.x latent channels -> RGB, a linear fit of the VAE decoder's colours (the factors ComfyUI's
# `latent_formats.SD15` uses for its previews). Neither diffusers nor OpenVINO GenAI has a preview
# decoder; the VAE itself costs seconds at 512² (about three UNet steps), a preview must cost nothing.
LATENT_RGB_FACTORS = np.array(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ],
    dtype=np.float32,
)
PREVIEW_SIDE = 256


def latent_preview(latents) -> Image:
    """A rough RGB image of SD 1.x `latents` ((batch,) 4, h, w; the first of a batch) without the VAE:
    each latent pixel's colour by `LATENT_RGB_FACTORS`, scaled up to `PREVIEW_SIDE`. Well under a
    millisecond at 64×64 latents."""
    from PIL import Image

    latent = np.asarray(latents, dtype=np.float32)
    latent = latent[0] if latent.ndim == 4 else latent
    rgb = np.einsum("chw,cr->hwr", latent[:LATENT_CHANNELS], LATENT_RGB_FACTORS)
    pixels = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).resize((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
