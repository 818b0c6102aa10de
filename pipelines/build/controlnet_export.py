"""PyTorch -> one OpenVINO IR folder for the ControlNet pose tab (and its offline stand-ins).

optimum-intel has no ControlNet pipeline, so each part is converted here with
`openvino.convert_model` and saved with static shapes:

| file                                 | part                    | static inputs                          |
|--------------------------------------|-------------------------|----------------------------------------|
| `openvino_text_encoder_model.xml`    | CLIP text encoder       | input_ids 1×77                         |
| `openvino_controlnet_model.xml`      | OpenPose ControlNet     | latents 2×4×h×w, t, text, cond 2×3×H×W |
| `openvino_unet_model.xml`            | UNet + residual inputs  | latents, t, text, ControlNet residuals |
| `openvino_vae_decoder_model.xml`     | VAE decoder             | latent_sample 1×4×h×w                  |
| `openvino_openpose_body_model.xml`   | OpenPose body network   | image 1×3×184×184                      |

plus `tokenizer/`, `scheduler/` and `ovdemo.json` (source, quantization, shapes). Builds of the
UNet and the ControlNet (`pipelines.core.cpu` picks one for the CPU):

- `fp32`: as converted.
- `int8-weights`: INT8 weights with NNCF (weight-only compression), float activations.
- `int8`: Token Merging on the UNet (tomesd, as the SD tab's ToMe build), then NNCF post-training
  INT8 of weights and activations for both, calibrated on their inputs recorded while the FP32
  parts denoise a few prompts in the preset poses. Fastest on every CPU measured (Token Merging
  cuts the attention work); 8-bit dot-product units (VNNI, AMX) add to it.

The PyTorch source is one folder in this layout (a stand-in is built in it directly;
the Hub repos are assembled into it with symlinks):

    text_encoder/ tokenizer/ unet/ vae/ scheduler/   <- stable-diffusion-v1-5/stable-diffusion-v1-5
    controlnet/                                      <- lllyasviel/sd-controlnet-openpose
    openpose/body_pose_model.pth                     <- lllyasviel/Annotators

    python -m pipelines.build controlnet --source DIR_OR_HUB --out DIR [--fp32 | --int8] [--push-to user/repo]
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from pipelines.build.serving_files import write_serving_files
from pipelines.core.diffusion import CFG_BATCH, vae_scale_factor
from pipelines.core.diffusion import CLIP_MAX_TOKENS as TOKENS
from pipelines.core.folders import MANIFEST, building, read_manifest, write_manifest
from pipelines.core.layout import BODY_WEIGHTS, PART_FILES, SD_PARTS
from pipelines.core.registry import ModelSpec, Quantization, Task
from pipelines.models.pose import load_body_network

logger = logging.getLogger(__name__)

# controlnet_aux's Body runs the network once, at scale 0.5 of a 368-pixel box: a square
# image of any size becomes 184×184 (a multiple of the stride 8, so no padding).
BODY_INPUT = 184
QUANTIZED_PARTS = ("unet", "controlnet")

# --------------------------------------------------------------------------- Hub sources


def assemble_hub_source(
    spec: ModelSpec, snapshot: Callable[[str, list[str]], Path | None], out_dir: Path
) -> Path | None:
    """Download the three PyTorch repos (only the files used) and link them into `out_dir`
    in the source layout; None when any of them can't be had."""
    base, annotators = spec.defaults["base_repo"], spec.defaults["annotator_repo"]
    sd = snapshot(base, [f"{p}/*" for p in SD_PARTS if p != "vae"] + ["vae/config.json", "vae/*.safetensors"])
    control = snapshot(spec.torch_repo, ["config.json", "*.safetensors"])
    pose = snapshot(annotators, [BODY_WEIGHTS])
    if sd is None or control is None or pose is None:
        return None
    links = {**{p: sd / p for p in SD_PARTS}, "controlnet": control, "openpose": pose}
    with building(out_dir) as partial:
        for name, target in links.items():
            (partial / name).symlink_to(target.resolve(), target_is_directory=True)
        config = {"base": base, "controlnet": spec.torch_repo, "pose": annotators}
        (partial / "config.json").write_text(json.dumps(config))
    return out_dir


# --------------------------------------------------------------------------- conversion


def _wrappers():
    """torch modules with positional tensor inputs and tuple outputs, for tracing."""
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            return self.model(input_ids, return_dict=False)[0]

    class ControlNet(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond):
            down, mid = self.model(
                sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale=1.0, return_dict=False
            )
            return (*down, mid)

    class UNet(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, sample, timestep, encoder_hidden_states, *residuals):
            return self.model(
                sample,
                timestep,
                encoder_hidden_states,
                down_block_additional_residuals=residuals[:-1],
                mid_block_additional_residual=residuals[-1],
                return_dict=False,
            )[0]

    class VaeDecoder(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, latent_sample):
            return self.model.decode(latent_sample, return_dict=False)[0]

    return TextEncoder, ControlNet, UNet, VaeDecoder


