"""Benchmark: the app's requests on each backend, each configuration in its own process.

    python -m pipelines.bench [--quick] [--workloads classification translation startup] [--out DIR]
    python -m pipelines.bench --workloads sd --sd-dir DIR [--sd-steps 2] [--quick]
    python -m pipelines.bench --workloads controlnet [--steps N] [--out DIR]   # full-size, slow

Every configuration runs in a fresh process with the same thread count
(`OMP_NUM_THREADS`, `torch.set_num_threads`, OpenVINO `INFERENCE_NUM_THREADS`) and the
same inputs; warm-up runs are discarded, then median and p90 of N runs are reported,
with the process's peak RSS. Models resolve exactly as in the app (full-size stand-ins
offline, with the real all-MiniLM-L6-v2 where it is packaged). Results go to
`DIR/bench.json` and `DIR/bench.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> (backend, quantized IR?, INFERENCE_PRECISION_HINT, torch autocast bf16?)
CONFIGS: dict[str, tuple[str, bool, str | None, bool]] = {
    "pytorch-fp32": ("PyTorch", False, None, False),
    "pytorch-bf16": ("PyTorch", False, None, True),
    "openvino-fp32": ("OpenVINO", False, "f32", False),
    "openvino-default": ("OpenVINO", False, None, False),
    "openvino-int8": ("OpenVINO", True, None, False),
}
WORKLOADS = ("classification", "translation", "startup", "sd", "controlnet", "pose")
DEFAULT_WORKLOADS = ("classification", "translation", "startup")
# The ControlNet workload compares these (INT8 = NNCF weight compression of UNet + ControlNet).
CONTROLNET_CONFIGS = ("pytorch-fp32", "openvino-fp32", "openvino-int8")
SENTENCE = "The weather is lovely today, so we are going for a walk by the river."
TRANSLATION_TOKENS = 20


def _rss() -> dict[str, float]:
    """Peak and current resident memory of this process, MiB (anonymous vs file-backed)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return {
        "peak_rss_mib": fields.get("VmHWM"),
        "rss_anon_mib": fields.get("RssAnon"),
        "rss_file_mib": fields.get("RssFile"),
    }


def _settings(config: str, threads: int):
    from .settings import Settings

    _, _, hint, _ = CONFIGS[config]
    return Settings.from_env(precision=hint, threads=threads, cache_dir="")


def _dual(spec, config: str, threads: int):
    """The model of `spec` as the app resolves it; FP32 configurations get an unquantized IR."""
    from .export import export, is_ir_folder
    from .models import DualModel
    from .registry import Quantization
    from .resolve import resolve
    from .runtime import Runtime

    settings = _settings(config, threads)
    resolved = resolve(spec, settings)
    if not CONFIGS[config][1] and CONFIGS[config][0] == "OpenVINO":
        spec = dataclasses.replace(spec, quantization=Quantization.NONE)
        folder = resolved.ir_dir.parent / f"{resolved.ir_dir.name}-bench-fp32"
        if not is_ir_folder(folder):
            export(spec, resolved.torch_ref, folder)
        resolved = dataclasses.replace(resolved, spec=spec, ir_dir=folder)
    runtime = Runtime(settings)
    config_props = runtime.ov_config()
    config_props["INFERENCE_NUM_THREADS"] = str(threads)
    runtime.ov_config = lambda: config_props
    return DualModel(resolved, runtime)


