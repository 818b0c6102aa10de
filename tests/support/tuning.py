"""The tuner's tests' candidates, and workloads whose speed a test sets."""

from __future__ import annotations

import time

from pipelines.core.cpu import CpuFeatures, detect
from pipelines.core.registry import Quantization
from pipelines.sources.prepare import resolve_all_apart
from pipelines.tuning import Candidate, Tuner

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


def tuner_for(settings, workloads, cpu: CpuFeatures | None = None, **options) -> Tuner:
    """A tuner on the test session's models, with nothing pinned unless `settings.build` says so here."""
    return Tuner(settings, cpu or detect(), resolve_all_apart, budget_s=0.5, workloads=workloads, **options)