def _convert(module, example: tuple, input_names: list[str], output_names: list[str]):
    """`openvino.convert_model` with named inputs/outputs and the example's (static) shapes."""
    import openvino as ov
    import torch

    with torch.no_grad():
        model = ov.convert_model(module, example_input=example, input=[tuple(t.shape) for t in example])
    for port, name in zip(model.inputs, input_names, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, output_names, strict=True):
        port.get_tensor().set_names({name})
    return model


@contextlib.contextmanager
def _traceable_causal_mask():
    """transformers 5 builds CLIP's causal mask with code that does not trace; optimum-intel's
    exporter swaps in its traceable mask function, and so does this while converting."""
    from optimum.exporters.openvino.patching_utils import eager_mask_without_vmap
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    ALL_MASK_ATTENTION_FUNCTIONS.register("sdpa", eager_mask_without_vmap)
    try:
        yield
    finally:
        ALL_MASK_ATTENTION_FUNCTIONS.register("sdpa", sdpa_mask)


def convert_parts(
    source: Path, out_dir: Path, parts: tuple[str, ...] = tuple(PART_FILES), tome_ratio: float | None = None
) -> dict:
    """Convert `parts` of the source folder to FP32 IR in `out_dir`; return the shapes. `tome_ratio`:
    Token Merging on the UNet (its merge sizes are fixed by the trace, at the static shape)."""
    import gc

    import openvino as ov
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    TextEncoder, ControlNet, UNet, VaeDecoder = _wrappers()
    out_dir.mkdir(parents=True, exist_ok=True)
    save = lambda model, part: ov.save_model(model, out_dir / PART_FILES[part], compress_to_fp16=False)

    hidden = CLIPTextConfig.from_pretrained(source / "text_encoder").hidden_size
    vae_config = AutoencoderKL.load_config(source / "vae")
    vae_scale = vae_scale_factor(vae_config)
    unet_config = UNet2DConditionModel.load_config(source / "unet")
    latent = unet_config["sample_size"]
    size = latent * vae_scale

    if "text_encoder" in parts:
        logger.info("converting the text encoder")
        text_encoder = CLIPTextModel.from_pretrained(source / "text_encoder", dtype=torch.float32).eval()
        ids = torch.zeros((1, TOKENS), dtype=torch.int64)
        with _traceable_causal_mask():
            save(_convert(TextEncoder(text_encoder), (ids,), ["input_ids"], ["last_hidden_state"]), "text_encoder")
        del text_encoder

    if "vae_decoder" in parts:
        logger.info("converting the VAE decoder (%d×%d latents)", latent, latent)
        vae = AutoencoderKL.from_pretrained(source / "vae", torch_dtype=torch.float32).eval()
        example = (torch.zeros((1, vae.config.latent_channels, latent, latent)),)
        save(_convert(VaeDecoder(vae), example, ["latent_sample"], ["sample"]), "vae_decoder")
        del vae

    sample = torch.randn((CFG_BATCH, unet_config["in_channels"], latent, latent))
    timestep = torch.tensor([999], dtype=torch.int64)
    text = torch.randn((CFG_BATCH, TOKENS, hidden))
    inputs = ["sample", "timestep", "encoder_hidden_states"]
    controlnet = ControlNetModel.from_pretrained(source / "controlnet", torch_dtype=torch.float32).eval()
    cond = torch.rand((CFG_BATCH, 3, size, size))
    with torch.no_grad():
        residuals = ControlNet(controlnet)(sample, timestep, text, cond)
    names = [f"down_block_res_{i}" for i in range(len(residuals) - 1)] + ["mid_block_res"]
    if "controlnet" in parts:
        logger.info("converting the ControlNet (condition %d×%d, batch %d)", size, size, CFG_BATCH)
        example = (sample, timestep, text, cond)
        save(_convert(ControlNet(controlnet), example, [*inputs, "controlnet_cond"], names), "controlnet")
    del controlnet
    gc.collect()

    if "unet" in parts:
        logger.info(
            "converting the UNet (%d×%d latents, batch %d, %d residual inputs)", latent, latent, CFG_BATCH, len(names)
        )
        unet = UNet2DConditionModel.from_pretrained(source / "unet", torch_dtype=torch.float32).eval()
        if tome_ratio:
            import tomesd

            logger.info("Token Merging on the UNet, ratio %.2f", tome_ratio)
            tomesd.apply_patch(unet, ratio=tome_ratio, use_rand=False)  # deterministic, as a trace must be
        save(_convert(UNet(unet), (sample, timestep, text, *residuals), [*inputs, *names], ["out_sample"]), "unet")
        del unet
    del residuals
    gc.collect()

    if "openpose_body" in parts:
        logger.info("converting the OpenPose body network")
        body = load_body_network(source / "openpose" / BODY_WEIGHTS)
        example = (torch.zeros((1, 3, BODY_INPUT, BODY_INPUT)),)
        save(_convert(body, example, ["image"], ["pafs", "heatmaps"]), "openpose_body")

    for part in ("tokenizer", "scheduler"):
        shutil.copytree(source / part, out_dir / part, dirs_exist_ok=True)
    write_serving_files(out_dir, Task.CONTROLNET_POSE)
    return {
        "resolution": size,
        "latent_size": latent,
        "latent_channels": unet_config["in_channels"],
        "vae_scale_factor": vae_scale,
        "vae_scaling_factor": vae_config["scaling_factor"],
        "text_hidden_size": hidden,
        "residuals": len(names),
        "cfg_batch": CFG_BATCH,
        "body_input": BODY_INPUT,
    }