def _time(fn, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def worker(workload: str, config: str, threads: int, warmup: int, runs: int) -> dict:
    """Run one workload on one configuration in this process; return its figures."""
    import contextlib

    import torch

    from .classification import Classifier
    from .registry import SENTIMENT, TRANSLATION
    from .translation import Translator

    torch.set_num_threads(threads)
    backend, _, _, autocast = CONFIGS[config]
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    if workload == "controlnet":
        return controlnet_worker(config, threads, warmup, runs)
    if workload == "pose":
        return pose_worker(config, threads, warmup, runs)
    if workload == "classification":
        dual = _dual(SENTIMENT, config, threads)
        classifier = Classifier(dual, dual)
        text = " ".join([SENTENCE] * 8)  # > 128 tokens: the static shape is full
        run = lambda: classifier(text, "", backend)
        extra = {"tokens": SENTIMENT.static_shape[1], "source": dual.resolved.source.value}
    elif workload == "translation":
        dual = _dual(TRANSLATION, config, threads)
        translator = Translator(dual)
        n = TRANSLATION_TOKENS
        run = lambda: translator(SENTENCE, "German", backend, max_new_tokens=n, min_new_tokens=n)
        extra = {"new_tokens": n, "source": dual.resolved.source.value}
    else:
        raise ValueError(f"unknown workload {workload!r}")
    with ctx:
        samples = _time(run, warmup, runs)
    ordered = sorted(samples)
    return {
        "workload": workload,
        "config": config,
        "threads": threads,
        "runs": runs,
        "median_ms": statistics.median(samples),
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        **extra,
        **_rss(),
    }


def controlnet_folders(settings) -> dict[str, Path]:
    """The full-size ControlNet pose stand-in: PyTorch folder, FP32 IR and INT8 IR (built once,
    where the app keeps it, so the app and the benchmark share it)."""
    from .controlnet_export import build_standin, compress_folder, export_controlnet
    from .export import is_ir_folder
    from .registry import CONTROLNET_POSE, Quantization

    root = settings.home / "standins" / "full" / CONTROLNET_POSE.key
    folders = {
        "pytorch": root / "pytorch",
        "fp32": root / f"openvino-{Quantization.NONE.value}",
        "int8": root / f"openvino-{Quantization.INT8_WEIGHTS.value}",
    }
    if not (folders["pytorch"] / "config.json").is_file():
        build_standin("full", folders["pytorch"])
    if not is_ir_folder(folders["fp32"]):
        export_controlnet(CONTROLNET_POSE, folders["pytorch"], folders["fp32"], Quantization.NONE)
    if not is_ir_folder(folders["int8"]):
        compress_folder(folders["fp32"], folders["int8"])
    return folders


def controlnet_worker(config: str, threads: int, warmup: int, runs: int) -> dict:
    """One denoising step of SD 1.5 + ControlNet at 512×512 with CFG (batch 2), and OpenPose
    body detection of a 512×512 photo (network + controlnet_aux post-processing)."""
    import numpy as np
    import torch

    from .controlnet_export import BODY_WEIGHTS, PART_FILES, load_body_network
    from .pose import PoseDetector, ov_body_network, presets

    torch.set_num_threads(threads)
    settings = _settings(config, threads)
    folders = controlnet_folders(settings)
    backend = CONFIGS[config][0]
    rng = np.random.default_rng(0)
    size, latent = 512, 64
    sample = rng.standard_normal((2, 4, latent, latent), dtype=np.float32)
    text = rng.standard_normal((2, 77, 768), dtype=np.float32)
    condition = np.asarray(presets(size)["walking"], dtype=np.float32).transpose(2, 0, 1)[None] / 255
    condition = np.ascontiguousarray(np.repeat(condition, 2, axis=0))
    timestep = np.asarray([500], dtype=np.int64)
    photo = np.asarray(presets(size)["standing"].convert("RGB"))  # pose drawing as a stand-in photo

    if backend == "OpenVINO":
        import openvino as ov

        core = ov.Core()
        props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads), "CACHE_DIR": ""}
        if CONFIGS[config][2]:
            props["INFERENCE_PRECISION_HINT"] = CONFIGS[config][2]
        folder = folders["int8" if CONFIGS[config][1] else "fp32"]
        compiled = {p: core.compile_model(folder / PART_FILES[p], "CPU", props) for p in ("controlnet", "unet")}
        control, unet = compiled["controlnet"].create_infer_request(), compiled["unet"].create_infer_request()
        names = [o.get_any_name() for o in compiled["controlnet"].outputs]
        inputs = {"sample": sample, "timestep": timestep, "encoder_hidden_states": text}

        def step():
            control.infer({**inputs, "controlnet_cond": condition})
            for name in names:
                unet.set_tensor(name, control.get_tensor(name))
            unet.infer(inputs)

        body = core.compile_model(folder / PART_FILES["openpose_body"], "CPU", props)
        detector = PoseDetector(ov_body_network(body), size)
        source = str(folder)
    else:
        from diffusers import ControlNetModel, UNet2DConditionModel

        controlnet = ControlNetModel.from_pretrained(folders["pytorch"] / "controlnet").eval()
        unet_model = UNet2DConditionModel.from_pretrained(folders["pytorch"] / "unet").eval()
        tensors = [torch.from_numpy(a) for a in (sample, timestep, text, condition)]

        def step():
            with torch.inference_mode():
                down, mid = controlnet(*tensors, return_dict=False)
                unet_model(
                    *tensors[:3],
                    down_block_additional_residuals=down,
                    mid_block_additional_residual=mid,
                    return_dict=False,
                )

        detector = PoseDetector(load_body_network(folders["pytorch"] / "openpose" / BODY_WEIGHTS), size)
        source = str(folders["pytorch"])

    detect = lambda: detector.detector.detect_poses(photo)
    step_ms = _time(step, min(warmup, 1), runs)
    detect_ms = _time(detect, warmup, max(runs, 5))
    return {
        "workload": "controlnet",
        "config": config,
        "threads": threads,
        "runs": runs,
        "step_s_median": statistics.median(step_ms) / 1000,
        "step_s_all": [round(x / 1000, 2) for x in step_ms],
        "detect_ms_median": statistics.median(detect_ms),
        "resolution": size,
        "cfg_batch": 2,
        "source": source,
        **_rss(),
    }


