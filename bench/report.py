"""The benchmark's report: output quality against PyTorch fp32, the speed targets, and the
markdown tables (the chart is `chart.py`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .core import BASELINE, CONFIGS, compare, load_output


@dataclass(frozen=True)
class Workload:
    """How a workload is reported: its title, and the model whose build the app picks for it."""

    title: str
    model: str
    """The registry key of the model, or "sd" (the SD tab's default variant, ToMe+INT8)."""


WORKLOADS: dict[str, Workload] = {
    "classification-short": Workload("Sentiment classification, MiniLM, a typical sentence, batch 1", "minilm-sst2"),
    "classification": Workload("Sentiment classification, MiniLM, 128 tokens, batch 1", "minilm-sst2"),
    "zero-shot-repeat": Workload("Zero-shot over 4 labels, asked again (label embeddings cached)", "all-minilm-l6-v2"),
    "translation": Workload("Translation, t5-small, English to German, 20 new tokens, greedy", "t5-small"),
    "sd-unet-step": Workload("Stable Diffusion, one UNet step with guidance (batch 2)", "sd"),
    "sd-pipeline": Workload("Stable Diffusion, one image (text encoder, steps, VAE decoder)", "sd"),
    "controlnet-step": Workload(
        "ControlNet pose, one ControlNet + UNet step with guidance", "sd15-controlnet-openpose"
    ),
    "pose-detection": Workload("OpenPose body detection of a 512×512 photo", "sd15-controlnet-openpose"),
}


def config_of(quantization, precision_hint: str | None) -> str:
    """The benchmark configuration that runs a build (`pipelines.core.registry.Quantization`, precision hint)."""
    from pipelines.core.registry import Quantization

    return {Quantization.INT8: "openvino-int8", Quantization.INT8_WEIGHTS: "openvino-int8-weights"}.get(
        quantization, "openvino-fp32" if precision_hint == "f32" else "openvino-default"
    )


def app_builds(cpu=None, home: Path | None = None) -> dict[str, dict[str, str]]:
    """Per workload, the configuration the app serves on `cpu` (default: this machine's) and why: for a text
    model, what the app's tuning record in `home` (default: the app's) says it measured and chose; the rule
    of `pipelines.core.cpu` where the record has nothing (and the reason then starts with "rule:")."""
    from pipelines.core.cpu import build_for, detect
    from pipelines.core.registry import REGISTRY
    from pipelines.core.settings import Settings
    from pipelines.tuning import RECORD, Choice, Record, machine_key

    cpu = cpu or detect()
    home = Path(home) if home else Settings.from_env().home
    models = Record(home / RECORD, machine_key(cpu)).data.get("models", {})
    found = {}
    for name, workload in WORKLOADS.items():
        if workload.model == "sd":
            found[name] = {"config": "openvino-tome-int8", "reason": "the SD tab's default variant"}
            continue
        if (entry := models.get(workload.model)) is not None:
            choice = Choice.from_dict(entry)
            config = config_of(choice.candidate.quantization, choice.candidate.precision_hint)
            found[name] = {"config": config, "reason": choice.reason(), "from": "record"}
            continue
        build = build_for(REGISTRY[workload.model], cpu)
        found[name] = {"config": config_of(build.quantization, build.precision_hint), "reason": f"rule: {build.reason}"}
    return found


IMAGE_WORKLOADS = {"sd-unet-step": "sd", "controlnet-step": "sd15-controlnet-openpose"}
BUILD_OF_CONFIG = {"openvino-int8-weights": "int8-weights", "openvino-int8": "int8", "openvino-tome-int8": "int8",
                   "openvino-fp32": "fp32", "openvino-default": "fp32"}  # fmt: skip


def record_images(results: list[dict], cpu, home: Path | None = None) -> None:
    """What this run measured of the image models, into the app's tuning record (`pipelines.tuning`): their
    steps take seconds, so the app times nothing of them at startup and reads this instead."""
    from pipelines.core.settings import Settings
    from pipelines.tuning import RECORD, Record, machine_key

    open_record = lambda: Record((Path(home) if home else Settings.from_env().home) / RECORD, machine_key(cpu))
    record = None
    medians: dict[str, dict[str, float]] = {}
    for r in results:
        if "median" in r and r.get("workload") in WORKLOADS:
            medians.setdefault(r["workload"], {})[r["config"]] = r["median"]
    if medians:
        record = open_record()
        record.record_bench(medians)
    for workload, key in IMAGE_WORKLOADS.items():
        rows = {r["config"]: r["median"] for r in results if r.get("workload") == workload and "median" in r}
        openvino = {config: median for config, median in rows.items() if config in BUILD_OF_CONFIG}
        if not openvino:
            continue
        record = record or open_record()
        best = min(openvino, key=openvino.get)
        record.record_images(key, {"fastest": best, "build": BUILD_OF_CONFIG[best], "median_s": openvino,
                                   "pytorch_fp32_s": rows.get(BASELINE)})  # fmt: skip


def add_quality(results: list[dict], out: Path) -> None:
    """Compare each saved output with PyTorch fp32's for the same workload (same inputs, same seed)."""
    for r in results:
        if "output" not in r or r["config"] == BASELINE:
            continue
        base = next((b for b in results if b.get("workload") == r["workload"] and b.get("config") == BASELINE), None)
        if base is None or "output" not in base:
            continue
        r.update(compare(r["output_kind"], load_output(out, r["output"]), load_output(out, base["output"])))


def _find(results: list[dict], workload: str, config: str) -> dict | None:
    return next(
        (r for r in results if r.get("workload") == workload and r.get("config") == config and "median" in r), None
    )


def targets(results: list[dict], app: dict[str, dict[str, str]], vnni: bool) -> list[dict]:
    """Each target with what was measured and whether it was met (None: not measured). The speed
    targets are set for a CPU with 8-bit dot-product units (`vnni`); on one without, they are shown
    and not judged, and OpenVINO ≥ 1× PyTorch fp32 on every workload is judged instead."""
    rows: list[dict] = []
    config = {workload: found["config"] for workload, found in app.items()}

    def ratio(workload: str, over: str = BASELINE) -> float | None:
        a, b = _find(results, workload, config[workload]), _find(results, workload, over)
        return b["median"] / a["median"] if a and b else None

    def median(workload: str) -> float | None:
        found = _find(results, workload, config[workload])
        return found and found["median"]

    def add(target: str, value: float | None, fmt: str, ok, judged: bool = True) -> None:
        measured = "not measured" if value is None else fmt.format(value)
        met = None if value is None else bool(ok(value))
        rows.append({"target": target, "measured": measured, "met": met if judged else None, "judged": judged})

    speed = [
        ("Classification, a typical sentence: OpenVINO ≤ 2 ms", median("classification-short"), "{:.2f} ms",
         lambda v: v <= 2),
        ("Classification, a typical sentence: ≥ 8× PyTorch fp32", ratio("classification-short"), "{:.2f}×",
         lambda v: v >= 8),
        ("Classification, 128 tokens: ≥ 5× PyTorch fp32", ratio("classification"), "{:.2f}×", lambda v: v >= 5),
        ("Classification, 128 tokens: ≥ 3× PyTorch bf16", ratio("classification", "pytorch-bf16"), "{:.2f}×",
         lambda v: v >= 3),
        ("Zero-shot, 4 labels asked again: ≤ 3 ms", median("zero-shot-repeat"), "{:.2f} ms", lambda v: v <= 3),
        ("Translation, 20 new tokens: ≥ 6× PyTorch fp32", ratio("translation"), "{:.2f}×", lambda v: v >= 6),
        ("Translation: ≤ 3 ms per token", median("translation") and median("translation") / 20, "{:.2f} ms",
         lambda v: v <= 3),
        ("SD UNet step, ToMe+INT8: ≥ 6× PyTorch fp32", ratio("sd-unet-step"), "{:.2f}×", lambda v: v >= 6),
        ("SD image, ToMe+INT8: ≥ 5× PyTorch fp32", ratio("sd-pipeline"), "{:.2f}×", lambda v: v >= 5),
        ("ControlNet + UNet step: ≥ 4× PyTorch fp32", ratio("controlnet-step"), "{:.2f}×", lambda v: v >= 4),
        ("Pose detection: no slower than PyTorch fp32", ratio("pose-detection"), "{:.2f}×", lambda v: v >= 1),
    ]  # fmt: skip
    for target, value, fmt, ok in speed:
        add(target + ("" if vnni else " (set for a VNNI CPU)"), value, fmt, ok, judged=vnni)
    if not vnni:
        for workload in WORKLOADS:
            add(f"Without VNNI: OpenVINO ≥ 1× PyTorch fp32, {workload}", ratio(workload), "{:.2f}×", lambda v: v >= 1)
    for workload, share in (("classification", 0.5), ("translation", 0.5), ("sd-unet-step", 0.3),
                            ("controlnet-step", 0.3)):  # fmt: skip
        a, b = _find(results, workload, config[workload]), _find(results, workload, BASELINE)
        value = a["peak_rss_mib"] / b["peak_rss_mib"] if a and b and a.get("peak_rss_mib") else None
        add(f"Peak RSS of OpenVINO ≤ {share}× PyTorch fp32, {workload}", value, "{:.2f}×",
            lambda v, share=share: v <= share)  # fmt: skip
    for workload in ("classification-short", "classification", "zero-shot-repeat", "translation"):
        served = _find(results, workload, config[workload])
        openvino = [r["median"] for r in results if r.get("workload") == workload and "median" in r
                    and str(r.get("config", "")).startswith("openvino")]  # fmt: skip
        value = served["median"] / min(openvino) if served and openvino else None
        add(f"The served build within 1.25× of the fastest OpenVINO build, {workload}", value, "{:.2f}×",
            lambda v: v <= 1.25)  # fmt: skip
        add(f"The served build faster than PyTorch fp32, {workload}", ratio(workload), "{:.2f}×", lambda v: v > 1)
    starts = {r.get("cache"): r for r in results if r.get("workload") == "startup" and "ready_s" in r}
    cold, warm = starts.get("empty"), starts.get("warm")
    add("Ready after a restart (warm cache) ≤ 0.3× a cold start", cold and warm and warm["ready_s"] / cold["ready_s"],
        "{:.2f}×", lambda v: v <= 0.3)  # fmt: skip
    waited = [n for r in starts.values() for n in r.get("compiled_during_first_requests", [])]
    add("The first request never waits for a compile", len(waited) if starts else None,
        "{:.0f} compiles after ready", lambda v: v == 0)  # fmt: skip
    return rows


def machine() -> str:
    """CPU model, cores and the instruction sets that matter for these figures."""
    import os

    from pipelines.core.cpu import detect

    return f"{detect().describe()}, {os.cpu_count()} logical cores"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s" if value >= 1 else f"{value:.3g} s"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def workload_table(results: list[dict], workload: str, app: dict[str, dict[str, str]]) -> list[str]:
    rows = [r for r in results if r.get("workload") == workload]
    if not rows:
        return []
    info = WORKLOADS[workload]
    app_config = app.get(workload, {}).get("config")
    base = _find(results, workload, BASELINE)
    extra = next((f", {r['steps']} steps" for r in rows if "steps" in r), "")
    size = next((f", {r['size']}" for r in rows if "size" in r), "")
    lines = [
        f"### {info.title}{extra}{size}",
        "| configuration | median | p90 | runs | vs PyTorch fp32 | peak RSS MiB | anon / file MiB at end "
        "| weights MiB | output vs PyTorch fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = r["config"] + (" (app)" if r["config"] == app_config else "")
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | | | | |")
            continue
        ratio = f"{base['median'] / r['median']:.2f}×" if base else "-"
        quality = "reference" if r["config"] == BASELINE else r.get("quality", "-")
        if workload == "translation":
            quality += f"; {r['ms_per_token']:.2f} ms/token"
        if r.get("tokens"):
            quality += f"; {r['tokens']} tokens"
        if workload == "pose-detection":
            quality += f"; network {r['network_ms']:.0f} ms"
        lines.append(
            f"| {name} | {_fmt(r['median'], r['unit'])} | {_fmt(r['p90'], r['unit'])} | {r['runs']} | {ratio} "
            f"| {_mib(r.get('peak_rss_mib'))} | {_mib(r.get('rss_anon_mib'))} / {_mib(r.get('rss_file_mib'))} "
            f"| {_mib(r.get('weights_mib'))} | {quality} |"
        )
    if app_config:
        lines.append(f"(app): the build the app serves on this CPU: {app[workload]['reason']}.")
    return [*lines, ""]


def startup_table(results: list[dict]) -> list[str]:
    starts = [r for r in results if r.get("workload") == "startup"]
    if not starts:
        return []
    lines = [
        "### Time to first result (process start -> every model compiled -> first answer of each text tab)",
        "| model cache | ready | first answer | compiled from cache | compiles after ready | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in starts:
        if "error" in r:
            lines.append(f"| {r['cache']} | failed: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {r['cache']} | {r['ready_s']:.1f} s | {r['first_answer_s']:.1f} s | {r['cache_hits']} of "
            f"{r['compiled']} | {len(r['compiled_during_first_requests'])} | {_mib(r.get('peak_rss_mib'))} |"
        )
    return [*lines, ""]


def visit_table(results: list[dict]) -> list[str]:
    """Per memory limit: each request of the visit, and the memory of both processes after it."""
    lines = []
    for r in (r for r in results if r.get("workload") == "visit"):
        title = f"### A visit of every tab and backend, {r['limit_gb']:g} GB machine"
        if "error" in r:
            lines += [title, f"failed: {r['error']}", ""]
            continue
        lines += [
            f"{title} (budget {r['budget_mb']:,} MB)",
            "| tab | request | backend | latency | model MB | app RSS MB | worker RSS MB | optional models held |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in r["visits"]:
            if v["tab"] == "startup":
                lines.append(f"| ready in {v['ready_s']:.1f} s | | | | | {v['app_rss_mb']:,.0f} | - | |")
                continue
            latency = f"refused: {v['refused']}" if "refused" in v else _fmt(v["latency_ms"], "ms")
            memory = f"{v['memory_mb']:,.0f}" if v.get("memory_mb") is not None else "-"
            worker = f"{v['worker_rss_mb']:,.0f}" if v.get("worker_rss_mb") else "-"
            held = ", ".join(v.get("held") or []) or "-"
            row = [v["tab"], v["what"], v["backend"], latency, memory, f"{v['app_rss_mb']:,.0f}", worker, held]
            lines.append("| " + " | ".join(row) + " |")
        lines += [f"Peak of both processes: {r['peak_total_mb']:,.0f} MB.", ""]
    return lines


def targets_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    mark = {True: "met", False: "missed", None: "-"}
    lines = ["### Targets", "| target | measured | |", "|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['measured']} | {mark[t['met']] if t.get('judged', True) else 'not judged here'} |"
        for t in rows
    ]
    return [*lines, ""]


def markdown(report: dict) -> str:
    """The whole report as markdown: conditions, one table per workload, startup, targets."""
    results = report["results"]
    conditions = report.get("conditions", {})
    lines = []
    if conditions:
        lines += [
            f"Machine: {conditions.get('machine', '-')}. Threads: {conditions.get('threads')}. "
            f"Models: {conditions.get('models', '-')}. "
            + ("Quick mode (fewer runs). " if conditions.get("quick") else "")
            + "Each configuration in its own process; median after warm-up. "
            + (
                f"Merged from {conditions['runs']} runs of other workloads (each workload's ratios from one run). "
                if conditions.get("runs")
                else ""
            )
            + f"1-minute load average at the end of each configuration: {conditions.get('load_avg', '-')}.",
            "",
        ]
    for workload in WORKLOADS:
        lines += workload_table(results, workload, conditions.get("app_builds", {}))
    lines += startup_table(results)
    lines += visit_table(results)
    lines += targets_table(report.get("targets", []))
    known = ", ".join(f"`{c.name}`: {c.label}" for c in CONFIGS.values())
    lines += [f"Configurations: {known}. (app) marks the build the app serves on this CPU.", ""]
    return "\n".join(lines)


def finite(value):
    """JSON has no infinity (an identical image has infinite PSNR)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
