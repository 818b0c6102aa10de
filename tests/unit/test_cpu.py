"""The CPU's features, and the build the app picks for each model on it."""

from __future__ import annotations

import dataclasses

import pytest

from pipelines.build.export import calibration_format, is_stale_export
from pipelines.core import cpu
from pipelines.core.cpu import CpuFeatures, build_for, for_this_cpu, read_flags
from pipelines.core.folders import write_manifest
from pipelines.core.registry import (
    CONTROLNET_POSE,
    REGISTRY,
    SD_TOME_INT8,
    SENTIMENT,
    TRANSLATION,
    ZERO_SHOT,
    Quantization,
)
from pipelines.core.settings import Settings
from pipelines.sources.resolve import ov_repo
from pipelines.startup import pose_build

ZEN3 = CpuFeatures("AMD EPYC 7B13", frozenset({"avx2", "fma"}), ("FP32", "INT8", "BIN", "EXPORT_IMPORT"))
ZEN4 = CpuFeatures(
    "AMD EPYC 9B14", frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}), ("FP32", "INT8", "BF16")
)
SAPPHIRE_RAPIDS = CpuFeatures(
    "Intel Xeon Platinum 8480+",
    frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"}),
    ("FP32", "INT8", "BF16", "FP16"),
)


def test_read_flags_keeps_the_features_that_decide_a_build(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16\n"
    )
    name, flags = read_flags(cpuinfo)
    assert name == "AMD EPYC 9B14"
    assert flags == {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert read_flags(tmp_path / "absent") == (None, frozenset())


def test_describe_names_what_the_cpu_has_and_lacks():
    assert ZEN3.describe() == "AMD EPYC 7B13: AVX2, FMA (no VNNI, AMX or BF16)"
    assert ZEN4.describe() == "AMD EPYC 9B14: AVX2, FMA, AVX-512, AVX-512 VNNI, AVX512_BF16 (no AMX)"
    assert SAPPHIRE_RAPIDS.int8_units == "AMX-INT8" and SAPPHIRE_RAPIDS.bf16_units == "AMX-BF16"
    assert ZEN3.int8_units is None and ZEN3.bf16_units is None


def test_this_machine_is_read():
    found = cpu.detect()
    assert found.name and "FP32" in found.capabilities
    assert found.describe().startswith(found.name)


@pytest.mark.parametrize("spec", [SENTIMENT, ZERO_SHOT])
def test_8bit_activations_only_with_8bit_dot_product_units(spec):
    assert build_for(spec, ZEN3).quantization is Quantization.INT8_WEIGHTS
    assert "no 8-bit dot-product units" in build_for(spec, ZEN3).reason
    for machine in (ZEN4, SAPPHIRE_RAPIDS):
        build = build_for(spec, machine)
        assert build.quantization is Quantization.INT8 and machine.int8_units in build.reason
        assert build.precision_hint == "f32"  # bf16 ran the INT8 encoder slower
    assert build_for(spec, ZEN3).precision_hint is None


def test_translation_int8_weights_sd_as_published_controlnet_by_units():
    for machine in (ZEN3, ZEN4, SAPPHIRE_RAPIDS):
        assert build_for(TRANSLATION, machine).quantization is Quantization.INT8_WEIGHTS
        assert build_for(SD_TOME_INT8, machine).quantization is SD_TOME_INT8.quantization
    for machine in (ZEN3, ZEN4, SAPPHIRE_RAPIDS):  # Token Merging wins without 8-bit units too
        build = build_for(CONTROLNET_POSE, machine)
        assert build.quantization is Quantization.INT8 and "Token Merging" in build.reason
    assert "AVX2" in build_for(CONTROLNET_POSE, ZEN3).reason
    assert "AVX-512 VNNI" in build_for(CONTROLNET_POSE, ZEN4).reason


def test_for_this_cpu_keeps_the_model_and_records_why():
    spec = for_this_cpu(SENTIMENT, ZEN4)
    assert spec.key == SENTIMENT.key and spec.quantization is Quantization.INT8 and spec.build_reason
    assert spec.precision_label == "INT8" and for_this_cpu(SENTIMENT, ZEN3).precision_label == "INT8 weights"


def test_a_build_other_than_the_published_one_is_exported_not_downloaded():
    settings = Settings()
    assert ov_repo(CONTROLNET_POSE, settings) == REGISTRY[CONTROLNET_POSE.key].ov_repo
    other = dataclasses.replace(CONTROLNET_POSE, quantization=Quantization.NONE)
    assert ov_repo(other, settings) is None


def test_the_pose_int8_build_is_served_only_once_built(settings):
    """Startup never starts the long calibrated build by itself: it serves the published build and says why."""
    waiting = pose_build(CONTROLNET_POSE, ZEN4, settings)  # the INT8 build is not in the test home
    assert waiting.quantization is Quantization.INT8_WEIGHTS and "not built here yet" in waiting.build_reason
    assert "AVX-512 VNNI" in waiting.build_reason
    without_units = pose_build(CONTROLNET_POSE, ZEN3, settings)
    assert (
        without_units.quantization is Quantization.INT8_WEIGHTS and "not built here yet" in without_units.build_reason
    )
    assert "VNNI" not in without_units.build_reason
    named = pose_build(CONTROLNET_POSE, ZEN4, dataclasses.replace(settings, controlnet_ov_repo="you/pose-ir"))
    assert "OVDEMO_CONTROLNET_OV_REPO" in named.build_reason


def test_an_int8_text_export_calibrated_otherwise_is_made_again(tmp_path):
    spec = dataclasses.replace(SENTIMENT, quantization=Quantization.INT8)
    write_manifest(tmp_path, {"quantization": "int8"})  # before calibration was recorded (padded to 128)
    assert is_stale_export(tmp_path, spec)
    write_manifest(tmp_path, {"quantization": "int8", "calibration": calibration_format(spec)})
    assert not is_stale_export(tmp_path, spec)
