"""Pieces every tab shares: error handling, inputs that reach the app's own checks, the
stand-in banner, the latency line."""

from __future__ import annotations

import functools
import html
import inspect
import logging
import re
import statistics
from typing import TYPE_CHECKING

import gradio as gr

from pipelines.core.protocol import BOTH, Backend
from pipelines.core.resolved import ResolvedModel
from pipelines.serving.remote import REMOTE

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# An absolute path of two or more parts ("/tmp/gradio/…/x.png", "~/.cache/x", "file:///srv/x"), not a
# ratio like "km/h". A last guard only: the app's own messages name no path in the first place.
_SERVER_PATH = re.compile(r"(?<![\w.~/-])(?:file://|~)?(?:/[\w.@+~-]+){2,}/?")


def without_paths(text: str) -> str:
    """`text` with every absolute path replaced by "…": what reaches the browser names no server folder."""
    return _SERVER_PATH.sub("…", text)


def as_text(message: str) -> str:
    """`message` escaped for gradio's error toast, which renders its text as HTML: a label or prompt quoted in
    it (`<a href=…>sign in</a>`) shows as the characters typed, never as a link or an image."""
    return html.escape(message, quote=False)


def handle_errors(action: str):
    """Turn pipeline errors into `gr.Error`s a person can act on; never a traceback.

    `ValueError` carries a sentence written for the user. Anything else is logged with
    its traceback on the server and reported as a failure to retry.
    """

    def report(exc: Exception) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, ValueError):
            return gr.Error(as_text(without_paths(str(exc))), print_exception=False)
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
    the file lets `pipelines.core.images.load_image` check bytes and header pixels first and
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
    refuse_addresses(component)
    return component


URL_REFUSED = (
    "This app takes images as uploads only, not as web addresses: download the image and upload the file "
    "(gradio_client: `handle_file(path)`)."
)


def refuse_addresses(component: gr.Image) -> None:
    """An image given by URL gets a sentence, and nothing is fetched. gradio 6.31 downloads a URL input
    itself while moving inputs to its cache (`processing_utils.async_move_files_to_cache` calls the block's
    `async_move_resource_to_block_cache`), before any handler runs, with no cap on size or time: both
    methods of this instance refuse an address first."""
    from gradio_client.utils import is_http_url_like

    moves, async_moves = component.move_resource_to_block_cache, component.async_move_resource_to_block_cache

    def move(url_or_file_path):
        if is_http_url_like(str(url_or_file_path)):
            raise gr.Error(URL_REFUSED, print_exception=False)
        return moves(url_or_file_path)

    async def async_move(url_or_file_path):
        if is_http_url_like(str(url_or_file_path)):
            raise gr.Error(URL_REFUSED, print_exception=False)
        return await async_moves(url_or_file_path)

    component.move_resource_to_block_cache = move
    component.async_move_resource_to_block_cache = async_move


def number_input(component: gr.Slider | gr.Number) -> gr.Slider | gr.Number:
    """`component`, handing its handler the value exactly as sent.

    A value from the API can be anything: text, NaN, ∞, out of range. gradio's own
    conversion answers some of them with its generic error and others with a bare
    "less than minimum"; the task's check (`pipelines.core.checks.whole_number`,
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


MAX_SAMPLES = 200
"""The session chart keeps this many latest runs per tab."""
MAX_KINDS = 32
"""…and the last run of this many kinds of request (the least recently run go first)."""


def _kind(timing: dict) -> str:
    kind = timing.get("task", "default")
    if timing.get("labels"):  # zero-shot: compared with a run that took as many label embeddings from its cache
        kind += f" ({timing.get('labels_cached', 0)} of {timing['labels']} cached)"
    return kind


def side(run: dict) -> str:
    """The backend a run is compared as: a run on the model server is OpenVINO's."""
    return Backend.OPENVINO.value if run["backend"] == REMOTE else run["backend"]


def runs_of(timing: dict) -> list[dict]:
    """Each backend's timing dict in `timing`: two for a "Both" request, else itself."""
    return list(timing["runs"]) if timing.get("backend") == BOTH else [timing]


