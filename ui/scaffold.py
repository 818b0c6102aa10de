"""The frame every task tab is built in, and the one way a tab runs its task.

A tab lays out its own inputs and outputs and takes the rest from here:
- `banner`: the stand-in warning;
- `diffusion_inputs`: an image tab's steps, guidance and seed;
- `controls`: the backend toggle, the run button and (for long tasks) Stop;
- `readout`: the latency line and the timing dict, with the session's last run of each backend;
- `connect`: the click event (the endpoint), the latency line after it, Stop cancelling it;
- `answer` / `answer_in_steps`: the endpoint's body: check once, say what loads on first use, run.

Stopping is one mechanism for both image tabs, from the Stop button or an API client's
`job.cancel()` alike: gradio closes the endpoint's generator, which sets the task's cancel
token, and the task stops after its current step.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pipelines.core.diffusion import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_STEPS,
    MIN_GUIDANCE,
    MIN_STEPS,
)
from pipelines.core.protocol import BOTH, CHOICES, Backend, Cancelled, Result, Runner, backends, both_timing
from pipelines.core.resolved import ResolvedModel

from .common import latency_line, number_input, session_table, speedups, standin_banner

logger = logging.getLogger(__name__)

BACKENDS = list(CHOICES)
WAKE_S = 0.5
"""A stepped endpoint yields at least this often: gradio can close a generator only between two yields."""
Line = Callable[[dict, dict], tuple[str, dict]]
Present = Callable[[Result], tuple]
"""A result as the endpoint's outputs, in their order."""
PresentBoth = Callable[[Result, Result, dict], tuple]
"""A "Both" request's OpenVINO and PyTorch results and its timing dict (`both_timing`) as the endpoint's
outputs: the same outputs, in the same order, as one backend's, so an API client reads every choice alike."""


@dataclass
class Controls:
    backend: gr.Radio
    button: gr.Button
    stop: gr.Button | None = None


@dataclass
class Readout:
    latency: gr.Markdown
    timing: gr.JSON
    history: gr.State
    chart: gr.BarPlot


@dataclass
class DiffusionInputs:
    steps: gr.Slider
    guidance: gr.Slider
    seed: gr.Number


