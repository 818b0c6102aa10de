"""Measured, not guessed: each text model's build is the one that ran fastest on the machine that serves it.

At a first start, for each text model, the candidate builds (FP32, INT8 weights, INT8 weights and
activations for the encoders; FP32 and INT8 weights for T5's decoder, which runs a token at a time; and,
where the CPU has bf16 units, each with the plugin's default bf16 and with the f32 hint) are built (in one
child process), compiled, and timed on the app's own requests: a typical sentence and 128 tokens for an
encoder, a 20-token translation for T5. Warm-up first, then rounds that run every candidate once each in
turn (so a slow moment of the machine costs every candidate alike), the median of each. The fastest is
served; one within `NOISE` of it that takes less memory wins the tie. Bounded: `BUDGET_S` in all.

The outcome is remembered in `OVDEMO_HOME/tuning.json`, keyed by the CPU's model name, its core count,
OpenVINO's version and the manifests of the candidate folders: a warm start reads it and measures nothing.
Any change of those, `--retune` (`OVDEMO_RETUNE=1`), or a damaged record measures again. `OVDEMO_BUILD`
pins a build (`fp32`, `int8-weights`, `int8`) for every text model, or per model
(`t5-small=fp32,minilm-sst2=int8`).

The image models' steps take seconds, so nothing is timed at startup for them: `python -m bench` writes
what it measured on this machine into the same record (`record_images`), and `image_choice` reads it.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.cpu import CpuFeatures, for_this_cpu
from pipelines.core.folders import read_manifest
from pipelines.core.memory import return_freed_memory
from pipelines.core.registry import PRECISION_LABELS, ModelSpec, Quantization, Task
from pipelines.core.settings import Settings

logger = logging.getLogger(__name__)

RECORD = "tuning.json"
VERSION = 1
"""Of the record's layout: a record of another version is measured again."""
BUDGET_S = 24.0
"""The most the timing rounds take at a first start, for every text model together: with the candidates'
compiles, about 30 s on 2 cores (builds aside: they are made once, in one child process for all)."""
NOISE = 0.05
"""Two builds whose times differ by less than this share are a tie: the one that takes less memory wins."""
WARMUP, MIN_ROUNDS, MAX_ROUNDS = 2, 3, 15
PAUSE_S = 0.05
"""Idle time before each timed call, as between requests that reach the app one by one (and as
`python -m bench` times them: back to back, the same calls run up to twice as fast)."""
TYPICAL = "I absolutely loved this film; the cast is wonderful."
LONG = (
    "The committee met on Tuesday to review the budget for the coming year, and after a long discussion "
    "about the costs of maintenance, staff, training and the new building, the members agreed to postpone "
    "the decision until the auditors had reported on the accounts of the last three years. "
) * 4
TRANSLATION = ("The weather is lovely today, so we are going for a walk by the river.", "German", 20)


@dataclass(frozen=True)
class Candidate:
    """One build of a model: how its IR is quantized, and the precision hint it compiles with."""

    quantization: Quantization
    precision_hint: str | None = None

    @property
    def label(self) -> str:
        hint = {"f32": " (f32 hint)", "bf16": " (bf16)"}.get(self.precision_hint or "", "")
        return PRECISION_LABELS[self.quantization] + hint

    def applied(self, spec: ModelSpec, reason: str) -> ModelSpec:
        return dataclasses.replace(
            spec, quantization=self.quantization, precision_hint=self.precision_hint, build_reason=reason
        )

    def to_dict(self) -> dict:
        return {"quantization": self.quantization.value, "precision_hint": self.precision_hint}

    @classmethod
    def from_dict(cls, value: dict) -> Candidate:
        return cls(Quantization(value["quantization"]), value.get("precision_hint"))


@dataclass
class Measured:
    candidate: Candidate
    ms: dict[str, float]
    """Median milliseconds per workload (e.g. "typical", "128 tokens")."""
    memory_mb: float | None = None

    @property
    def score(self) -> float:
        """The geometric mean of the medians: every workload counts by its ratio, not its size."""
        return statistics.geometric_mean(self.ms.values())

    def to_dict(self) -> dict:
        return {**self.candidate.to_dict(), "label": self.candidate.label, "ms": self.ms, "memory_mb": self.memory_mb}

    @classmethod
    def from_dict(cls, value: dict) -> Measured:
        return cls(Candidate.from_dict(value), dict(value["ms"]), value.get("memory_mb"))


