"""The benchmark's report: table and chart from results."""

from __future__ import annotations

from PIL import Image

from pipelines.bench import _markdown
from pipelines.bench_chart import draw

RESULTS = [
    {"workload": "classification", "config": "pytorch-fp32", "median_ms": 26.0, "p90_ms": 27.0, "peak_rss_mib": 900},
    {"workload": "classification", "config": "openvino-int8", "median_ms": 13.0, "p90_ms": 14.0, "peak_rss_mib": 700},
    {"workload": "classification", "config": "openvino-fp32", "error": "boom"},
    {"workload": "startup", "cache": "warm (restart)", "ready_s": 12.34, "first_answer_s": 12.9, "compiled": 9,
     "cache_hits": 9, "peak_rss_mib": 3000.4},
]  # fmt: skip


def test_table_gives_speed_up_over_pytorch_and_failures():
    table = _markdown(RESULTS)
    assert "| openvino-int8 | 13.00 | 14.00 | 2.00× | 700 |" in table
    assert "| openvino-fp32 | failed: boom |" in table
    assert "| warm (restart) | 12.3 | 12.9 | 9 of 9 | 3000 |" in table


def test_chart_is_drawn(tmp_path):
    path = draw(RESULTS, tmp_path / "chart.png", "test machine")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 400
    assert draw([], tmp_path / "none.png") is None
