"""The ControlNet pose tab's work: one guided denoising step (ControlNet then UNet, batch 2)
at the IR's static size, and OpenPose body detection of a photo.

Runs on the ControlNet pose stand-in of the benchmark's size (`full`: SD 1.5 + the OpenPose
ControlNet + the body network, real configurations, random weights), with its FP32 IR and
its INT8-weights IR and its Token Merging + INT8 IR, each converted once where the app keeps them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .core import (
    QUANTIZATION_OF_BUILD,
    Config,
    Repeats,
    autocast,
    bench_settings,
    measure,
    ov_props,
    row,
    save_output,
    weights_mib,
)


def folders(settings, build: str = "fp32") -> dict[str, Path]:
    """PyTorch source and the IR of `build` (always with the FP32 IR the quantized builds start from,
    which also gives the shapes) of the stand-in, by build name; built once where the app keeps them."""
    from pipelines.build.controlnet_export import compress_folder, export_controlnet
    from pipelines.build.export import is_complete_ir_folder
    from pipelines.core.registry import CONTROLNET_POSE, Quantization
    from pipelines.sources.resolve import standin_weights

    # The app's offline layout (`resolve`): weights per stand-in builder, IR folders per model.
    root = settings.home / "standins" / settings.standin_size / CONTROLNET_POSE.key
    found = {"pytorch": standin_weights(CONTROLNET_POSE, settings)}
    for name in dict.fromkeys(("fp32", build)):  # FP32 first: the INT8-weights build compresses it
        quantization = Quantization(QUANTIZATION_OF_BUILD[name])
        found[name] = folder = root / f"openvino-{quantization.value}"
        if is_complete_ir_folder(folder):
            continue
        if quantization is Quantization.INT8_WEIGHTS and is_complete_ir_folder(found.get("fp32", root / "-")):
            compress_folder(found["fp32"], folder)
        else:
            export_controlnet(CONTROLNET_POSE, found["pytorch"], folder, quantization)
    return found


def prepare(config: Config, threads: int, standin_size: str, home) -> None:
    """Build the IR `config` runs (and the stand-in's weights) before anything is timed."""
    folders(bench_settings(config, threads, standin_size, home), config.build)


def run(config: Config, threads: int, repeats: Repeats, out: Path, standin_size: str, home) -> list[dict]:
    """Two results: `controlnet-step` (s per ControlNet + UNet call) and `pose-detection`
    (ms per 512×512 photo: body network + controlnet_aux's peak finding and limb linking;
    the network alone is `network_ms`)."""
    import torch
    from PIL import Image

    from pipelines.build.export import MANIFEST
    from pipelines.core.layout import BODY_WEIGHTS, PART_FILES
    from pipelines.models.pose import PoseDetector, load_body_network, ov_body_network, presets

    settings = bench_settings(config, threads, standin_size, home)
    found = folders(settings, config.build if config.backend == "OpenVINO" else "fp32")
    shapes = json.loads((found["fp32"] / MANIFEST).read_text())
    size, latent = shapes["resolution"], shapes["latent_size"]
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((2, shapes["latent_channels"], latent, latent), dtype=np.float32)
    text = rng.standard_normal((2, 77, shapes["text_hidden_size"]), dtype=np.float32)
    condition = np.asarray(presets(size)["walking"], dtype=np.float32).transpose(2, 0, 1)[None] / 255
    condition = np.ascontiguousarray(np.repeat(condition, 2, axis=0))
    timestep = np.asarray([500], dtype=np.int64)
    photo = np.asarray(presets(512)["standing"].convert("RGB"))  # a drawn pose stands in for a photo
    # The body network's input exactly as controlnet_aux's Body prepares this photo (BGR,
    # 184×184, /256 - 0.5): random-noise inputs would make PyTorch hit slow denormals.
    small = np.asarray(Image.fromarray(photo).resize((184, 184), Image.Resampling.BICUBIC))[:, :, ::-1]
    body_input = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)[None], dtype=np.float32) / 256 - 0.5)
    result: list[np.ndarray] = []

    if config.backend == "OpenVINO":
        import openvino as ov

        from pipelines.core.cpu import detect, for_this_cpu
        from pipelines.core.registry import CONTROLNET_POSE

        core, props = ov.Core(), ov_props(config, threads, for_this_cpu(CONTROLNET_POSE, detect()).precision_hint)
        folder = found[config.build]
        compiled = {p: core.compile_model(folder / PART_FILES[p], "CPU", props) for p in ("controlnet", "unet")}
        control, unet = compiled["controlnet"].create_infer_request(), compiled["unet"].create_infer_request()
        names = [o.get_any_name() for o in compiled["controlnet"].outputs]
        inputs = {"sample": sample, "timestep": timestep, "encoder_hidden_states": text}

        def step():
            control.infer({**inputs, "controlnet_cond": condition})
            for name in names:
                unet.set_tensor(name, control.get_tensor(name))
            unet.infer(inputs)
            result[:] = [unet.get_output_tensor(0).data.copy()]

        network = ov_body_network(core.compile_model(folder / PART_FILES["openpose_body"], "CPU", props))
        weights = weights_mib(*(folder / PART_FILES[p].replace(".xml", ".bin") for p in ("controlnet", "unet")))
        body_weights = weights_mib(folder / PART_FILES["openpose_body"].replace(".xml", ".bin"))
    else:
        from diffusers import ControlNetModel, UNet2DConditionModel

        torch.set_num_threads(threads)
        controlnet = ControlNetModel.from_pretrained(found["pytorch"] / "controlnet").eval()
        unet_model = UNet2DConditionModel.from_pretrained(found["pytorch"] / "unet").eval()
        tensors = [torch.from_numpy(a) for a in (sample, timestep, text, condition)]

        def step():
            with torch.inference_mode():
                down, mid = controlnet(*tensors, return_dict=False)
                out = unet_model(
                    *tensors[:3], down_block_additional_residuals=down, mid_block_additional_residual=mid
                ).sample
            result[:] = [out.float().numpy()]

        network = load_body_network(found["pytorch"] / "openpose" / BODY_WEIGHTS)
        weights = weights_mib(found["pytorch"] / "controlnet", found["pytorch"] / "unet")
        body_weights = weights_mib(found["pytorch"] / "openpose" / BODY_WEIGHTS)
    detector = PoseDetector(network, 512)
    heatmaps: list[np.ndarray] = []

    def forward():
        with torch.inference_mode():
            heatmaps[:] = [np.concatenate([t.float().numpy().ravel() for t in network(body_input)])]

    with autocast(config):
        step_samples = measure(step, repeats)
        network_s = measure(forward, Repeats(2, 10, 30))
        detect_s = measure(lambda: detector.detector.detect_poses(photo), Repeats(1, 5, 30))
    return [
        row(
            "controlnet-step",
            config,
            step_samples,
            1,
            "s",
            cfg_batch=2,
            weights_mib=weights,
            output=save_output(out, "controlnet-step", config.name, result[0]),
            output_kind="tensor",
            source="stand-in",
            size=f"{size}x{size}",
        ),
        row(
            "pose-detection",
            config,
            detect_s,
            1000,
            "ms",
            network_ms=float(np.median(network_s)) * 1000,
            weights_mib=body_weights,
            output=save_output(out, "pose-detection", config.name, heatmaps[0]),
            output_kind="tensor",
            source="stand-in",
        ),
    ]
