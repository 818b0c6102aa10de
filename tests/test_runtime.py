"""The OpenVINO runtime layer: settings, model cache, compile records."""

from __future__ import annotations

import dataclasses

import pytest

from pipelines.models import DualModel
from pipelines.registry import SENTIMENT
from pipelines.runtime import Runtime
from pipelines.settings import Settings


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


def test_static_shape_after_reshape(services):
    inputs = services.models[SENTIMENT.key].ov.model.inputs
    assert all(i.get_partial_shape().is_static and list(i.get_shape()) == [1, 128] for i in inputs)


def test_ov_config_and_devices(settings):
    runtime = Runtime(settings)
    config = runtime.ov_config()
    assert config["PERFORMANCE_HINT"] == "LATENCY"
    assert config["INFERENCE_PRECISION_HINT"] == "f32" and config["KV_CACHE_PRECISION"] == "f32"
    assert "CPU" in runtime.devices()


def test_settings_from_env(tmp_path):
    env = {
        "OVDEMO_MODELS": str(tmp_path),
        "OVDEMO_CACHE_DIR": "",
        "OVDEMO_PRECISION": "bf16",
        "OVDEMO_THREADS": "1",
        "OVDEMO_STANDIN_SIZE": "tiny",
    }
    s = Settings.from_env(env, device="CPU")
    assert s.models_dir == tmp_path and s.cache_dir is None and s.precision == "bf16"
    assert s.threads == 1 and s.standin_size == "tiny"
    assert Settings.from_env({}, cache_dir="", home=str(tmp_path)).cache_dir is None
    with pytest.raises(ValueError, match="standin_size"):
        Settings.from_env({"OVDEMO_STANDIN_SIZE": "huge"})
