"""The app, launched for real and driven through its API with gradio_client."""

from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError


def test_api_names_and_order(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/translate", "/classify", "/generate", "/detect_pose", "/pose"}
    names = lambda ep: [p["parameter_name"] for p in endpoints[ep]["parameters"]]
    assert names("/translate")[:3] == ["text", "target_language", "backend"]
    assert names("/classify") == ["text", "labels", "backend"]


@pytest.mark.parametrize("backend", ["OpenVINO", "PyTorch"])
def test_translate(client, backend):
    text, timing = client.predict("Where is the station?", "German", backend, 4, api_name="/translate")
    assert isinstance(text, str)
    assert timing["backend"] == backend and timing["latency_ms"] > 0
    assert timing["model_source"] == "stand-in (random weights)" and timing["new_tokens"] <= 4
    assert timing["memory_mb"] > 0  # what the model added to its process: the app's, or the PyTorch worker's


@pytest.mark.parametrize("backend", ["OpenVINO", "PyTorch"])
def test_classify_sentiment_and_zero_shot(client, backend):
    label, timing = client.predict("What a wonderful film.", "", backend, api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"POSITIVE", "NEGATIVE"}
    assert timing["task"] == "sentiment" and timing["backend"] == backend
    label, timing = client.predict("The striker scored twice.", "sports, cooking", backend, api_name="/classify")
    assert label["label"] == "sports" and timing["model_source"] == "packaged weights, exported locally"


def _assert_both(timing: dict, task: str) -> tuple[dict, dict]:
    ov, pt = timing["runs"]
    assert timing["backend"] == "Both" and timing["task"] == task
    assert (ov["backend"], pt["backend"]) == ("OpenVINO", "PyTorch") and ov["task"] == pt["task"] == task
    assert timing["speedup"] == pytest.approx(pt["latency_ms"] / ov["latency_ms"], rel=1e-2)
    assert timing["memory_ratio"] == pytest.approx(ov["memory_mb"] / pt["memory_mb"], rel=1e-2)
    return ov, pt


def test_translation_streams_its_text_before_the_end(client):
    job = client.submit("Where is the station?", "German", "OpenVINO", 8, api_name="/translate")
    text, timing = job.result()
    partial = [out[0] for out in job.outputs()[:-1] if isinstance(out, list | tuple) and isinstance(out[0], str)]
    assert partial and timing["new_tokens"] >= len(partial) - 1, job.outputs()
    assert job.outputs()[-1][0] == text


def test_translate_on_both_backends_in_one_request(client):
    text, timing = client.predict("Where is the station?", "German", "Both", 4, api_name="/translate")
    ov, pt = _assert_both(timing, "translate")
    assert timing["outputs"] == {"OpenVINO": text, "PyTorch": timing["outputs"]["PyTorch"]}
    assert isinstance(timing["outputs"]["PyTorch"], str) and ov["new_tokens"] <= 4 and pt["new_tokens"] <= 4
    alone, _ = client.predict("Where is the station?", "German", "OpenVINO", 4, api_name="/translate")
    assert alone == text  # the same request as on OpenVINO alone


def test_classify_on_both_backends_in_one_request(client):
    label, timing = client.predict("The striker scored twice.", "sports, cooking", "Both", api_name="/classify")
    _assert_both(timing, "zero-shot")
    scores = timing["outputs"]
    assert label["label"] == "sports" and set(scores) == {"OpenVINO", "PyTorch"}
    assert max(scores["PyTorch"], key=scores["PyTorch"].get) == "sports"
    for name, score in scores["OpenVINO"].items():  # the same model, INT8 weights: within 0.05 of PyTorch's
        assert score == pytest.approx(scores["PyTorch"][name], abs=0.05)


@pytest.mark.parametrize(
    ("endpoint", "args", "message"),
    [
        ("/translate", ("   ", "German", "OpenVINO"), "text is empty"),
        ("/translate", ("Hello", "Klingon", "OpenVINO"), "Unknown target language"),
        ("/translate", ("Hello", "German", "TensorFlow"), "not in the list of choices"),
        ("/classify", ("Hello", "", "both ways"), "not in the list of choices"),
        ("/translate", ("Hello", "German", "OpenVINO", 0), "whole number from 1 to 256"),
        ("/translate", ("Hello", "German", "OpenVINO", 2.5), "whole number from 1"),
        ("/classify", ("", "", "OpenVINO"), "text is empty"),
        ("/classify", ("Hello", "a, a", "OpenVINO"), "Duplicate label"),
        ("/classify", ("Hello", "a,,b", "OpenVINO"), "labels is empty"),
        ("/classify", ("Hello", ",".join(map(str, range(30))), "PyTorch"), "Too many labels"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, endpoint, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=endpoint)
    label, _ = client.predict("Still serving?", "", "OpenVINO", api_name="/classify")
    assert label["label"] in {"POSITIVE", "NEGATIVE"}
