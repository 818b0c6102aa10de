"""Concurrent clients on loopback: nothing fails, and a full queue says so instead of hanging."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

CLIENTS, REQUESTS = 8, 20
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def test_eight_clients_twenty_requests_each(services, serve):
    deadline = time.monotonic() + 300

    def client_run(i: int, url: str) -> list[tuple[str, float | None]]:
        client = Client(url, verbose=False)
        out = []
        for n in range(REQUESTS):
            if time.monotonic() > deadline:
                out.append(("timeout", None))
                continue
            start = time.perf_counter()
            try:
                if n % 2:
                    client.predict(f"Sentence {i}-{n} is short.", "German", "OpenVINO", 8, api_name="/translate")
                else:
                    client.predict(f"Client {i} request {n} was great.", "", "OpenVINO", api_name="/classify")
                out.append(("ok", (time.perf_counter() - start) * 1000))
            except Exception as exc:
                out.append((f"{type(exc).__name__}: {exc}", None))
        return out

    with serve(services) as demo, ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for rs in pool.map(client_run, range(CLIENTS), [demo.local_url] * CLIENTS) for r in rs]
    failures = [status for status, _ in results if status != "ok"]
    latencies = sorted(ms for status, ms in results if status == "ok")
    report = {
        "clients": CLIENTS,
        "requests": len(results),
        "failed": len(failures),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2))
    print("load:", report)
    assert failures == [], failures[:3]
    assert report["requests"] == CLIENTS * REQUESTS


def test_full_queue_answers_busy_at_once(services, serve):
    with serve(services, queue_max_size=1) as demo:
        client = Client(demo.local_url, verbose=False)
        jobs = [
            client.submit("A long sentence to translate. " * 20, "German", "PyTorch", 256, api_name="/translate")
            for _ in range(12)
        ]
        outcomes = []
        for job in jobs:
            try:
                job.result(timeout=120)
                outcomes.append("ok")
            except Exception as exc:
                outcomes.append(str(exc))
    busy = [o for o in outcomes if o != "ok"]
    assert "ok" in outcomes, outcomes
    assert busy, "12 requests into a queue of 1 should turn some away"
    assert all("Queue is full" in o for o in busy), busy[:2]
