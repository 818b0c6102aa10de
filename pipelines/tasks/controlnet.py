"""Stable Diffusion 1.5 + OpenPose ControlNet on either backend: `PoseRunner` is what the tab
talks to, pose detection and generation with timings. The OpenVINO pipeline is
`controlnet_pipeline.OVStableDiffusionControlNetPipeline`.

torch, diffusers and controlnet_aux (the scheduler; OpenPose's post-processing and drawing)
are imported by the first pose request, not at startup: until someone uses this tab, the
app's process holds none of them (about 0.7 GB and 5 s of imports on a 2-core AVX2 CPU).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.core.diffusion import (
    CLIP_MAX_TOKENS,
    DiffusionRequest,
    DiffusionTiming,
    StepTimer,
    latent_preview,
    make_scheduler,
    torch_generator,
)
from pipelines.core.folders import MANIFEST
from pipelines.core.images import load_image
from pipelines.core.layout import BODY_WEIGHTS, PART_FILES
from pipelines.core.protocol import (
    Backend,
    CancelToken,
    PyTorchElsewhere,
    Result,
    StepCallback,
    Steps,
    Timing,
    TwoBackends,
    holding,
)
from pipelines.core.registry import PRECISION_LABELS
from pipelines.models.controlnet_pipeline import ControlNetPipelineOutput, OVStableDiffusionControlNetPipeline
from pipelines.models.pose import Letterbox, PoseDetector, fit_condition, load_body_network, ov_body_network
from pipelines.models.text import TextTokenizer
from pipelines.serving.backends import BackendPair, LazyBaseline

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DetectionRequest:
    """A checked detection request: the photo, decoded within the app's caps."""

    photo: Image.Image


@dataclass(frozen=True, eq=False)
class PoseRequest:
    """A checked generation request: the pose image fitted to the model's square, and the image's description."""

    pose: Letterbox
    diffusion: DiffusionRequest


@dataclass(kw_only=True)
class DetectionTiming(Timing):
    """A pose detection's timing dict: `Timing`'s fields and these."""

    resolution: int
    """The side of the square the pose tab works at (its ControlNet build's)."""
    people: int
    """People whose skeleton was found."""


@dataclass(kw_only=True)
class GenerationTiming(DiffusionTiming):
    """A pose generation's timing dict: `DiffusionTiming`'s fields and this."""

    resolution: int
    """The side of the square image generated (the pose image is padded to it, then the result cropped)."""


