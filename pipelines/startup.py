"""Startup: resolve and compile every OpenVINO model before the app takes requests."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property

from .classification import Classifier
from .models import DualModel
from .registry import CONTROLNET_POSE, SENTIMENT, TRANSLATION, ZERO_SHOT, ModelSpec, Task
from .resolve import resolve
from .runtime import Runtime
from .settings import Settings
from .translation import Translator

logger = logging.getLogger(__name__)

STARTUP_MODELS: tuple[ModelSpec, ...] = (TRANSLATION, SENTIMENT, ZERO_SHOT, CONTROLNET_POSE)


@dataclass
class Services:
    """Everything the UI needs, ready to serve. A model that failed to load is in `failures`
    with a sentence for the person using the app; its tab says so and the rest works."""

    settings: Settings
    runtime: Runtime
    models: dict[str, DualModel] = field(default_factory=dict)
    runners: dict[str, object] = field(default_factory=dict)
    """Image-task runners (one per spec key), for tasks that are more than one model."""
    failures: dict[str, str] = field(default_factory=dict)
    ready_s: float = 0.0

    def failure_of(self, *specs: ModelSpec) -> str:
        return " ".join(self.failures[s.key] for s in specs if s.key in self.failures)

    @cached_property
    def translator(self) -> Translator | None:
        model = self.models.get(TRANSLATION.key)
        return Translator(model) if model else None

    @cached_property
    def classifier(self) -> Classifier | None:
        sentiment, embedder = self.models.get(SENTIMENT.key), self.models.get(ZERO_SHOT.key)
        return Classifier(sentiment, embedder) if sentiment and embedder else None

    @cached_property
    def pose(self):
        """The ControlNet pose runner (`pipelines.controlnet.PoseRunner`), or None."""
        return self.runners.get(CONTROLNET_POSE.key)


def _load(spec: ModelSpec, services: Services) -> None:
    resolved = resolve(spec, services.settings)
    if spec.task is Task.CONTROLNET_POSE:
        from .controlnet import PoseRunner

        services.runners[spec.key] = PoseRunner(resolved, services.runtime)
    else:
        services.models[spec.key] = DualModel(resolved, services.runtime)


def start(settings: Settings, specs: tuple[ModelSpec, ...] = STARTUP_MODELS) -> Services:
    """Resolve, load and compile `specs` in order, logging progress as it goes."""
    t0 = time.perf_counter()
    services = Services(settings, Runtime(settings))
    for i, spec in enumerate(specs, 1):
        logger.info("[%d/%d] %s: finding the model", i, len(specs), spec.title)
        try:
            _load(spec, services)
        except Exception as exc:  # one broken model must not take the app down
            logger.exception("[%d/%d] %s failed to load", i, len(specs), spec.title)
            services.failures[spec.key] = f"{spec.title} could not be loaded ({type(exc).__name__}: {exc})."
    services.ready_s = time.perf_counter() - t0
    logger.info(
        "ready in %.1f s (%d models, %d failed)",
        services.ready_s,
        len(services.models) + len(services.runners),
        len(services.failures),
    )
    return services
