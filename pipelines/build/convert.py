"""Convert diffusers checkpoints to OpenVINO IR folders the app loads.

    python -m pipelines.build sd SOURCE OUT [--int8] [--tome RATIO] [--fp32-base DIR] [--height H --width W]
    python -m pipelines.build sd --standin {tiny,small,sd15} OUT [--int8] [--tome RATIO]

`SOURCE` is any Stable Diffusion 1.x diffusers checkpoint: a Hub id
(e.g. `svjack/Stable-Diffusion-Pokemon-en`) or a local folder. `--standin` first builds
an offline stand-in of that size (random weights) next to `OUT` and converts it.

What each step uses:
  1. optimum-intel exports every part (text encoder, UNet, VAE) to FP32 IR.
  2. `--tome RATIO`: tomesd patches the PyTorch UNet with Token Merging and
     `openvino.convert_model` traces it at the static shape (`--height`/`--width`, CFG
     batch 2); the merge sizes are fixed by that trace, so the ToMe UNet serves that
     shape only (the app reshapes to it anyway).
  3. `--int8`: NNCF post-training quantization of the UNet (weights and activations),
     calibrated on UNet inputs recorded while the FP32 pipeline generates from a few
     prompts; the text encoder and VAE get NNCF 8-bit weight compression.

The command line is `pipelines.build.__main__`; `add_sd_parser` adds this sub-command to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.build.serving_files import write_serving_files
from pipelines.core.diffusion import CFG_BATCH, CLIP_MAX_TOKENS, native_size, vae_scale_factor
from pipelines.core.folders import MANIFEST, building, damaged_files, write_manifest
from pipelines.core.registry import Task

logger = logging.getLogger(__name__)

CALIBRATION_PROMPTS = (
    "a cute yellow cartoon creature with big ears and red cheeks",
    "a blue water turtle with a shell, simple background",
    "a green plant monster with a flower on its back",
    "a small orange fire lizard with a flame on its tail",
    "a purple ghost floating in the dark, smiling",
    "a drawing of a pink round creature singing",
)


@dataclass(frozen=True)
class SDConversion:
    """What `convert_sd` does to a checkpoint."""

    int8: bool = False
    tome_ratio: float | None = None
    height: int = 512
    width: int = 512
    calibration_prompts: int = 4
    calibration_steps: int = 4
    seed: int = 0

    def check(self) -> SDConversion:
        if self.tome_ratio is not None and not 0.0 < self.tome_ratio <= 0.75:
            raise ValueError(f"The Token Merging ratio must be above 0 and at most 0.75, got {self.tome_ratio!r}.")
        if self.height % 8 or self.width % 8 or min(self.height, self.width) < 64:
            raise ValueError(f"Height and width must be multiples of 8 from 64, got {self.height}x{self.width}.")
        if not 1 <= self.calibration_prompts <= len(CALIBRATION_PROMPTS):
            raise ValueError(
                f"Calibration prompts must be from 1 to {len(CALIBRATION_PROMPTS)}, got {self.calibration_prompts}."
            )
        if self.calibration_steps < 1:
            raise ValueError(f"Calibration steps must be at least 1, got {self.calibration_steps}.")
        return self


def is_sd_ir_folder(path: Path) -> bool:
    """A saved `OVStableDiffusionPipeline`: model_index.json and a UNet IR, every file at its recorded size."""
    return (
        (path / "model_index.json").is_file()
        and (path / "unet" / "openvino_model.xml").is_file()
        and not damaged_files(path)
    )


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.bin"))


def _tome_unet(source: str | Path, ratio: float, latent_hw: tuple[int, int], text_dim: int):
    """The PyTorch UNet with tomesd's Token Merging, traced to an OpenVINO model at a static shape.

    tomesd computes merge sizes from Python ints, so the trace is valid for this shape only.
    Random destination picks are off (`use_rand=False`): a traced graph must be deterministic.
    """
    import openvino as ov
    import tomesd
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=torch.float32).eval()
    tomesd.apply_patch(unet, ratio=ratio, use_rand=False)

    class Forward(torch.nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    h, w = latent_hw
    example = (
        torch.randn(CFG_BATCH, unet.config.in_channels, h, w),
        torch.tensor([999], dtype=torch.int64),
        torch.randn(CFG_BATCH, CLIP_MAX_TOKENS, text_dim),
    )
    with torch.no_grad():
        model = ov.convert_model(Forward(unet), example_input=example)
    # The names optimum's OVModelUnet feeds and reads.
    for port, name in zip(model.inputs, ("sample", "timestep", "encoder_hidden_states"), strict=True):
        port.get_tensor().set_names({name})
    model.outputs[0].get_tensor().set_names({"out_sample"})
    model.reshape({"sample": [CFG_BATCH, unet.config.in_channels, h, w], "timestep": [1],
                   "encoder_hidden_states": [CFG_BATCH, CLIP_MAX_TOKENS, text_dim]})  # fmt: skip
    return model


def _calibration_inputs(folder: Path, conversion: SDConversion) -> list[dict]:
    """UNet inputs recorded while the FP32 IR pipeline in `folder` generates from a few prompts."""
    import numpy as np
    import torch
    from optimum.intel import OVStableDiffusionPipeline

    pipe = OVStableDiffusionPipeline.from_pretrained(
        folder, compile=False, ov_config={"INFERENCE_PRECISION_HINT": "f32"}
    )
    pipe.reshape(batch_size=1, height=conversion.height, width=conversion.width, num_images_per_prompt=1)
    pipe.compile()
    recorded: list[dict] = []
    infer = pipe.unet.request

    def record(inputs, share_inputs=True):
        recorded.append({k: np.asarray(v).copy() for k, v in inputs.items()})
        return infer(inputs, share_inputs=share_inputs)

    pipe.unet.request = record
    for i, prompt in enumerate(CALIBRATION_PROMPTS[: conversion.calibration_prompts]):
        logger.info("calibration prompt %d/%d", i + 1, conversion.calibration_prompts)
        pipe(
            prompt,
            num_inference_steps=conversion.calibration_steps,
            guidance_scale=7.5,
            height=conversion.height,
            width=conversion.width,
            generator=torch.Generator("cpu").manual_seed(conversion.seed + i),
            output_type="latent",
        )
    return recorded


def _quantize_unet(model, samples: list[dict], transform=None):
    """NNCF post-training INT8 of weights and activations (transformer preset, no bias correction:
    it would run the whole UNet per layer); `transform` turns a kept sample into the model's inputs."""
    import nncf

    return nncf.quantize(
        model,
        nncf.Dataset(samples, transform),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(samples),
        advanced_parameters=nncf.AdvancedQuantizationParameters(disable_bias_correction=True),
    )


