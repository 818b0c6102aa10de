"""What every workload shares: the configurations, how a call is timed, memory, outputs."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Config:
    """One way to run a workload.

    `build` names the OpenVINO IR: "fp32" (unquantized), "int8-weights" (INT8 weights, float
    activations), "int8" (INT8 weights and activations, calibrated) or "tome-int8" (Token Merging +
    INT8, Stable Diffusion only). The quantized builds compile with the precision hint the app
    picks for the model on this CPU (`pipelines.core.cpu`).
    """

    name: str
    backend: str  # "PyTorch" or "OpenVINO" (the app's Backend values)
    label: str
    precision_hint: str | None = None  # OpenVINO INFERENCE_PRECISION_HINT; None = the plugin's default
    autocast_bf16: bool = False  # PyTorch: run under torch.autocast("cpu", torch.bfloat16)
    build: str = "fp32"


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("pytorch-fp32", "PyTorch", "PyTorch fp32, eager (the app's baseline)"),
        Config("pytorch-bf16", "PyTorch", "PyTorch bf16 autocast", autocast_bf16=True),
        Config("openvino-fp32", "OpenVINO", "OpenVINO FP32 IR, f32 precision hint", precision_hint="f32"),
        Config("openvino-default", "OpenVINO", "OpenVINO FP32 IR, the plugin's default precision"),
        Config(
            "openvino-int8-weights", "OpenVINO", "OpenVINO INT8 weights, float activations (NNCF)", build="int8-weights"
        ),
        Config("openvino-int8", "OpenVINO", "OpenVINO INT8 weights and activations (NNCF, calibrated)", build="int8"),
        Config("openvino-tome-int8", "OpenVINO", "OpenVINO Token Merging + INT8", build="tome-int8"),
    )
}
BASELINE = "pytorch-fp32"


@dataclass(frozen=True)
class Repeats:
    """Warm-up calls (discarded), then up to `runs` timed calls, stopping early once the
    timed calls have taken `budget_s` (at least one is always timed). `pause_s`: idle time before
    each call, as between requests that reach the app one by one."""

    warmup: int
    runs: int
    budget_s: float = float("inf")
    pause_s: float = 0.0


REQUEST_PAUSE_S = 0.05
"""The pause before each timed text request. Calls back to back run up to twice as fast as the same
calls 50 ms apart, on both backends (caches and cores cool down while idle; a 2-core AVX2 VM:
MiniLM on OpenVINO 4.4 vs 8.9 ms, on PyTorch 11.5 vs 15.7 ms), and requests through the app's API
arrive apart: the benchmark times them as the app serves them."""


def measure(fn: Callable[[], object], repeats: Repeats) -> list[float]:
    """Seconds taken by each timed call of `fn`."""
    for _ in range(repeats.warmup):
        fn()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < max(1, repeats.runs) and (not samples or spent < repeats.budget_s):
        if repeats.pause_s:
            time.sleep(repeats.pause_s)
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
    return samples


def summary(samples: list[float], scale: float = 1.0) -> dict:
    """Median and p90 (nearest rank) of `samples` times `scale`, with the number of runs."""
    ordered = sorted(s * scale for s in samples)
    p90 = ordered[min(len(ordered) - 1, max(0, int(np.ceil(0.9 * len(ordered))) - 1))]
    return {"median": statistics.median(ordered), "p90": p90, "runs": len(ordered)}


def memory() -> dict[str, float | None]:
    """This process's peak resident memory, and its resident memory now split into
    anonymous (allocated) and file-backed (mapped weights), MiB. Linux only."""
    fields: dict[str, float] = {}
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) / 1024
    return {
        "peak_rss_mib": fields.get("VmHWM"),
        "rss_anon_mib": fields.get("RssAnon"),
        "rss_file_mib": fields.get("RssFile"),
    }


WEIGHT_SUFFIXES = (".bin", ".safetensors", ".pth", ".pt", ".onnx")


def weights_mib(*paths: Path | str) -> float | None:
    """Size on disk of the weight files (IR .bin, safetensors, ...) under `paths`, MiB; None
    when none of them is on disk (a Hub repo id: its files are in the Hub cache)."""
    paths = tuple(Path(p) for p in paths if Path(p).exists())
    if not paths:
        return None
    total = 0
    for path in paths:
        files = [path] if path.is_file() else path.rglob("*")
        total += sum(f.stat().st_size for f in files if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    return total / 2**20


def autocast(config: Config):
    """The PyTorch context of `config`: bf16 autocast, or nothing (torch is imported only when needed)."""
    if config.autocast_bf16:
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def bench_settings(config: Config, threads: int, standin_size: str, home: Path | None):
    """The app's `Settings` for `config`: no model cache (every process compiles), the
    configuration's precision hint, the benchmark's thread count and stand-in size."""
    from pipelines.core.settings import Settings

    return Settings.from_env(
        precision=config.precision_hint, threads=threads, cache_dir="", standin_size=standin_size, home=home
    )


def bench_runtime(settings):
    """The app's `Runtime`, with OpenVINO pinned to the benchmark's thread count."""
    from pipelines.serving.runtime import Runtime

    class BenchRuntime(Runtime):
        def ov_config(self, precision_hint: str | None = None) -> dict[str, str]:
            return {**super().ov_config(precision_hint), "INFERENCE_NUM_THREADS": str(self.settings.threads)}

    return BenchRuntime(settings)


def ov_props(config: Config, threads: int, app_hint: str | None = None) -> dict[str, str]:
    """`compile_model` properties for parts compiled directly (not through the app's Runtime);
    `app_hint`: the precision hint the app picks for the model, which its quantized builds use."""
    props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads), "CACHE_DIR": ""}
    if hint := config.precision_hint or (app_hint if config.build != "fp32" else None):
        props["INFERENCE_PRECISION_HINT"] = hint
    return props


QUANTIZATION_OF_BUILD = {"fp32": "fp32", "int8-weights": "int8-weights", "int8": "int8"}
"""The `pipelines.core.registry.Quantization` value of each text and ControlNet build."""


def spec_for_build(spec, config: Config):
    """`spec` in `config`'s build: the quantization it names, and for a quantized build the precision
    hint the app picks on this CPU (an FP32 configuration has its own hint, or the plugin's default)."""
    import dataclasses

    from pipelines.core.cpu import detect, for_this_cpu
    from pipelines.core.registry import Quantization

    app = for_this_cpu(spec, detect())
    quantization = Quantization(QUANTIZATION_OF_BUILD[config.build])
    hint = app.precision_hint if quantization is not Quantization.NONE else None
    return dataclasses.replace(app, quantization=quantization, precision_hint=hint)


def row(workload: str, config: Config, samples: list[float], scale: float, unit: str, **extra) -> dict:
    """One result: `workload` on `config`, its timing summary in `unit`, memory and `extra`."""
    return {
        "workload": workload,
        "config": config.name,
        "unit": unit,
        **summary(samples, scale),
        **extra,
        **memory(),
        # Other work on the machine shows here: above the thread count, runs were sharing cores.
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


# -- outputs, compared with PyTorch fp32's afterwards ------------------------------------------


def output_path(out: Path, workload: str, config: str, suffix: str) -> Path:
    folder = Path(out) / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{workload}-{config}{suffix}"


def save_output(out: Path, workload: str, config: str, value) -> str:
    """Keep what a configuration produced (array, text or image) for the quality columns."""
    if hasattr(value, "save"):  # PIL image
        path = output_path(out, workload, config, ".png")
        value.save(path)
    elif isinstance(value, str):
        path = output_path(out, workload, config, ".json")
        path.write_text(json.dumps(value))
    else:
        path = output_path(out, workload, config, ".npy")
        np.save(path, np.asarray(value, dtype=np.float32))
    return path.name


def load_output(out: Path, name: str):
    path = Path(out) / "outputs" / name
    if path.suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float64)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return np.load(path).astype(np.float64)


def compare(kind: str, value, reference) -> dict:
    """How `value` differs from PyTorch fp32's `reference`, by kind of output."""
    if kind == "text":
        return {"same_as_pytorch": value == reference, "quality": "same text" if value == reference else "differs"}
    if kind == "probabilities":
        same = int(np.argmax(value)) == int(np.argmax(reference))
        delta = float(np.abs(value - reference).max())
        return {"same_as_pytorch": same, "max_abs_diff": delta, "quality": f"{'same' if same else 'other'} label, "
                f"largest Δp {delta:.3f}"}  # fmt: skip
    if kind == "image":
        diff = value - reference
        mse = float((diff**2).mean())
        psnr = float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))
        mad = float(np.abs(diff).mean())
        return {"psnr_db": psnr, "mean_abs_diff": mad, "quality": f"PSNR {psnr:.1f} dB, mean Δ {mad:.1f}/255"}
    rel = float(np.linalg.norm(value - reference) / max(np.linalg.norm(reference), 1e-12))
    return {"relative_error": rel, "quality": f"relative error {rel:.2%}"}
