"""Write the OpenVINO Model Server repository of the models this app serves on this machine.

    python -m pipelines.scale_out --out DIR [--root /models] [--cache /cache] [--no-sd] [--max-sequences 64]

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

from pipelines.core.settings import Settings
from pipelines.scale_out.from_app import repository


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.scale_out", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
