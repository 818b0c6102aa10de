"""The models this app serves on this machine, as an OpenVINO Model Server repository
(`python -m pipelines.scale_out` writes it)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.core.cpu import detect, for_this_cpu
from pipelines.core.diffusion import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_STEPS
from pipelines.core.registry import SD_VARIANTS, ZERO_SHOT, Task
from pipelines.core.settings import Settings
from pipelines.models.text import input_limit, read_json
from pipelines.scale_out.repository import ImageModel, TextModel, write_repository
from pipelines.serving.runtime import Runtime
from pipelines.sources.prepare import resolve_apart
from pipelines.startup import STARTUP_MODELS
from pipelines.tasks.sd import image_size

logger = logging.getLogger(__name__)


def repository(
    settings: Settings,
    out: Path,
    root: str = "/models",
    cache: str = "/cache",
    sd: bool = True,
    max_sequences: int = 64,
) -> dict:
    """Resolve the app's models as startup does and write their repository to `out`; its config."""
    runtime, cpu = Runtime(settings), detect()

    def plugin_config(hint: str | None) -> dict[str, str]:
        return {**runtime.ov_config(hint), "CACHE_DIR": cache}

    text = []
    for spec in (for_this_cpu(spec, cpu) for spec in STARTUP_MODELS):
        resolved = resolve_apart(spec, settings)
        longest = input_limit(spec, read_json(Path(resolved.ir_dir) / "config.json"))
        text.append(
            TextModel(
                spec.key,
                Path(resolved.ir_dir),
                spec.task is Task.TRANSLATION,
                plugin_config(spec.precision_hint),
                longest,
                spec.defaults.get("max_labels", 10) if spec.key == ZERO_SHOT.key else 1,
            )
        )
        logger.info("%s: %s", spec.title, resolved.describe())
    images = []
    if sd and SD_VARIANTS:
        resolved = resolve_apart(SD_VARIANTS[0], settings)
        height, width = image_size(resolved)
        images.append(
            ImageModel(
                resolved.spec.key,
                Path(resolved.ir_dir),
                height,
                width,
                DEFAULT_GUIDANCE,
                DEFAULT_STEPS,
                MAX_STEPS,
                plugin_config(resolved.spec.precision_hint),
            )
        )
        logger.info("%s: %s", resolved.spec.title, resolved.describe())
    return write_repository(out, text, images, root=root, max_sequences=max_sequences)
