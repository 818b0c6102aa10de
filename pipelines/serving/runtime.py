"""The one place that knows OpenVINO settings: device, model cache, hints, and what
each compile cost."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pipelines.core.memory import rss_mb
from pipelines.core.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompileRecord:
    name: str
    load_s: float
    compile_s: float
    cache_hit: bool | None
    """True when every compiled part came from the model cache; None when caching is off."""
    note: str = ""
    """Why part of the model compiles without the cache, when it does (then `cache_hit` is False)."""
    memory_mb: float = 0.0
    """How much the app's resident memory grew while the model loaded and compiled."""


def _cache_files(cache_dir: Path | None) -> set[tuple[str, int, int]]:
    """(name, size, mtime) of every cache file: a blob written again counts as new."""
    if cache_dir is None or not cache_dir.is_dir():
        return set()
    found = set()
    for path in cache_dir.rglob("*"):
        try:
            if path.is_file():
                stat = path.stat()
                found.add((path.name, stat.st_size, stat.st_mtime_ns))
        except OSError:  # a blob replaced while this runs
            pass
    return found


class Runtime:
    """`ov.Core` configuration from `Settings`, shared by every model of the app."""

    def __init__(self, settings: Settings, openvino: bool = True):
        """`openvino=False`: a runtime that compiles nothing (`compile` returns None), for the PyTorch
        worker, which builds the same tasks with their PyTorch side only."""
        self.settings = settings
        self.openvino = openvino
        self.records: dict[str, CompileRecord] = {}
        self.cache_dir = self._usable_cache_dir(settings.cache_dir)

    @staticmethod
    def _usable_cache_dir(cache_dir: Path | None) -> Path | None:
        if cache_dir is None:
            return None
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            probe = cache_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            logger.warning("Model cache %s is not writable (%s): compiling without a cache.", cache_dir, exc)
            return None
        return cache_dir

    @cached_property
    def core(self):
        import openvino as ov

        return ov.Core()

    def ov_config(self, precision_hint: str | None = None) -> dict[str, str]:
        """Properties passed to every `compile_model` (and to OpenVINO GenAI's `compile`).
        `precision_hint`: the model's own (`ModelSpec.precision_hint`); `Settings.precision` overrides it."""
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            # An empty string disables caching.
            "CACHE_DIR": str(self.cache_dir) if self.cache_dir else "",
        }
        if precision := self.settings.precision or precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision.lower()
            if config["INFERENCE_PRECISION_HINT"] == "f32":
                # The CPU plugin keeps the KV cache in f16 unless told otherwise.
                config["KV_CACHE_PRECISION"] = "f32"
        return config

    def cache_bytes(self) -> int | None:
        """Size of the model cache on disk; None when caching is off."""
        return None if self.cache_dir is None else sum(size for _, size, _ in _cache_files(self.cache_dir))

    def devices(self) -> dict[str, str]:
        """Available devices and their full names, e.g. {"CPU": "Intel(R) Xeon(R) ..."}."""
        return {d: self.core.get_property(d, "FULL_DEVICE_NAME") for d in self.core.available_devices}

    def compile(self, name: str, load: Callable[[], object], compile: Callable[[object], None]):
        """Load a model with `load()`, compile it with `compile(model)`, record both timings and the
        memory they added, and return the model (None for a runtime without OpenVINO). Compiles run one
        at a time, so each model's memory is its own. A cache hit is read from the cache folder: a
        compile that writes no new blob was served from it."""
        if not self.openvino:
            return None
        t0, rss0 = time.perf_counter(), rss_mb()
        model = load()
        load_s = time.perf_counter() - t0
        before = _cache_files(self.cache_dir)
        t0 = time.perf_counter()
        compile(model)
        compile_s = time.perf_counter() - t0
        note = getattr(model, "uncached", "") if self.cache_dir is not None else ""
        hit = None if self.cache_dir is None else not (_cache_files(self.cache_dir) - before) and not note
        record = CompileRecord(name, load_s, compile_s, hit, note, round(max(0.0, rss_mb() - rss0), 1))
        self.records[name] = record
        logger.info(
            "compiled %s on %s in %.2f s (load %.2f s, cache %s%s)",
            name,
            self.settings.device,
            record.compile_s,
            record.load_s,
            {None: "off", True: "hit", False: "miss"}[hit],
            f": {note}" if note else "",
        )
        return model

    def memory_mb(self, *names: str) -> float | None:
        """The memory the named compiles added, summed; None when any of them is unknown."""
        found = [self.records[n].memory_mb if n in self.records else None for n in names]
        return None if None in found else round(sum(found), 1)