def _export_fp32(source: str | Path, folder: Path) -> None:
    from optimum.intel import OVStableDiffusionPipeline

    t0 = time.perf_counter()
    pipe = OVStableDiffusionPipeline.from_pretrained(source, export=True, compile=False, load_in_8bit=False)
    pipe.save_pretrained(folder)
    logger.info("exported %s to FP32 IR in %.0f s", source, time.perf_counter() - t0)


def convert_sd(
    source: str | Path, out_dir: Path, conversion: SDConversion = SDConversion(), fp32_base: Path | None = None
) -> Path:
    """Export the SD 1.x checkpoint `source` to an `OVStableDiffusionPipeline` folder `out_dir`.

    `fp32_base`: a folder where the plain FP32 export of `source` is kept and reused, so
    several variants of one checkpoint are exported once. Each folder is written in one
    step (`folders.building`), so an interrupted conversion never leaves one that looks
    finished. Returns `out_dir`.
    """
    conversion = conversion.check()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    logger.info("converting %s to OpenVINO IR in %s (%s)", source, out_dir, conversion)
    if fp32_base is not None and not is_sd_ir_folder(fp32_base):
        with building(fp32_base) as base:
            _export_fp32(source, base)
            write_manifest(base, {"source": str(source)})
    with building(out_dir) as partial:
        _convert_sd(source, partial, conversion, fp32_base)
    size_mb = folder_bytes(out_dir) / 1e6
    logger.info("converted %s in %.0f s: %s (%.1f MB)", source, time.perf_counter() - t0, out_dir, size_mb)
    return out_dir


