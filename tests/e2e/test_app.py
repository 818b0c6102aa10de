"""The app, launched for real and driven through its API with gradio_client."""

from __future__ import annotations

import pytest
from gradio_client.exceptions import AppError

from ui.common import latency_line, session_table, speedups


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


def test_latency_line_compares_the_two_backends():
    ov = {"backend": "OpenVINO", "precision": "OpenVINO INT8", "latency_ms": 4.0, "task": "sentiment"}
    pt = {"backend": "PyTorch", "precision": "PyTorch fp32", "latency_ms": 16.0, "task": "sentiment"}
    line, history = latency_line(ov, {})
    assert "OpenVINO INT8 4.0 ms" in line and "switch to PyTorch" in line
    line, history = latency_line(pt, history)
    assert "OpenVINO INT8 4.0 ms" in line and "PyTorch fp32 16.0 ms" in line and "4.0× faster" in line
    line, _ = latency_line({**ov, "latency_ms": 32.0, "truncated": True}, history)
    assert "2.0× slower" in line and "truncated" in line
    zero_shot, _ = latency_line({**pt, "task": "zero-shot"}, history)
    assert "switch to OpenVINO" in zero_shot  # sentiment runs are not compared with zero-shot ones


def test_a_both_request_fills_the_line_and_the_session_chart():
    ov = {"backend": "OpenVINO", "precision": "OpenVINO INT8", "latency_ms": 4.0, "task": "sentiment"}
    pt = {"backend": "PyTorch", "precision": "PyTorch fp32", "latency_ms": 16.0, "task": "sentiment"}
    both = {"backend": "Both", "task": "sentiment", "runs": [ov, pt]}
    line, history = latency_line(both, {})
    assert "**OpenVINO INT8 4.0 ms** · **PyTorch fp32 16.0 ms** · OpenVINO 4.0× faster" in line
    _, history = latency_line({**ov, "latency_ms": 6.0}, history)
    _, history = latency_line({**ov, "latency_ms": 2.0}, history)
    table = session_table(history)
    medians = dict(zip(table["backend"], table["median_ms"], strict=True))
    counts = dict(zip(table["backend"], table["runs"], strict=True))
    assert medians == {"OpenVINO": 4.0, "PyTorch": 16.0} and counts == {"OpenVINO": 3, "PyTorch": 1}
    assert speedups(table) == {"sentiment": 4.0}
    _, history = latency_line({**ov, "task": "zero-shot"}, history)
    table = session_table(history)
    zero_shot = table[table["request"] == "zero-shot"]
    assert list(zero_shot["runs"]) == [1, 0]  # PyTorch not run yet: a bar of 0 runs, no speed-up
    assert speedups(table) == {"sentiment": 4.0}
    assert session_table({}).empty and speedups(session_table({})) == {}


def test_a_both_request_compares_zero_shot_runs_only_with_runs_cached_alike():
    ov = {"backend": "OpenVINO", "precision": "OpenVINO INT8", "latency_ms": 2.0, "task": "zero-shot", "labels": 4}
    pt = {**ov, "backend": "PyTorch", "precision": "PyTorch fp32", "latency_ms": 30.0}
    both = {"backend": "Both", "task": "zero-shot", "runs": [{**ov, "labels_cached": 4}, {**pt, "labels_cached": 0}]}
    line, history = latency_line(both, {})
    assert "faster" not in line.split("  \n")[0] and "with 0 of 4 label embeddings cached (against 4)" in line
    assert set(session_table(history)["request"]) == {"zero-shot (4 of 4 cached)", "zero-shot (0 of 4 cached)"}


def test_latency_line_says_which_build_runs_and_what_came_from_the_cache():
    ov = {"backend": "OpenVINO", "precision": "OpenVINO INT8", "latency_ms": 2.0, "task": "zero-shot"}
    line, _ = latency_line({**ov, "build": "INT8 weights and activations: this CPU has AVX-512 VNNI"}, {})
    assert "OpenVINO INT8: INT8 weights and activations: this CPU has AVX-512 VNNI." in line
    line, _ = latency_line({**ov, "labels": 4, "labels_cached": 3}, {})
    assert "3 of 4 label embeddings came from OpenVINO's cache" in line
    assert "cache" not in latency_line({**ov, "labels": 4, "labels_cached": 0}, {})[0]
    # A run with its labels cached is compared with a run of the other backend that had them cached too.
    _, history = latency_line({**ov, "labels": 4, "labels_cached": 0}, {})
    pt = {**ov, "backend": "PyTorch", "precision": "PyTorch fp32", "latency_ms": 8.0}
    line, history = latency_line({**pt, "labels": 4, "labels_cached": 4}, history)
    assert "switch to OpenVINO" in line
    line, _ = latency_line({**ov, "labels": 4, "labels_cached": 4}, history)
    assert "4.0× faster" in line


def test_latency_line_compares_memory_when_both_backends_know_theirs():
    ov = {"backend": "OpenVINO", "precision": "OpenVINO INT8", "latency_ms": 4.0, "memory_mb": 90.0}
    pt = {"backend": "PyTorch", "precision": "PyTorch fp32", "latency_ms": 16.0, "memory_mb": 360.0}
    line, history = latency_line(ov, {})
    assert "OpenVINO INT8 4.0 ms**, 90 MB" in line
    line, _ = latency_line(pt, history)
    assert "PyTorch fp32 16.0 ms**, 360 MB" in line and "4.0× faster, 0.25× the memory" in line
    line, _ = latency_line({**pt, "memory_mb": None}, history)
    assert "the memory" not in line  # unknown on one side: no ratio
