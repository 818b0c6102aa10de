"""System tab: device, versions, and where every model came from and what it cost to compile."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import gradio as gr

from pipelines.startup import Services

PACKAGES = ("openvino", "optimum-intel", "nncf", "torch", "transformers", "diffusers", "gradio")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def system_report(services: Services) -> str:
    """Markdown report of the runtime, built once at startup."""
    runtime, settings = services.runtime, services.settings
    core = runtime.core
    lines = ["### Device", "| device | name | capabilities |", "|---|---|---|"]
    for device, name in runtime.devices().items():
        caps = ", ".join(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        lines.append(f"| {device}{' (in use)' if device == settings.device else ''} | {name} | {caps} |")
    config = runtime.ov_config()
    lines += [
        "",
        "### OpenVINO settings",
        f"- compile properties: `{config}`",
        f"- model cache: `{runtime.cache_dir or 'off'}`",
        f"- PyTorch threads: {settings.threads}",
        f"- time to ready: {services.ready_s:.1f} s",
        "",
        "### Models",
        "| model | source | OpenVINO | load s | compile s | cache | PyTorch baseline from |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, dual in services.models.items():
        record = runtime.records.get(key)
        cache = {None: "off", True: "hit", False: "miss"}[record.cache_hit] if record else "-"
        lines.append(
            f"| {dual.spec.title} | {dual.resolved.describe()} | {dual.spec.precision_label} | "
            f"{record.load_s:.2f} | {record.compile_s:.2f} | {cache} | {dual.resolved.torch_ref} |"
            if record
            else f"| {dual.spec.title} | {dual.resolved.describe()} | - | - | - | - | - |"
        )
    for key, runner in services.runners.items():
        for name, record in runtime.records.items():
            if name.startswith(f"{key}/"):
                cache = {None: "off", True: "hit", False: "miss"}[record.cache_hit]
                lines.append(
                    f"| {runner.spec.title}: {name.split('/', 1)[1]} | {runner.resolved.describe()} | "
                    f"{runner.quantization} | {record.load_s:.2f} | {record.compile_s:.2f} | "
                    f"{cache} | {runner.resolved.torch_ref} |"
                )
    for key, message in services.failures.items():
        lines.append(f"| {key} | failed: {message} | - | - | - | - | - |")
    lines += ["", "### Versions", "| package | version |", "|---|---|"]
    lines += [f"| {p} | {_version(p)} |" for p in PACKAGES]
    return "\n".join(lines)


def system_tab(services: Services) -> None:
    gr.Markdown(system_report(services))
