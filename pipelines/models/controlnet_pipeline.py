"""Stable Diffusion 1.5 + OpenPose ControlNet on OpenVINO, driven by a hand-written loop.

optimum-intel has no ControlNet pipeline, so `OVStableDiffusionControlNetPipeline`
follows diffusers' `StableDiffusionControlNetPipeline` step for step (same tokenizer
call, same seeded latents, same scheduler, same guidance and decoding) with the four
networks compiled by OpenVINO; numpy goes in and out, torch is used only where the
diffusers scheduler needs it. The app serves with it (`controlnet.PoseRunner`), and the
export calibrates the INT8 build with it (`controlnet_export`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipelines.core.diffusion import DiffusionRequest, StepTimer, torch_randn


@dataclass
class ControlNetPipelineOutput:
    """The generated image, its float pixels (H×W×3 in [0, 1]) and per-step timing."""

    image: Image.Image
    array: np.ndarray
    seed: int
    steps: int
    step_ms: float
    latency_ms: float


class OVStableDiffusionControlNetPipeline:
    """Text + pose condition image -> image, with OpenVINO-compiled networks.

    Components: a CLIP tokenizer (`TextTokenizer`, padded to 77), the compiled text encoder,
    ControlNet, UNet (with the ControlNet residuals as inputs) and VAE decoder, and a function
    making a fresh diffusers scheduler (schedulers keep state per request). Shapes are
    static: the UNet and ControlNet run at batch 2 (classifier-free guidance); a request
    without guidance runs the conditional half twice and keeps one.
    """

    def __init__(
        self,
        tokenizer,
        text_encoder,
        controlnet,
        unet,
        vae_decoder,
        new_scheduler: Callable[[], object],
        resolution: int,
        vae_scaling_factor: float,
    ):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.controlnet = controlnet
        self.unet = unet
        self.vae_decoder = vae_decoder
        self.new_scheduler = new_scheduler
        self.resolution = resolution
        self.vae_scaling_factor = vae_scaling_factor
        sample = unet.input("sample").get_shape()
        self.batch, self.latent_shape = int(sample[0]), tuple(int(d) for d in sample[1:])
        self.residual_names = [o.get_any_name() for o in controlnet.outputs]

    def check_inputs(self, image: Image.Image, request: DiffusionRequest) -> None:
        if not isinstance(image, Image.Image):
            raise ValueError(f"The pose image must be a PIL image, got {type(image).__name__}.")
        if image.size != (self.resolution, self.resolution):
            raise ValueError(f"The pose image must be {self.resolution}×{self.resolution}, got {image.size}.")
        if request.seed is None:
            raise ValueError("The request has no seed; pass it through DiffusionRequest.checked().")

    def encode_prompt(self, prompt: str, negative_prompt: str) -> np.ndarray:
        """[negative, positive] CLIP embeddings, 2×77×d, tokenized as diffusers does."""
        request = self.text_encoder.create_infer_request()
        embeddings = []
        for text in (negative_prompt, prompt):
            inputs, _ = self.tokenizer(text)
            request.infer({"input_ids": inputs["input_ids"]})
            embeddings.append(request.get_output_tensor(0).data.copy())
        return np.concatenate(embeddings)

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        """Condition image as 2×3×H×W float32 in [0, 1] (diffusers: no normalisation)."""
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return np.ascontiguousarray(np.repeat(array.transpose(2, 0, 1)[None], self.batch, axis=0))

    def prepare_latents(self, seed: int, scheduler) -> np.ndarray:
        """Initial noise: the numbers diffusers draws from the seeded CPU generator (`torch_randn`)."""
        return torch_randn(seed, (1, *self.latent_shape)) * np.float32(scheduler.init_noise_sigma)

    def decode_latents(self, latents: np.ndarray) -> np.ndarray:
        request = self.vae_decoder.create_infer_request()
        request.infer({"latent_sample": latents / self.vae_scaling_factor})
        image = request.get_output_tensor(0).data[0].transpose(1, 2, 0)
        return np.clip(image / 2 + 0.5, 0.0, 1.0)

    def __call__(
        self,
        image: Image.Image,
        request: DiffusionRequest,
        scheduler=None,
        callback_on_step_end: Callable[[int, int, np.ndarray], None] | None = None,
    ) -> ControlNetPipelineOutput:
        """Generate one image for `request` in the pose of `image` (already at `resolution`).

        `scheduler` (a fresh diffusers scheduler; default: `new_scheduler()`) is stateful, so
        each call gets its own. `callback_on_step_end(step, timestep, latents)` runs
        after every step and may raise `protocol.Cancelled`.
        """
        import torch

        self.check_inputs(image, request)
        timer = StepTimer()
        scheduler = scheduler or self.new_scheduler()
        guided = request.uses_guidance

        # 1. Encode the prompt: [negative, positive] for guidance, [positive, positive] without.
        embeddings = self.encode_prompt(request.prompt, request.negative_prompt)
        if not guided:
            embeddings = np.concatenate([embeddings[1:], embeddings[1:]])

        # 2. Prepare the condition image, the timesteps and the seeded latents.
        condition = self.prepare_image(image)
        scheduler.set_timesteps(request.steps)
        latents = self.prepare_latents(request.seed, scheduler)

        # 3. Denoise: ControlNet residuals feed the UNet at every step.
        control, unet = self.controlnet.create_infer_request(), self.unet.create_infer_request()
        control.set_tensor("encoder_hidden_states", _tensor(embeddings))
        control.set_tensor("controlnet_cond", _tensor(condition))
        unet.set_tensor("encoder_hidden_states", _tensor(embeddings))
        timer.started = time.perf_counter()
        for i, t in enumerate(scheduler.timesteps):
            model_input = scheduler.scale_model_input(torch.from_numpy(latents), t).numpy()
            model_input = np.ascontiguousarray(np.repeat(model_input, self.batch, axis=0))
            timestep = np.asarray([int(t)], dtype=np.int64)
            control.infer({"sample": model_input, "timestep": timestep})
            for name in self.residual_names:
                unet.set_tensor(name, control.get_tensor(name))
            unet.infer({"sample": model_input, "timestep": timestep})
            noise = unet.get_output_tensor(0).data
            # 4. Classifier-free guidance.
            if guided:
                noise_pred = noise[0:1] + request.guidance_scale * (noise[1:2] - noise[0:1])
            else:
                noise_pred = noise[0:1].copy()
            latents = scheduler.step(torch.from_numpy(noise_pred), t, torch.from_numpy(latents)).prev_sample.numpy()
            timer.step()
            if callback_on_step_end is not None:
                callback_on_step_end(i, int(t), latents)

        # 5. Decode the latents.
        pixels = self.decode_latents(latents)
        latency_ms = (time.perf_counter() - timer.started) * 1000
        image_out = Image.fromarray((pixels * 255).round().astype(np.uint8))
        return ControlNetPipelineOutput(image_out, pixels, request.seed, request.steps, timer.step_ms, latency_ms)


def _tensor(array: np.ndarray):
    import openvino as ov

    return ov.Tensor(np.ascontiguousarray(array, dtype=array.dtype))
