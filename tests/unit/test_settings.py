"""Settings from the environment and the command line, and the OpenVINO properties they make
(`core.settings`, `serving.runtime`)."""

from __future__ import annotations

import pytest

from pipelines.core.registry import SENTIMENT
from pipelines.core.settings import Settings
from pipelines.serving.runtime import Runtime


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


def test_controlnet_ov_repo_setting(settings):
    from pipelines.core.registry import CONTROLNET_POSE
    from pipelines.sources.resolve import ov_repo

    assert ov_repo(CONTROLNET_POSE, settings) == CONTROLNET_POSE.ov_repo
    custom = Settings.from_env({"OVDEMO_CONTROLNET_OV_REPO": "someone/pose-ov"})
    assert custom.controlnet_ov_repo == "someone/pose-ov"
    assert ov_repo(CONTROLNET_POSE, custom) == "someone/pose-ov"
    assert ov_repo(SENTIMENT, custom) == SENTIMENT.ov_repo
    with pytest.raises(ValueError, match="'not a repo'"):
        Settings.from_env({"OVDEMO_CONTROLNET_OV_REPO": "not a repo"})