def _convert_sd(source: str | Path, partial: Path, conversion: SDConversion, fp32_base: Path | None) -> None:
    import nncf
    import openvino as ov

    if fp32_base is None:
        _export_fp32(source, partial)
    else:
        logger.info("starting from the FP32 IR in %s", fp32_base)
        shutil.copytree(fp32_base, partial, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MANIFEST))
    text_dim = json.loads((partial / "text_encoder" / "config.json").read_text())["hidden_size"]

    unet_xml = partial / "unet" / "openvino_model.xml"
    calibration = _calibration_inputs(partial, conversion) if conversion.int8 else []
    if conversion.tome_ratio:
        vae_scale = vae_scale_factor(json.loads((partial / "vae_decoder" / "config.json").read_text()))
        latent_hw = (conversion.height // vae_scale, conversion.width // vae_scale)
        unet = _tome_unet(source, conversion.tome_ratio, latent_hw, text_dim)
        logger.info("traced the Token Merging UNet (ratio %.2f) at latents %s", conversion.tome_ratio, latent_hw)
    else:
        unet = ov.Core().read_model(unet_xml)
    if conversion.int8:
        logger.info("quantizing the UNet to INT8 with NNCF (%d calibration samples)", len(calibration))
        unet = _quantize_unet(unet, calibration)
        for part in ("text_encoder", "vae_decoder", "vae_encoder"):
            xml = partial / part / "openvino_model.xml"
            if xml.is_file():
                compressed = nncf.compress_weights(ov.Core().read_model(xml), mode=nncf.CompressWeightsMode.INT8_ASYM)
                _save(compressed, xml)
    if conversion.int8 or conversion.tome_ratio:
        _save(unet, unet_xml)

    write_serving_files(partial, Task.TEXT_TO_IMAGE)
    manifest = {"source": str(source), **asdict(conversion), "calibration_samples": len(calibration)}
    if conversion.tome_ratio:
        manifest["static_shape"] = [conversion.height, conversion.width]
    write_manifest(partial, manifest)


def _save(model, xml: Path) -> None:
    """Replace the IR at `xml` (its .bin is rewritten; the old weights are freed first)."""
    import openvino as ov

    tmp = xml.with_name("openvino_model.new.xml")
    ov.save_model(model, tmp, compress_to_fp16=False)
    xml.with_suffix(".bin").unlink(missing_ok=True)
    tmp.with_suffix(".bin").rename(xml.with_suffix(".bin"))
    tmp.rename(xml)


# -- command line -------------------------------------------------------------------------


def _run_sd(args: argparse.Namespace) -> None:
    from pipelines.build.standins import SD_SIZES, build_sd_pipeline

    if (args.source is None) == (args.standin is None):
        raise SystemExit("give either SOURCE (Hub id or folder) or --standin SIZE")
    source = args.source
    if args.standin:
        if args.standin not in SD_SIZES:
            raise SystemExit(f"--standin must be one of {SD_SIZES}")
        source = args.out.with_name(args.out.name + "-pytorch")
        if not (source / "model_index.json").is_file():
            build_sd_pipeline(args.standin, source)
    native = native_size(source)
    conversion = SDConversion(
        int8=args.int8,
        tome_ratio=args.tome,
        height=args.height or native[0],
        width=args.width or native[1],
        calibration_prompts=args.calibration_prompts,
        calibration_steps=args.calibration_steps,
    )
    convert_sd(source, args.out, conversion, fp32_base=args.fp32_base)


def add_sd_parser(subparsers) -> None:
    p = subparsers.add_parser("sd", help="Stable Diffusion 1.x text-to-image -> OVStableDiffusionPipeline IR")
    p.add_argument("source", nargs="?", help="diffusers checkpoint: Hub id or folder")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--standin", help="build an offline stand-in first: tiny, small or sd15 (random weights)")
    p.add_argument("--int8", action="store_true", help="NNCF INT8 UNet (calibrated), INT8 weights elsewhere")
    p.add_argument("--tome", type=float, metavar="RATIO", help="Token Merging ratio for the UNet, e.g. 0.4")
    p.add_argument("--height", type=int, help="static height for ToMe and calibration (default: native, 512)")
    p.add_argument("--width", type=int, help="static width for ToMe and calibration (default: native, 512)")
    p.add_argument(
        "--fp32-base",
        type=Path,
        help="folder that keeps the plain FP32 export of SOURCE: made there if missing, reused if present "
        "(several variants of one checkpoint are then exported once)",
    )
    p.add_argument("--calibration-prompts", type=int, default=SDConversion.calibration_prompts)
    p.add_argument("--calibration-steps", type=int, default=SDConversion.calibration_steps)
    p.set_defaults(func=_run_sd)
