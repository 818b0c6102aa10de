"""Any input, valid or not, gets a result or a sentence saying what to change: never a crash.

The handlers are the ones the app serves. A `gr.Error` that starts with "... failed (" is the
catch-all for unexpected exceptions, so it counts as a crash here.
"""

from __future__ import annotations

import functools
import inspect

import gradio as gr
from hypothesis import given
from hypothesis import strategies as st

from pipelines.tasks.translation import LANGUAGES
from tests.support.strategies import BACKENDS, NUMBERS, SETTINGS, TEXTS
from ui.tabs.classification import classification_tab
from ui.tabs.translation import translation_tab


@functools.cache
def endpoint(render, task, api_name: str):
    """The function behind `api_name` in a tab drawn by `render(task)`: what the API calls."""
    with gr.Blocks() as demo:
        render(task)
    return next(f.fn for f in demo.fns.values() if f.api_name == api_name)


def _runs(timing: dict) -> list[dict]:
    """Each backend's timing dict: the two of a "Both" request, else the one."""
    return timing["runs"] if timing["backend"] == "Both" else [timing]


def _outcome(fn, *args):
    try:
        result = fn(*args)
        if inspect.isgenerator(result):  # a streaming endpoint: its last item is its outputs
            *_, result = result
        return result
    except gr.Error as exc:
        assert " failed (" not in exc.message, f"unexpected crash for {args!r}: {exc.message}"
        assert exc.message.strip().endswith((".", "]")), exc.message
        return None


@SETTINGS
@given(text=TEXTS, language=st.one_of(st.sampled_from(list(LANGUAGES)), st.text(max_size=12)), backend=BACKENDS,
       max_new=NUMBERS)  # fmt: skip
def test_translate_never_crashes(services, text, language, backend, max_new):
    result = _outcome(endpoint(translation_tab, services.translator, "translate"), text, language, backend, max_new)
    if result is not None:
        translated, timing = result
        assert isinstance(translated, str) and all(run["latency_ms"] > 0 for run in _runs(timing))


@SETTINGS
@given(
    text=TEXTS,
    labels=st.one_of(st.text(max_size=120), st.lists(st.text(max_size=12), max_size=12), st.none(), st.integers()),
    backend=BACKENDS,
)
def test_classify_never_crashes(services, text, labels, backend):
    result = _outcome(endpoint(classification_tab, services.classifier, "classify"), text, labels, backend)
    if result is not None:
        scores, timing = result
        assert abs(sum(scores.values()) - 1) < 1e-4 and all(run["latency_ms"] > 0 for run in _runs(timing))