def latency_line(timing: dict, history: dict) -> tuple[str, dict]:
    """'OpenVINO INT8 4.1 ms, 120 MB · PyTorch fp32 15.8 ms, 450 MB · OpenVINO 3.9× faster, 0.27× the memory',
    from this request (one backend, or both) and the last request of the other backend of the same kind
    (kept per browser session, with every run's latency for the session chart). Memory is what each
    backend's model added to its process when it loaded."""
    runs = runs_of(timing)
    kinds = [_kind(run) for run in runs]  # each run filed under its own kind: zero-shot caches differ per backend
    recorded = dict(history.get("last", {}))
    for kind, run in zip(kinds, runs, strict=True):
        entry = (run["precision"], run["latency_ms"], run.get("memory_mb"))
        recorded[kind] = {**recorded.get(kind, {}), side(run): entry}
    new = [[k, side(run), run["latency_ms"]] for k, run in zip(kinds, runs, strict=True)]
    samples = [*history.get("samples", []), *new]
    for kind in kinds:  # the newest last, so the oldest go first
        recorded[kind] = recorded.pop(kind)
    while len(recorded) > MAX_KINDS:
        recorded.pop(next(iter(recorded)))
    history = {"last": recorded, "samples": samples[-MAX_SAMPLES:]}
    kind = kinds[0]
    last = recorded[kind]
    now = {side(run) for k, run in zip(kinds, runs, strict=True) if k == kind}

    def part(backend: str) -> str:
        precision, ms, mb = last[backend]
        text = f"{precision} {ms:.1f} ms"
        text = f"**{text}**" if backend in now else text
        return text + (f", {_size(mb)}" if mb else "")

    ov, pt = last.get(Backend.OPENVINO.value), last.get(Backend.PYTORCH.value)
    if ov and pt:
        ratio = pt[1] / ov[1] if ov[1] > 0 else float("inf")
        verdict = f"{ratio:.1f}× faster" if ratio >= 1 else f"{1 / ratio:.1f}× slower"
        if ov[2] and pt[2]:
            verdict += f", {ov[2] / pt[2]:.2f}× the memory"
        line = f"{part(Backend.OPENVINO.value)} · {part(Backend.PYTORCH.value)} · OpenVINO {verdict}"
    else:
        (only,) = now
        other = Backend.PYTORCH.value if only == Backend.OPENVINO.value else Backend.OPENVINO.value
        line = f"{part(only)} · switch to {other} (or {BOTH}) and run again to compare"
    for other, run in zip(kinds[1:], runs[1:], strict=True):
        if other != kind:  # zero-shot: the other backend's label cache held another share of the labels
            line += (
                f"  \n{run['precision']} {run['latency_ms']:.1f} ms this time, with {run.get('labels_cached', 0)} of "
                f"{run.get('labels', 0)} label embeddings cached (against {runs[0].get('labels_cached', 0)}): "
                "compared only with a run cached alike."
            )
    first = runs[0]
    if first.get("round_trip_ms") is not None:
        server = first.get("server_ms")
        where = f"server {server:.1f} ms of " if server is not None else ""
        line += (
            f"  \n🌐 OpenVINO ran on the model server: {where}{first['round_trip_ms']:.1f} ms "
            f"of round trips, {first['remote_calls']} call{'s' if first['remote_calls'] != 1 else ''}"
            + (f" ({first['server_ms_note']})" if first.get("server_ms_note") else "")
            + "."
        )
    if first.get("remote_error"):
        line += f"  \n⚠️ {without_paths(first['remote_error'])} Its time leaves out the wait for the server."
    if first.get("build"):
        line += f"  \n⚙️ {first['precision']}: {first['build']}."
    for run in runs:
        if run.get("labels_cached"):
            line += (
                f"  \n🗂️ {run['labels_cached']} of {run['labels']} label embeddings came from {side(run)}'s "
                "cache (asked before); the text and any new label were embedded now."
            )
    if any(run.get("truncated") for run in runs):
        line += "  \n✂️ The input was longer than the model accepts and was truncated."
    return line, history


def session_table(history: dict) -> pd.DataFrame:
    """The session's runs as the chart draws them: per request kind, for each backend, the median latency
    and the number of runs (a backend not run yet for a kind: 0 runs at 0 ms, so every chart has both
    backends from its first drawing: gradio 6.31 gives no colour to a value its plot's first data lacked)."""
    import pandas as pd

    rows: dict[str, dict[str, list[float]]] = {}
    for kind, backend, ms in history.get("samples", []):
        rows.setdefault(kind, {b.value: [] for b in Backend})[backend].append(ms)
    table = pd.DataFrame(
        [
            {"request": kind, "backend": backend, "median_ms": statistics.median(ms) if ms else 0.0, "runs": len(ms)}
            for kind, by_backend in rows.items()
            for backend, ms in by_backend.items()
        ],
        columns=["request", "backend", "median_ms", "runs"],
    ).astype({"request": str, "backend": str, "median_ms": float, "runs": int})  # typed when empty too
    table["run"] = table["request"] + " · " + table["backend"] + " (" + table["runs"].astype(str) + ")"
    return table


def speedups(table: pd.DataFrame) -> dict[str, float]:
    """PyTorch's median latency over OpenVINO's, per request kind where both ran."""
    found = {}
    for kind, rows in table.groupby("request", sort=False):
        ran = rows[rows["runs"] > 0]
        medians = dict(zip(ran["backend"], ran["median_ms"], strict=True))
        ov, pt = medians.get(Backend.OPENVINO.value), medians.get(Backend.PYTORCH.value)
        if ov and pt:
            found[kind] = pt / ov
    return found


def builds_table(tuner) -> list[str]:
    """Each text model's candidate builds as `pipelines.tuning.Tuner` timed them on this machine (or why none were),
    fastest first: the System tab's table, and the Benchmarks tab's under a measurement."""
    if tuner is None or not tuner.choices:
        return []
    lines = ["", "### Builds timed on this machine (the fastest is served)"]
    lines += ["| model | build | the app's requests, median | memory added | served |", "|---|---|---|---|---|"]
    for key, choice in tuner.table():
        if choice.how != "measured":
            lines.append(f"| {key} | {choice.candidate.label} | not timed: {choice.reason()} | - | ✔ |")
            continue
        for measured in choice.table:
            ms = " · ".join(f"{name} {value:.1f} ms" for name, value in measured.ms.items())
            memory = "-" if measured.memory_mb is None else f"{measured.memory_mb:.0f} MB"
            served = "✔" if measured.candidate == choice.candidate else ""
            lines.append(f"| {key} | {measured.candidate.label} | {ms} | {memory} | {served} |")
    return lines
