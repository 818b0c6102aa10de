"""Pieces every tab shares: error handling, inputs that reach the app's own checks, the
stand-in banner, the latency line."""

from __future__ import annotations

import functools
import inspect
import logging
import re

import gradio as gr

from pipelines.protocol import Backend
from pipelines.resolve import ResolvedModel

logger = logging.getLogger(__name__)

# An absolute path of two or more parts ("/tmp/gradio/…/x.png", "~/.cache/x", "file:///srv/x"), not a
# ratio like "km/h". A last guard only: the app's own messages name no path in the first place.
_SERVER_PATH = re.compile(r"(?<![\w.~/-])(?:file://|~)?(?:/[\w.@+~-]+){2,}/?")


def without_paths(text: str) -> str:
    """`text` with every absolute path replaced by "…": what reaches the browser names no server folder."""
    return _SERVER_PATH.sub("…", text)


def handle_errors(action: str):
    """Turn pipeline errors into `gr.Error`s a person can act on; never a traceback.

    `ValueError` carries a sentence written for the user. Anything else is logged with
    its traceback on the server and reported as a failure to retry.
    """

    def report(exc: Exception) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, ValueError):
            return gr.Error(without_paths(str(exc)), print_exception=False)
        logger.error("%s failed", action, exc_info=exc)
        return gr.Error(
            f"{action} failed ({type(exc).__name__}). Try again; if it keeps failing, the server log has the details.",
            print_exception=False,
        )

    def wrap(fn):
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def run_steps(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as exc:
                    raise report(exc) from None

            return run_steps

        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise report(exc) from None

        return run

    return wrap


def image_input(**kwargs) -> gr.Image:
    """A `gr.Image` whose handler gets the uploaded file's path, undecoded.

    gradio's own preprocessing opens every upload and converts it (each frame of a GIF
    included) before the handler runs, where no cap of the app applies yet. Handing over
    the file lets `pipelines.images.load_image` check bytes and header pixels first and
    decode only the first frame. The path is gradio's copy in its upload folder (gradio
    refuses any other), never one a client names. (The instance's `preprocess` is replaced
    rather than subclassed: gradio writes a `.pyi` file next to every component subclass.)
    """
    component = gr.Image(type="filepath", image_mode=None, **kwargs)

    def uploaded_file(payload):
        if payload is None:
            return None
        if payload.path is None or (payload.url or "").startswith("data:"):
            raise gr.Error(
                "Send the image as an uploaded file (not inline data), then try again.", print_exception=False
            )
        return payload.path

    component.preprocess = uploaded_file
    return component


def number_input(component: gr.Slider | gr.Number) -> gr.Slider | gr.Number:
    """`component`, handing its handler the value exactly as sent.

    A value from the API can be anything: text, NaN, ∞, out of range. gradio's own
    conversion answers some of them with its generic error and others with a bare
    "less than minimum"; the task's check (`pipelines.checks.whole_number`,
    `DiffusionRequest.checked`) answers every one with the allowed range.
    """
    component.preprocess = lambda payload: payload
    return component


def generated_file(component: gr.Image, image) -> str:
    """`image` saved as a PNG in gradio's cache and registered with `component`, so the app's
    `delete_cache` removes it when old. A generator handler must hand its image over this way:
    gradio 6.31 registers the outputs of plain handlers only, and would keep these forever."""
    from gradio.processing_utils import save_pil_to_cache

    path = save_pil_to_cache(image, component.GRADIO_CACHE, format="png")
    component.temp_files.add(path)
    return path


def standin_banner(*models: ResolvedModel, note: str = "") -> str:
    """Markdown warning naming every stand-in model of a tab; empty when all are real."""
    standins = [m for m in models if m.is_standin]
    if not standins:
        return ""
    names = ", ".join(f"**{m.spec.title}** ({m.detail})" for m in standins)
    return (
        f"⚠️ **Stand-in model.** {names}: the real model could not be downloaded, so this tab runs its "
        "architecture with random weights. **Its outputs are meaningless; its latencies are real.**" + note
    )


def failure_banner(message: str) -> str:
    return f"⛔ {without_paths(message)} This tab is unavailable; the server log says why. The other tabs work."


def _size(mb: float) -> str:
    return f"{mb:.0f} MB" if mb < 1024 else f"{mb / 1024:.1f} GB"


def latency_line(timing: dict, history: dict) -> tuple[str, dict]:
    """'OpenVINO INT8 4.1 ms, 120 MB · PyTorch fp32 15.8 ms, 450 MB · OpenVINO 3.9× faster, 0.27× the memory',
    from this request and the last request of the other backend of the same kind (kept per browser
    session). Memory is what each backend's model added to its process when it loaded."""
    kind = timing.get("task", "default")
    if timing.get("labels"):  # zero-shot: compared with a run that took as many label embeddings from its cache
        kind += f" ({timing.get('labels_cached', 0)} of {timing['labels']} cached)"
    this_run = (timing["precision"], timing["latency_ms"], timing.get("memory_mb"))
    runs = {**history.get(kind, {}), timing["backend"]: this_run}
    history = {**history, kind: runs}

    def part(run, bold: bool) -> str:
        precision, ms, mb = run
        text = f"{precision} {ms:.1f} ms"
        text = f"**{text}**" if bold else text
        return text + (f", {_size(mb)}" if mb else "")

    ov, pt = runs.get(Backend.OPENVINO.value), runs.get(Backend.PYTORCH.value)
    this_is_ov = timing["backend"] == Backend.OPENVINO.value
    if ov and pt:
        ratio = pt[1] / ov[1] if ov[1] > 0 else float("inf")
        verdict = f"{ratio:.1f}× faster" if ratio >= 1 else f"{1 / ratio:.1f}× slower"
        if ov[2] and pt[2]:
            verdict += f", {ov[2] / pt[2]:.2f}× the memory"
        line = f"{part(ov, this_is_ov)} · {part(pt, not this_is_ov)} · OpenVINO {verdict}"
    else:
        other = Backend.PYTORCH.value if this_is_ov else Backend.OPENVINO.value
        line = f"{part(this_run, True)} · switch to {other} and run again to compare"
    if timing.get("build"):
        line += f"  \n⚙️ {timing['precision']}: {timing['build']}."
    if timing.get("labels_cached"):
        line += (
            f"  \n🗂️ {timing['labels_cached']} of {timing['labels']} label embeddings came from {timing['backend']}'s "
            "cache (asked before); the text and any new label were embedded now."
        )
    if timing.get("truncated"):
        line += "  \n✂️ The input was longer than the model accepts and was truncated."
    return line, history
