"""The OpenVINO runtime layer: settings, model cache, compile records."""

from __future__ import annotations

import dataclasses

import pytest

from pipelines.core.registry import SENTIMENT
from pipelines.serving.backends import DualModel
from pipelines.serving.runtime import Runtime


def test_cache_gets_blobs_and_second_compile_hits(services, settings, tmp_path):
    resolved = services.models[SENTIMENT.key].resolved
    cold = Runtime(dataclasses.replace(settings, cache_dir=tmp_path / "cache"))
    DualModel(resolved, cold)
    assert cold.records[SENTIMENT.key].cache_hit is False
    assert any(p.suffix == ".blob" for p in (tmp_path / "cache").iterdir())

    warm = Runtime(dataclasses.replace(settings, cache_dir=tmp_path / "cache"))
    DualModel(resolved, warm)
    assert warm.records[SENTIMENT.key].cache_hit is True


def test_cache_can_be_disabled(services, settings):
    runtime = Runtime(dataclasses.replace(settings, cache_dir=None))
    DualModel(services.models[SENTIMENT.key].resolved, runtime)
    assert runtime.ov_config()["CACHE_DIR"] == ""
    assert runtime.records[SENTIMENT.key].cache_hit is None


def test_cache_dir_that_is_a_file_runs_without_cache(settings, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    runtime = Runtime(dataclasses.replace(settings, cache_dir=blocker / "cache"))
    assert runtime.cache_dir is None and runtime.ov_config()["CACHE_DIR"] == ""
    assert "not writable" in caplog.text


def test_text_models_take_any_length(services):
    """No static reshape: each request runs at its own token count."""
    inputs = services.models[SENTIMENT.key].ov.model.inputs
    assert all(i.get_partial_shape()[1].is_dynamic for i in inputs)


def _blobs(cache):
    return {(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in cache.iterdir() if p.suffix == ".blob"}


def test_t5_decoder_skips_the_cache_and_says_why(services, settings, tmp_path):
    from pipelines.core.registry import TRANSLATION
    from pipelines.models.t5_openvino import DECODER_UNCACHED

    resolved = services.models[TRANSLATION.key].resolved
    settings = dataclasses.replace(settings, cache_dir=tmp_path / "cache")
    DualModel(resolved, Runtime(settings))
    first = _blobs(tmp_path / "cache")
    assert len(first) == 1  # the encoder's; the decoder's could not be loaded back

    warm = Runtime(settings)
    DualModel(resolved, warm)
    assert _blobs(tmp_path / "cache") == first  # nothing rewritten on a restart
    record = warm.records[TRANSLATION.key]
    assert record.cache_hit is False and record.note == DECODER_UNCACHED


def test_a_compile_records_its_time_and_the_memory_it_added(settings):
    runtime = Runtime(dataclasses.replace(settings, cache_dir=None))
    done = []
    assert runtime.compile("good", lambda: "model", done.append) == "model"
    with pytest.raises(ZeroDivisionError):
        runtime.compile("bad", lambda: "model", lambda model: 1 / 0)
    assert done == ["model"] and set(runtime.records) == {"good"}
    assert runtime.records["good"].memory_mb >= 0 and runtime.memory_mb("good") == runtime.records["good"].memory_mb
    assert runtime.memory_mb("good", "never compiled") is None
    assert Runtime(settings, openvino=False).compile("x", lambda: 1 / 0, done.append) is None  # the worker's
