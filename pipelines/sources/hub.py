"""The Hugging Face Hub client: whole snapshots or none.

huggingface_hub downloads a snapshot file by file into its cache, and its offline
lookup returns a snapshot folder without checking that every file arrived (it says
so itself). A download this app starts is therefore recorded in the app's home: a
record saying "started" is written before it, and one listing every file and its size
after it completed. A cached snapshot is used only when

- its record says it completed and every file is there at that size, or
- it has no record (fetched by other tools, e.g. `hf download`) and huggingface_hub left
  no unfinished `.incomplete` file in that repo's cache.

Anything else (no connection, an HTTP error, a connection dropped mid-file, a file of the
wrong size) is logged and answered with None, so the caller goes on to its next source.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from pipelines.core.folders import wrong_sizes
from pipelines.core.settings import Settings

logger = logging.getLogger(__name__)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


@lru_cache(maxsize=8)
def hub_reachable(endpoint: str, timeout: float) -> bool:
    """One TCP connection to the Hub's host, cached per process."""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError as exc:
        logger.warning("The Hub at %s is unreachable (%s): using offline models.", endpoint, exc)
        return False


class DownloadRecord:
    """What this app knows of its own download of `repo_id` (restricted to `allow_patterns`)."""

    def __init__(self, home: Path, repo_id: str, allow_patterns: list[str] | None):
        key = hashlib.sha1(json.dumps([repo_id, sorted(allow_patterns or [])]).encode()).hexdigest()[:12]
        self.repo_id = repo_id
        self.path = Path(home) / "hub-downloads" / f"{repo_id.replace('/', '--')}-{key}.json"

    def read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def write(self, **record) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"repo": self.repo_id, **record}, indent=1))
        os.replace(tmp, self.path)

    def vouches_for(self, folder: Path) -> bool:
        """Whether the cached snapshot `folder` is whole, by this record (or, without one, by the cache)."""
        record = self.read()
        if record is None:
            unfinished = list((folder.parent.parent / "blobs").glob("*.incomplete"))
            if unfinished:
                logger.warning("%s: the cached snapshot has unfinished downloads; not using it", self.repo_id)
            return not unfinished
        if record.get("state") != "complete" or record.get("commit") != folder.name:
            logger.warning("%s: an earlier download did not finish; not using the cached snapshot", self.repo_id)
            return False
        wrong = wrong_sizes(folder, record["files"])
        if wrong:
            logger.warning("%s: cached files missing or truncated (%s); not using them", self.repo_id, wrong[:5])
        return not wrong


def hub_snapshot(repo_id: str, settings: Settings, allow_patterns: list[str] | None = None) -> Path | None:
    """Local folder of a whole snapshot of `repo_id` (only `allow_patterns` files, when given),
    from the cache or downloaded now; None when none can be had."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    record = DownloadRecord(settings.home, repo_id, allow_patterns)
    try:
        cached = Path(snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=True))
    except LocalEntryNotFoundError:
        cached = None
    if cached is not None and record.vouches_for(cached):
        return cached
    endpoint = hub_endpoint()
    if hub_offline() or not hub_reachable(endpoint, settings.hub_timeout):
        return None
    try:
        record.write(state="started")
        # The plan, from the server: the commit, and each file's name and size.
        plan, commit = _plan(repo_id, allow_patterns, endpoint)
        _forget_damaged(repo_id, commit, plan)
        folder = Path(snapshot_download(repo_id, allow_patterns=allow_patterns, endpoint=endpoint))
    except Exception as exc:  # any failure of the download (HTTP, connection, disk) means: the next source
        logger.warning("Could not download %s from the Hub (%s: %s)", repo_id, type(exc).__name__, exc)
        return None
    wrong = wrong_sizes(folder, plan) if folder.name == commit else ["the repo changed during the download"]
    if wrong:
        logger.warning("Download of %s is incomplete (%s); not using it", repo_id, wrong[:5])
        return None
    record.write(state="complete", commit=folder.name, files=plan)
    return folder


def _plan(repo_id: str, allow_patterns: list[str] | None, endpoint: str) -> tuple[dict[str, int | None], str]:
    """{file: size} of the files to fetch, as the server lists them, and the commit they belong to."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    info = HfApi(endpoint=endpoint).model_info(repo_id, files_metadata=True)
    wanted = set(filter_repo_objects([s.rfilename for s in info.siblings], allow_patterns=allow_patterns))
    return {s.rfilename: s.size for s in info.siblings if s.rfilename in wanted}, info.sha


def _forget_damaged(repo_id: str, commit: str, plan: dict[str, int | None]) -> None:
    """Remove cached files of `commit` whose size is wrong: huggingface_hub never fetches a file it has."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    for name in wrong_sizes(folder, plan):
        link = folder / name
        if link.is_symlink() or link.exists():
            logger.warning("%s: the cached %s is damaged; downloading it again", repo_id, name)
            blob = link.resolve()
            link.unlink()
            blob.unlink(missing_ok=True)