def _copy_unquantized(ir_dir: Path, partial: Path) -> None:
    """Every file of an IR folder but its manifest and the parts a build quantizes (the UNet, the ControlNet)."""
    skip = shutil.ignore_patterns(MANIFEST, *(PART_FILES[p][:-4] + ".*" for p in QUANTIZED_PARTS))
    shutil.copytree(ir_dir, partial, ignore=skip, dirs_exist_ok=True)


def fp32_variant(ir_dir: Path, source: Path, out_dir: Path) -> Path:
    """An FP32 copy of a weight-compressed IR folder: only the UNet and the ControlNet are
    compressed, so those two are converted again and the rest is copied."""
    with building(out_dir) as partial:
        _copy_unquantized(ir_dir, partial)
        convert_parts(source, partial, QUANTIZED_PARTS)
        manifest = {k: v for k, v in read_manifest(ir_dir).items() if k not in ("tome_ratio", "calibration")}
        write_manifest(partial, {**manifest, "quantization": Quantization.NONE.value})
    return out_dir


def _compress_parts(fp32_dir: Path, partial: Path) -> None:
    """INT8 weight compression (NNCF) of the UNet and the ControlNet of an FP32 IR folder into `partial`."""
    import nncf
    import openvino as ov

    _copy_unquantized(fp32_dir, partial)
    core = ov.Core()
    for part in QUANTIZED_PARTS:
        logger.info("compressing the %s weights to INT8 (NNCF)", part)
        model = nncf.compress_weights(core.read_model(fp32_dir / PART_FILES[part]))
        ov.save_model(model, partial / PART_FILES[part], compress_to_fp16=False)
        del model


def compress_folder(fp32_dir: Path, out_dir: Path) -> Path:
    """INT8 weight compression (NNCF) of the UNet and the ControlNet of an FP32 IR folder."""
    with building(out_dir) as partial:
        _compress_parts(fp32_dir, partial)
        write_manifest(partial, {**read_manifest(fp32_dir), "quantization": Quantization.INT8_WEIGHTS.value})
    return out_dir


def _kept(array):
    """A recorded input as kept until calibration: float ones in float16, half the memory (a guided
    512×512 UNet call's inputs are about 54 MB in float32); `_restored` gives them back as fed."""
    import numpy as np

    return array.astype(np.float16) if array.dtype == np.float32 else array.copy()


def _restored(sample: dict) -> dict:
    import numpy as np

    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in sample.items()}


class _Recording:
    """A compiled model that keeps the inputs of every inference its requests run (calibration data)."""

    def __init__(self, compiled, samples: list[dict]):
        self._compiled, self._samples = compiled, samples
        self.outputs = compiled.outputs

    def input(self, name: str):
        return self._compiled.input(name)

    def create_infer_request(self):
        request, inputs, samples = self._compiled.create_infer_request(), self._compiled.inputs, self._samples

        class Request:
            def __getattr__(self, name):
                return getattr(request, name)

            def infer(self, feed):
                request.infer(feed)
                samples.append({port.get_any_name(): _kept(request.get_tensor(port).data) for port in inputs})

        return Request()


