"""The composition root: resolve and compile every OpenVINO model before the app takes requests (`start`),
one builder per tab for the task it serves (`Services.served`), and, for the PyTorch worker, the same tasks
with their PyTorch side only (`torch_*`, passed to it in a `Recipe`)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pipelines.core.cpu import CpuFeatures, detect, for_this_cpu
from pipelines.core.folders import read_manifest
from pipelines.core.memory import Growth, memory_limit_mb, rss_mb
from pipelines.core.registry import (
    CONTROLNET_POSE,
    SD_VARIANTS,
    SENTIMENT,
    TRANSLATION,
    ZERO_SHOT,
    ModelSpec,
    Quantization,
    Task,
)
from pipelines.core.resolved import ResolvedModel
from pipelines.core.settings import Settings
from pipelines.serving.backends import DualModel
from pipelines.serving.budget import MemoryBudget, weights_mb
from pipelines.serving.remote import ModelServer
from pipelines.serving.runtime import Runtime
from pipelines.serving.worker import WORKER_HOLDER, Recipe, TorchWorker, WorkerSide
from pipelines.sources.prepare import resolve_all_apart, resolve_apart
from pipelines.sources.resolve import NotBuilt, pytorch_source, resolve
from pipelines.tasks.classification import Classifier
from pipelines.tasks.translation import Translator
from pipelines.tuning import Tuner, image_choice

if TYPE_CHECKING:
    from pipelines.tasks.controlnet import PoseRunner
    from pipelines.tasks.sd import SDRunner

logger = logging.getLogger(__name__)

STARTUP_MODELS: tuple[ModelSpec, ...] = (TRANSLATION, SENTIMENT, ZERO_SHOT)
TEXT_TIMEOUT_S = 15.0
"""The text tabs' bound on a silent PyTorch worker (`OVDEMO_WORKER_TIMEOUT_S` when that is shorter): a token or
a classification takes milliseconds, and loading says so every second, so 15 s of silence is a hang. Another
visitor's OpenVINO request of the same tab, queued behind it, waits that long at most."""
BUDGET_SHARE = 0.85
"""The default memory budget: this share of what the machine or container allows."""


@dataclass
class Services:
    """Everything the UI needs, ready to serve. A model that failed to load is in `failures`
    with a sentence for the person using the app; its tab says so and the rest works."""

    settings: Settings
    runtime: Runtime
    models: dict[str, DualModel] = field(default_factory=dict)
    sd: SDRunner | None = None
    """Stable Diffusion: the default variant compiled, the others on first selection."""
    pose: PoseRunner | None = None
    """ControlNet pose: detector and pipeline compiled."""
    failures: dict[str, str] = field(default_factory=dict)
    ready_s: float = 0.0
    worker: TorchWorker | None = None
    """Where the PyTorch baselines run (None: in this process, `Settings.torch_worker` off)."""
    budget: MemoryBudget | None = None
    """What optional models (other SD variants, the PyTorch worker) may take on, with the startup models."""
    model_server: ModelServer | None = None
    """Where the text models' OpenVINO inference runs (`Settings.ovms_url`); None: here."""
    tuner: Tuner | None = None
    """How each text model's build was chosen on this machine (`pipelines.tuning`): its table per model."""

    @cached_property
    def served(self) -> Served:
        """The task each tab runs: the ones below, with their PyTorch requests sent to the worker when there
        is one (one builder per tab). None where a tab's models failed to load."""
        if self.worker is None:
            return Served(self.translator, self.classifier, self.sd, self.pose)
        return Served(
            self.translator and translator_served(self.translator, self),
            self.classifier and classifier_served(self.classifier, self),
            self.sd and sd_served(self.sd, self),
            self.pose and pose_served(self.pose, self),
        )

    def failure_of(self, *specs: ModelSpec) -> str:
        return " ".join(self.failures[s.key] for s in specs if s.key in self.failures)

    def sources(self) -> list[ResolvedModel]:
        """Where every loaded model came from, in tab order."""
        found = [dual.resolved for dual in self.models.values()]
        if self.sd:
            found += [variant.resolved for variant in self.sd.variants.values()]
        if self.pose:
            found.append(self.pose.resolved)
        return found

    @cached_property
    def translator(self) -> Translator | None:
        model = self.models.get(TRANSLATION.key)
        return Translator(model) if model else None

    @cached_property
    def classifier(self) -> Classifier | None:
        sentiment, embedder = self.models.get(SENTIMENT.key), self.models.get(ZERO_SHOT.key)
        return Classifier(sentiment, embedder) if sentiment and embedder else None


def baseline_mb(resolved: ResolvedModel) -> float:
    """About what a PyTorch baseline adds when it loads: its fp32 weights when they are on disk here,
    else four times the OpenVINO IR's (INT8 or FP16 weights)."""
    return weights_mb(resolved.torch_ref) or 4 * (weights_mb(resolved.ir_dir) or 0.0)


@dataclass(frozen=True)
class Served:
    """What the task tabs run (`Services.served`)."""

    translator: Translator | None
    classifier: Classifier | None
    sd: SDRunner | None
    pose: PoseRunner | None


