"""'Measure on this machine' (`ui.measure`) on the app's own text tasks; the deep links are in
`tests/unit/test_deep_links.py`."""

from __future__ import annotations

import pytest

from ui.measure import Busy, measure, table, text_workloads


def test_measure_on_this_machine_gives_both_backends_and_refuses_a_second_run(services):
    workloads = text_workloads(services.served.translator, services.served.classifier)
    assert [w.name.split(",")[0] for w in workloads] == ["Sentiment", "Zero-shot", "Translation to German"]
    refused = []

    def on_run(done, total, what):
        if done == 1:  # a second visitor presses the button while this one runs
            with pytest.raises(Busy, match="Another measurement is running"):
                measure(workloads, 1)
            refused.append(what)

    rows = measure(workloads, 2, on_run)
    assert refused == ["Sentiment, a typical sentence on OpenVINO (warm-up)"]
    assert [r.workload for r in rows] == [w.name for w in workloads]
    for row in rows:
        assert row.openvino_ms > 0 and row.pytorch_ms > 0 and row.runs == 2
        assert row.speedup == pytest.approx(row.pytorch_ms / row.openvino_ms)
        assert row.openvino.startswith("OpenVINO") and row.pytorch == "PyTorch fp32"
    markdown = table(rows, "Some CPU: AVX2")
    assert "Some CPU: AVX2" in markdown and markdown.count("× |") == 3
    assert measure(workloads[:1], 1)  # the lock is free again