def calibration_samples(spec: ModelSpec, fp32_dir: Path, shapes: dict, prompts: int, steps: int) -> dict:
    """ControlNet and UNet inputs, recorded while the app's OpenVINO ControlNet pipeline runs the FP32
    parts in `fp32_dir` on `prompts` calibration prompts, one preset pose each, `steps` steps."""
    import openvino as ov
    from transformers import CLIPTokenizer

    from pipelines.build.convert import CALIBRATION_PROMPTS
    from pipelines.core.diffusion import DiffusionRequest, make_scheduler
    from pipelines.models.controlnet_pipeline import OVStableDiffusionControlNetPipeline
    from pipelines.models.pose import presets

    core = ov.Core()
    parts = ("text_encoder", "controlnet", "unet", "vae_decoder")
    compiled = {
        p: core.compile_model(fp32_dir / PART_FILES[p], "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for p in parts
    }
    samples: dict[str, list[dict]] = {"controlnet": [], "unet": []}
    clip = CLIPTokenizer.from_pretrained(fp32_dir / "tokenizer")

    def tokenize(text: str) -> tuple[dict, bool]:  # as the app's TextTokenizer, padded to 77
        return dict(clip(text, padding="max_length", max_length=TOKENS, truncation=True, return_tensors="np")), False

    scheduler = json.loads((fp32_dir / "scheduler" / "scheduler_config.json").read_text())
    pipeline = OVStableDiffusionControlNetPipeline(
        tokenize,
        compiled["text_encoder"],
        _Recording(compiled["controlnet"], samples["controlnet"]),
        _Recording(compiled["unet"], samples["unet"]),
        compiled["vae_decoder"],
        lambda: make_scheduler(spec.defaults.get("scheduler", "UniPCMultistepScheduler"), scheduler),
        shapes["resolution"],
        float(shapes["vae_scaling_factor"]),
    )
    poses = list(presets(shapes["resolution"]).values())
    for i, prompt in enumerate(CALIBRATION_PROMPTS[:prompts]):
        logger.info("calibration prompt %d/%d", i + 1, prompts)
        request = DiffusionRequest(prompt, "", steps, spec.defaults.get("guidance_scale", 7.5), seed=i).checked()
        pipeline(poses[i % len(poses)], request)
    return samples


def _quantize_parts(spec: ModelSpec, fp32_dir: Path, partial: Path, shapes: dict, prompts: int, steps: int) -> None:
    """INT8 weights and activations (NNCF, calibrated) of the UNet and the ControlNet of an FP32 IR folder."""
    import openvino as ov

    from pipelines.build.convert import _quantize_unet

    _copy_unquantized(fp32_dir, partial)
    samples = calibration_samples(spec, fp32_dir, shapes, prompts, steps)
    core = ov.Core()
    for part in QUANTIZED_PARTS:
        logger.info("quantizing the %s to INT8 on %d recorded inputs (NNCF)", part, len(samples[part]))
        model = _quantize_unet(core.read_model(fp32_dir / PART_FILES[part]), samples.pop(part), _restored)
        ov.save_model(model, partial / PART_FILES[part], compress_to_fp16=False)
        del model


def export_controlnet(spec: ModelSpec, source: str | Path, out_dir: Path, quantization: Quantization | None = None):
    """Source folder -> IR folder (`quantization` defaults to the spec's), written in one step
    (`folders.building`), so an interrupted export never looks finished."""
    quantization = spec.quantization if quantization is None else quantization
    source = Path(source)
    logger.info("exporting %s from %s to OpenVINO IR (%s)", spec.key, source, quantization.value)
    tome = spec.defaults.get("tome_ratio") if quantization is Quantization.INT8 else None
    calibration = {
        "prompts": spec.defaults.get("calibration_prompts", 4),
        "steps": spec.defaults.get("calibration_steps", 10),
    }
    if quantization is Quantization.INT8:
        from pipelines.build.convert import CALIBRATION_PROMPTS

        if not 1 <= calibration["prompts"] <= len(CALIBRATION_PROMPTS) or calibration["steps"] < 1:
            raise ValueError(
                f"Calibration takes 1 to {len(CALIBRATION_PROMPTS)} prompts and at least 1 step, got {calibration}."
            )
    with building(out_dir) as partial:
        if quantization is Quantization.NONE:
            shapes = convert_parts(source, partial)
        else:
            # Inside the partial folder: a killed export leaves nothing that outlives the next one.
            with tempfile.TemporaryDirectory(prefix="fp32-", dir=partial) as fp32:
                shapes = convert_parts(source, Path(fp32), tome_ratio=tome)
                if quantization is Quantization.INT8:
                    _quantize_parts(spec, Path(fp32), partial, shapes, **calibration)
                else:
                    _compress_parts(Path(fp32), partial)
        extra = {"tome_ratio": tome, "calibration": calibration} if quantization is Quantization.INT8 else {}
        write_manifest(partial, {"source": str(source), "quantization": quantization.value, **shapes, **extra})
    return out_dir


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an IR folder to a Hub repo the user owns (created if missing); returns its URL."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, exist_ok=True, private=private)
    message = "OpenVINO IR of SD 1.5 + OpenPose ControlNet"
    upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=message)
    return f"https://huggingface.co/{repo_id}"
