"""The folders the app builds on disk: each one complete in one step, and checkable on load.

- `building(out_dir)` gives a fresh `<out_dir>.partial` to write into and renames it to
  `out_dir` only when the build finished, so a folder that exists was finished; an
  interrupted build leaves only a `.partial`, which the next build clears and redoes.
- `write_manifest(folder, ...)` is the last write of a build: the manifest (`ovdemo.json`)
  records what was built and the size of every file, so a file truncated or removed later
  (a disk filling up, a partial copy) is found on load (`damaged_files`) and the folder
  is built again.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

MANIFEST = "ovdemo.json"
PARTIAL_SUFFIX = ".partial"


@contextmanager
def building(out_dir: Path) -> Iterator[Path]:
    """Write a folder in one step: yields an empty sibling folder that becomes `out_dir` (replacing
    any earlier one) when the block ends without an error. On an error it is removed."""
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + PARTIAL_SUFFIX)
    if partial.exists():
        logger.warning("%s: an earlier build was interrupted; building it again", out_dir)
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)


def file_sizes(folder: Path) -> dict[str, int]:
    """Size of every file below `folder` (the manifest excepted), by relative path."""
    return {
        str(path.relative_to(folder)): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def read_manifest(folder: Path) -> dict:
    """`folder`'s manifest; {} when it has none (a folder not built by this app) or it is unreadable
    (which `damaged_files` reports)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def write_manifest(folder: Path, manifest: dict) -> None:
    """Write `folder`'s manifest with the size of every file in it: the last write of a build."""
    folder = Path(folder)
    (folder / MANIFEST).write_text(json.dumps({**manifest, "files": file_sizes(folder)}, indent=1))


def wrong_sizes(folder: Path, sizes: dict[str, int | None]) -> list[str]:
    """Files of `sizes` missing below `folder`, or of another size (None: any size will do)."""
    wrong = []
    for name, size in sizes.items():
        try:
            found = (Path(folder) / name).stat().st_size
        except OSError:
            found = None
        if found is None or (size is not None and found != size):
            wrong.append(name)
    return sorted(wrong)


def damaged_files(folder: Path) -> list[str]:
    """Files the manifest records that are missing or have another size; [] when it records none
    (a folder from before manifests recorded files). A manifest that cannot be read counts as damaged."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if (folder / MANIFEST).is_file() and not manifest:
        logger.warning("%s has an unreadable %s: building it again", folder, MANIFEST)
        return [MANIFEST]
    damaged = wrong_sizes(folder, manifest.get("files") or {})
    if damaged:
        logger.warning("%s is incomplete (%s): building it again", folder, ", ".join(damaged[:5]))
    return damaged


def is_built(folder: Path) -> bool:
    """A folder this app built and left whole: its manifest records its files, and every one is there."""
    folder = Path(folder)
    return "files" in read_manifest(folder) and not damaged_files(folder)