class PoseRunner:
    """The ControlNet pose tab's models: pose detection and generation, each a `BackendPair`
    (OpenVINO compiled at startup, PyTorch on first use), and the tab's two tasks on them,
    `detection` and `generation` (see `protocol`)."""

    def __init__(self, resolved, runtime, torch_source: Callable[[], Path | None] | None = None):
        """`torch_source()` gives the folder of the PyTorch parts (see `layout`) when the baseline is first
        asked for, or None when it cannot be had; by default the resolved baseline folder."""
        self.resolved = resolved
        self.spec = resolved.spec
        self.runtime = runtime
        folder = Path(resolved.ir_dir)
        self.manifest = json.loads((folder / MANIFEST).read_text())
        self.resolution = int(self.manifest["resolution"])
        self.quantization = self.manifest.get("quantization", self.spec.quantization.value)
        self.scheduler_name = self.spec.defaults.get("scheduler", "UniPCMultistepScheduler")
        self.scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
        self.tokenizer = TextTokenizer(folder / "tokenizer", CLIP_MAX_TOKENS, pad=True)
        compiled = {}
        parts = PART_FILES if runtime.openvino else {}  # none in the PyTorch worker
        core, config = (runtime.core, runtime.ov_config(self.spec.precision_hint)) if parts else (None, None)
        for part in parts:
            path = folder / PART_FILES[part]
            runtime.compile(
                f"{self.spec.key}/{part}",
                lambda path=path: core.read_model(path),
                lambda model, part=part: compiled.update(
                    {part: core.compile_model(model, runtime.settings.device, config)}
                ),
            )
        pipeline = detector = None
        if compiled:
            pipeline = OVStableDiffusionControlNetPipeline(
                self.tokenizer,
                compiled["text_encoder"],
                compiled["controlnet"],
                compiled["unet"],
                compiled["vae_decoder"],
                self.new_scheduler,
                self.resolution,
                float(self.manifest["vae_scaling_factor"]),
            )
            detector = PoseDetector(lambda: ov_body_network(compiled["openpose_body"]), self.resolution)
        self._torch_source = torch_source or (lambda: Path(resolved.torch_ref))
        known = {q.value: label for q, label in PRECISION_LABELS.items()}
        tome = "ToMe+" if self.manifest.get("tome_ratio") else ""
        ov_label = f"OpenVINO {tome}{known.get(self.quantization, self.quantization)}"
        threads = runtime.settings.threads
        self.detectors: BackendPair[PoseDetector, PoseDetector] = BackendPair(
            resolved,
            detector,
            LazyBaseline(f"{self.spec.key} body network", threads),
            lambda: PoseDetector(load_body_network(self.torch_source() / "openpose" / BODY_WEIGHTS), self.resolution),
            ov_label="OpenVINO FP32",  # the body network is not quantized
            name="the OpenPose body network",
            build_reason="",
            ov_memory=lambda: runtime.memory_mb(f"{self.spec.key}/openpose_body"),
        )
        self.pipelines: BackendPair[OVStableDiffusionControlNetPipeline, object] = BackendPair(
            resolved,
            pipeline,
            LazyBaseline(self.spec.key, threads),
            lambda: load_torch_controlnet(self.torch_source(), self.new_scheduler()),
            ov_label=ov_label,
            ov_memory=lambda: runtime.memory_mb(*(f"{self.spec.key}/{p}" for p in PART_FILES if p != "openpose_body")),
        )
        self.detection = PoseDetection(self)
        self.generation = PoseGeneration(self)

    def torch_source(self) -> Path:
        """Folder of the PyTorch parts; ValueError when it cannot be had."""
        source = self._torch_source()
        if source is None or not (Path(source) / "unet").is_dir():
            logger.error("%s: no folder with the PyTorch parts (got %s)", self.spec.key, source)
            raise ValueError(
                f"The PyTorch baseline needs {self.spec.torch_repo} and {self.spec.defaults['base_repo']} "
                "from the Hub, which cannot be reached. Use the OpenVINO backend."
            )
        return Path(source)

    def with_pytorch_elsewhere(self, detection: PyTorchElsewhere, generation: PyTorchElsewhere) -> PoseRunner:
        """This runner, its two tasks' PyTorch requests sent to `detection` and `generation` (see
        `protocol.TwoBackends.with_pytorch_elsewhere`): the same models, locks and caches."""
        twin = copy.copy(self)
        twin.detection = self.detection.with_pytorch_elsewhere(detection)
        twin.generation = self.generation.with_pytorch_elsewhere(generation)
        return twin

    def new_scheduler(self):
        return make_scheduler(self.scheduler_name, self.scheduler_config)

    def pair_first_use(self, pair: BackendPair, backend: Backend) -> str | None:
        """The pair's first-use sentence; on OpenVINO, whether this request imports the tab's PyTorch helpers."""
        if backend is Backend.OPENVINO and "torch" not in sys.modules:
            return (
                "Loading the pose tab's helper libraries (scheduler, OpenPose drawing) on first use; "
                "this request takes a few seconds longer."
            )
        return pair.first_use(backend)

    def timing(self, pair: BackendPair, backend: Backend, record: type[Timing], latency_ms: float, **fields) -> dict:
        return pair.timing(backend, latency_ms, record, resolution=self.resolution, **fields)


class PoseDetection(TwoBackends):
    """The pose tab's first task: a photo -> its OpenPose skeleton, drawn at the photo's aspect ratio."""

    action = "Pose detection"

    def __init__(self, runner: PoseRunner):
        self.runner = runner

    def check(self, photo) -> DetectionRequest:
        """The photo (an upload's path, a PIL image or an array) decoded within the app's caps, or ValueError."""
        return DetectionRequest(load_image(photo, "photo"))

    def first_use_here(self, request: DetectionRequest, backend: Backend) -> str | None:
        return self.runner.pair_first_use(self.runner.detectors, backend)

    def run_here(self, request: DetectionRequest, backend: Backend, on_step=None, cancel=None) -> Result:
        pair = self.runner.detectors
        detector = pair.model(backend)
        with pair.lock:
            detection = detector(request.photo)
        timing = self.runner.timing(
            pair, backend, DetectionTiming, detection.latency_ms, task="detect", people=len(detection.people)
        )
        return Result(detection.image, timing)


