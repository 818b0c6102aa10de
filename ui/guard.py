"""What stands in front of gradio on a public Space: request bodies capped before gradio reads them.

gradio 6.31 reads a request's whole JSON body, then keeps every raw input in the caller's session state
(`gradio/blocks.py`, `process_api`: `state._update_value_in_config(block._id, inputs_serialized)`), one
session per API call, up to `state_session_capacity` sessions (`gradio/state_holder.py`, 10,000 by default).
A 5 MB text that the task refuses would still be kept. So a body larger than the largest valid request is
refused here, before gradio sees it, and the app launches with fewer sessions (`SESSIONS`).
"""

from __future__ import annotations

import asyncio
import json

from pipelines.core.checks import MAX_TEXT_CHARS
from pipelines.core.images import MAX_UPLOAD_BYTES
from pipelines.core.memory import return_freed_memory

JSON_BYTES_PER_CHAR = 12
"""The most JSON may spend on one character of text: a surrogate pair escaped as two `\\uXXXX`."""
MAX_REQUEST_BYTES = 256 * 1024
"""The largest body of any request but an upload: above the largest valid one (a classification of
`MAX_TEXT_CHARS` characters with its labels, ≈ 130 KB fully escaped), far below what a session may keep."""
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + 1024 * 1024
"""An upload: the file cap (`MAX_UPLOAD_BYTES`, which gradio checks per file) plus its multipart framing."""
SESSIONS = 100
"""Sessions gradio keeps (its default is 10,000): each holds a copy of the app's config and its last inputs,
0.17 MB measured plus what was sent (≤ `MAX_REQUEST_BYTES`), so at most ≈ 40 MB in all. Every API call is a
session of its own; the least recently used goes first, and a visitor whose session went loses only the
session chart."""
TRIM_EVERY = 200
"""After this many requests, the heap pages freed meanwhile go back to the system (`return_freed_memory`):
gradio's requests allocate on many threads, and glibc keeps what each thread freed."""
UPLOAD_SUFFIX = "/upload"

assert MAX_REQUEST_BYTES > 1.05 * JSON_BYTES_PER_CHAR * MAX_TEXT_CHARS


class RequestCap:
    """ASGI middleware: a request whose body is larger than its route may take gets 413 and a sentence, and
    its body is never handed on. Bodies of ordinary requests (at most `limit`) are read here in full and
    handed to gradio as one piece; uploads stream through, counted."""

    def __init__(self, app, limit: int = MAX_REQUEST_BYTES, upload_limit: int = MAX_UPLOAD_REQUEST_BYTES):
        self.app, self.limit, self.upload_limit = app, limit, upload_limit
        self.requests = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.requests += 1
        if self.requests % TRIM_EVERY == 0:
            await asyncio.to_thread(return_freed_memory)
        upload = scope["path"].rstrip("/").endswith(UPLOAD_SUFFIX)
        limit = self.upload_limit if upload else self.limit
        length = _content_length(scope)
        if length is not None and length > limit:
            return await _refuse(send, limit, upload)
        if scope["method"] in ("GET", "HEAD", "OPTIONS") and length is None:
            return await self.app(scope, receive, send)
        if upload:
            return await self.app(scope, _counted(receive, limit), send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await _refuse(send, limit, upload)
            if not message.get("more_body", False):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _counted(receive, limit: int):
    """`receive` that ends the request as a disconnect once more than `limit` bytes arrived."""
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                return {"type": "http.disconnect"}
        return message

    return counted


async def _refuse(send, limit: int, upload: bool) -> None:
    what = "an upload" if upload else "a request"
    detail = f"This request is larger than {what} to this app may be ({limit / 1024:,.0f} KB): " + (
        "upload a smaller image." if upload else "send a shorter text."
    )
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
