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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import gradio as gr

from pipelines.diffusion import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_STEPS,
    MIN_GUIDANCE,
    MIN_STEPS,
)
from pipelines.protocol import Backend, Cancelled, Result, Task
from pipelines.resolve import ResolvedModel

from .common import latency_line, number_input, standin_banner

logger = logging.getLogger(__name__)

BACKENDS = [b.value for b in Backend]
WAKE_S = 0.5
"""A stepped endpoint yields at least this often: gradio can close a generator only between two yields."""
Line = Callable[[dict, dict], tuple[str, dict]]
Present = Callable[[Result], tuple]
"""A result as the endpoint's outputs, in their order."""


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


def banner(*models: ResolvedModel, note: str = "") -> None:
    """The stand-in warning, when any of the tab's models is a stand-in."""
    if text := standin_banner(*models, note=note):
        gr.Markdown(text, elem_classes="standin-banner")


def controls(label: str, stoppable: bool = False) -> Controls:
    """The backend toggle and the run button (and Stop, for a task that runs in steps)."""
    backend = gr.Radio(BACKENDS, value=BACKENDS[0], label="Backend")
    with gr.Row():
        button = gr.Button(label, variant="primary")
        stop = gr.Button("Stop", variant="stop") if stoppable else None
    return Controls(backend, button, stop)


def readout(elem_id: str) -> Readout:
    """The latency line (`elem_id`) and the timing dict of the last request."""
    return Readout(gr.Markdown(elem_id=elem_id), gr.JSON(label="Timing"), gr.State({}))


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
    event.success(line, [shown.timing, shown.history], [shown.latency, shown.history], api_visibility="private")
    if stop is not None:
        stop.click(None, cancels=[event], api_visibility="private")
    return event


def _prepare(task: Task, backend: str, inputs: Sequence):
    backend = Backend.parse(backend)
    request = task.check(*inputs)
    if notice := task.first_use(request, backend):
        gr.Info(notice)
    return request, backend


def output_and_timing(result: Result) -> tuple:
    return result.output, result.timing


def answer(task: Task, backend: str, inputs: Sequence, present: Present = output_and_timing) -> tuple:
    """Check the request once, say what loads on first use, run; the endpoint's outputs."""
    request, backend = _prepare(task, backend, inputs)
    return present(task.run(request, backend))


def answer_in_steps(
    task: Task,
    backend: str,
    inputs: Sequence,
    progress: gr.Progress,
    present: Present = output_and_timing,
    skips: int = 2,
) -> Iterator[tuple]:
    """`answer` for a task that runs in steps, as a generator: the task runs in a worker thread,
    progress is reported after each step (yielding `skips` skips, one per output, which keeps
    the request cancellable), and the last item is the endpoint's outputs. When gradio closes
    the generator (Stop, or the API's cancel) the cancel token is set and the task stops after
    its current step."""
    request, backend = _prepare(task, backend, inputs)
    # gradio can close (cancel) a generator only once its first item is out: before that it has no handle on it.
    yield (gr.skip(),) * skips
    cancel, steps, outcome = threading.Event(), queue.Queue(), {}

    def work() -> None:
        try:
            result = task.run(request, backend, lambda done, total: steps.put((done, total)), cancel)
            outcome["outputs"] = present(result)
        except Cancelled as exc:
            logger.info("%s stopped after step %d of %d", task.action, exc.done, exc.total)
            outcome["error"] = ValueError(f"{exc} Press the button to start again.")
        except BaseException as exc:  # handed to the request's thread, which reports it
            outcome["error"] = exc
        finally:
            steps.put(None)

    threading.Thread(target=work, name=f"{task.action} worker", daemon=True).start()
    progress(0, desc="Starting…")
    try:
        while True:
            try:
                step = steps.get(timeout=WAKE_S)
            except queue.Empty:  # loading, or a slow step: yield anyway, so a cancel is taken at once
                yield (gr.skip(),) * skips
                continue
            if step is None:
                break
            progress(step, desc="Denoising", unit="steps")
            yield (gr.skip(),) * skips
    finally:
        cancel.set()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["outputs"]
