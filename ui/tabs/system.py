"""System tab: device, versions, and where every model came from and what it cost to compile."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import gradio as gr

from pipelines.core.cpu import detect
from pipelines.core.memory import rss_mb
from pipelines.serving.remote import RETRY_S
from pipelines.startup import Services
from ui.common import builds_table, without_paths

PACKAGES = ("openvino", "optimum-intel", "nncf", "torch", "transformers", "diffusers", "gradio")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _worker_state(services: Services) -> str:
    worker = services.worker
    if worker is None:
        return "in this process (`OVDEMO_TORCH_WORKER=0`)"
    if (rss := worker.rss_mb()) is not None:
        return f"worker process running, {rss:.0f} MB; it exits after {worker.idle_s:.0f} s without a request"
    return "worker process not running (it starts on the first PyTorch request)"


def _budget_state(services: Services) -> str:
    budget = services.budget
    if budget is None:
        return "memory budget: none"
    optional = ", ".join(budget.holding()) or "none"
    return (
        f"memory budget: {budget.limit_mb:.0f} MB, {budget.used_mb():.0f} MB in use; optional models loaded "
        f"(released least recently used first when the room is needed): {optional}"
    )


def _remote_state(services: Services) -> str:
    server = services.model_server
    if server is None:
        return "in this process"
    state = server.skipped() or f"no call has failed in the last {RETRY_S:.0f} s"
    return f"on a model server (`OVDEMO_OVMS_URL`; {state}); the local models answer when it does not"


def system_report(services: Services) -> str:
    """Markdown report of the runtime and of every model loaded so far."""
    runtime, settings = services.runtime, services.settings
    core = runtime.core
    lines = ["### Device", "| device | name | capabilities |", "|---|---|---|"]
    for device, name in runtime.devices().items():
        caps = ", ".join(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        lines.append(f"| {device}{' (in use)' if device == settings.device else ''} | {name} | {caps} |")
    lines += ["", f"CPU: {detect().describe()}."]
    cache = runtime.cache_bytes()  # on/off and the size: the folder itself is the server's business
    cache_state = "off" if cache is None else f"on ({cache / 2**20:.0f} MB)"
    config = {k: v for k, v in runtime.ov_config().items() if k != "CACHE_DIR"}  # the cache: next line
    lines += [
        "",
        "### OpenVINO settings",
        f"- compile properties: `{config}`",
        f"- model cache: {cache_state}",
        f"- PyTorch threads: {settings.threads}",
        f"- text models' OpenVINO inference: {_remote_state(services)}",
        f"- time to ready: {services.ready_s:.1f} s",
        "",
        "### Memory (resident)",
        f"- this process (OpenVINO): {rss_mb():.0f} MB",
        f"- PyTorch: {_worker_state(services)}",
        f"- {_budget_state(services)}",
        "",
        "### Models",
        "| model | source | build on this CPU, and why | precision hint | PyTorch baseline from |",
        "|---|---|---|---|---|",
    ]
    pose = services.pose.resolved if services.pose else None
    for resolved in services.sources():
        spec = resolved.spec
        label = services.pose.pipelines.ov_label.removeprefix("OpenVINO ") if resolved is pose else spec.precision_label
        build = label + (f": {spec.build_reason}" if spec.build_reason else "")
        hint = settings.precision or spec.precision_hint or "plugin default"
        lines.append(f"| {spec.title} | {resolved.describe()} | {build} | {hint} | {resolved.baseline_label} |")
    for key, message in services.failures.items():
        lines.append(f"| {key} | failed: {without_paths(message)} | - | - | - |")
    lines += builds_table(services.tuner)
    lines += [
        "",
        "### Compiled (at startup, or on first selection)",
        "| OpenVINO model | load s | compile s | model cache | memory added |",
        "|---|---|---|---|---|",
    ]
    for name, record in runtime.records.items():
        cache = {None: "off", True: "hit", False: "miss"}[record.cache_hit]
        cache += f" ({record.note})" if record.note else ""
        memory = "-" if record.memory_mb is None else f"{record.memory_mb:.0f} MB"
        lines.append(f"| {name} | {record.load_s:.2f} | {record.compile_s:.2f} | {cache} | {memory} |")
    lines += ["", "### Versions", "| package | version |", "|---|---|"]
    lines += [f"| {p} | {_version(p)} |" for p in PACKAGES]
    return "\n".join(lines)


def system_tab(services: Services) -> None:
    """The report as of startup; Refresh adds what compiled since (variants compile on first use)."""
    report = gr.Markdown(system_report(services))
    gr.Button("Refresh", size="sm").click(lambda: system_report(services), None, report, api_visibility="private")