def _in_worker(services: Services, build, *args, need_mb, attribute: str | None = None, **options) -> WorkerSide:
    """A task's PyTorch side in the worker: `build(settings, *args)` there (below), admitted by the budget."""
    recipe = Recipe(build, (services.settings, *args), attribute)
    return WorkerSide(services.worker, recipe, budget=services.budget, need_mb=need_mb, **options)


def translator_served(task: Translator, services: Services) -> Translator:
    need = lambda request: baseline_mb(task.model.resolved)
    side = _in_worker(services, torch_translator, task.model.spec, need_mb=need, timeout_s=TEXT_TIMEOUT_S)
    return task.with_pytorch_elsewhere(side)


def classifier_served(task: Classifier, services: Services) -> Classifier:
    need = lambda request: baseline_mb(task.sentiment.resolved) + baseline_mb(task.embedder.resolved)
    specs = (task.sentiment.spec, task.embedder.spec)
    side = _in_worker(services, torch_classifier, *specs, need_mb=need, timeout_s=TEXT_TIMEOUT_S)
    return task.with_pytorch_elsewhere(side)


def sd_served(task: SDRunner, services: Services) -> SDRunner:
    need = lambda request: baseline_mb(task.default_variant.resolved)  # one checkpoint for every variant
    # The variant's folder is resolved (built, if it must be) here first, and not compiled: the worker finds it.
    before = lambda request: task.resolve_variant(request.variant)
    side = _in_worker(services, torch_sd, tuple(task.specs.values()), need_mb=need, before=before)
    return task.with_pytorch_elsewhere(side)


def pose_served(runner: PoseRunner, services: Services) -> PoseRunner:
    need = lambda request: baseline_mb(runner.resolved)
    side = lambda attribute: _in_worker(services, torch_pose, runner.spec, need_mb=need, attribute=attribute)
    return runner.with_pytorch_elsewhere(side("detection"), side("generation"))


# ---------------------------------------------------------------------- the PyTorch worker's side
# Called in the worker process (passed in a `Recipe`): the same tasks, with no OpenVINO side.
# The models resolve to the folders the app's process resolved (and built) already.


def torch_translator(settings: Settings, spec: ModelSpec) -> Translator:
    return Translator(DualModel(resolve(spec, settings), Runtime(settings, openvino=False)))


def torch_classifier(settings: Settings, sentiment: ModelSpec, zero_shot: ModelSpec) -> Classifier:
    runtime = Runtime(settings, openvino=False)
    return Classifier(
        DualModel(resolve(sentiment, settings), runtime), DualModel(resolve(zero_shot, settings), runtime)
    )


def torch_sd(settings: Settings, variants: tuple[ModelSpec, ...]) -> SDRunner:
    from pipelines.tasks.sd import SDRunner

    return SDRunner(variants, Runtime(settings, openvino=False), resolver=resolve)


def torch_pose(settings: Settings, spec: ModelSpec) -> PoseRunner:
    from pipelines.tasks.controlnet import PoseRunner

    resolved = resolve(spec, settings)
    return PoseRunner(resolved, Runtime(settings, openvino=False), lambda: pytorch_source(resolved, settings))


def pose_build(spec: ModelSpec, cpu: CpuFeatures, settings: Settings) -> ModelSpec:
    """The ControlNet pose build for `cpu` when it is at hand, else `spec`'s published build. The INT8
    build is exported from the PyTorch repos with a calibration run (tens of minutes on two cores), which
    startup never starts by itself; `python -m pipelines.build controlnet --int8` makes it."""
    chosen = for_this_cpu(spec, cpu)
    if (measured := image_choice(settings, cpu, spec.key)) is not None:  # `python -m bench` ran here
        steps = ", ".join(
            f"{config} {s:.1f} s" for config, s in sorted(measured["median_s"].items(), key=lambda i: i[1])
        )
        chosen = dataclasses.replace(
            spec,
            quantization=Quantization(measured["build"]),
            build_reason=f"fastest per step measured here by python -m bench: {steps}",
        )
    else:
        chosen = dataclasses.replace(chosen, build_reason=f"rule: {chosen.build_reason}")
    if settings.controlnet_ov_repo:
        return dataclasses.replace(spec, build_reason="the build in the repo OVDEMO_CONTROLNET_OV_REPO names")
    if chosen.quantization is spec.quantization:
        return chosen
    try:
        found = resolve(chosen, settings, build=False)
        if read_manifest(found.ir_dir).get("quantization") == chosen.quantization.value:
            return chosen
    except NotBuilt:
        pass
    except Exception:  # the published build is served; the tab must not fail for the faster one
        logger.exception("%s: looking for the %s build failed", spec.key, chosen.quantization.value)
    logger.info("%s: the %s build is not built here; serving %s", spec.key, chosen.quantization.value,
                spec.quantization.value)  # fmt: skip
    out = f"OVDEMO_HOME/exported/{spec.key}-{chosen.quantization.value}"  # no server path in the browser
    faster = f"this CPU's {cpu.int8_units} would run" if cpu.int8_units else "that runs"
    reason = (
        f"the Token Merging + INT8 build {faster} faster is not built here yet; "
        f"`python -m pipelines.build controlnet --int8 --out {out}` makes it, the next start serves it"
    )
    return dataclasses.replace(spec, build_reason=reason)


