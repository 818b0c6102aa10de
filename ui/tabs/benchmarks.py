"""Benchmarks tab: the project's measured table and chart, and a short measurement on this machine."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from pipelines.core.cpu import detect
from ui.common import builds_table, handle_errors
from ui.measure import REPEATS, Busy, measure, table, text_workloads

BENCH = Path(__file__).resolve().parents[2] / "docs" / "bench"
"""The project's measured results (`python -m bench`, see the README); fixed paths, never from a request."""
MEASURE_GROUP = "measure"


def measured_report() -> tuple[str, object | None]:
    """docs/bench/results.md (its first line names the machine) and its chart, when the checkout has them."""
    results, chart = BENCH / "results.md", BENCH / "chart.png"
    if not results.is_file():
        return "No measured results ship with this copy of the app; `python -m bench` makes them.", None
    from PIL import Image

    image = Image.open(chart) if chart.is_file() else None
    text = results.read_text(encoding="utf-8")
    return "### Measured by the project (`python -m bench`, every configuration in its own process)\n" + text, image


def benchmarks_tab(translator, classifier, tuner=None) -> None:
    """Render the tab inside the current `gr.Tab`; `translator` / `classifier` are the served tasks (or None),
    `tuner` how their builds were chosen (its table follows a measurement)."""
    workloads = text_workloads(translator, classifier)

    @handle_errors("The measurement")
    def run(progress=gr.Progress()):  # noqa: B008 - gradio injects progress through this default
        if not workloads:
            raise gr.Error("The text tabs are not loaded on this server, so there is nothing to measure.")
        progress(0, desc="Starting…")
        try:
            rows = measure(workloads, REPEATS, lambda done, total, what: progress((done, total), desc=what))
        except Busy as exc:
            gr.Warning(str(exc))
            return f"⏳ {exc}"
        builds = builds_table(tuner)
        return table(rows, detect().describe()) + "\n" + "\n".join(builds)

    gr.Markdown(
        "**Measure on this machine** runs the text tabs' requests on both backends, "
        f"{REPEATS} times each after a warm-up, and shows the medians of the hardware serving this page."
    )
    button = gr.Button("Measure on this machine", variant="primary")
    result = gr.Markdown(elem_id="measure-result")
    # Two may enter, so a second visitor is told at once that one is running instead of waiting in the queue.
    button.click(run, None, result, api_visibility="private", concurrency_id=MEASURE_GROUP, concurrency_limit=2)
    text, image = measured_report()
    if image is not None:
        gr.Image(image, label="Measured by the project", interactive=False, show_label=True, format="png")
    gr.Markdown(text, elem_id="measured-results")