@dataclass
class Choice:
    """What a model serves and why: "measured" (the table), "pinned" (`OVDEMO_BUILD`) or "rule" (cpu.py)."""

    candidate: Candidate
    how: str
    table: list[Measured] = field(default_factory=list)
    manifest: str = ""

    def reason(self) -> str:
        if self.how == "pinned":
            return f"{self.candidate.label}, pinned by OVDEMO_BUILD"
        if self.how != "measured":
            return self.how
        ranked = sorted(self.table, key=lambda m: m.score)
        figures = ", ".join(f"{m.candidate.label} {' / '.join(_ms(v) for v in m.ms.values())}" for m in ranked)
        what = " / ".join(self.table[0].ms) if self.table else ""
        return f"fastest of {len(self.table)} measured here ({what}): {figures}"

    def to_dict(self) -> dict:
        return {
            "chosen": self.candidate.to_dict(),
            "how": self.how,
            "manifest": self.manifest,
            "table": [m.to_dict() for m in self.table],
        }

    @classmethod
    def from_dict(cls, value: dict) -> Choice:
        table = [Measured.from_dict(m) for m in value.get("table", [])]
        return cls(Candidate.from_dict(value["chosen"]), value["how"], table, value.get("manifest", ""))


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def candidates(spec: ModelSpec, cpu: CpuFeatures) -> list[Candidate]:
    """The builds of `spec` worth timing on `cpu`."""
    if spec.task is Task.TRANSLATION:
        quantizations = [Quantization.NONE, Quantization.INT8_WEIGHTS]
    else:
        quantizations = [Quantization.NONE, Quantization.INT8_WEIGHTS, Quantization.INT8]
    hints: list[str | None] = [None, "f32"] if cpu.bf16_units else [None]
    return [Candidate(q, h) for q in quantizations for h in hints]


def machine_key(cpu: CpuFeatures) -> dict:
    import openvino

    return {"cpu": cpu.name, "cores": os.cpu_count(), "openvino": openvino.get_version()}


def manifest_digest(folders: list[Path]) -> str:
    """One digest of the candidate folders' manifests (what was built, from what, how)."""
    text = json.dumps([read_manifest(Path(f)) for f in folders], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pinned(settings: Settings, key: str) -> Quantization | None:
    """The build `OVDEMO_BUILD` pins for model `key`, if any."""
    value = (settings.build or "").strip()
    if not value:
        return None
    chosen = None
    for part in value.split(","):
        name, sep, build = part.strip().rpartition("=")
        if not sep:
            chosen = chosen or Quantization(build)
        elif name.strip() == key:
            return Quantization(build.strip())
    return chosen


class Record:
    """`OVDEMO_HOME/tuning.json`: what was measured on this machine, read once, written after each change."""

    def __init__(self, path: Path, key: dict):
        self.path, self.key = Path(path), key
        self.data = self._read()

    def _read(self) -> dict:
        fresh = {"version": VERSION, "machine": self.key, "models": {}, "images": {}}
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return fresh
        except (OSError, ValueError):
            logger.warning("the tuning record %s is damaged: measuring again", self.path)
            return fresh
        if not isinstance(data, dict) or data.get("version") != VERSION or data.get("machine") != self.key:
            logger.info(
                "the tuning record is for another machine or version (%s): measuring again", data.get("machine")
            )
            return fresh
        return data

    def choice(self, key: str, manifest: str) -> Choice | None:
        found = self.data.get("models", {}).get(key)
        if not isinstance(found, dict) or found.get("manifest") != manifest:
            return None
        try:
            return Choice.from_dict(found)
        except (KeyError, TypeError, ValueError):
            return None

    def remember(self, key: str, choice: Choice) -> None:
        self.data.setdefault("models", {})[key] = choice.to_dict()
        self._write()

    def record_images(self, key: str, entry: dict) -> None:
        """What `python -m bench` measured of an image model here: {"fastest": config, "table": {...}}."""
        self.data.setdefault("images", {})[key] = entry
        self._write()

    def record_bench(self, medians: dict[str, dict[str, float]]) -> None:
        """`python -m bench`'s medians here, per workload and configuration (what a tab may say of itself)."""
        self.data.setdefault("bench", {}).update(medians)
        self._write()

    def slower_than_pytorch(self, workloads: tuple[str, ...]) -> list[tuple[str, float, float]]:
        """(workload, the fastest OpenVINO median, PyTorch fp32's) where no OpenVINO build beat PyTorch here."""
        found = []
        for workload in workloads:
            medians = self.data.get("bench", {}).get(workload, {})
            openvino = [m for config, m in medians.items() if config.startswith("openvino")]
            if openvino and (pytorch := medians.get("pytorch-fp32")) and min(openvino) >= pytorch:
                found.append((workload, min(openvino), pytorch))
        return found

    def image(self, key: str) -> dict | None:
        found = self.data.get("images", {}).get(key)
        return found if isinstance(found, dict) else None

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.data, indent=2))
        partial.replace(self.path)


