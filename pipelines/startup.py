"""Startup: resolve and compile every OpenVINO model before the app takes requests."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from .classification import Classifier
from .models import DualModel
from .registry import CONTROLNET_POSE, SD_VARIANTS, SENTIMENT, TRANSLATION, ZERO_SHOT, ModelSpec
from .resolve import ResolvedModel, pytorch_source, resolve
from .runtime import Runtime
from .settings import Settings
from .translation import Translator

if TYPE_CHECKING:
    from .controlnet import PoseRunner
    from .sd import SDRunner

logger = logging.getLogger(__name__)

STARTUP_MODELS: tuple[ModelSpec, ...] = (TRANSLATION, SENTIMENT, ZERO_SHOT)


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
    from .controlnet import PoseRunner
    from .sd import SDRunner

    t0 = time.perf_counter()
    services = Services(settings, Runtime(settings))

    def load_model(spec: ModelSpec) -> None:
        # Compiles on the runtime's compile thread while the next models import and load.
        services.models[spec.key] = DualModel(resolve(spec, settings), services.runtime, wait=False)

    def load_sd() -> None:
        services.sd = SDRunner(sd_variants, services.runtime, resolver=resolve)

    def load_pose() -> None:
        resolved = resolve(pose, settings)
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
    for key, exc in services.runtime.finish().items():  # every compile done before the first request
        spec = next(s for s in specs if s.key == key)
        logger.error("%s failed to compile", spec.title, exc_info=exc)
        services.models.pop(key, None)
        services.failures[key] = _failure(spec, exc)
    services.ready_s = time.perf_counter() - t0
    logger.info("ready in %.1f s (%d failed)", services.ready_s, len(services.failures))
    return services
