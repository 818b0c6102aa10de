"""Resolve a model for the OpenVINO process, building it (when it must be) in a child process.

Building imports torch, transformers and NNCF, and what a process imports stays in its memory.
So the app's process resolves with `build=False`; when a model is not built yet, a child process
(`python -m pipelines.sources.prepare`, a fresh interpreter) resolves it with building allowed, logging to
the same streams, and exits; the app's process serves the folder the child resolved.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelines.core.registry import ModelSpec
from pipelines.core.resolved import ResolvedModel
from pipelines.core.settings import Settings
from pipelines.sources.resolve import NotBuilt, resolve

logger = logging.getLogger(__name__)
PROJECT = Path(__file__).resolve().parents[2]


def resolve_apart(spec: ModelSpec, settings: Settings) -> ResolvedModel:
    """`resolve(spec, settings)`, with any build in a child process. ValueError when the build fails."""
    (found,) = resolve_all_apart((spec,), settings)
    if isinstance(found, ValueError):
        raise found
    return found


def resolve_all_apart(specs: tuple[ModelSpec, ...], settings: Settings) -> list[ResolvedModel | ValueError]:
    """Each of `specs` resolved, the ones not built yet built in one child process (its libraries imported
    once for all of them): a `ResolvedModel`, or a ValueError saying why that one failed."""
    found: list[ResolvedModel | ValueError | None] = []
    for spec in specs:
        try:
            found.append(resolve(spec, settings, build=False))
        except NotBuilt as why:
            logger.info("%s must be built first (%s): building it in a child process", spec.key, why)
            found.append(None)
    missing = [spec for spec, got in zip(specs, found, strict=True) if got is None]
    if not missing:
        return found
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ovdemo-prepare-") as folder:
        answer = Path(folder) / "answer.pickle"
        child = subprocess.run(
            [sys.executable, "-m", "pipelines.sources.prepare", str(answer)],
            input=pickle.dumps((tuple(missing), settings)),
            cwd=PROJECT,
            check=False,
        )
        # The child's own answers (written by us, in a folder only we know): what it resolved, or why not.
        outcomes = pickle.loads(answer.read_bytes()) if answer.is_file() else [("error", None)] * len(missing)
    built = iter(outcomes)
    for i, got in enumerate(found):
        if got is not None:
            continue
        outcome, value = next(built)
        spec = specs[i]
        if outcome == "ok":
            found[i] = value
            continue
        ended = f"the build process ended with code {child.returncode}" if value is None else value
        found[i] = ValueError(f"Building {spec.title} failed: {ended}. The server log has the details.")
    logger.info("%s built in %.0f s", ", ".join(s.key for s in missing), time.perf_counter() - t0)
    return found


def _child(answer: str) -> int:
    """The child: resolve (and build) the (specs, settings) pickled on stdin by the app's own process, and
    write, for each spec, ("ok", the ResolvedModel) or ("error", a sentence) to the file `answer`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    specs, settings = pickle.loads(sys.stdin.buffer.read())
    outcomes = []
    for spec in specs:
        try:
            outcomes.append(("ok", resolve(spec, settings)))
        except ValueError as exc:  # the app's own sentences, written for people
            logger.error("building %s failed: %s", spec.key, exc)
            outcomes.append(("error", str(exc).rstrip(".")))
        except Exception as exc:
            logger.exception("building %s failed", spec.key)
            outcomes.append(("error", type(exc).__name__))
    Path(answer).write_bytes(pickle.dumps(outcomes))
    return 0 if all(kind == "ok" for kind, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
