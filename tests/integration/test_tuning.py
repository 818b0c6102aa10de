"""Each text model serves the build that ran fastest here: the tuner's pick, its record, and its bounds."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from pipelines import tuning
from pipelines.core.cpu import CpuFeatures, detect
from pipelines.core.registry import SENTIMENT, TRANSLATION, Quantization
from pipelines.sources.prepare import resolve_all_apart
from pipelines.tuning import Candidate, Measured, Tuner, fastest, pinned, time_candidates

FP32, WEIGHTS, INT8 = Candidate(Quantization.NONE), Candidate(Quantization.INT8_WEIGHTS), Candidate(Quantization.INT8)


def sleeping(delays_ms: dict[Quantization, float], calls: list | None = None):
    """Workloads whose speed the test sets per build: each call sleeps its build's delay."""

    def workloads(spec):
        def named(dual):
            delay = delays_ms[dual.spec.quantization] / 1000
            if calls is not None:
                calls.append(dual.spec.quantization)
            return {"typical": lambda: time.sleep(delay), "128 tokens": lambda: time.sleep(2 * delay)}

        return named

    return workloads


def test_the_faster_of_two_builds_is_picked_whichever_it_is():
    for slow, quick in ((FP32, WEIGHTS), (WEIGHTS, FP32)):
        delays = {slow: 0.012, quick: 0.004}
        work = lambda c, delays=delays: {"w": lambda: time.sleep(delays[c])}
        table = time_candidates({c: c for c in delays}, work, 1.0, pause_s=0)
        assert fastest(table).candidate == quick, table


def test_a_tie_within_noise_goes_to_the_smaller_build():
    table = [Measured(FP32, {"w": 10.0}, memory_mb=90.0), Measured(WEIGHTS, {"w": 10.3}, memory_mb=30.0)]
    assert fastest(table).candidate == WEIGHTS
    table[1].ms["w"] = 12.0  # 20% slower: not a tie
    assert fastest(table).candidate == FP32


def test_timing_stops_at_its_budget_after_the_fewest_rounds():
    ticks = iter(range(0, 10**6, 100))  # each clock read is 100 s later
    table = time_candidates({FP32: None}, lambda _: {"w": lambda: None}, 1.0, clock=lambda: next(ticks), pause_s=0)
    assert table[0].ms["w"] == 100_000  # ms per call: 100 s between the two reads around it
    counted = []
    time_candidates({FP32: None}, lambda _: {"w": lambda: counted.append(1)}, 0.0, pause_s=0)
    assert len(counted) == tuning.WARMUP + tuning.MIN_ROUNDS


def test_pins_by_model_or_for_all(settings):
    assert pinned(dataclasses.replace(settings, build="fp32"), "t5-small") is Quantization.NONE
    per_model = dataclasses.replace(settings, build="t5-small=int8-weights, minilm-sst2=fp32")
    assert pinned(per_model, "minilm-sst2") is Quantization.NONE and pinned(per_model, "other") is None


def tuner_for(settings, workloads, cpu: CpuFeatures | None = None, **options) -> Tuner:
    """A tuner on the test session's models, with nothing pinned unless `settings.build` says so here."""
    return Tuner(settings, cpu or detect(), resolve_all_apart, budget_s=0.5, workloads=workloads, **options)


@pytest.fixture
def settings(settings):
    """The session's settings with no build pinned (the session pins the rule's, for its other tests)."""
    return dataclasses.replace(settings, build=None)


def test_the_tuner_serves_the_build_the_test_made_fastest_and_says_so(settings, monkeypatch, tmp_path):
    monkeypatch.setattr(tuning, "RECORD", "tuning-test-pick.json")
    for quick in (Quantization.INT8_WEIGHTS, Quantization.NONE):
        delays = {q: (2.0 if q is quick else 8.0) for q in Quantization}
        tuner = tuner_for(dataclasses.replace(settings, retune=True), sleeping(delays))
        chosen = tuner.choose(SENTIMENT)
        assert chosen.quantization is quick
        assert chosen.build_reason.startswith("fastest of 3 measured here (typical / 128 tokens)")
        # What a start adds: three compiles and 0.5 s of timing. (Building the candidates, once per home, in a
        # child process, is not bounded by a wall clock here: its time depends on the machine's load.)
        assert tuner.measured_s < 10


def test_the_record_is_reused_and_redone_when_the_machine_or_the_models_change(settings, monkeypatch, tmp_path):
    monkeypatch.setattr(tuning, "RECORD", "tuning-test-record.json")
    record = settings.home / "tuning-test-record.json"
    record.unlink(missing_ok=True)
    delays = {Quantization.NONE: 2.0, Quantization.INT8_WEIGHTS: 6.0}
    calls: list = []
    first = tuner_for(settings, sleeping(delays, calls))
    assert first.choose(TRANSLATION).quantization is Quantization.NONE and calls
    assert json.loads(record.read_text())["models"]["t5-small"]["how"] == "measured"

    calls.clear()  # a warm start: read, not measured
    warm = tuner_for(settings, sleeping(delays, calls))
    assert warm.choose(TRANSLATION).quantization is Quantization.NONE and not calls and warm.measured_s == 0

    other_cpu = dataclasses.replace(detect(), name="Another CPU")
    tuner_for(settings, sleeping(delays, calls), cpu=other_cpu).choose(TRANSLATION)
    assert calls, "another CPU name must be measured again"

    calls.clear()
    key = tuning.machine_key
    monkeypatch.setattr(tuning, "machine_key", lambda cpu: {**key(cpu), "openvino": "9"})
    tuner_for(settings, sleeping(delays, calls), cpu=other_cpu).choose(TRANSLATION)
    assert calls, "another OpenVINO version must be measured again"


def test_a_changed_manifest_or_a_damaged_record_is_measured_again(settings, monkeypatch):
    monkeypatch.setattr(tuning, "RECORD", "tuning-test-damage.json")
    record = settings.home / "tuning-test-damage.json"
    record.unlink(missing_ok=True)
    delays = {Quantization.NONE: 2.0, Quantization.INT8_WEIGHTS: 6.0}
    calls: list = []
    tuner_for(settings, sleeping(delays, calls)).choose(TRANSLATION)
    calls.clear()
    record.write_text("{ not json")
    assert tuner_for(settings, sleeping(delays, calls)).choose(TRANSLATION).quantization is Quantization.NONE
    assert calls and json.loads(record.read_text())["models"]["t5-small"]["how"] == "measured"

    calls.clear()
    monkeypatch.setattr(tuning, "manifest_digest", lambda folders: "another build of the same model")
    tuner_for(settings, sleeping(delays, calls)).choose(TRANSLATION)
    assert calls, "a model folder built anew must be measured again"


def test_a_pinned_build_is_served_without_measuring(settings):
    calls: list = []
    tuner = tuner_for(dataclasses.replace(settings, build="minilm-sst2=fp32"), sleeping({}, calls))
    chosen = tuner.choose(SENTIMENT)
    assert chosen.quantization is Quantization.NONE and "pinned by OVDEMO_BUILD" in chosen.build_reason and not calls
