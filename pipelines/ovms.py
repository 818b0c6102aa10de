"""Write the OpenVINO Model Server repository of the models this app serves on this machine.

    python -m pipelines.ovms --out DIR [--root /models] [--cache /cache] [--no-sd] [--max-sequences 64]

The models are the ones the app would load here, resolved the same way (a local `--models` folder,
the Hub's prebuilt IR, packaged weights, or stand-ins) and in the build `cpu.build_for` picks for
this CPU. Every model compiles on the server with the app's own properties (`Runtime.ov_config`);
`--cache` is where the server keeps its model cache. Then, for example:

    docker run -d --rm -p 8000:8000 -v DIR:/models:ro -v ovms-cache:/cache \\
        openvino/model_server:latest --rest_port 8000 --config_path /models/config.json
    OVDEMO_OVMS_URL=http://localhost:8000 python app.py

`docs/scale-out.md` has the rest: KServe, Kubernetes, what a request costs, capacity.
The ControlNet pose pipeline is not in the repository: OVMS has no graph for it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .cpu import detect, for_this_cpu
from .diffusion import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_STEPS
from .models import input_limit, read_json
from .ovms_repo import ImageModel, TextModel, write_repository
from .prepare import resolve_apart
from .registry import SD_VARIANTS, ZERO_SHOT, Task
from .runtime import Runtime
from .sd import image_size
from .settings import Settings
from .startup import STARTUP_MODELS

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.ovms", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="the repository folder (made if missing)")
    parser.add_argument("--root", default="/models", help="where the server mounts it (default /models)")
    parser.add_argument("--cache", default="/cache", help="the server's model cache folder (default /cache)")
    parser.add_argument("--no-sd", action="store_true", help="leave Stable Diffusion out (text models only)")
    parser.add_argument(
        "--max-sequences", type=int, default=64, help="translations one server decodes at once (default 64)"
    )
    args = parser.parse_args(argv)
    if not args.root.startswith("/"):
        parser.error("--root must be an absolute path inside the server's container")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.max_sequences < 1:
        parser.error("--max-sequences must be at least 1")
    config = repository(Settings.from_env(), args.out, args.root, args.cache, not args.no_sd, args.max_sequences)
    names = [entry["config"]["name"] for entry in config["model_config_list"]]
    names += [entry["name"] for entry in config["mediapipe_config_list"]]
    print(json.dumps({"repository": str(args.out), "models": names}))


if __name__ == "__main__":
    main()