def pose_worker(config: str, threads: int, warmup: int, runs: int) -> dict:
    """OpenPose body detection alone: the network (1×3×184×184) and the whole detection of a
    512×512 image (network + controlnet_aux peak finding and limb linking). With random
    weights the heatmaps have many more peaks than a real photo, so the whole-detection
    figure over-states the post-processing; the network figure is the comparable one."""
    import numpy as np
    import torch
    from PIL import Image

    from .controlnet_export import BODY_WEIGHTS, PART_FILES, load_body_network
    from .pose import PoseDetector, ov_body_network, presets

    torch.set_num_threads(threads)
    folders = controlnet_folders(_settings(config, threads))
    backend, quantized, hint, _ = CONFIGS[config]
    if backend == "OpenVINO":
        import openvino as ov

        props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads), "CACHE_DIR": ""}
        if hint:
            props["INFERENCE_PRECISION_HINT"] = hint
        folder = folders["int8" if quantized else "fp32"]
        network = ov_body_network(ov.Core().compile_model(folder / PART_FILES["openpose_body"], "CPU", props))
    else:
        network = load_body_network(folders["pytorch"] / "openpose" / BODY_WEIGHTS)
    detector = PoseDetector(network, 512)
    photo = np.asarray(presets(512)["standing"].convert("RGB"))
    # The network input exactly as controlnet_aux's Body prepares it for this photo (BGR,
    # 184×184, /256 - 0.5): random-noise inputs make PyTorch hit slow denormal arithmetic.
    small = np.asarray(Image.fromarray(photo).resize((184, 184), Image.Resampling.BICUBIC))[:, :, ::-1]
    x = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)[None], dtype=np.float32) / 256 - 0.5)

    def forward():
        with torch.inference_mode():
            network(x)

    network_ms = _time(forward, warmup, runs)
    detect_ms = _time(lambda: detector.detector.detect_poses(photo), 1, max(3, runs // 2))
    return {
        "workload": "pose",
        "config": config,
        "threads": threads,
        "network_ms_median": statistics.median(network_ms),
        "detect_ms_median": statistics.median(detect_ms),
        **_rss(),
    }


def startup_worker(cache_dir: str) -> dict:
    """Process start -> every model compiled (as `python app.py` does before serving) -> the
    first answer of each text tab (the first request must not wait for a compile)."""
    from .settings import Settings
    from .startup import start

    spawned = float(os.environ["BENCH_SPAWNED_AT"])
    services = start(Settings.from_env(cache_dir=cache_dir))
    ready_s = time.time() - spawned
    first_ms = {}
    if services.translator:
        start_t = time.perf_counter()
        services.translator(SENTENCE, "German", "OpenVINO", max_new_tokens=TRANSLATION_TOKENS)
        first_ms["first_translation_ms"] = (time.perf_counter() - start_t) * 1000
    if services.classifier:
        start_t = time.perf_counter()
        services.classifier(SENTENCE, "", "OpenVINO")
        first_ms["first_classification_ms"] = (time.perf_counter() - start_t) * 1000
    records = services.runtime.records
    hits = [r.cache_hit for r in records.values()]
    return {
        "ready_s": ready_s,
        "compile_s": {name: round(r.load_s + r.compile_s, 2) for name, r in records.items()},
        "cache_misses": [name for name, r in records.items() if r.cache_hit is False],
        "first_answer_s": time.time() - spawned,
        **first_ms,
        "compiled": len(hits),
        "cache_hits": sum(bool(h) for h in hits),
        "failures": list(services.failures),
        **_rss(),
    }


def _spawn(args: list[str], threads: int, quick: bool, out: Path | None = None, extra: list[str] | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "BENCH_SPAWNED_AT": repr(time.time())}
    if out is not None:
        env["BENCH_OUT"] = str(out)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.bench", "--worker", *args, "--threads", str(threads)]
        + (["--quick"] if quick else [])
        + (extra or []),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _markdown(results: list[dict]) -> str:
    lines = []
    for workload in ("classification", "translation"):
        rows = [r for r in results if r.get("workload") == workload]
        if not rows:
            continue
        base = next((r["median_ms"] for r in rows if r["config"] == "pytorch-fp32" and "median_ms" in r), None)
        lines += [
            f"### {workload}",
            "| configuration | median ms | p90 ms | vs PyTorch fp32 | peak RSS MiB |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['config']} | failed: {r['error']} | | | |")
                continue
            ratio = f"{base / r['median_ms']:.2f}×" if base else "-"
            lines.append(
                f"| {r['config']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | {ratio} | {r['peak_rss_mib']:.0f} |"
            )
        lines.append("")
    rows = [r for r in results if r.get("workload") == "controlnet"]
    if rows:
        base = next((r for r in rows if r["config"] == "pytorch-fp32" and "step_s_median" in r), None)
        lines += [
            "### ControlNet pose (full-size SD 1.5 + ControlNet, 512×512, CFG batch 2, random weights)",
            "| configuration | s / step (ControlNet + UNet) | vs PyTorch | pose detection ms | peak RSS MiB |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['config']} | failed: {r['error']} | | | |")
                continue
            ratio = f"{base['step_s_median'] / r['step_s_median']:.2f}×" if base else "-"
            lines.append(
                f"| {r['config']} | {r['step_s_median']:.2f} | {ratio} | {r['detect_ms_median']:.0f} | "
                f"{r['peak_rss_mib']:.0f} |"
            )
        lines.append("")
    rows = [r for r in results if r.get("workload") == "pose"]
    if rows:
        lines += [
            "### OpenPose body detection (full body network, 512×512 image, random weights)",
            "| configuration | network ms (1×3×184×184) | whole detection ms | peak RSS MiB |",
            "|---|---|---|---|",
        ]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['config']} | failed: {r['error']} | | |")
                continue
            lines.append(
                f"| {r['config']} | {r['network_ms_median']:.0f} | {r['detect_ms_median']:.0f} | "
                f"{r['peak_rss_mib']:.0f} |"
            )
        lines.append("")
    lines += _sd_markdown(results)
    starts = [r for r in results if r.get("workload") == "startup"]
    if starts:
        lines += [
            "### time to ready (process start -> every model compiled -> first answer of each text tab)",
            "| model cache | ready s | first answer s | compiled from cache | peak RSS MiB |",
            "|---|---|---|---|---|",
        ]
        for r in starts:
            if "error" in r:
                lines.append(f"| {r['cache']} | failed: {r['error']} | | | |")
                continue
            lines.append(
                f"| {r['cache']} | {r['ready_s']:.1f} | {r['first_answer_s']:.1f} | "
                f"{r['cache_hits']} of {r['compiled']} | {r['peak_rss_mib']:.0f} |"
            )
    return "\n".join(lines)


# -- Stable Diffusion ----------------------------------------------------------------------
# One process per configuration, 512x512 with classifier-free guidance (UNet batch 2),
# the IR folders made by `python -m pipelines.convert sd` (see docs/sd.md):
#   DIR/fp32-pytorch (diffusers checkpoint), DIR/fp32, DIR/int8, DIR/tome-int8.
SD_CONFIGS: dict[str, str | None] = {
    "pytorch-fp32": None,
    "openvino-fp32": "fp32",
    "openvino-int8": "int8",
    "openvino-tome-int8": "tome-int8",
}
SD_PROMPT = "a cute yellow cartoon creature with big ears and red cheeks"
SD_SIZE = 512


def sd_worker(config: str, sd_dir: Path, threads: int, steps: int, quick: bool, size: int = SD_SIZE) -> dict:
    """Seconds per UNet step (CFG batch 2) and one full pipeline run, in this process."""
    import torch

    from .diffusion import StepTimer

    torch.set_num_threads(threads)
    folder = SD_CONFIGS[config]
    t0 = time.perf_counter()
    if folder is None:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(
            sd_dir / "fp32-pytorch", torch_dtype=torch.float32, safety_checker=None, requires_safety_checker=False
        )
    else:
        from optimum.intel import OVStableDiffusionPipeline

        ov_config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads), "CACHE_DIR": ""}
        pipe = OVStableDiffusionPipeline.from_pretrained(sd_dir / folder, compile=False, ov_config=ov_config)
        pipe.reshape(batch_size=1, height=size, width=size, num_images_per_prompt=1)
        pipe.compile()
    ready_s = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)

    unet_config = pipe.unet.config
    gen = torch.Generator("cpu").manual_seed(0)
    latent = size // pipe.vae_scale_factor
    sample = torch.randn(2, unet_config["in_channels"], latent, latent, generator=gen)
    text_dim = pipe.text_encoder.config.hidden_size if folder is None else pipe.text_encoder.config["hidden_size"]
    hidden = torch.randn(2, 77, text_dim, generator=gen)
    timestep = torch.tensor([500])

    def unet_step():
        with torch.inference_mode():
            pipe.unet(sample, timestep, encoder_hidden_states=hidden)

    warmup, runs = (1, 3) if quick else (2, 5)
    samples = _time(unet_step, warmup, runs)

    timer = StepTimer()

    def step_end(p, step, t, kwargs):
        timer.step()
        return kwargs

    with torch.inference_mode():
        start = time.perf_counter()
        timer.started = start
        image = pipe(
            SD_PROMPT,
            num_inference_steps=steps,
            guidance_scale=7.5,
            height=size,
            width=size,
            generator=torch.Generator("cpu").manual_seed(0),
            callback_on_step_end=step_end,
        ).images[0]
        pipeline_s = time.perf_counter() - start
    out = Path(os.environ.get("BENCH_OUT", "artifacts/bench"))
    out.mkdir(parents=True, exist_ok=True)
    image.save(out / f"sd-{config}.png")
    return {
        "threads": threads,
        "ready_s": ready_s,
        "unet_step_s": statistics.median(samples) / 1000,
        "unet_runs": runs,
        "pipeline_s": pipeline_s,
        "pipeline_steps": steps,
        "pipeline_step_s": timer.step_ms / 1000,
        "size": size,
        **_rss(),
    }


