"""A Hugging Face Hub on loopback, for the download code: it serves local folders as model repos.

It answers the calls huggingface_hub makes for `snapshot_download` (repo info with the
file list, then HEAD and GET of each file, with ranges for resumed downloads). With
`cut_after` set, every file body stops after that many bytes and the connection drops,
as a network failure mid-file does; huggingface_hub's own retries then fail too.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, Path]):
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.cut_after: int | None = None
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo: str) -> list[str]:
        root = self.repos[repo]
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _not_found(self) -> None:
                self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})

            def do_GET(self) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if m := re.fullmatch(r"/api/models/([^/]+/[^/?]+)(/revision/[^/?]+)?(\?.*)?", self.path):
                    repo = m.group(1)
                    if repo not in hub.repos:
                        return self._not_found()
                    info = {
                        "id": repo,
                        "sha": COMMIT,
                        "private": False,
                        "siblings": [
                            {"rfilename": name, "size": (hub.repos[repo] / name).stat().st_size}
                            for name in hub.files(repo)
                        ],
                    }
                    return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
                if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/(.+)", self.path):
                    repo, name = m.group(1), m.group(2)
                    path = hub.repos.get(repo, Path("/nonexistent")) / name
                    if repo not in hub.repos or not path.is_file():
                        return self._not_found()
                    return self._file(path.read_bytes())
                return self._not_found()

            do_HEAD = do_GET

            def _file(self, data: bytes) -> None:
                start = 0
                if m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
                    start = int(m.group(1))
                part = data[start:]
                headers = {
                    "Content-Length": str(len(part)),
                    "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                    "X-Repo-Commit": COMMIT,
                    "Accept-Ranges": "bytes",
                }
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self.send_response(206 if start else 200)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                if hub.cut_after is not None and len(data) > hub.cut_after:
                    self.wfile.write(part[: max(0, hub.cut_after - start)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        return Handler