def diffusion_inputs(steps: int = DEFAULT_STEPS, seed: int = 42, guidance_info: str | None = None) -> DiffusionInputs:
    """Steps, guidance scale and seed of an image tab, in one row; each handed to the task's check as sent."""
    with gr.Row():
        return DiffusionInputs(
            number_input(gr.Slider(MIN_STEPS, MAX_STEPS, value=steps, step=1, label="Steps")),
            number_input(
                gr.Slider(
                    MIN_GUIDANCE,
                    MAX_GUIDANCE,
                    value=DEFAULT_GUIDANCE,
                    step=0.5,
                    label="Guidance scale",
                    info=guidance_info,
                )
            ),
            number_input(gr.Number(value=seed, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")),
        )


def image_fields(prompt: gr.Textbox, negative: gr.Textbox, knobs: DiffusionInputs, run: Controls) -> dict:
    """An image tab's inputs a URL can fill (`ui.embed`), by their query-parameter names."""
    return {
        "prompt": prompt,
        "negative": negative,
        "steps": knobs.steps,
        "guidance": knobs.guidance,
        "seed": knobs.seed,
        "backend": run.backend,
    }


def banner(*models: ResolvedModel, note: str = "") -> None:
    """The stand-in warning, when any of the tab's models is a stand-in."""
    if text := standin_banner(*models, note=note):
        gr.Markdown(text, elem_classes="standin-banner")


def controls(label: str, stoppable: bool = False) -> Controls:
    """The backend toggle (OpenVINO, PyTorch, or Both: the same request on each, one after the other)
    and the run button (and Stop, for a task that runs in steps)."""
    backend = gr.Radio(BACKENDS, value=BACKENDS[0], label="Backend", info="Both: OpenVINO, then PyTorch, side by side")
    with gr.Row():
        button = gr.Button(label, variant="primary")
        stop = gr.Button("Stop", variant="stop") if stoppable else None
    return Controls(backend, button, stop)


def readout(elem_id: str) -> Readout:
    """The latency line (`elem_id`), the session chart (`elem_id`-chart) and the timing dict of the last request."""
    latency = gr.Markdown(elem_id=elem_id)
    chart = gr.BarPlot(
        session_table({}),
        x="run",
        y="median_ms",
        color="backend",
        color_map=CHART_COLORS,
        label="This session: median latency per backend (runs)",
        x_title=" ",
        y_title="median ms",
        sort=None,
        height=220,
        visible=False,
        elem_id=f"{elem_id}-chart",
    )
    return Readout(latency, gr.JSON(label="Timing"), gr.State({}), chart)


CHART_COLORS = {Backend.OPENVINO.value: "#5b2a86", Backend.PYTORCH.value: "#ee4c2c"}


def session_chart(history: dict) -> tuple[gr.BarPlot, str]:
    """The readout's chart after a run (every run of this session on this tab, per backend) and the line
    under it with the speed-up of the medians. (Only the chart's data and visibility change: gradio 6.31
    draws a native plot one update late when its caption changes too.)"""
    table = session_table(history)
    found = speedups(table)
    line = " · ".join(f"{kind}: OpenVINO {ratio:.1f}× PyTorch's speed" for kind, ratio in found.items())
    return gr.BarPlot(table, visible=not table.empty), f"This session's medians: {line}" if line else ""


def show(line: Line):
    """The line, the history and the chart after a run, from its timing dict."""

    def update(timing: dict, history: dict):
        text, history = line(timing, history)
        chart, summary = session_chart(history)
        return text + (f"  \n{summary}" if summary else ""), history, chart

    return update


def connect(
    button: gr.Button,
    handler: Callable,
    inputs: Sequence,
    outputs: Sequence,
    shown: Readout,
    *,
    api_name: str,
    line: Line = latency_line,
    stop: gr.Button | None = None,
    **event_options,
):
    """The endpoint `api_name`: `handler(*inputs)` fills `outputs` (the readout's timing among
    them); then the latency line. `stop` cancels a running request."""
    event = button.click(handler, list(inputs), list(outputs), api_name=api_name, **event_options)
    event.success(
        show(line),
        [shown.timing, shown.history],
        [shown.latency, shown.history, shown.chart],
        api_visibility="private",
        show_progress="hidden",
    )
    if stop is not None:
        stop.click(None, cancels=[event], api_visibility="private")
    return event


def two_columns(
    event,
    shown: Readout,
    first: gr.components.Component,
    second: gr.components.Component | None,
    label: str,
    value: Callable[[dict], object] = lambda timing: timing["outputs"][Backend.PYTORCH.value],
) -> None:
    """After each run of `event`: for a "Both" request, `first` (OpenVINO's output) is labelled so and
    `second` shows PyTorch's, from the timing dict; for one backend, `first` takes back its `label` and
    `second` hides. With no `second` (the image tabs, whose one image holds both) only the label changes."""
    kind = type(first)

    def update(timing: dict):
        both = timing.get("backend") == BOTH
        if second is None:
            return kind(label=f"{label}: OpenVINO (left) · PyTorch (right)" if both else label)
        if both:
            pytorch = type(second)(value(timing), label=f"{label}: PyTorch", visible=True)
            return kind(label=f"{label}: OpenVINO"), pytorch
        return kind(label=label), type(second)(visible=False)

    outputs = [first] if second is None else [first, second]
    event.success(update, [shown.timing], outputs, api_visibility="private", show_progress="hidden")


def _prepare(task: Runner, backend: str, inputs: Sequence):
    chosen = backends(backend)
    request = task.check(*inputs)
    for each in chosen:
        if notice := task.first_use(request, each):
            gr.Info(notice)
    return request, chosen


def output_and_timing(result: Result) -> tuple:
    return result.output, result.timing


def openvino_output_both_timings(ov: Result, pt: Result, timing: dict) -> tuple:
    """A "Both" request whose outputs fit in JSON: OpenVINO's output first (as for one backend), and
    the timing dict with both runs and both outputs."""
    return ov.output, {**timing, "outputs": {Backend.OPENVINO.value: ov.output, Backend.PYTORCH.value: pt.output}}


def _outputs(results: list[Result], present: Present, present_both: PresentBoth) -> tuple:
    if len(results) == 1:
        return present(results[0])
    ov, pt = results
    return present_both(ov, pt, both_timing({Backend.OPENVINO: ov, Backend.PYTORCH: pt}))


def answer(
    task: Runner,
    backend: str,
    inputs: Sequence,
    present: Present = output_and_timing,
    present_both: PresentBoth = openvino_output_both_timings,
) -> tuple:
    """Check the request once, say what loads on first use, run on the backend (or both, OpenVINO first);
    the endpoint's outputs."""
    request, chosen = _prepare(task, backend, inputs)
    return _outputs([task.run(request, each) for each in chosen], present, present_both)


Show = Callable[[dict[Backend, Any], Backend, bool], tuple]
"""`show(latest, current, both)`: the endpoint's outputs while it runs, from the latest preview of each
backend so far (`current` sent the newest; `both`: a "Both" request)."""


def answer_in_steps(
    task: Runner,
    backend: str,
    inputs: Sequence,
    progress: gr.Progress,
    present: Present = output_and_timing,
    present_both: PresentBoth = openvino_output_both_timings,
    skips: int = 2,
    show: Show | None = None,
    unit: str = "steps",
    doing: str = "denoising",
) -> Iterator[tuple]:
    """`answer` for a task that runs in steps, as a generator: the task runs in a worker thread,
    progress is reported after each step (yielding `skips` skips, one per output, which keeps
    the request cancellable; or, when the step brings a preview, `show`'s outputs), and the last
    item is the endpoint's outputs. When gradio closes the generator (Stop, or the API's cancel)
    the cancel token is set and the task stops after its current step."""
    request, chosen = _prepare(task, backend, inputs)
    # gradio can close (cancel) a generator only once its first item is out: before that it has no handle on it.
    yield (gr.skip(),) * skips
    cancel, steps, outcome = threading.Event(), queue.Queue(), {}

    def work() -> None:
        try:
            results = []
            for each in chosen:
                if cancel.is_set():  # stopped while the first backend finished: the second does not start
                    stopped = f"Stopped before {each.value}'s run. Press the button to start again."
                    outcome["error"] = ValueError(stopped)
                    return
                began = time.perf_counter()

                def report(done, total, preview=None, each=each, began=began):
                    steps.put((each, done, total, preview, time.perf_counter() - began))

                results.append(task.run(request, each, report, cancel))
            outcome["outputs"] = _outputs(results, present, present_both)
        except Cancelled as exc:
            logger.info("%s stopped after step %d of %d", task.action, exc.done, exc.total)
            outcome["error"] = ValueError(f"{exc} Press the button to start again.")
        except BaseException as exc:  # handed to the request's thread, which reports it
            outcome["error"] = exc
        finally:
            steps.put(None)

    threading.Thread(target=work, name=f"{task.action} worker", daemon=True).start()
    progress(0, desc="Starting…")
    latest: dict[Backend, Any] = {}
    first: dict[Backend, tuple[int, float]] = {}  # each backend's first step: rates count from there
    finished = False
    try:
        while not finished:
            try:
                news = [steps.get(timeout=WAKE_S)]
            except queue.Empty:  # loading, or a slow step: yield anyway, so a cancel is taken at once
                yield (gr.skip(),) * skips
                continue
            while news[-1] is not None and not steps.empty():  # steps faster than the page: the newest counts
                news.append(steps.get_nowait())
            if news[-1] is None:
                finished, news = True, news[:-1]
            if not news:
                break
            fresh = [step for step in news if step[3] is not None]
            for each, _, _, preview, _ in fresh:
                latest[each] = preview
            each, done, total, _, elapsed = news[-1]
            desc = f"{each.value}: {doing}" if len(chosen) > 1 else doing.capitalize()
            for backend_, done_, _, _, elapsed_ in news:
                first.setdefault(backend_, (done_, elapsed_))
            start_done, start_s = first[each]
            if unit == "tokens" and elapsed > start_s:  # from the first token: tokenizing and loading left out
                desc += f" · {done} tokens, {(done - start_done) / (elapsed - start_s):.0f} tokens/s"
            elif done:  # the text encoder's share is in the first step's
                desc += f" · {elapsed / done * 1000:.0f} ms per step"
            progress((done, total), desc=desc, unit=unit)
            yield show(latest, fresh[-1][0], len(chosen) > 1) if fresh and show else (gr.skip(),) * skips
    finally:
        cancel.set()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["outputs"]
