"""OpenVINO vs PyTorch: the same request on both backends, measured, in the browser.

    python app.py [--models DIR] [--cache-dir DIR] [--device CPU] [--host ADDRESS] [--port 7860]

Startup resolves and compiles every OpenVINO model (progress in the log) before the
app takes requests; the PyTorch baselines load on first use. The app listens where
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say (a Space or a container sets them), else on
127.0.0.1:7860; `--host 0.0.0.0` serves the local network.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

import gradio as gr

from pipelines.core.images import MAX_UPLOAD_BYTES, limit_decoders
from pipelines.core.registry import CONTROLNET_POSE, SD_VARIANTS, SENTIMENT, TRANSLATION, ZERO_SHOT, ModelSpec
from pipelines.core.settings import Settings
from pipelines.startup import Services, start
from ui.common import failure_banner
from ui.embed import Fields, prefill
from ui.guard import SESSIONS, RequestCap
from ui.tabs.benchmarks import benchmarks_tab
from ui.tabs.classification import classification_tab
from ui.tabs.pose import pose_tab
from ui.tabs.sd import sd_tab
from ui.tabs.system import system_tab
from ui.tabs.translation import translation_tab


@dataclass(frozen=True)
class TabEntry:
    """One task tab: its title, its slug (`?tab=` in a URL), the service it runs (None when its models
    failed to load), how it is drawn (returning the inputs a URL can fill), and the models a failure
    banner names."""

    title: str
    slug: str
    service: Callable[[Services], object | None]
    render: Callable[[object], Fields]
    models: tuple[ModelSpec, ...]


TABS = (
    TabEntry("Translation", "translation", attrgetter("served.translator"), translation_tab, (TRANSLATION,)),
    TabEntry(
        "Classification",
        "classification",
        attrgetter("served.classifier"),
        classification_tab,
        (SENTIMENT, ZERO_SHOT),
    ),
    TabEntry("SD-ToMe-INT8", "sd", attrgetter("served.sd"), sd_tab, SD_VARIANTS[:1]),
    TabEntry("ControlNet pose", "pose", attrgetter("served.pose"), pose_tab, (CONTROLNET_POSE,)),
)
OTHER_TABS = (("Benchmarks", "benchmarks"), ("System", "system"))

QUEUE_MAX_SIZE = 64
DELETE_CACHE = (3600, 3600)
"""Every hour, delete the uploads and outputs (gradio's copies) older than an hour."""
HEADER = """# OpenVINO vs PyTorch
The same request through an OpenVINO-compiled model and its PyTorch original, timed on this machine.
Pick a backend next to each tab's button, or Both: the latency line compares your last run of each, the chart
every run of this session."""


BENCH_WORKLOADS = {
    "translation": ("translation",),
    "classification": ("classification-short", "classification", "zero-shot-repeat"),
    "sd": ("sd-unet-step", "sd-pipeline"),
    "pose": ("controlnet-step", "pose-detection"),
}
"""The `python -m bench` workloads of each tab."""


def slower_note(services: Services, slug: str) -> str:
    """A plain sentence when `python -m bench` found no OpenVINO build faster than PyTorch fp32 on one of the
    tab's workloads on this machine (the tuning record); empty otherwise."""
    if services.tuner is None:
        return ""
    slower = services.tuner.record.slower_than_pytorch(BENCH_WORKLOADS.get(slug, ()))
    parts = [f"{workload} (OpenVINO's fastest {ov:.4g}, PyTorch fp32 {pt:.4g})" for workload, ov, pt in slower]
    if not parts:
        return ""
    return (
        "⚠️ **On this machine no OpenVINO build beat PyTorch fp32** on "
        + "; ".join(parts)
        + ", as `python -m bench` measured here. The latency line below shows your own runs."
    )


def analytics_requested(env: dict[str, str] | None = None) -> bool:
    """gradio's usage analytics only when GRADIO_ANALYTICS_ENABLED asks for them (gradio's default is on)."""
    env = os.environ if env is None else env
    return env.get("GRADIO_ANALYTICS_ENABLED", "").strip().lower() in ("1", "true", "yes", "on")


def launch_options() -> dict:
    """What every launch of the app passes to `launch()`: no upload larger than the app accepts reaches the
    disk, no request body larger than the largest valid one reaches gradio (`ui.guard.RequestCap`), and
    gradio keeps `ui.guard.SESSIONS` sessions, not 10,000. Address and port are left to GRADIO_SERVER_NAME /
    GRADIO_SERVER_PORT."""
    from starlette.middleware import Middleware

    return {
        "max_file_size": MAX_UPLOAD_BYTES,
        "state_session_capacity": SESSIONS,
        "app_kwargs": {"middleware": [Middleware(RequestCap)]},
    }


def build_demo(
    services: Services,
    queue_max_size: int = QUEUE_MAX_SIZE,
    delete_cache: tuple[int, int] | None = DELETE_CACHE,
) -> gr.Blocks:
    """The Blocks app for ready `services`: one tab per task, then the Benchmarks and System tabs; a URL's
    query parameters open a tab with its inputs filled (`ui.embed`)."""
    limit_decoders()
    with gr.Blocks(
        title="OpenVINO vs PyTorch", delete_cache=delete_cache, analytics_enabled=analytics_requested()
    ) as demo:
        header = gr.Markdown(HEADER)
        panels: list[gr.Tab] = []
        fields: list[Fields] = []
        with gr.Tabs() as tabs:
            for tab in TABS:
                with gr.Tab(tab.title, id=tab.slug) as panel:
                    if note := slower_note(services, tab.slug):
                        gr.Markdown(note)
                    if (service := tab.service(services)) is not None:
                        fields.append(tab.render(service))
                    else:
                        gr.Markdown(failure_banner(services.failure_of(*tab.models)))
                        fields.append({})
                panels.append(panel)
            with gr.Tab("Benchmarks", id="benchmarks") as panel:
                benchmarks_tab(services.served.translator, services.served.classifier, services.tuner)
            panels.append(panel)
            with gr.Tab("System", id="system") as panel:
                system_tab(services)
            panels.append(panel)
        fields += [{}, {}]
        slugs = [tab.slug for tab in TABS] + [slug for _, slug in OTHER_TABS]

        def opened(request: gr.Request):
            chosen, only, values = prefill(dict(request.query_params), slugs, fields)
            # "hidden", not False: gradio 6.31 keeps the button of a tab updated to visible=False in the tab bar.
            shown = [gr.Tab(visible=True if not only or slug == chosen else "hidden") for slug in slugs]
            selected = gr.Tabs(selected=chosen) if chosen else gr.skip()
            header_update = gr.Markdown(visible=not only)
            return [selected, header_update, *shown, *(value for row in values for value in row)]

        every_field = [component for found in fields for component in found.values()]
        demo.load(opened, None, [tabs, header, *panels, *every_field], api_visibility="private", queue=False)
    # One request at a time per event: two requests sharing the cores would distort
    # the very latencies the app exists to show.
    demo.queue(max_size=queue_max_size, default_concurrency_limit=1)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=str, help="folder with OpenVINO IR, one sub-folder per model key")
    parser.add_argument("--home", type=str, help="where exported and stand-in models are kept")
    parser.add_argument("--cache-dir", type=str, help="OpenVINO model cache; '' disables it")
    parser.add_argument("--device", type=str, help="OpenVINO device, default CPU")
    parser.add_argument("--precision", type=str, help="INFERENCE_PRECISION_HINT: f32, bf16 or f16")
    parser.add_argument("--threads", type=int, help="PyTorch threads, default all cores")
    parser.add_argument("--standin-size", choices=["full", "small", "tiny"], help="size of offline stand-ins")
    parser.add_argument(
        "--retune", action="store_true", default=None, help="time the text models' builds again at this start"
    )
    parser.add_argument(
        "--ovms-url",
        help="KServe v2 server (OpenVINO Model Server) for the text tabs' OpenVINO inference, http://host:port",
    )
    parser.add_argument(
        "--host", help="address to listen on (default: GRADIO_SERVER_NAME, else 127.0.0.1; 0.0.0.0 for the LAN)"
    )
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT, else 7860)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(
        models_dir=args.models,
        home=args.home,
        cache_dir=args.cache_dir,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        standin_size=args.standin_size,
        ovms_url=args.ovms_url,
        retune=args.retune,
    )
    demo = build_demo(start(settings))
    demo.launch(server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main()
