"""The benchmark's figures, tables, targets and merges (`bench`), from made-up runs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from bench import chart, cli, report
from bench.core import Repeats, compare, measure, summary
from pipelines.core.cpu import CpuFeatures

RESULTS = [
    {"workload": "classification", "config": "pytorch-fp32", "unit": "ms", "median": 26.0, "p90": 27.0, "runs": 50,
     "peak_rss_mib": 1000.0},
    {"workload": "classification", "config": "pytorch-bf16", "unit": "ms", "median": 130.0, "p90": 140.0, "runs": 50,
     "peak_rss_mib": 1000.0},
    {"workload": "classification", "config": "openvino-int8", "unit": "ms", "median": 1.3, "p90": 1.4, "runs": 50,
     "peak_rss_mib": 250.0, "quality": "same label, largest Δp 0.004"},
    {"workload": "classification", "config": "openvino-fp32", "error": "boom"},
    {"workload": "translation", "config": "pytorch-fp32", "unit": "ms", "median": 400.0, "p90": 420.0, "runs": 30,
     "ms_per_token": 20.0, "peak_rss_mib": 1200.0},
    {"workload": "translation", "config": "openvino-int8-weights", "unit": "ms", "median": 80.0, "p90": 90.0,
     "runs": 30,
     "ms_per_token": 4.0, "peak_rss_mib": 800.0},
    {"workload": "startup", "cache": "empty", "ready_s": 20.0, "first_answer_s": 20.4, "compiled": 9, "cache_hits": 0,
     "compiled_during_first_requests": [], "peak_rss_mib": 3000.4},
    {"workload": "startup", "cache": "warm", "ready_s": 5.0, "first_answer_s": 5.3, "compiled": 9, "cache_hits": 9,
     "compiled_during_first_requests": [], "peak_rss_mib": 3000.4},
]  # fmt: skip


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """`app_builds` reads the app's tuning record from OVDEMO_HOME: here, an empty home of the test's own."""
    monkeypatch.setenv("OVDEMO_HOME", str(tmp_path / "home"))


def test_measure_discards_warmup_and_stops_at_the_budget():
    calls = []
    samples = measure(lambda: calls.append(1), Repeats(warmup=3, runs=7))
    assert len(samples) == 7 and len(calls) == 10
    slow = measure(lambda: __import__("time").sleep(0.02), Repeats(warmup=0, runs=100, budget_s=0.05))
    assert 1 <= len(slow) < 10  # stopped once 50 ms were spent
    assert len(measure(lambda: None, Repeats(0, 0, budget_s=0))) == 1  # at least one timed call
    start = time.perf_counter()
    paused = measure(lambda: None, Repeats(warmup=0, runs=3, pause_s=0.02))
    assert time.perf_counter() - start >= 0.06 and max(paused) < 0.02  # the pause is not timed


def test_summary_median_and_nearest_rank_p90():
    stats = summary([0.001 * i for i in range(1, 11)], scale=1000)
    assert stats == {"median": pytest.approx(5.5), "p90": pytest.approx(9.0), "runs": 10}


def test_outputs_are_compared_by_kind():
    probs = np.array([0.2, 0.8])
    assert compare("probabilities", np.array([0.3, 0.7]), probs)["same_as_pytorch"] is True
    assert compare("probabilities", np.array([0.6, 0.4]), probs)["quality"].startswith("other label")
    assert compare("text", "Hallo", "Hallo")["same_as_pytorch"] and not compare("text", "a", "b")["same_as_pytorch"]
    image = np.full((8, 8, 3), 100.0)
    assert compare("image", image + 1, image)["psnr_db"] == pytest.approx(48.13, abs=0.01)
    relative = compare("tensor", np.array([1.0, 1.1]), np.array([1.0, 1.0]))["relative_error"]
    assert relative == pytest.approx(0.1 / 2**0.5)


ZEN3 = CpuFeatures("AMD EPYC 7B13", frozenset({"avx2", "fma"}))


ZEN4 = CpuFeatures("AMD EPYC 9B14", frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}), ("BF16",))


def test_the_app_build_is_marked_per_cpu():
    assert report.app_builds(ZEN4)["classification"]["config"] == "openvino-int8"
    assert report.app_builds(ZEN3)["classification"]["config"] == "openvino-int8-weights"
    assert "AVX-512 VNNI" in report.app_builds(ZEN4)["classification"]["reason"]
    assert report.app_builds(ZEN3)["translation"]["config"] == "openvino-int8-weights"
    assert report.app_builds(ZEN3)["sd-unet-step"]["config"] == "openvino-tome-int8"
    assert report.app_builds(ZEN3)["controlnet-step"]["config"] == "openvino-int8"  # Token Merging wins on AVX2


def test_the_build_the_app_serves_is_read_from_its_tuning_record(tmp_path):
    from pipelines.core.registry import Quantization
    from pipelines.tuning import RECORD, Candidate, Choice, Measured, Record, machine_key

    record = Record(tmp_path / "home" / RECORD, machine_key(ZEN3))
    table = [Measured(Candidate(Quantization.NONE), {"typical": 15.2, "128 tokens": 49.4}),
             Measured(Candidate(Quantization.INT8_WEIGHTS), {"typical": 16.7, "128 tokens": 98.8})]  # fmt: skip
    record.remember("minilm-sst2", Choice(Candidate(Quantization.NONE), "measured", table, "digest"))
    app = report.app_builds(ZEN3)
    assert app["classification"]["config"] == "openvino-default" and app["classification"]["from"] == "record"
    assert app["classification"]["reason"].startswith("fastest of 2 measured here (typical / 128 tokens): FP32")
    assert app["translation"]["reason"].startswith("rule: ")  # nothing recorded for T5
    results = [
        {"workload": "classification", "config": "openvino-default", "median": 49.4},
        {"workload": "classification", "config": "openvino-int8-weights", "median": 98.8},
        {"workload": "classification", "config": "pytorch-fp32", "median": 74.7},
    ]
    judged = {t["target"]: t for t in report.targets(results, app, vnni=False)}
    assert judged["The served build within 1.25× of the fastest OpenVINO build, classification"]["met"] is True
    assert judged["The served build faster than PyTorch fp32, classification"]["measured"] == "1.51×"
    rule = {t["target"]: t for t in report.targets(results, report.app_builds(ZEN3, tmp_path / "none"), vnni=False)}
    assert rule["The served build within 1.25× of the fastest OpenVINO build, classification"]["met"] is False
    assert rule["The served build faster than PyTorch fp32, classification"]["met"] is False  # 74.7 / 98.8


def test_table_gives_speed_up_quality_and_failures():
    app = report.app_builds(ZEN4)
    document = {"results": RESULTS, "targets": report.targets(RESULTS, app, vnni=True),
                "conditions": {"machine": ZEN4.describe(), "app_builds": app}}  # fmt: skip
    text = report.markdown(document)
    assert "Machine: AMD EPYC 9B14: AVX2, FMA, AVX-512, AVX-512 VNNI, AVX512_BF16 (no AMX)." in text
    assert "| openvino-int8 (app) | 1.30 ms | 1.40 ms | 50 | 20.00× | 250 |" in text
    assert (
        "(app): the build the app serves on this CPU: rule: INT8 weights and activations: this CPU has AVX-512" in text
    )
    assert "same label, largest Δp 0.004" in text
    assert "| openvino-fp32 | failed: boom |" in text
    assert "| warm | 5.0 s | 5.3 s | 9 of 9 | 0 | 3,000 |" in text


def test_targets_are_judged_from_the_figures_on_a_vnni_cpu():
    judged = {t["target"]: t for t in report.targets(RESULTS, report.app_builds(ZEN4), vnni=True)}
    assert judged["Classification, 128 tokens: ≥ 5× PyTorch fp32"]["measured"] == "20.00×"
    assert judged["Classification, 128 tokens: ≥ 3× PyTorch bf16"]["met"] is True  # 130 / 1.3 = 100×
    assert judged["Classification, a typical sentence: OpenVINO ≤ 2 ms"]["met"] is None  # not measured
    assert judged["Translation, 20 new tokens: ≥ 6× PyTorch fp32"]["met"] is False  # 5×
    assert judged["Peak RSS of OpenVINO ≤ 0.5× PyTorch fp32, classification"]["met"] is True  # 0.25×
    assert judged["Ready after a restart (warm cache) ≤ 0.3× a cold start"]["measured"] == "0.25×"
    assert judged["The first request never waits for a compile"]["met"] is True
    assert not any(t.startswith("Without VNNI") for t in judged)


def test_without_vnni_the_speed_targets_are_shown_and_1x_is_judged():
    results = [{**r, "config": "openvino-int8-weights"} if r.get("config") == "openvino-int8" else r for r in RESULTS]
    rows = report.targets(results, report.app_builds(ZEN3), vnni=False)
    judged = {t["target"]: t for t in rows}
    vnni_target = judged["Classification, 128 tokens: ≥ 5× PyTorch fp32 (set for a VNNI CPU)"]
    assert vnni_target["measured"] == "20.00×" and vnni_target["met"] is None and not vnni_target["judged"]
    assert judged["Without VNNI: OpenVINO ≥ 1× PyTorch fp32, classification"]["met"] is True
    assert judged["Without VNNI: OpenVINO ≥ 1× PyTorch fp32, translation"]["met"] is True  # 5×
    assert judged["Without VNNI: OpenVINO ≥ 1× PyTorch fp32, sd-unet-step"]["met"] is None  # not measured
    assert "| not judged here |" in "\n".join(report.targets_table(rows))


def test_visit_table_shows_both_processes_and_refusals():
    visit = {"workload": "visit", "limit_gb": 16.0, "budget_mb": 13926, "peak_total_mb": 5200.0, "visits": [
        {"tab": "startup", "app_rss_mb": 900.0, "worker_rss_mb": None, "ready_s": 12.5},
        {"tab": "SD", "what": "FP32", "backend": "OpenVINO", "latency_ms": 9000.0, "memory_mb": 3300.0,
         "app_rss_mb": 4200.0, "worker_rss_mb": None, "held": ["the FP32 SD variant"]},
        {"tab": "SD", "what": "FP32", "backend": "PyTorch", "refused": "No room for the PyTorch baseline.",
         "app_rss_mb": 4200.0, "worker_rss_mb": None, "held": []},
    ]}  # fmt: skip
    text = "\n".join(report.visit_table([visit]))
    assert "16 GB machine (budget 13,926 MB)" in text and "| ready in 12.5 s | | | | | 900 |" in text
    assert "| SD | FP32 | OpenVINO | 9000.0 ms | 3,300 | 4,200 | - | the FP32 SD variant |" in text
    assert "refused: No room for the PyTorch baseline." in text and "Peak of both processes: 5,200 MB." in text


def test_chart_is_drawn(tmp_path):
    path = chart.draw(RESULTS, tmp_path / "chart.png", "test machine")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 400
    assert chart.draw([], tmp_path / "none.png") is None


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        cli.parse(["--threads", "0"])
    with pytest.raises(SystemExit):
        cli.parse(["--workloads", "nope"])


def test_runs_of_other_workloads_merge_into_one_report(tmp_path):
    app = report.app_builds(ZEN3)
    conditions = {"machine": ZEN3.describe(), "int8_units": None, "app_builds": app, "minutes": 10.0, "load_avg": "2",
                  "threads": 2}  # fmt: skip
    text = [r for r in RESULTS if r["workload"] != "translation"]
    translation = [r for r in RESULTS if r["workload"] == "translation"]
    paths = []
    for name, results in (("text", text), ("translation", translation)):
        (tmp_path / name).mkdir()
        document = {"conditions": {**conditions, "workloads": [name]}, "results": results}
        (tmp_path / name / "bench.json").write_text(json.dumps(document))
        paths.append(tmp_path / name / "bench.json")
    document = cli.main(["--merge", *map(str, paths), "--out", str(tmp_path / "merged")])
    assert document["conditions"]["minutes"] == 20.0 and document["conditions"]["runs"] == 2
    assert document["conditions"]["workloads"] == ["text", "translation"]
    judged = {t["target"]: t for t in document["targets"]}
    assert judged["Without VNNI: OpenVINO ≥ 1× PyTorch fp32, translation"]["measured"] == "5.00×"
    assert "| openvino-int8-weights (app) | 80.0 ms |" in (tmp_path / "merged" / "bench.md").read_text()
    with pytest.raises(SystemExit, match="more than one run"):
        cli.merge([paths[0], paths[0]], tmp_path)
    other = tmp_path / "other.json"
    for change in ({"machine": ZEN4.describe()}, {"threads": 1}):
        other.write_text(json.dumps({"conditions": {**conditions, **change}, "results": []}))
        with pytest.raises(SystemExit, match=f"differ in {next(iter(change))}"):
            cli.merge([paths[0], other], tmp_path)
    starts = tmp_path / "starts.json"  # startup rows have no configuration: their cache tells them apart
    starts.write_text(json.dumps({"conditions": conditions, "results": [r for r in RESULTS if "cache" in r]}))
    with pytest.raises(SystemExit, match="more than one run"):
        cli.merge([paths[0], starts], tmp_path)
