"""Calls to a running app as any script could make them, and this process's resident memory."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def call_raw(url: str, api: str, data: list) -> tuple[str, dict | None]:
    """POST a request as JSON (NaN and ∞ allowed, as JavaScript clients send them); the final event."""
    body = json.dumps({"data": data}, allow_nan=True)
    started = httpx.post(f"{url}gradio_api/call/{api}", content=body, headers={"content-type": "application/json"})
    started.raise_for_status()
    stream = httpx.get(f"{url}gradio_api/call/{api}/{started.json()['event_id']}", timeout=120).text
    events = re.findall(r"event: (\w+)\ndata: (.*)", stream)
    kind, payload = events[-1]
    return kind, json.loads(payload)


def upload_raw(url: str, path: Path) -> dict:
    """Upload a file as the browser does; the FileData that refers to it."""
    response = httpx.post(f"{url}gradio_api/upload", files={"files": (path.name, path.read_bytes())})
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
