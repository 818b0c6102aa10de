"""A URL opens one tab with its inputs filled (`ui.embed`), on plain components: what it names is filled, what
an input does not accept is left as it was, an unknown tab changes nothing."""

from __future__ import annotations

import gradio as gr
import pytest

from ui.embed import coerce, prefill

SLUGS = ["translation", "classification", "system"]
SKIP = gr.skip()  # an input left as it was


@pytest.fixture(scope="module")
def fields():
    with gr.Blocks():
        translation = {
            "text": gr.Textbox(max_length=20),
            "lang": gr.Dropdown(["French", "German"], value="French"),
            "tokens": gr.Slider(1, 256, value=20, step=1),
            "backend": gr.Radio(["OpenVINO", "PyTorch", "Both"]),
        }
        classification = {"text": gr.Textbox(), "labels": gr.Textbox()}
    return [translation, classification, {}]


def test_a_url_opens_its_tab_with_the_inputs_it_names(fields):
    params = {"tab": "translation", "text": "Where is it?", "lang": "german", "backend": "both", "tokens": "8"}
    chosen, only, values = prefill(params, SLUGS, fields)
    assert chosen == "translation" and not only
    assert values[0] == ["Where is it?", "German", 8, "Both"]
    assert all(v == SKIP for v in values[1])  # another tab's "text" is not filled
    assert prefill({**params, "only": "1"}, SLUGS, fields)[1]
    assert prefill({"tab": "system", "only": "true"}, SLUGS, fields)[:2] == ("system", True)


@pytest.mark.parametrize(
    ("params", "skipped"),
    [
        ({"tab": "translation", "lang": "Klingon"}, "lang"),
        ({"tab": "translation", "tokens": "0"}, "tokens"),
        ({"tab": "translation", "tokens": "nan"}, "tokens"),
        ({"tab": "translation", "tokens": "1e999"}, "tokens"),
        ({"tab": "translation", "backend": "TensorFlow"}, "backend"),
    ],
)
def test_a_value_the_input_does_not_accept_leaves_it_as_it_was(fields, params, skipped):
    _, _, values = prefill(params, SLUGS, fields)
    row = dict(zip(fields[0], values[0], strict=True))
    assert row[skipped] == SKIP


def test_no_tab_or_an_unknown_one_changes_nothing(fields):
    for params in ({}, {"tab": "../../etc/passwd", "only": "1", "text": "x"}, {"text": "x"}):
        chosen, only, values = prefill(params, SLUGS, fields)
        assert chosen is None and not only
        assert all(v == SKIP for row in values for v in row)


def test_text_from_a_url_is_cut_to_its_box(fields):
    assert coerce(fields[0]["text"], "<script>alert(1)</script>" * 3) == "<script>alert(1)</sc"  # 20 characters