Timer = Callable[[object], dict[str, Callable[[], object]]]
"""`workloads(model)`: for a compiled candidate, its workloads by name, each a call to time."""


def time_candidates(
    models: dict[Candidate, object],
    workloads: Timer,
    budget_s: float,
    clock=time.perf_counter,
    pause_s: float = PAUSE_S,
) -> list[Measured]:
    """Warm-up, then rounds that run every candidate's every workload once in turn, until `MAX_ROUNDS` or
    `budget_s` (at least `MIN_ROUNDS`); the median of each."""
    calls = {c: workloads(m) for c, m in models.items()}
    samples: dict[Candidate, dict[str, list[float]]] = {c: {w: [] for w in calls[c]} for c in calls}
    for named in calls.values():
        for call in named.values():
            for _ in range(WARMUP):
                call()
    began = clock()
    for round_ in range(MAX_ROUNDS):
        if round_ >= MIN_ROUNDS and clock() - began > budget_s:
            break
        for c, named in calls.items():
            for name, call in named.items():
                time.sleep(pause_s)
                start = clock()
                call()
                samples[c][name].append((clock() - start) * 1000)
    return [Measured(c, {w: round(statistics.median(v), 2) for w, v in ms.items()}) for c, ms in samples.items()]


def fastest(table: list[Measured]) -> Measured:
    """The lowest score; any within `NOISE` of it that takes less memory (known for both) wins instead."""
    best = min(table, key=lambda m: m.score)
    ties = [m for m in table if m.score <= best.score * (1 + NOISE)]
    known = [m for m in ties if m.memory_mb is not None]
    if best.memory_mb is not None and len(known) > 1:
        return min(known, key=lambda m: (m.memory_mb, m.score))
    return best


def timed_requests(spec: ModelSpec) -> Timer:
    """The app's own requests for a text model: the call each makes on a compiled `DualModel`."""
    from pipelines.models.text import TextTokenizer
    from pipelines.tasks.translation import Translator

    if spec.task is Task.TRANSLATION:

        def translation(dual):
            translator = Translator(dual)
            request = translator.check(*TRANSLATION, TRANSLATION[2])
            return {"20 tokens": lambda: translator.run(request, "OpenVINO")}

        return translation

    def encoder(dual):
        short, _ = dual.tokenizer(TYPICAL)
        long, _ = TextTokenizer(dual.resolved.ir_dir, 128)(LONG)
        return {"typical": lambda: dual.ov(**short), "128 tokens": lambda: dual.ov(**long)}

    return encoder


