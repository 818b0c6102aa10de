"""The CPU that serves the app, and the rule that picks a build when none was measured on it.

What the CPU has is read once, from `/proc/cpuinfo` (the instruction sets) and from OpenVINO's CPU
plugin (its name and `OPTIMIZATION_CAPABILITIES`). The text models serve the build *timed* fastest on
this machine (`tuning`); `build_for()` is the rule for what is not timed (the image models without a
benchmark record, a text model whose candidates could not be built) and the precision hint of a
pinned build. The rule, from what `python -m bench` measured on the CPUs it was written on
(figures in docs/bench/):

- 8-bit activations (full INT8) only where the CPU has 8-bit dot-product units (AVX-512 VNNI,
  AVX-VNNI or AMX). Without them the plugin emulates the 8-bit products with AVX2, and full INT8
  is no faster than float activations at a typical length and takes 1.5× the memory (MiniLM on
  an AMD Zen 3: 4.7 ms INT8, 3.0 ms INT8 weights, 4.0 ms FP32 at 16 tokens straight on the
  plugin; 8.6 vs 7.1 ms at 19 tokens through the app's code in the benchmark, and within noise
  of each other at 128 tokens).
- Otherwise INT8 weights with float activations: a quarter of the FP32 weights' memory, and at least
  FP32's speed (the weights are expanded inside the matrix kernels).
- ControlNet pose: Token Merging on the UNet and full INT8 of UNet and ControlNet (as the SD tab's
  ToMe+INT8 build) on every CPU. Even without 8-bit dot-product units it wins: on an AVX2 Zen 3 one
  guided step beat PyTorch's by more than INT8 weights did, in less peak memory (the figures:
  docs/bench/controlnet-tome-int8.md): merging a ratio of the tokens cuts the UNet's attention work. Until
  that build is made (a calibration run, see `startup.pose_build`) the published INT8-weights IR is
  served.
- The T5 decoder runs one token at a time: matrix-vector products, bound by reading weights, so
  INT8 weights everywhere.
- An INT8 encoder on a CPU with bf16 units compiles with the f32 hint: the plugin's bf16 default ran
  the INT8 MiniLM slower (9.4 vs 7.7 ms at 128 tokens, AMD Zen 4 with AVX512_BF16).
- The SD tab's builds are the published Hub IRs, picked by the person using the tab.

An explicit `Settings.precision` (`--precision`) overrides the hint for every model.
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipelines.core.registry import ModelSpec, Quantization, Task

# The instruction sets that decide a build, by their /proc/cpuinfo names, and how people write them.
FEATURES: dict[str, str] = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512_BF16",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
}
INT8_UNITS = ("amx_int8", "avx512_vnni", "avx_vnni")  # the strongest first
BF16_UNITS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class CpuFeatures:
    name: str
    flags: frozenset[str]
    """The instruction sets of `FEATURES` this CPU has."""
    capabilities: tuple[str, ...] = ()
    """OpenVINO's `OPTIMIZATION_CAPABILITIES` of the device (e.g. FP32, INT8, BF16)."""

    @property
    def int8_units(self) -> str | None:
        """The 8-bit dot-product units this CPU has (e.g. "AVX-512 VNNI"); None without any."""
        return next((FEATURES[f] for f in INT8_UNITS if f in self.flags), None)

    @property
    def bf16_units(self) -> str | None:
        """The bf16 units, where the plugin runs float models in bf16 by default; None without any."""
        found = next((FEATURES[f] for f in BF16_UNITS if f in self.flags), None)
        return found or ("BF16" if "BF16" in self.capabilities else None)

    def describe(self) -> str:
        """E.g. "AMD EPYC: AVX2, FMA (no VNNI, AMX or BF16)", fit for a report or the System tab."""
        has = [label for flag, label in FEATURES.items() if flag in self.flags]
        lacks = [
            what
            for what, present in (
                ("VNNI", self.int8_units),
                ("AMX", any(f.startswith("amx") for f in self.flags)),
                ("BF16", self.bf16_units),
            )
            if not present
        ]
        text = f"{self.name}: {', '.join(has) or 'no AVX2'}"
        return text + (
            f" (no {', '.join(lacks[:-1]) + ' or ' + lacks[-1] if len(lacks) > 1 else lacks[0]})" if lacks else ""
        )


def read_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str | None, frozenset[str]]:
    """The CPU's model name and the `FEATURES` among its flags, from `/proc/cpuinfo` (Linux); no flags elsewhere."""
    name, flags = None, set()
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None, frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name is None:
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name, frozenset(flags & FEATURES.keys())


@lru_cache(maxsize=1)
def detect() -> CpuFeatures:
    """This machine's CPU, as OpenVINO's CPU plugin and `/proc/cpuinfo` see it (read once)."""
    name, flags = read_flags()
    capabilities: tuple[str, ...] = ()
    try:
        import openvino as ov

        core = ov.Core()
        name = core.get_property("CPU", "FULL_DEVICE_NAME") or name
        capabilities = tuple(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # no OpenVINO CPU plugin here: what /proc/cpuinfo says
        pass
    return CpuFeatures(name or platform.processor() or platform.machine(), flags, capabilities)


@dataclass(frozen=True)
class Build:
    quantization: Quantization
    precision_hint: str | None
    """`INFERENCE_PRECISION_HINT` for this model; None = the plugin's default."""
    reason: str
    """Why this build, for the latency line and the System tab."""


def build_for(spec: ModelSpec, cpu: CpuFeatures) -> Build:
    """The build of `spec` that runs fastest on `cpu` (the rule in this module's docstring)."""
    units = cpu.int8_units
    if spec.task in (Task.SENTIMENT, Task.EMBEDDING):
        hint = "f32" if cpu.bf16_units else None
        if units:
            return Build(Quantization.INT8, hint, f"INT8 weights and activations: this CPU has {units}")
        return Build(
            Quantization.INT8_WEIGHTS,
            hint,
            "INT8 weights, float activations: this CPU has no 8-bit dot-product units (VNNI or AMX), "
            "so 8-bit activations would be emulated: no faster, and more memory",
        )
    if spec.task is Task.TRANSLATION:
        return Build(
            Quantization.INT8_WEIGHTS,
            None,
            "INT8 weights: the decoder makes one token at a time, so reading its weights is what takes the time",
        )
    if spec.task is Task.CONTROLNET_POSE:
        why = (
            f"this CPU has {units}"
            if units
            else "fewer tokens and 8-bit weights beat FP32 even without 8-bit dot-product units "
            "(faster per step than PyTorch on an AVX2 CPU, in less memory than INT8 weights: "
            "docs/bench/controlnet-tome-int8.md)"
        )
        return Build(
            Quantization.INT8, None, f"Token Merging + INT8 weights and activations for UNet and ControlNet: {why}"
        )
    return Build(spec.quantization, None, "the published build you picked")


def for_this_cpu(spec: ModelSpec, cpu: CpuFeatures) -> ModelSpec:
    """`spec` with the build `build_for` picks on `cpu`."""
    build = build_for(spec, cpu)
    return dataclasses.replace(
        spec, quantization=build.quantization, precision_hint=build.precision_hint, build_reason=build.reason
    )
