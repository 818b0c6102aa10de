"""Resolve a model for the OpenVINO process, building it (when it must be) in a child process.

Building imports torch, transformers and NNCF, and what a process imports stays in its memory.
So the app's process resolves with `build=False`; when a model is not built yet, a child process
(`python -m pipelines.prepare`, a fresh interpreter) resolves it with building allowed, logging to
the same stderr, and exits; the app's process then finds the finished folder.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import time
from pathlib import Path

from .registry import ModelSpec
from .resolve import NotBuilt, ResolvedModel, resolve
from .settings import Settings

logger = logging.getLogger(__name__)
PROJECT = Path(__file__).resolve().parent.parent


def resolve_apart(spec: ModelSpec, settings: Settings) -> ResolvedModel:
    """`resolve(spec, settings)`, with any build in a child process. ValueError when the build fails."""
    try:
        return resolve(spec, settings, build=False)
    except NotBuilt as why:
        logger.info("%s must be built first (%s): building it in a child process", spec.key, why)
    t0 = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "pipelines.prepare"],
        input=pickle.dumps((spec, settings)),
        stdout=subprocess.PIPE,
        cwd=PROJECT,
        check=False,
    )
    if child.returncode != 0:
        reason = child.stdout.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {child.returncode}"]
        raise ValueError(f"Building {spec.title} failed: {reason[0]}")
    logger.info("%s built in %.0f s", spec.key, time.perf_counter() - t0)
    return resolve(spec, settings, build=False)


def main() -> int:
    """The child: resolve (and build) the (spec, settings) pickled on stdin, from the app's own process.
    Prints the reason as its last line when it fails."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec, settings = pickle.loads(sys.stdin.buffer.read())
    try:
        resolve(spec, settings)
    except ValueError as exc:
        print(exc, flush=True)
        return 1
    except Exception as exc:
        logger.exception("building %s failed", spec.key)
        print(type(exc).__name__, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
