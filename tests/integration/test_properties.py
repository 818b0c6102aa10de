"""Any input, valid or not, gets a result or a sentence saying what to change: never a crash.

The handlers are the ones the app serves. A `gr.Error` that starts with "... failed (" is the
catch-all for unexpected exceptions, so it counts as a crash here.
"""

from __future__ import annotations

import functools
import inspect

import gradio as gr
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.core.checks import MAX_TEXT_CHARS
from pipelines.core.diffusion import MAX_GUIDANCE, MAX_SEED, MAX_STEPS, MIN_GUIDANCE, MIN_STEPS, DiffusionRequest
from pipelines.core.images import load_image
from pipelines.tasks.translation import LANGUAGES
from ui.tabs.classification import classification_tab
from ui.tabs.translation import translation_tab

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXTS = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50).map(lambda s: s * 400),
    st.just("x" * (MAX_TEXT_CHARS + 1)),
    st.just("\ud800 lone surrogate"),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
)
BACKENDS = st.one_of(st.sampled_from(["OpenVINO", "PyTorch", "Both"]), st.text(max_size=12), st.none(), st.integers())
NUMBERS = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.integers(min_value=257, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.text(max_size=4),
    st.booleans(),
)


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


@SETTINGS
@given(
    prompt=TEXTS,
    negative=st.one_of(st.text(max_size=50), st.just("y" * 5000), st.none()),
    steps=NUMBERS,
    guidance=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 50), st.none(), st.text()),
    seed=st.one_of(st.integers(min_value=-(2**40), max_value=2**40), st.floats(allow_nan=True), st.none()),
)
def test_diffusion_request_is_checked_or_refused(prompt, negative, steps, guidance, seed):
    """Every image endpoint validates through `DiffusionRequest.checked` before any model runs."""
    try:
        checked = DiffusionRequest(prompt, negative, steps, guidance, seed).checked()
    except ValueError as exc:
        assert str(exc).endswith("."), exc
        return
    assert MIN_STEPS <= checked.steps <= MAX_STEPS and 0 <= checked.seed <= MAX_SEED
    assert MIN_GUIDANCE <= checked.guidance_scale <= MAX_GUIDANCE and checked.prompt


@SETTINGS
@given(
    payload=st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda b: b"\x89PNG\r\n\x1a\n" + b, st.binary(max_size=512)),
        st.builds(lambda b: b"\xff\xd8\xff\xe0" + b, st.binary(max_size=512)),
    )
)
def test_any_uploaded_file_is_an_image_or_a_clear_refusal(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("upload") / "upload.bin"
    path.write_bytes(payload)
    try:
        image = load_image(str(path))
    except ValueError as exc:
        assert str(exc).startswith("The "), exc  # a sentence about the upload, not a library's message
        return
    assert image.mode == "RGB" and image.width * image.height > 0


@SETTINGS
@given(
    array=st.one_of(
        st.builds(
            lambda shape, dtype: np.zeros(shape, dtype=dtype),
            st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
            st.sampled_from([np.uint8, np.float32, np.int64, np.bool_]),
        ),
    )
)
def test_any_array_is_an_image_or_a_clear_refusal(array):
    try:
        image = load_image(array)
    except ValueError as exc:
        assert str(exc).startswith("The "), exc  # a sentence about the upload, not a library's message
        return
    assert image.mode == "RGB"
