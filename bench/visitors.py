"""Visitors who stall a public Space, against an app launched as `python app.py` (from outside, as they are):

    python -m bench.visitors --url http://127.0.0.1:7860/ --pid APP_PID [--out docs/bench/visitors]

1. Six `/generate` requests cancelled right after their first progress report, then a 1-step image: its time
   against an idle 1-step image (median of three).
2. The PyTorch worker stopped (SIGSTOP) during a PyTorch translation: when that request ends and with what, and
   how long OpenVINO requests on the other tabs take meanwhile; then a PyTorch request again.
3. 40 bodies of 5 MB and 1000 refused empty texts to `/gradio_api/call/classify`: the app's resident memory.
4. Hostile values (`10**400` on every number, an image given by URL, a prompt of control, bidi and emoji
   characters on both backends, markup in a label): what each gets.

The CPU (lscpu's model name and flags that matter) is written next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

POSE = Path(__file__).resolve().parent.parent / "assets" / "poses" / "standing.png"
PROMPT = "a cute yellow cartoon creature with big ears"


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _outcome(call) -> str:
    try:
        call()
        return "a result"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def cancels(client) -> dict:
    one = lambda: client.predict(PROMPT, "", 1, 7.5, 3, "OpenVINO", api_name="/generate")
    one()
    idle = statistics.median(_timed(one) for _ in range(3))
    for _ in range(6):
        job = client.submit(PROMPT, "", 20, 7.5, 1, "OpenVINO", api_name="/generate")
        while not (job.status().progress_data or job.done()):
            time.sleep(0.02)
        job.cancel()
    after = _timed(one)
    return {"idle_1_step_s": round(idle, 2), "after_6_cancelled_s": round(after, 2), "ratio": round(after / idle, 2)}


def stopped_worker(client, app_pid: int) -> dict:
    import psutil

    client.predict("Warm up the worker.", "German", "PyTorch", 8, api_name="/translate")
    workers = [p for p in psutil.Process(app_pid).children() if "pipelines.serving.worker" in " ".join(p.cmdline())]
    stuck = client.submit("A long sentence to translate. " * 12, "German", "PyTorch", 256, api_name="/translate")
    while not (stuck.status().progress_data or stuck.done()):
        time.sleep(0.01)
    os.kill(workers[0].pid, signal.SIGSTOP)
    stopped = time.monotonic()
    meanwhile = {
        "classify (OpenVINO)": _timed(lambda: client.predict("Fine.", "", "OpenVINO", api_name="/classify")),
        "translate (OpenVINO)": _timed(
            lambda: client.predict("Hello.", "German", "OpenVINO", 8, api_name="/translate")
        ),
    }
    said = _outcome(lambda: stuck.result(timeout=600))
    ended = time.monotonic() - stopped
    again = _timed(lambda: client.predict("Fine.", "", "PyTorch", api_name="/classify"))
    return {
        "stuck_request_ended_after_s": round(ended, 1),
        "stuck_request_got": said,
        "meanwhile_s": {k: round(v, 2) for k, v in meanwhile.items()},
        "pytorch_again_s": round(again, 1),
    }


def refused_traffic(url: str, app_pid: int) -> dict:
    import httpx
    import psutil

    app = psutil.Process(app_pid)
    before = app.memory_info().rss
    statuses = []
    with httpx.Client(timeout=60) as http:
        for _ in range(40):
            body = {"data": ["x" * (5 * 2**20), "", "OpenVINO"]}
            statuses.append(http.post(f"{url}gradio_api/call/classify", json=body).status_code)

        def empty(_):
            event = http.post(f"{url}gradio_api/call/classify", json={"data": ["", "", "OpenVINO"]}).json()
            return "event: error" in http.get(f"{url}gradio_api/call/classify/{event['event_id']}").text

        with ThreadPoolExecutor(4) as pool:
            refused = sum(pool.map(empty, range(1000)))
    return {
        "large_bodies_status": sorted(set(statuses)),
        "empty_texts_refused": refused,
        "rss_growth_mb": round((app.memory_info().rss - before) / 2**20, 1),
    }


def hostile(client, url: str) -> dict:
    from gradio_client import handle_file

    pose = handle_file(str(POSE))
    web = "https://example.com/a.png"
    address = {"path": web, "url": web, "meta": {"_type": "gradio.FileData"}}
    prompt = "a cat\x00\x07\x1b[31m \u202e\u2066reversed\u2069 😀🐱\u200d👩‍👩‍👧 \ufeff\ttab\nline"
    link = '<a href="https://example.com">Session expired, sign in</a>'
    call = lambda api, *inputs: lambda: client.predict(*inputs, api_name=f"/{api}")
    huge = 10**400
    cases = {
        "steps 10**400": call("generate", PROMPT, "", huge, 7.5, 3, "OpenVINO"),
        "guidance 10**400": call("generate", PROMPT, "", 1, huge, 3, "OpenVINO"),
        "seed 10**400": call("generate", PROMPT, "", 1, 7.5, huge, "OpenVINO"),
        "max tokens 10**400": call("translate", "Hi.", "German", "OpenVINO", huge),
        "pose steps 10**400": call("pose", pose, "a", "", huge, 7.5, 1, "OpenVINO"),
        "image by URL": call("detect_pose", address, "OpenVINO"),
        "control/bidi/emoji prompt, Both": call("generate", prompt, "", 1, 7.5, 3, "Both"),
        "markup in a label": call("classify", "Text.", f"{link}, {link}", "OpenVINO"),
    }
    return {name: _outcome(case) for name, case in cases.items()}


def cpu() -> str:
    from bench.report import machine

    return machine()


def main(argv: list[str] | None = None) -> None:
    from gradio_client import Client

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--pid", type=int, required=True, help="the app's process id")
    parser.add_argument("--out", default="docs/bench/visitors")
    args = parser.parse_args(argv)
    url = args.url if args.url.endswith("/") else args.url + "/"
    client = Client(url, verbose=False)
    report = {"machine": cpu(), "cancels": cancels(client), "stopped_worker": stopped_worker(client, args.pid)}
    report["refused_traffic"] = refused_traffic(url, args.pid)
    report["hostile"] = hostile(client, url)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