def _sd_image_differences(results: list[dict], out: Path) -> None:
    """Mean absolute pixel difference (0-255) and PSNR of each image vs the OpenVINO FP32 one (same seed)."""
    import numpy as np
    from PIL import Image

    reference = out / "sd-openvino-fp32.png"
    if not reference.is_file():
        return
    ref = np.asarray(Image.open(reference), dtype=np.float64)
    for r in results:
        path = out / f"sd-{r.get('config')}.png"
        if r.get("workload") == "sd" and path.is_file():
            diff = np.asarray(Image.open(path), dtype=np.float64) - ref
            mse = float((diff**2).mean())
            r["mean_abs_diff_vs_ov_fp32"] = float(np.abs(diff).mean())
            r["psnr_vs_ov_fp32_db"] = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _sd_markdown(results: list[dict]) -> list[str]:
    rows = [r for r in results if r.get("workload") == "sd"]
    if not rows:
        return []
    base = next((r.get("unet_step_s") for r in rows if r["config"] == "pytorch-fp32"), None)
    lines = [
        f"### Stable Diffusion, {rows[0].get('size', SD_SIZE)}x{rows[0].get('size', SD_SIZE)}, CFG (UNet batch 2)",
        "| configuration | UNet step s | vs PyTorch | pipeline s (steps) | s/step in pipeline | ready s "
        "| peak RSS MiB | image vs OV FP32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | failed: {r['error']} | | | | | | |")
            continue
        ratio = f"{base / r['unet_step_s']:.2f}×" if base else "-"
        diff = (
            f"{r['mean_abs_diff_vs_ov_fp32']:.2f}/255, {r['psnr_vs_ov_fp32_db']:.1f} dB"
            if "mean_abs_diff_vs_ov_fp32" in r
            else "-"
        )
        lines.append(
            f"| {r['config']} | {r['unet_step_s']:.2f} | {ratio} | {r['pipeline_s']:.1f} ({r['pipeline_steps']}) "
            f"| {r['pipeline_step_s']:.2f} | {r['ready_s']:.0f} | {r['peak_rss_mib']:.0f} | {diff} |"
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(DEFAULT_WORKLOADS))
    parser.add_argument("--sd-dir", type=Path, help="folder with SD IR folders (see sd_worker); needed for 'sd'")
    parser.add_argument("--sd-steps", type=int, default=2, help="denoising steps of the full SD pipeline run")
    parser.add_argument("--sd-size", type=int, default=SD_SIZE, help="image height and width (static)")
    parser.add_argument("--steps", type=int, default=3, help="timed denoising steps (controlnet workload)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warmup, runs = (2, 10) if args.quick else (5, 50)
    if args.workloads == ["controlnet"] or (args.worker and args.worker[0] == "controlnet"):
        warmup, runs = 1, args.steps

    if args.worker:
        if args.worker[0] == "sd":
            worker_args = (args.worker[1], Path(args.worker[2]), args.threads, args.sd_steps, args.quick, args.sd_size)
            print(json.dumps(sd_worker(*worker_args)))
        elif args.worker[0] == "startup":
            print(json.dumps(startup_worker(args.worker[1])))
        else:
            print(json.dumps(worker(args.worker[0], args.worker[1], args.threads, warmup, runs)))
        return

    results = []
    for workload in args.workloads:
        if workload == "startup":
            cache = Path(tempfile.mkdtemp(prefix="ov-cache-"))
            _spawn(["startup", ""], args.threads, args.quick)  # models on disk first: only the cache differs
            for label in ("empty (cold)", "warm (restart)"):
                results.append(
                    {"workload": "startup", "cache": label, **_spawn(["startup", str(cache)], args.threads, args.quick)}
                )
                print(json.dumps(results[-1]), flush=True)
            shutil.rmtree(cache, ignore_errors=True)
            continue
        if workload == "sd":
            if args.sd_dir is None:
                parser.error("--workloads sd needs --sd-dir")
            extra = ["--sd-steps", str(args.sd_steps), "--sd-size", str(args.sd_size)]
            for config in SD_CONFIGS:
                results.append(
                    {
                        "workload": "sd",
                        "config": config,
                        **_spawn(["sd", config, str(args.sd_dir), *extra], args.threads, args.quick, args.out),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
            _sd_image_differences(results, args.out)
            for r in results:
                if r.get("workload") == "sd":
                    r["size"] = r.get("size", args.sd_size)
            continue
        image_workload = workload in ("controlnet", "pose")
        configs = [c for c in args.configs if c in CONTROLNET_CONFIGS] if image_workload else args.configs
        for config in configs:
            results.append(
                {
                    "workload": workload,
                    "config": config,
                    **_spawn([workload, config], args.threads, args.quick, extra=["--steps", str(args.steps)]),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(results, indent=2))
    (args.out / "bench.md").write_text(_markdown(results) + "\n")
    print(_markdown(results))


if __name__ == "__main__":
    main()
