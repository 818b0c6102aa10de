"""Startup: resolve and compile every OpenVINO model before the app takes requests."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property

from .classification import Classifier
from .models import DualModel
from .registry import SD_VARIANTS, SENTIMENT, TRANSLATION, ZERO_SHOT, ModelSpec
from .resolve import resolve
from .runtime import Runtime
from .settings import Settings
from .translation import Translator

logger = logging.getLogger(__name__)

STARTUP_MODELS: tuple[ModelSpec, ...] = (TRANSLATION, SENTIMENT, ZERO_SHOT)


@dataclass
class Services:
    """Everything the UI needs, ready to serve. A model that failed to load is in `failures`
    with a sentence for the person using the app; its tab says so and the rest works."""

    settings: Settings
    runtime: Runtime
    models: dict[str, DualModel] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    ready_s: float = 0.0
    sd_runner: object | None = None
    """The `pipelines.sd.SDRunner` (default variant compiled), None when it failed to load."""

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

    @property
    def sd(self):
        """The Stable Diffusion runner, or None when its default variant failed to load."""
        return self.sd_runner


def start(
    settings: Settings, specs: tuple[ModelSpec, ...] = STARTUP_MODELS, sd_variants: tuple[ModelSpec, ...] = SD_VARIANTS
) -> Services:
    """Resolve, load and compile `specs` in order, then the default Stable Diffusion variant
    (the first of `sd_variants`; the others compile on first selection), logging progress."""
    t0 = time.perf_counter()
    services = Services(settings, Runtime(settings))
    total = len(specs) + bool(sd_variants)
    for i, spec in enumerate(specs, 1):
        logger.info("[%d/%d] %s: finding the model", i, total, spec.title)
        try:
            services.models[spec.key] = DualModel(resolve(spec, settings), services.runtime)
        except Exception as exc:  # one broken model must not take the app down
            logger.exception("[%d/%d] %s failed to load", i, total, spec.title)
            services.failures[spec.key] = f"{spec.title} could not be loaded ({type(exc).__name__}: {exc})."
    if sd_variants:
        from .sd import SDRunner

        default = sd_variants[0]
        logger.info("[%d/%d] %s: finding and compiling the model", total, total, default.title)
        try:
            services.sd_runner = SDRunner(sd_variants, services.runtime)
        except Exception as exc:
            logger.exception("[%d/%d] %s failed to load", total, total, default.title)
            cause = exc.__cause__ or exc
            services.failures[default.key] = f"{default.title} could not be loaded ({type(cause).__name__}: {cause})."
    services.ready_s = time.perf_counter() - t0
    logger.info(
        "ready in %.1f s (%d models, %d failed)", services.ready_s, len(services.models), len(services.failures)
    )
    return services
