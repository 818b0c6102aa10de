"""Each text model serves the build that ran fastest here: the tuner's pick, its record, and its bounds."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pipelines import tuning
from pipelines.core.cpu import detect
from pipelines.core.registry import SENTIMENT, TRANSLATION, Quantization
from tests.support.tuning import sleeping, tuner_for


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
