"""The build command line: one OpenVINO IR folder per call.

    python -m pipelines.build sd SOURCE OUT [--int8] [--tome RATIO] [--fp32-base DIR] [--height H --width W]
    python -m pipelines.build sd --standin {tiny,small,sd15} OUT [--int8] [--tome RATIO]
    python -m pipelines.build controlnet --out DIR [--source DIR | --standin {full,tiny}] [--fp32 | --int8]
                                         [--push-to user/repo] [--private]

`sd` converts a Stable Diffusion 1.x diffusers checkpoint (`pipelines.build.convert`); `controlnet` exports the
ControlNet pose tab's parts (`pipelines.build.controlnet_export`), from the Hub repos unless `--source` or
`--standin` says otherwise. The app itself builds what it serves on its own; these are for publishing a build
(`--push-to`) or making one it does not start by itself (the ControlNet INT8 build).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.build.controlnet_export import assemble_hub_source, export_controlnet, push_to_hub
from pipelines.build.convert import add_sd_parser
from pipelines.build.standins import build_standin
from pipelines.core.folders import building, is_built, write_manifest
from pipelines.core.registry import CONTROLNET_POSE, Quantization
from pipelines.core.settings import Settings
from pipelines.sources.hub import hub_snapshot

logger = logging.getLogger("pipelines.build")


def add_controlnet_parser(subparsers) -> None:
    p = subparsers.add_parser("controlnet", help="ControlNet pose: SD 1.5 + OpenPose ControlNet + OpenPose -> IR")
    p.add_argument("--source", help="source folder in the layout of controlnet_export; default: the Hub repos")
    p.add_argument("--standin", choices=["full", "tiny"], help="build a random-weight stand-in as the source")
    p.add_argument("--out", type=Path, required=True, help="IR folder to write")
    build = p.add_mutually_exclusive_group()
    build.add_argument("--fp32", action="store_true", help="no INT8 compression")
    build.add_argument(
        "--int8",
        action="store_true",
        help="Token Merging + INT8 weights and activations, calibrated (the build the app picks)",
    )
    p.add_argument("--push-to", help="Hub repo id to upload the folder to (needs a write token)")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")
    p.set_defaults(func=_run_controlnet)


def _run_controlnet(args: argparse.Namespace) -> None:
    spec = CONTROLNET_POSE
    if args.standin:
        source = args.out.with_name(args.out.name + "-pytorch")
        if not is_built(source):
            with building(source) as partial:
                build_standin(args.standin, partial)
                write_manifest(partial, {"standin": "controlnet-pose", "size": args.standin})
    elif args.source:
        source = Path(args.source)
    else:
        settings = Settings.from_env()
        fetch = lambda repo, patterns: hub_snapshot(repo, settings, allow_patterns=patterns)
        source = assemble_hub_source(spec, fetch, settings.home / "sources" / spec.key)
        if source is None:
            raise SystemExit("The PyTorch repos could not be downloaded from the Hub; pass --source or --standin.")
    quantization = Quantization.NONE if args.fp32 else Quantization.INT8 if args.int8 else None
    export_controlnet(spec, source, args.out, quantization)
    logger.info("IR folder ready: %s", args.out)
    if args.push_to:
        logger.info("uploaded to %s", push_to_hub(args.out, args.push_to, args.private))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_sd_parser(sub)
    add_controlnet_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
