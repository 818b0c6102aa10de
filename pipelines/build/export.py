"""PyTorch checkpoint (Hub id or folder) -> OpenVINO IR folder, quantized.

The same code serves a Hub model exported on a user's machine and an offline
stand-in: optimum-intel exports, NNCF quantizes.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from pipelines.build.serving_files import missing_serving_files, write_serving_files
from pipelines.core.folders import MANIFEST, building, damaged_files, read_manifest, write_manifest
from pipelines.core.registry import ModelSpec, Quantization, Task, ov_model_class

logger = logging.getLogger(__name__)
# How weight-only INT8 is stored, recorded in the manifest of each text-model export.
# Symmetric per-channel INT8 (no zero point) decompresses faster in the CPU plugin's
# FullyConnected kernels than the asymmetric default: about 10% per T5 decoder step on
# an AVX2 CPU. An export recorded with another format (or none) is stale: made again.
INT8_WEIGHTS_FORMAT = "int8_sym"
CALIBRATION_TEXTS = Path(__file__).resolve().parents[2] / "assets" / "calibration_sentences.txt"


def is_ir_folder(path: Path) -> bool:
    """An exported model: IR files in the folder, or (a diffusers-style pipeline) in its parts."""
    if not path.is_dir():
        return False
    if (path / "model_index.json").is_file():
        return any(path.glob("*/openvino*model*.xml"))
    return any(path.glob("openvino*model*.xml"))


def missing_ir_files(path: Path) -> list[str]:
    """Files an IR folder needs but lacks: each model's .bin, and its config."""
    missing = [
        str(xml.with_suffix(".bin").relative_to(path))
        for xml in sorted(path.rglob("openvino*model*.xml"))
        if not xml.with_suffix(".bin").is_file()
    ]
    if not any((path / name).is_file() for name in ("config.json", "model_index.json", MANIFEST)):
        missing.append("config.json")
    return missing


def weights_format(spec: ModelSpec, quantization: Quantization | None = None) -> str | None:
    """The weight format `export()` writes for `spec`, when it records one (text models, weight-only INT8)."""
    quantization = spec.quantization if quantization is None else quantization
    return INT8_WEIGHTS_FORMAT if spec.task.is_text and quantization is Quantization.INT8_WEIGHTS else None


def calibration_format(spec: ModelSpec) -> str | None:
    """How `export()` calibrates `spec`'s full INT8 text build (recorded in its manifest); None otherwise."""
    if not spec.task.is_text or spec.quantization is not Quantization.INT8:
        return None
    return "each text at its own length"


def is_stale_export(path: Path, spec: ModelSpec) -> bool:
    """An earlier export by this app (it has a manifest) whose weight format or calibration is no longer
    the one written."""
    if not (path / MANIFEST).is_file():
        return False
    manifest = read_manifest(path)
    weights, calibration = weights_format(spec), calibration_format(spec)
    return bool(
        (weights and manifest.get("weights") != weights) or (calibration and manifest.get("calibration") != calibration)
    )


def is_complete_ir_folder(path: Path, spec: ModelSpec | None = None) -> bool:
    """All files there at their recorded sizes, and (given the `spec` it was exported for) not
    written in an older format."""
    return (
        is_ir_folder(path)
        and not missing_ir_files(path)
        and not damaged_files(path)
        and not (spec and is_stale_export(path, spec))
        and not (spec and missing_serving_files(path, spec.task))
    )


def _quantize_activations(ov_model, tokenizer):
    """Full INT8 (weights and activations) with NNCF, calibrated on bundled sentences at their own lengths,
    as the app runs them."""
    import nncf

    texts = [t for t in CALIBRATION_TEXTS.read_text().splitlines() if t.strip()]
    names = {i.get_any_name() for i in ov_model.inputs}
    def sample(text: str) -> dict:
        enc = tokenizer(text, truncation=True, return_tensors="np")
        return {k: v for k, v in enc.items() if k in names}

    return nncf.quantize(
        ov_model,
        nncf.Dataset(texts, sample),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(texts),
    )


def export(spec: ModelSpec, source: str | Path, out_dir: Path, quantization: Quantization | None = None) -> Path:
    """Export `source` for `spec.task`, quantize it, and save IR + tokenizer in `out_dir`.

    Written in one step (`folders.building`), so an interrupted export never leaves a
    folder that looks finished.
    """
    quantization = spec.quantization if quantization is None else quantization
    if spec.task is Task.TEXT_TO_IMAGE:
        return _export_image(spec, source, out_dir, quantization)
    if spec.task is Task.CONTROLNET_POSE:
        from pipelines.build.controlnet_export import export_controlnet

        return export_controlnet(spec, source, out_dir, quantization)

    from optimum.intel import OVWeightQuantizationConfig
    from transformers import AutoTokenizer

    logger.info("exporting %s from %s to OpenVINO IR (%s)", spec.key, source, quantization.value)

    weights = weights_format(spec, quantization)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = ov_model_class(spec.task).from_pretrained(
        source,
        export=True,
        compile=False,
        quantization_config=OVWeightQuantizationConfig(bits=8, sym=True) if weights == INT8_WEIGHTS_FORMAT else None,
    )
    if quantization is Quantization.INT8:
        model.model = _quantize_activations(model.model, tokenizer)
    with building(out_dir) as partial:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        write_serving_files(partial, spec.task)
        manifest = {"source": str(source), "quantization": quantization.value}
        calibration = calibration_format(dataclasses.replace(spec, quantization=quantization))
        manifest |= ({"weights": weights} if weights else {}) | ({"calibration": calibration} if calibration else {})
        write_manifest(partial, manifest)
    return out_dir


def _export_image(spec: ModelSpec, source: str | Path, out_dir: Path, quantization: Quantization) -> Path:
    """Image tasks convert through `pipelines.build.convert` (the same code as its command line).

    The plain FP32 export of a checkpoint is kept once per source two levels up from
    `out_dir` (`<home>/.sd-fp32/<hash>`), so its variants (FP32, INT8, ToMe+INT8) share it.
    """
    import hashlib

    from pipelines.build.convert import SDConversion, convert_sd
    from pipelines.core.diffusion import native_size

    height, width = native_size(source)
    conversion = SDConversion(
        int8=quantization in (Quantization.INT8, Quantization.INT8_WEIGHTS),
        tome_ratio=spec.defaults.get("tome_ratio"),
        height=height,
        width=width,
    )
    base = out_dir.parent.parent / ".sd-fp32" / hashlib.sha1(str(source).encode()).hexdigest()[:16]
    return convert_sd(source, out_dir, conversion, fp32_base=base)