class Tuner:
    """Picks each text model's build at startup: from the record, by `OVDEMO_BUILD`, or by measuring."""

    def __init__(
        self,
        settings: Settings,
        cpu: CpuFeatures,
        resolve_all: Callable[[tuple[ModelSpec, ...], Settings], list],
        budget_s: float = BUDGET_S,
        workloads: Callable[[ModelSpec], Timer] = timed_requests,
    ):
        self.settings, self.cpu, self._resolve_all = settings, cpu, resolve_all
        self.budget_s, self._workloads = budget_s, workloads
        self.record = Record(settings.home / RECORD, machine_key(cpu))
        self.choices: dict[str, Choice] = {}
        self._resolved: dict[tuple, object] = {}
        """Each candidate resolved, by (model key, candidate)."""
        self.measured_s = 0.0
        """Seconds this start spent timing candidates (0 on a warm start)."""

    def prepare(self, specs: tuple[ModelSpec, ...]) -> None:
        """Resolve every candidate of `specs` at once: what must be built is built in one child process, which
        imports its libraries once for all of them."""
        wanted = [(s, c) for s in specs if not self._fixed(s) for c in candidates(s, self.cpu)]
        wanted = [(s, c) for s, c in wanted if (s.key, c) not in self._resolved]
        if wanted:
            found = self._resolve_all(tuple(c.applied(s, "") for s, c in wanted), self.settings)
            self._resolved.update({(s.key, c): r for (s, c), r in zip(wanted, found, strict=True)})

    def _fixed(self, spec: ModelSpec) -> bool:
        """Whether `spec`'s build is not chosen by timing: pinned, or in a local folder."""
        local = self.settings.models_dir is not None and (self.settings.models_dir / spec.key).is_dir()
        return local or pinned(self.settings, spec.key) is not None

    def choose(self, spec: ModelSpec, share: float = 1.0) -> ModelSpec:
        """`spec` with the build to serve; `share` of the budget may go to timing it."""
        if (build := pinned(self.settings, spec.key)) is not None:
            hint = for_this_cpu(spec, self.cpu).precision_hint
            choice = Choice(Candidate(build, hint), "pinned")
            self.choices[spec.key] = choice
            return choice.candidate.applied(spec, choice.reason())
        if self.settings.models_dir is not None and (self.settings.models_dir / spec.key).is_dir():
            rule = for_this_cpu(spec, self.cpu)  # the folder holds one build: the one served
            reason = f"the build in the local folder (OVDEMO_MODELS/{spec.key}): nothing else to time"
            self.choices[spec.key] = Choice(Candidate(rule.quantization, rule.precision_hint), reason)
            return dataclasses.replace(rule, build_reason=reason)
        options = candidates(spec, self.cpu)
        self.prepare((spec,))
        found = [self._resolved[spec.key, c] for c in options]
        built = {c: r for c, r in zip(options, found, strict=True) if not isinstance(r, Exception)}
        if not built:
            rule = for_this_cpu(spec, self.cpu)
            self.choices[spec.key] = Choice(
                Candidate(rule.quantization, rule.precision_hint), f"rule: {rule.build_reason}"
            )
            return rule
        digest = manifest_digest([r.ir_dir for r in built.values()])
        choice = None if self.settings.retune else self.record.choice(spec.key, digest)
        if choice is None or choice.candidate not in built:
            choice = self._measure(spec, built, digest, share)
            self.record.remember(spec.key, choice)
        self.choices[spec.key] = choice
        return choice.candidate.applied(spec, choice.reason())

    def _measure(self, spec: ModelSpec, built: dict, digest: str, share: float) -> Choice:
        from pipelines.serving.backends import DualModel
        from pipelines.serving.runtime import Runtime

        t0 = time.perf_counter()
        models = {}
        for candidate, resolved in built.items():  # a runtime each: each compile's memory is its own
            resolved = dataclasses.replace(resolved, spec=candidate.applied(resolved.spec, ""))
            models[candidate] = DualModel(resolved, Runtime(self.settings))
        table = time_candidates(models, self._workloads(spec), self.budget_s * share)
        for m in table:
            m.memory_mb = models[m.candidate].memory_mb(_openvino())
        best = fastest(table)
        del models
        gc.collect()
        return_freed_memory()
        self.measured_s += time.perf_counter() - t0
        choice = Choice(best.candidate, "measured", sorted(table, key=lambda m: m.score), digest)
        logger.info("%s: %s; serving %s", spec.key, choice.reason(), best.candidate.label)
        return choice

    def table(self) -> list[tuple[str, Choice]]:
        return list(self.choices.items())


def _openvino():
    from pipelines.core.protocol import Backend

    return Backend.OPENVINO


def image_choice(settings: Settings, cpu: CpuFeatures, key: str) -> dict | None:
    """What `python -m bench` measured of image model `key` on this machine, when it did."""
    return Record(settings.home / RECORD, machine_key(cpu)).image(key)
