"""System tab: device, versions, and where every model came from and what it cost to compile."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import gradio as gr

from pipelines.startup import Services

from .common import without_paths

PACKAGES = ("openvino", "optimum-intel", "nncf", "torch", "transformers", "diffusers", "gradio")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def system_report(services: Services) -> str:
    """Markdown report of the runtime and of every model loaded so far."""
    runtime, settings = services.runtime, services.settings
    core = runtime.core
    lines = ["### Device", "| device | name | capabilities |", "|---|---|---|"]
    for device, name in runtime.devices().items():
        caps = ", ".join(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        lines.append(f"| {device}{' (in use)' if device == settings.device else ''} | {name} | {caps} |")
    cache = runtime.cache_bytes()  # on/off and the size: the folder itself is the server's business
    cache_state = "off" if cache is None else f"on ({cache / 2**20:.0f} MB)"
    config = {k: v for k, v in runtime.ov_config().items() if k != "CACHE_DIR"}  # the cache: next line
    lines += [
        "",
        "### OpenVINO settings",
        f"- compile properties: `{config}`",
        f"- model cache: {cache_state}",
        f"- PyTorch threads: {settings.threads}",
        f"- time to ready: {services.ready_s:.1f} s",
        "",
        "### Models",
        "| model | source | quantization | PyTorch baseline from |",
        "|---|---|---|---|",
    ]
    for resolved in services.sources():
        lines.append(
            f"| {resolved.spec.title} | {resolved.describe()} | {resolved.spec.quantization.value} | "
            f"{resolved.baseline_label} |"
        )
    for key, message in services.failures.items():
        lines.append(f"| {key} | failed: {without_paths(message)} | - | - |")
    lines += [
        "",
        "### Compiled (at startup, or on first selection)",
        "| OpenVINO model | load s | compile s | model cache |",
        "|---|---|---|---|",
    ]
    for name, record in runtime.records.items():
        cache = {None: "off", True: "hit", False: "miss"}[record.cache_hit]
        cache += f" ({record.note})" if record.note else ""
        lines.append(f"| {name} | {record.load_s:.2f} | {record.compile_s:.2f} | {cache} |")
    lines += ["", "### Versions", "| package | version |", "|---|---|"]
    lines += [f"| {p} | {_version(p)} |" for p in PACKAGES]
    return "\n".join(lines)


def system_tab(services: Services) -> None:
    """The report as of startup; Refresh adds what compiled since (variants compile on first use)."""
    report = gr.Markdown(system_report(services))
    gr.Button("Refresh", size="sm").click(lambda: system_report(services), None, report, api_visibility="private")
