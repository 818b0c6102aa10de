"""How the tuner picks a build (`pipelines.tuning`), on builds whose speed the test sets and a fake clock."""

from __future__ import annotations

import dataclasses
import time

import pytest

from pipelines import tuning
from pipelines.core.registry import SENTIMENT, Quantization
from pipelines.tuning import Measured, fastest, pinned, time_candidates
from tests.support.tuning import FP32, WEIGHTS, sleeping, tuner_for


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


@pytest.fixture
def settings(settings):
    """The session's settings with no build pinned (the session pins the rule's, for its other tests)."""
    return dataclasses.replace(settings, build=None)


def test_a_pinned_build_is_served_without_measuring(settings):
    calls: list = []
    tuner = tuner_for(dataclasses.replace(settings, build="minilm-sst2=fp32"), sleeping({}, calls))
    chosen = tuner.choose(SENTIMENT)
    assert chosen.quantization is Quantization.NONE and "pinned by OVDEMO_BUILD" in chosen.build_reason and not calls
