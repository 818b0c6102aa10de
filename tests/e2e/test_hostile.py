"""A hostile visitor, through the running app: decompression bombs, files that are not images,
numbers that are not numbers, hunting for server paths, and the launch conventions.

Each test fails when its protection is removed. What `gradio_client` cannot send (NaN, a
path it did not upload) goes over raw HTTP, as any script could send it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.core.images import MAX_UPLOAD_BYTES
from pipelines.core.protocol import ask
from tests.support.raw_http import call_raw, rss_bytes, upload_raw

REPO = Path(__file__).resolve().parents[2]
POSE = REPO / "assets" / "poses" / "standing.png"
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])(?:/[\w.@+~-]+){2,}")


# --------------------------------------------------------------------------- helpers


class PeakMemory:
    """Resident memory this process added at its peak during the block (the app serves in-process)."""

    def __enter__(self) -> PeakMemory:
        self.base = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def added_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def png_bomb(path: Path, side: int = 20_000, rgb: bool = False) -> Path:
    """A PNG of side×side zeros, 1-bit gray (20,000² = 400 megapixels in about 50 kB) or 8-bit RGB."""
    row = bytes(3 * side) if rgb else bytes((side + 7) // 8)
    raw = zlib.compress((b"\x00" + row) * side, 6)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8 if rgb else 1, 2 if rgb else 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def gif_bomb(path: Path, side: int = 1024, frames: int = 400) -> Path:
    """An animated GIF of `frames` full-size frames: one frame's bytes written `frames` times."""
    one = io.BytesIO()
    Image.new("P", (side, side), 3).save(one, "GIF")
    data = one.getvalue()
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # header, screen, global colours
    start = pos
    while data[pos] == 0x21:  # extensions before the image: label, then sub-blocks
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    assert data[pos] == 0x2C, "expected an image descriptor"
    pos += 10 + 1  # descriptor, then the LZW minimum code size
    while data[pos]:
        pos += data[pos] + 1
    frame = data[start : pos + 1]
    path.write_bytes(data[:start] + frame * frames + b"\x3b")
    return path


@pytest.fixture(scope="module")
def app(services, serve):
    with serve(services) as demo:
        yield demo


@pytest.fixture(scope="module")
def api(app):
    from gradio_client import Client

    return Client(app.local_url, verbose=False)


# --------------------------------------------------------------------------- uploads


