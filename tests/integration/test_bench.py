"""The benchmark: timing rules, report, targets, and one real run on tiny stand-ins."""

from __future__ import annotations

import json

import pytest

from bench import cli, report
from pipelines.core import cpu


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch):
    """`app_builds` reads the app's tuning record from OVDEMO_HOME: here, an empty home of the test's own."""
    monkeypatch.setenv("OVDEMO_HOME", str(tmp_path / "home"))


def test_one_command_runs_each_configuration_in_its_own_process(settings, tmp_path):
    """A real run on tiny stand-ins (built once, shared with the other tests): every figure comes from a
    worker process, outputs are compared with PyTorch fp32, and the three files are written. The
    OpenVINO configuration is the build the app serves on this machine's CPU."""
    out = tmp_path / "bench"
    app = report.app_builds(home=settings.home)["classification"]["config"]  # the home the run reads
    argv = ["--quick", "--standin-size", "tiny", "--home", str(settings.home), "--threads", "2", "--out", str(out)]
    document = cli.main([*argv, "--workloads", "classification", "--configs", "pytorch-fp32", app])
    rows = {(r["workload"], r["config"]): r for r in document["results"]}
    workloads = cli.PLANS["classification"].rows
    assert set(rows) == {(w, c) for w in workloads for c in ("pytorch-fp32", app)}
    for r in rows.values():
        assert "error" not in r, r
        assert r["median"] > 0 and r["p90"] >= r["median"] and r["runs"] == cli.PLANS["classification"].quick.runs
        assert r["peak_rss_mib"] > 0
    for workload in workloads:  # the same label as PyTorch fp32 on the same text
        assert rows[workload, app]["same_as_pytorch"] is True
    assert rows["classification-short", app]["tokens"] <= 20 and 120 <= rows["classification", app]["tokens"] <= 128
    assert rows["zero-shot-repeat", app]["labels_cached"] == 4
    saved = json.loads((out / "bench.json").read_text())
    assert saved["results"][0]["median"] == rows["classification-short", "pytorch-fp32"]["median"]
    assert saved["conditions"]["machine"].startswith(cpu.detect().name)
    assert f"{app} (app)" in (out / "bench.md").read_text()
    assert (out / "chart.png").stat().st_size > 0


def test_a_configuration_that_runs_too_long_is_stopped_and_reported(tmp_path):
    args = cli.parse(["--timeout-s", "0.5", "--out", str(tmp_path), "--standin-size", "tiny"])
    outcome = cli.spawn(args, ["startup", ""])
    assert outcome["error"].startswith("did not finish in")
