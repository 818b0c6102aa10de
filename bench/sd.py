"""The SD-ToMe-INT8 tab's request: one UNet step, and the whole pipeline, at its static size
with classifier-free guidance (UNet batch 2).

The models resolve as the app resolves them (`--standin-size full` offline: the SD 1.5
architecture with random weights, its FP32, INT8 and ToMe+INT8 IRs converted once by
`pipelines.build.convert`). OpenVINO runs through the app's `SDRunner`; PyTorch runs the diffusers
pipeline the IRs were made from, with the IR's scheduler and the same seed, as the app does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import core

PROMPT = "a cute yellow cartoon creature with big ears and red cheeks"
SEED = 0
GUIDANCE = 7.5


def spec_for(config: core.Config):
    from pipelines.core.registry import SD_FP32, SD_INT8, SD_TOME_INT8

    return {"fp32": SD_FP32, "int8": SD_INT8, "tome-int8": SD_TOME_INT8}[config.build]


def prepare(config: core.Config, threads: int, standin_size: str, home) -> None:
    """Build (convert, quantize) `config`'s variant before anything is timed."""
    from pipelines.sources.resolve import resolve

    resolve(spec_for(config), core.bench_settings(config, threads, standin_size, home))


def _torch_pipeline(resolved, threads: int):
    """The diffusers fp32 pipeline of `resolved.torch_ref`, with the IR's scheduler."""
    import torch
    from diffusers import StableDiffusionPipeline

    from pipelines.core.diffusion import make_scheduler

    torch.set_num_threads(threads)
    pipe = StableDiffusionPipeline.from_pretrained(
        resolved.torch_ref, torch_dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    scheduler = json.loads((Path(resolved.ir_dir) / "scheduler" / "scheduler_config.json").read_text())
    pipe.scheduler = make_scheduler(scheduler["_class_name"], scheduler)
    return pipe


def run(
    config: core.Config,
    threads: int,
    repeats: core.Repeats,
    out: Path,
    standin_size: str,
    home,
    steps: int,
    pipeline_runs: int,
) -> list[dict]:
    """Two results: `sd-unet-step` (s per UNet call, CFG batch 2) and `sd-pipeline` (s per
    image: text encoder, `steps` denoising steps, VAE decoder). An OpenVINO configuration's process
    imports no torch, as the app's OpenVINO process."""
    import contextlib

    import numpy as np

    from pipelines.core.diffusion import torch_generator, torch_randn
    from pipelines.sources.resolve import resolve
    from pipelines.tasks.sd import SDRunner, image_size

    settings = core.bench_settings(config, threads, standin_size, home)
    spec = spec_for(config)
    t0 = time.perf_counter()
    if config.backend == "OpenVINO":
        runtime = core.bench_runtime(settings)
        runner = SDRunner((spec,), runtime)
        variant = runner.default_variant
        resolved = variant.resolved
        height, width = variant.height, variant.width
        unet = _ov_unet(resolved.ir_dir, height, width, runtime)
        weights = core.weights_mib(resolved.ir_dir)

        def generate(n: int):
            request = runner.check(PROMPT, "", n, GUIDANCE, SEED, runner.default)
            return runner.run(request, "OpenVINO").output

    else:
        resolved = resolve(spec, settings)
        pipe = _torch_pipeline(resolved, threads)
        unet = pipe.unet.eval()
        height, width = image_size(resolved)
        weights = core.weights_mib(resolved.torch_ref)

        def generate(n: int):
            return pipe(
                prompt=PROMPT,
                num_inference_steps=n,
                guidance_scale=GUIDANCE,
                height=height,
                width=width,
                generator=torch_generator(SEED),
                output_type="pil",
            ).images[0]

    load_s = time.perf_counter() - t0

    # The UNet inputs of one guided step at this size, the same on every configuration.
    shapes = unet_shapes(resolved.ir_dir, height, width)
    sample = torch_randn(SEED, tuple(shapes["sample"]))
    hidden = torch_randn(SEED + 1, tuple(shapes["encoder_hidden_states"]))
    timestep = np.array([500], dtype=np.int64)
    context = contextlib.nullcontext()
    if config.backend == "PyTorch":
        import torch

        sample, hidden, timestep = (torch.from_numpy(a) for a in (sample, hidden, timestep))
        context = torch.inference_mode()
    noise, images = [], []

    def unet_step():
        noise[:] = [_first(unet(sample, timestep, encoder_hidden_states=hidden))]

    with core.autocast(config), context:
        step_samples = core.measure(unet_step, repeats)
        generate(1)  # warms the text encoder, scheduler and VAE decoder
        image_samples = core.measure(
            lambda: images.append(generate(steps)), core.Repeats(0, pipeline_runs, repeats.budget_s)
        )

    common = {"source": resolved.source.value, "weights_mib": weights, "load_s": load_s, "size": f"{width}x{height}"}
    return [
        core.row(
            "sd-unet-step",
            config,
            step_samples,
            1,
            "s",
            cfg_batch=2,
            output=core.save_output(out, "sd-unet-step", config.name, noise[0]),
            output_kind="tensor",
            **common,
        ),
        core.row(
            "sd-pipeline",
            config,
            image_samples,
            1,
            "s",
            steps=steps,
            guidance_scale=GUIDANCE,
            output=core.save_output(out, "sd-pipeline", config.name, images[-1]),
            output_kind="image",
            **common,
        ),
    ]


def unet_shapes(ir_dir: Path, height: int, width: int) -> dict[str, list[int]]:
    """The UNet inputs of one guided step at `height`×`width` (CFG batch 2), from the IR folder's configs."""
    from pipelines.core.diffusion import CFG_BATCH, CLIP_MAX_TOKENS, LATENT_CHANNELS, vae_scale_factor

    folder = Path(ir_dir)
    scale = vae_scale_factor(json.loads((folder / "vae_decoder" / "config.json").read_text()))
    text_dim = json.loads((folder / "unet" / "config.json").read_text())["cross_attention_dim"]
    return {
        "sample": [CFG_BATCH, LATENT_CHANNELS, height // scale, width // scale],
        "encoder_hidden_states": [CFG_BATCH, CLIP_MAX_TOKENS, text_dim],
    }


def _ov_unet(ir_dir: Path, height: int, width: int, runtime):
    """The variant's UNet IR alone, compiled at the app's static shape (CFG batch 2), as OpenVINO GenAI
    compiles it inside the app's pipeline; called like a diffusers UNet, with numpy arrays."""
    import openvino as ov

    model = ov.Core().read_model(Path(ir_dir) / "unet" / "openvino_model.xml")
    shapes = unet_shapes(ir_dir, height, width)
    shapes["timestep"] = [1] if model.input("timestep").get_partial_shape().rank.get_length() == 1 else []
    model.reshape(shapes)
    compiled = runtime.core.compile_model(model, runtime.settings.device, runtime.ov_config())

    timestep_type = compiled.input("timestep").get_element_type().to_dtype()

    def unet(sample, timestep, encoder_hidden_states):
        inputs = {
            "sample": sample,
            "timestep": timestep.astype(timestep_type),
            "encoder_hidden_states": encoder_hidden_states,
        }
        return (compiled(inputs)[0],)

    return unet


def _first(out):
    """The noise prediction, from a diffusers output, a tuple or an optimum output dict."""
    import numpy as np

    value = out[0] if isinstance(out, tuple) else (out.sample if hasattr(out, "sample") else next(iter(out.values())))
    return value.float().numpy() if hasattr(value, "float") else np.asarray(value)