def test_a_400_megapixel_png_is_refused_from_its_header(api, tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    with PeakMemory() as memory, pytest.raises(AppError, match=r"more than 80 megapixels; the limit is 40\."):
        api.predict(handle_file(bomb), "OpenVINO", api_name="/detect_pose")
    assert memory.added_mb < 100, f"{memory.added_mb:.0f} MB for a refused upload"


def test_an_image_over_the_cap_is_refused_from_its_header_before_decoding(api, tmp_path):
    """64 megapixels: past the app's cap, below where Pillow itself refuses (80). Decoding it costs 192 MB."""
    bomb = png_bomb(tmp_path / "rgb.png", side=8000, rgb=True)
    with PeakMemory() as memory, pytest.raises(AppError, match=r"8000×8000 = 64 megapixels; the limit is 40\."):
        api.predict(handle_file(bomb), "OpenVINO", api_name="/detect_pose")
    assert memory.added_mb < 100, f"{memory.added_mb:.0f} MB for a refused upload"


def test_only_the_first_frame_of_an_animated_gif_is_decoded(api, tmp_path):
    bomb = gif_bomb(tmp_path / "frames.gif")
    assert bomb.stat().st_size < 5 * 2**20 and Image.open(bomb).n_frames == 400
    start = time.perf_counter()
    with PeakMemory() as memory:
        try:
            api.predict(handle_file(bomb), "OpenVINO", api_name="/detect_pose")
        except AppError as exc:  # a tiny stand-in body network may find no one: a sentence either way
            assert "No person was found" in str(exc)
    elapsed = time.perf_counter() - start
    # Decoding all 400 frames costs ≈1.2 GB and tens of seconds; one frame costs a few MB.
    assert memory.added_mb < 150, f"{memory.added_mb:.0f} MB"
    assert elapsed < 10, f"{elapsed:.1f} s"


@pytest.mark.parametrize("kind", ["svg", "ppm"])
def test_a_file_that_is_not_an_accepted_image_gets_a_sentence_without_a_path(api, tmp_path, kind):
    fake = tmp_path / "photo.png"  # named .png, but is not one
    if kind == "svg":
        fake.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    else:
        Image.new("RGB", (8, 8)).save(fake, "PPM")
    with pytest.raises(AppError) as refused:
        api.predict(handle_file(fake), "OpenVINO", api_name="/detect_pose")
    message = str(refused.value)
    assert "not an image this app can read" in message and "PNG, JPEG" in message
    assert not ABSOLUTE_PATH.search(message), message


def test_uploads_over_the_cap_are_refused_before_they_reach_the_disk(app, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(MAX_UPLOAD_BYTES))
    response = httpx.post(f"{app.local_url}gradio_api/upload", files={"files": (big.name, big.read_bytes())})
    assert response.status_code == 413 and "maximum allowed size" in response.text


def test_a_path_the_client_did_not_upload_never_reaches_the_filesystem(app, services, monkeypatch):
    opened = []
    check = services.served.pose.detection.check  # the task the tab runs
    monkeypatch.setattr(services.served.pose.detection, "check", lambda photo: opened.append(photo) or check(photo))
    call_raw(app.local_url, "detect_pose", [upload_raw(app.local_url, POSE), "OpenVINO"])
    assert len(opened) == 1  # an upload does reach the handler
    for path in ("/etc/passwd", str(POSE)):
        kind, payload = call_raw(
            app.local_url, "detect_pose", [{"path": path, "meta": {"_type": "gradio.FileData"}}, "OpenVINO"]
        )
        assert kind == "error" and path not in json.dumps(payload)
    inline = {"url": "data:image/png;base64,iVBORw0KGgo=", "meta": {"_type": "gradio.FileData"}}
    kind, payload = call_raw(app.local_url, "detect_pose", [inline, "OpenVINO"])
    assert kind == "error" and "uploaded file" in payload["error"]
    assert len(opened) == 1, opened


def test_uploads_and_outputs_are_deleted_from_disk_when_old(services, serve, tmp_path):
    mirrored = tmp_path / "mirrored.png"  # not a preset: gradio keeps the examples' files
    Image.open(POSE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    with serve(services, delete_cache=(1, 1)) as demo:
        pose = upload_raw(demo.local_url, mirrored)
        kind, payload = call_raw(demo.local_url, "pose", [pose, "a dancer", "", 1, 7.5, 1, "OpenVINO"])
        assert kind == "complete", payload
        kind, generated = call_raw(demo.local_url, "generate", ["a cat", "", 1, 7.5, 1, "OpenVINO", "ToMe+INT8", False])
        assert kind == "complete", generated
        files = [Path(pose["path"]), Path(payload[0]["path"]), Path(generated[0]["path"])]
        assert all(f.is_file() for f in files)
        deadline = time.monotonic() + 15
        while any(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [f for f in files if f.exists()], "uploads and outputs were kept"


# --------------------------------------------------------------------------- numbers


def numeric_cases(url: str) -> list[tuple[str, list, int, str]]:
    """(endpoint, a valid request, index of a numeric input, the range its refusal must name)."""
    pose = upload_raw(url, POSE)
    translate = ["Hello", "German", "OpenVINO", 4]
    generate = ["a cat", "", 1, 7.5, 1, "OpenVINO", "ToMe+INT8", False]
    pose_request = [pose, "a dancer", "", 1, 7.5, 1, "OpenVINO"]
    return [
        ("translate", translate, 3, "Max new tokens must be a whole number from 1 to 256"),
        ("generate", generate, 2, "Steps must be a whole number from 1 to 50"),
        ("generate", generate, 3, "Guidance scale must be from 0.0 to 20.0"),
        ("generate", generate, 4, "Seed must be a whole number from 0 to 4294967295"),
        ("pose", pose_request, 3, "Steps must be a whole number from 1 to 50"),
        ("pose", pose_request, 4, "Guidance scale must be from 0.0 to 20.0"),
        ("pose", pose_request, 5, "Seed must be a whole number from 0 to 4294967295"),
    ]


BAD_NUMBERS = [
    "abc", float("nan"), float("inf"), float("-inf"), -1, 10**12, 10**400, -(10**400), 1e308, True, None, [3], {"v": 3}
]  # fmt: skip
"""Every JSON type, and integers beyond float range (Python's `json` reads `10**400` exactly)."""


def test_every_numeric_input_refuses_non_numbers_with_its_range(app):
    url = app.local_url
    for endpoint, valid, index, allowed in numeric_cases(url):
        kind, payload = call_raw(url, endpoint, valid)
        assert kind == "complete", (endpoint, payload)
        for bad in BAD_NUMBERS:
            if bad is None and allowed.startswith("Seed"):
                continue  # no seed: a random one, by design
            request = [*valid[:index], bad, *valid[index + 1 :]]
            kind, payload = call_raw(url, endpoint, request)
            assert kind == "error" and payload["error"] and allowed in payload["error"], (endpoint, index, bad, payload)
    assert call_raw(url, "translate", ["Still serving?", "German", "OpenVINO", 2])[0] == "complete"


def test_a_missing_negative_prompt_is_an_empty_one_on_both_image_endpoints(api):
    _, timing, _ = api.predict("a cat", None, 1, 7.5, 3, "OpenVINO", api_name="/generate")
    assert timing["seed"] == 3
    _, timing = api.predict(handle_file(POSE), "a dancer", None, 1, 7.5, 3, "OpenVINO", api_name="/pose")
    assert timing["seed"] == 3


# --------------------------------------------------------------------------- server paths


def test_messages_and_banners_lose_any_path_a_library_put_in_them(app, api, services, monkeypatch):
    from ui.common import failure_banner, without_paths
    from ui.tabs.system import system_report

    for text in (
        "cannot identify image file '/tmp/gradio/ab12/x.png'",
        "no ~/.cache/ov/t5/x.bin",
        "file:///srv/m/a.bin",
    ):
        assert "/" not in without_paths(text).replace("…", ""), without_paths(text)
    for text in ("OpenVINO 3.9× faster", "6.4 ms/token", "OpenVINO / PyTorch", "1/2 of it"):
        assert without_paths(text) == text

    def fails(*args):
        raise ValueError("weights at /srv/models/openpose/body.bin are unreadable.")

    monkeypatch.setattr(services.served.pose.detection, "run", fails)
    with pytest.raises(AppError) as refused:
        api.predict(handle_file(POSE), "OpenVINO", api_name="/detect_pose")
    assert "unreadable" in str(refused.value) and "/srv" not in str(refused.value)
    monkeypatch.setitem(services.failures, "t5-small", "T5 could not be loaded (/srv/models/t5/x.bin).")
    assert "/srv" not in failure_banner(services.failures["t5-small"]) and "/srv" not in system_report(services)


def texts_outside_file_references(value, upload_folder: str):
    """Every string in a response, except the paths of gradio's file references (which must be
    its own copies in its upload folder: that is how files travel)."""
    if isinstance(value, dict):
        if "path" in value and "meta" in value:
            assert str(value["path"]).startswith(upload_folder), value["path"]
            value = {k: v for k, v in value.items() if k not in ("path", "url")}
        for item in value.values():
            yield from texts_outside_file_references(item, upload_folder)
    elif isinstance(value, list):
        for item in value:
            yield from texts_outside_file_references(item, upload_folder)
    elif isinstance(value, str):
        yield value


def test_no_server_path_in_any_response_or_in_the_page_config(app, services, settings, tmp_path):
    from gradio.utils import get_upload_folder

    roots = {str(REPO), str(settings.home), str(settings.cache_dir), str(Path.home()), sys.prefix}
    url, fake = app.local_url, tmp_path / "x.png"
    fake.write_text("<svg/>")
    pose = upload_raw(url, POSE)
    requests = [
        ("translate", ["Hello", "German", "PyTorch", 3]),
        ("translate", ["", "German", "OpenVINO", 3]),
        ("classify", ["Fine.", "", "OpenVINO"]),
        ("classify", ["Fine.", "a, b", "PyTorch"]),
        ("detect_pose", [upload_raw(url, fake), "OpenVINO"]),
        ("detect_pose", [pose, "PyTorch"]),
        ("generate", ["a cat", "", 1, 7.5, 1, "OpenVINO", "ToMe+INT8", False]),
        ("generate", ["a cat", "", 1, 7.5, 1, "PyTorch", "ToMe+INT8", False]),
        ("generate", ["a cat", "", 1, 7.5, 1, "OpenVINO", "FP32", False]),
        ("pose", [pose, "a dancer", "", 1, 7.5, 1, "OpenVINO"]),
    ]
    texts = []
    for endpoint, data in requests:
        _, payload = call_raw(url, endpoint, data)
        texts += texts_outside_file_references(payload, str(get_upload_folder()))
    config, info = httpx.get(f"{url}config").text, httpx.get(f"{url}gradio_api/info").text
    assert "model cache: on (" in config  # the System tab says on/off and the size, not where
    for text in [*texts, config, info]:
        leaked = [root for root in roots if root in text]
        assert not leaked, f"{leaked} in {text[:300]}"
    for text in texts:  # messages, timings, labels: no path of any kind
        assert not ABSOLUTE_PATH.search(text), text


# --------------------------------------------------------------------------- launch


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (IPv4), from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
            found.add(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


def test_python_app_py_honours_gradio_server_port_and_listens_on_loopback(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "OVDEMO_"))}
    env |= {
        "GRADIO_SERVER_PORT": str(port),
        "OVDEMO_HOME": str(settings.home),
        "OVDEMO_CACHE_DIR": str(settings.cache_dir),
        "OVDEMO_STANDIN_SIZE": "tiny",
        "HF_HUB_OFFLINE": "1",
    }
    log = (settings.home.parent / f"app-{port}.log").open("w")
    server = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, config = time.monotonic() + 240, None
        while config is None and time.monotonic() < deadline and server.poll() is None:
            try:
                config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(1)
        assert config is not None, f"no app on port {port}: {Path(log.name).read_text()[-2000:]}"
        assert listening_addresses(port) == {"127.0.0.1"}
        assert config["analytics_enabled"] is False
        assert config["max_file_size"] == MAX_UPLOAD_BYTES
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_pose_detection_runs_one_request_at_a_time_on_each_backend(services, monkeypatch):
    detectors, running, most = services.pose.detectors, [0], [0]
    detector = detectors.ov

    def watched(image):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.2)
        try:
            return detector(image)
        finally:
            running[0] -= 1

    monkeypatch.setattr(detectors, "ov", watched)

    def detect():
        with contextlib.suppress(ValueError):  # the tiny stand-in may find no one; the lock is what is tested
            ask(services.pose.detection, "OpenVINO", str(POSE))

    threads = [threading.Thread(target=detect) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1