class PoseGeneration(TwoBackends):
    """The pose tab's second task: a pose image and a description -> an image in that pose,
    at the pose image's aspect ratio."""

    action = "Generation"

    def __init__(self, runner: PoseRunner):
        self.runner = runner

    def check(
        self,
        pose_image,
        prompt: str,
        negative_prompt: str | None,
        steps: object,
        guidance_scale: object,
        seed: object,
    ) -> PoseRequest:
        """The endpoint's values as a request with a concrete seed, or ValueError quoting the bad value."""
        diffusion = DiffusionRequest(prompt, negative_prompt, steps, guidance_scale, seed).checked()
        pose = fit_condition(load_image(pose_image, "pose image"), self.runner.resolution)
        return PoseRequest(pose, diffusion)

    def first_use_here(self, request: PoseRequest, backend: Backend) -> str | None:
        return self.runner.pair_first_use(self.runner.pipelines, backend)

    def run_here(
        self, request: PoseRequest, backend: Backend, on_step: StepCallback | None, cancel: CancelToken | None
    ) -> Result:
        """One image for `request`; stops after the current step once `cancel` is set."""
        runner, pair, asked = self.runner, self.runner.pipelines, request.diffusion
        steps = Steps(asked.steps, on_step, cancel)
        steps.check()  # a request stopped while it waited loads nothing
        pipeline = pair.model(backend)

        def stepped(step: int, timestep: int, latents) -> None:
            steps(preview=latent_preview(latents) if steps.wants_preview() else None)

        with holding(pair.lock, cancel, asked.steps):
            if backend is Backend.OPENVINO:
                out = pipeline(request.pose.image, asked, runner.new_scheduler(), stepped)
            else:
                out = run_torch_pipeline(pipeline, request.pose.image, asked, runner.new_scheduler(), stepped)
        timing = runner.timing(
            pair,
            backend,
            GenerationTiming,
            out.latency_ms,
            task="generate",
            step_ms=round(out.step_ms, 3),
            steps=out.steps,
            seed=out.seed,
            guidance_scale=asked.guidance_scale,
            scheduler=runner.scheduler_name,
            truncated=runner.tokenizer(asked.prompt)[1],
        )
        return Result(request.pose.crop(out.image), timing)


def load_torch_controlnet(source: Path, scheduler):
    """diffusers' `StableDiffusionControlNetPipeline` from a source folder, fp32, on CPU."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    dtype = torch.float32
    return StableDiffusionControlNetPipeline(
        vae=AutoencoderKL.from_pretrained(source / "vae", torch_dtype=dtype),
        text_encoder=CLIPTextModel.from_pretrained(source / "text_encoder", dtype=dtype),
        tokenizer=CLIPTokenizer.from_pretrained(source / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(source / "unet", torch_dtype=dtype),
        controlnet=ControlNetModel.from_pretrained(source / "controlnet", torch_dtype=dtype),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).to("cpu")


def run_torch_pipeline(
    pipeline, image: Image.Image, request: DiffusionRequest, scheduler, callback_on_step_end=None
) -> ControlNetPipelineOutput:
    """The same request through diffusers, timed like the OpenVINO loop."""
    import torch

    timer = StepTimer()

    def on_step(pipe, step, timestep, callback_kwargs):
        timer.step()
        if callback_on_step_end is not None:
            callback_on_step_end(step, int(timestep), callback_kwargs["latents"].numpy())
        return callback_kwargs

    pipeline.scheduler = scheduler
    pipeline.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        start = time.perf_counter()
        timer.started = start
        pixels = pipeline(
            request.prompt,
            image=image,
            height=image.height,
            width=image.width,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt or None,
            generator=torch_generator(request.seed),
            output_type="np",
            callback_on_step_end=on_step,
        ).images[0]
        latency_ms = (time.perf_counter() - start) * 1000
    image_out = Image.fromarray((pixels * 255).round().astype(np.uint8))
    return ControlNetPipelineOutput(image_out, pixels, request.seed, request.steps, timer.step_ms, latency_ms)
