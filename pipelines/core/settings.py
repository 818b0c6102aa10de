"""Runtime configuration, read once from the environment (and `app.py` flags).

Every knob of the app lives here, so the rest of the code receives a `Settings`
value instead of reading the environment itself.

| variable                 | flag           | meaning                                                         |
|--------------------------|----------------|-----------------------------------------------------------------|
| `OVDEMO_MODELS`          | `--models`     | folder with ready OpenVINO IR, one sub-folder per registry key  |
| `OVDEMO_HOME`            | `--home`       | where exported and stand-in models are kept                     |
| `OVDEMO_CACHE_DIR`       | `--cache-dir`  | OpenVINO model cache; empty string disables it                  |
| `OVDEMO_DEVICE`          | `--device`     | OpenVINO device (default `CPU`)                                 |
| `OVDEMO_PRECISION`       | `--precision`  | `INFERENCE_PRECISION_HINT` (`f32`, `bf16`, `f16`); unset = auto |
| `OVDEMO_THREADS`         | `--threads`    | threads for PyTorch (default: all cores)                        |
| `OVDEMO_STANDIN_SIZE`    | `--standin-size` | `full`, `small` (default) or `tiny`; see StandinSize              |
| `OVDEMO_HUB_TIMEOUT`     |                | seconds to wait for the Hub before using stand-ins (default 3)  |
| `OVDEMO_TORCH_WORKER`    |                | `1` (default): PyTorch baselines in a worker process; `0`: in the app's |
| `OVDEMO_WORKER_IDLE_S`   |                | the worker exits after this many idle seconds (default 900)      |
| `OVDEMO_WORKER_TIMEOUT_S`|                | a PyTorch request silent this long ends; its worker is killed (120) |
| `OVDEMO_MEMORY_BUDGET_MB`|                | most resident memory the app takes on (default: 85% of the limit) |
| `OVDEMO_CONTROLNET_OV_REPO` |             | Hub repo of the ControlNet pose IR, instead of the registry's   |
| `OVDEMO_OVMS_URL`        | `--ovms-url`   | model server (OVMS, KServe V2) for the text tabs' OpenVINO side |
| `OVDEMO_OVMS_TIMEOUT_S`  |                | seconds a server call may take before the local model answers (2) |
| `OVDEMO_BUILD`           |                | pin the text models' build: `fp32`, `int8-weights`, `int8`, or per model |
| `OVDEMO_RETUNE`          | `--retune`     | `1`: time the text models' builds again at this start           |

`HF_HOME`, `HF_ENDPOINT` and `HF_HUB_OFFLINE` are honoured through huggingface_hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

StandinSize = Literal["full", "small", "tiny"]
"""Offline stand-ins: `full` = every model at its real configuration; `small` (default) = the text
models at real size, the image models in a reduced SD 1.x layout that builds in minutes; `tiny` = tests."""


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ov-vs-pytorch"


@dataclass(frozen=True)
class Settings:
    models_dir: Path | None = None
    home: Path = _user_cache() / "models"
    cache_dir: Path | None = _user_cache() / "ov_cache"
    device: str = "CPU"
    precision: str | None = None
    threads: int = os.cpu_count() or 1
    standin_size: StandinSize = "small"
    hub_timeout: float = 3.0
    controlnet_ov_repo: str | None = None
    """Another copy of the prebuilt ControlNet pose IR on the Hub (`owner/name`); None = the registry's."""
    torch_worker: bool = True
    """PyTorch baselines in a process of their own (`pipelines.serving.worker`); False runs them in the app's."""
    worker_idle_s: float = 900.0
    worker_timeout_s: float = 120.0
    """The longest a PyTorch request waits for its worker without a word (a step, a result, a sign of loading):
    then it ends with a sentence and the worker is killed. The slowest silent stretch measured is the full-size
    SD image's last step plus its VAE decode on PyTorch fp32, about 30 s on a 2-core AMD EPYC Zen 3 (AVX2)
    (`docs/bench/results.md`: 82 s for 4 steps of 13 s); a 2-core CPU with half its speed, twice that margin.
    The text tabs bound it to `startup.TEXT_TIMEOUT_S` (15 s) when this is longer."""
    memory_budget_mb: float | None = None
    """None: 85% of the memory this process may use (`memory.memory_limit_mb`)."""
    ovms_url: str | None = None
    """`http://host:port` of a KServe v2 server holding `python -m pipelines.scale_out`'s repository: the text tabs
    send their OpenVINO inference there (`pipelines.serving.remote`). None: every model runs in this process."""
    ovms_timeout_s: float = 2.0
    build: str | None = None
    """Pins the text models' build instead of timing them (`pipelines.tuning.pinned`); None: the fastest measured."""
    retune: bool = False
    """Time the text models' builds again at this start, whatever the record says."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from `OVDEMO_*` variables; keyword overrides (from flags) win when not None."""
        env = os.environ if env is None else env
        values: dict = {}
        if env.get("OVDEMO_MODELS"):
            values["models_dir"] = Path(env["OVDEMO_MODELS"])
        if env.get("OVDEMO_HOME"):
            values["home"] = Path(env["OVDEMO_HOME"])
        if "OVDEMO_CACHE_DIR" in env:
            values["cache_dir"] = Path(env["OVDEMO_CACHE_DIR"]) if env["OVDEMO_CACHE_DIR"] else None
        if env.get("OVDEMO_DEVICE"):
            values["device"] = env["OVDEMO_DEVICE"]
        if env.get("OVDEMO_PRECISION"):
            values["precision"] = env["OVDEMO_PRECISION"]
        if env.get("OVDEMO_THREADS"):
            values["threads"] = int(env["OVDEMO_THREADS"])
        if env.get("OVDEMO_STANDIN_SIZE"):
            values["standin_size"] = env["OVDEMO_STANDIN_SIZE"]
        if env.get("OVDEMO_HUB_TIMEOUT"):
            values["hub_timeout"] = float(env["OVDEMO_HUB_TIMEOUT"])
        if env.get("OVDEMO_TORCH_WORKER"):
            values["torch_worker"] = env["OVDEMO_TORCH_WORKER"].strip().lower() not in ("0", "false", "no", "off")
        if env.get("OVDEMO_WORKER_IDLE_S"):
            values["worker_idle_s"] = float(env["OVDEMO_WORKER_IDLE_S"])
        if env.get("OVDEMO_WORKER_TIMEOUT_S"):
            values["worker_timeout_s"] = float(env["OVDEMO_WORKER_TIMEOUT_S"])
        if env.get("OVDEMO_MEMORY_BUDGET_MB"):
            values["memory_budget_mb"] = float(env["OVDEMO_MEMORY_BUDGET_MB"])
        if env.get("OVDEMO_CONTROLNET_OV_REPO"):
            values["controlnet_ov_repo"] = env["OVDEMO_CONTROLNET_OV_REPO"].strip()
        if env.get("OVDEMO_OVMS_URL"):
            values["ovms_url"] = env["OVDEMO_OVMS_URL"].strip()
        if env.get("OVDEMO_BUILD"):
            values["build"] = env["OVDEMO_BUILD"].strip()
        if env.get("OVDEMO_RETUNE"):
            values["retune"] = env["OVDEMO_RETUNE"].strip().lower() in ("1", "true", "yes", "on")
        if env.get("OVDEMO_OVMS_TIMEOUT_S"):
            values["ovms_timeout_s"] = float(env["OVDEMO_OVMS_TIMEOUT_S"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "cache_dir" in overrides and overrides["cache_dir"] == "":
            values["cache_dir"] = None
        return cls(**values).validated()

    def validated(self) -> Settings:
        if self.standin_size not in ("full", "small", "tiny"):
            raise ValueError(f"standin_size must be 'full', 'small' or 'tiny', got {self.standin_size!r}")
        if self.memory_budget_mb is not None and not self.memory_budget_mb > 0:
            raise ValueError(f"memory_budget_mb must be positive, got {self.memory_budget_mb}")
        if not self.worker_idle_s > 0:
            raise ValueError(f"worker_idle_s must be positive, got {self.worker_idle_s}")
        if not self.worker_timeout_s >= 2:  # the worker's signs of life come every second
            raise ValueError(f"worker_timeout_s must be at least 2 seconds, got {self.worker_timeout_s}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.precision is not None and self.precision.lower() not in ("f32", "bf16", "f16"):
            raise ValueError(f"precision must be f32, bf16 or f16, got {self.precision!r}")
        if self.controlnet_ov_repo is not None and self.controlnet_ov_repo.count("/") != 1:
            raise ValueError(f"controlnet_ov_repo must be a Hub repo id 'owner/name', got {self.controlnet_ov_repo!r}")
        if self.build:
            from pipelines.core.registry import Quantization

            for part in self.build.split(","):
                build = part.rpartition("=")[2].strip()
                if build not in {q.value for q in Quantization}:
                    raise ValueError(
                        f"OVDEMO_BUILD names {build!r}; a build is one of {[q.value for q in Quantization]}"
                    )
        if not self.ovms_timeout_s > 0:
            raise ValueError(f"ovms_timeout_s must be positive, got {self.ovms_timeout_s}")
        if self.ovms_url is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(self.ovms_url if "://" in self.ovms_url else f"http://{self.ovms_url}")
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"ovms_url must be http://host:port (a KServe V2 REST API), not {self.ovms_url!r}")
        coerce = {
            k: Path(v)
            for k, v in (("models_dir", self.models_dir), ("home", self.home), ("cache_dir", self.cache_dir))
            if isinstance(v, str)
        }
        return replace(self, **coerce) if coerce else self
