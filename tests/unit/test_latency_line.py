"""The latency line and the session chart from timing dicts (`ui.common`), as every tab shows them."""

from __future__ import annotations

from ui.common import latency_line, session_table, speedups


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