def _failure(spec: ModelSpec, exc: BaseException) -> str:
    """A sentence for the tab's banner. The app's own ValueErrors are written for people and
    name no server path; any other exception is named by its type (the log has the rest)."""
    cause = exc if isinstance(exc, ValueError) else (exc.__cause__ or exc)
    reason = f"{cause}" if isinstance(cause, ValueError) else type(cause).__name__
    return f"{spec.title} could not be loaded ({reason})."


def start(
    settings: Settings,
    specs: tuple[ModelSpec, ...] = STARTUP_MODELS,
    sd_variants: tuple[ModelSpec, ...] = SD_VARIANTS,
    pose: ModelSpec | None = CONTROLNET_POSE,
) -> Services:
    """Resolve, load and compile every startup model in order, logging progress as it goes:
    `specs` (one model each), the first of `sd_variants` (the others compile on first
    selection), and the ControlNet pose models."""
    from pipelines.tasks.controlnet import PoseRunner
    from pipelines.tasks.sd import SDRunner

    t0 = time.perf_counter()
    services = Services(settings, Runtime(settings))
    limit = settings.memory_budget_mb or BUDGET_SHARE * memory_limit_mb()
    services.budget = MemoryBudget(
        limit, lambda: rss_mb() + ((services.worker.rss_mb() or 0.0) if services.worker else 0.0)
    )
    if settings.torch_worker:
        services.worker = TorchWorker(
            settings.threads,
            settings.worker_idle_s,
            on_stop=lambda: services.budget.forget(WORKER_HOLDER),
            timeout_s=settings.worker_timeout_s,
        )
    logger.info("memory budget %.0f MB", limit)
    with Growth() as libraries:  # before any model, so that no model's memory counts them
        import openvino_genai  # noqa: F401
        import tokenizers  # noqa: F401

        services.runtime.core  # noqa: B018 - OpenVINO's Core and its CPU plugin
        cpu = detect()
    logger.info("libraries imported: %.0f MB resident", libraries.mb)
    logger.info("CPU: %s", cpu.describe())
    # The build that ran fastest here: measured at a first start, read from the record after.
    services.tuner = Tuner(settings, cpu, resolve_all_apart)
    try:
        services.tuner.prepare(specs)
    except Exception:  # each model tries again on its own below
        logger.exception("building the text models' candidate builds failed")
    tuned = []
    for i, spec in enumerate(specs, 1):
        logger.info("[tune %d/%d] %s: choosing the build to serve", i, len(specs), spec.title)
        try:
            tuned.append(services.tuner.choose(spec, share=1 / len(specs)))
        except Exception:  # the rule's build is served; timing must never keep a tab from loading
            logger.exception("%s: choosing its build failed; the rule of cpu.py picks it", spec.key)
            tuned.append(for_this_cpu(spec, cpu))
    specs = tuple(tuned)
    if services.tuner.measured_s:
        logger.info("timing the text models' builds took %.1f s", services.tuner.measured_s)
    pose = pose_build(pose, cpu, settings) if pose else None

    # Models resolve here without building; one that must be built is built in a child process.
    def load_model(spec: ModelSpec) -> None:
        # One model at a time, so the memory each adds is its own (`CompileRecord.memory_mb`).
        services.models[spec.key] = DualModel(resolve_apart(spec, settings), services.runtime)

    def load_sd() -> None:
        services.sd = SDRunner(sd_variants, services.runtime, resolver=resolve_apart, budget=services.budget)

    def load_pose() -> None:
        resolved = resolve_apart(pose, settings)
        services.pose = PoseRunner(resolved, services.runtime, lambda: pytorch_source(resolved, settings))

    steps = [(spec, lambda spec=spec: load_model(spec)) for spec in specs]
    steps += [(sd_variants[0], load_sd)] if sd_variants else []
    steps += [(pose, load_pose)] if pose else []
    for i, (spec, load) in enumerate(steps, 1):
        logger.info("[%d/%d] %s: finding and compiling the model", i, len(steps), spec.title)
        try:
            load()
        except Exception as exc:  # one broken model must not take the app down
            logger.exception("[%d/%d] %s failed to load", i, len(steps), spec.title)
            services.failures[spec.key] = _failure(spec, exc)
    if settings.ovms_url:
        services.model_server = ModelServer(settings.ovms_url, settings.ovms_timeout_s)
        for dual in services.models.values():
            dual.serve_on(services.model_server)
        logger.info(
            "text models: OpenVINO inference on %s",
            services.model_server.describe(
                [(dual.spec.key, dual.spec.task is Task.TRANSLATION) for dual in services.models.values()]
            ),
        )
    services.ready_s = time.perf_counter() - t0
    logger.info("ready in %.1f s (%d failed)", services.ready_s, len(services.failures))
    return services
