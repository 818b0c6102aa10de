"""What the model server costs a text request: the same requests on the local OpenVINO models and on a
model server holding the same IR (the repository `python -m pipelines.scale_out` writes, served by KServe's
`ModelServer` over the V2 REST API on this machine: loopback, so no network time).

    python -m bench.remote [--runs 50] [--out docs/bench/remote.md]

Each side runs in its own process, one after the other (the server idles while the local side runs),
with the app's threads and the benchmark's pause between requests; median after warm-up. Reports, per
workload: the local latency, the remote latency, the server's inference time (its metrics), the round
trips, the calls, and what each call adds over the server's time (HTTP, (de)serialising, loopback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .core import REQUEST_PAUSE_S, Repeats, measure
from .nlp import SENTENCE, TRANSLATION_TOKENS, ZERO_SHOT_LABELS

WORKLOADS = ("sentiment", "zero-shot-repeat", "translation")
TITLES = {
    "sentiment": "Sentiment, MiniLM, a typical sentence",
    "zero-shot-repeat": "Zero-shot over 4 labels, asked again",
    "translation": f"Translation, t5-small, {TRANSLATION_TOKENS} new tokens",
}


def one_side(url: str | None, runs: int) -> dict:
    """Every workload through the app's tasks, locally (`url` None) or on the server at `url`."""
    from pipelines.core.settings import Settings
    from pipelines.startup import start

    # `from_env` keeps OVDEMO_OVMS_URL for a None override: the local side must not take it from there.
    settings = dataclasses.replace(Settings.from_env(torch_worker=False), ovms_url=url)
    services = start(settings, sd_variants=(), pose=None)
    classifier, translator = services.classifier, services.translator
    n = TRANSLATION_TOKENS
    requests = {
        "sentiment": (classifier, classifier.check(SENTENCE, "")),
        "zero-shot-repeat": (classifier, classifier.check(SENTENCE, ZERO_SHOT_LABELS)),
        "translation": (translator, translator.check(SENTENCE, "German", n, n)),
    }
    found = {}
    for workload, (task, request) in requests.items():
        timings: list[dict] = []
        run = lambda task=task, request=request, timings=timings: timings.append(task.run(request, "OpenVINO").timing)
        measure(run, Repeats(warmup=5, runs=runs, pause_s=REQUEST_PAUSE_S))
        timed = timings[5:]
        pick = lambda key, timed=timed: [t[key] for t in timed if t.get(key) is not None]
        found[workload] = {
            "backend": timed[-1]["backend"],
            "precision": timed[-1]["precision"],
            "latency_ms": statistics.median(pick("latency_ms")),
            "server_ms": statistics.median(pick("server_ms")) if pick("server_ms") else None,
            "round_trip_ms": statistics.median(pick("round_trip_ms")) if pick("round_trip_ms") else None,
            "calls": statistics.median(pick("remote_calls")) if pick("remote_calls") else None,
            "runs": len(timed),
            "errors": sorted({t["remote_error"] for t in timed if t.get("remote_error")}),
        }
    return found


def report(local: dict, remote: dict, machine: str) -> str:
    lines = [
        f"Machine: {machine}. Client and server on this machine (loopback), one after the other, each in its own "
        "process; median after 5 warm-up requests, 50 ms apart. Server: KServe `ModelServer` 0.21 (Python, "
        "`python -m pipelines.scale_out.kserve_server`) over the repository of `python -m pipelines.scale_out`.",
        "",
        "| workload | local OpenVINO | on the server | server's inference | round trips | calls | added per call |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        near, far = local[workload], remote[workload]
        known = far["server_ms"] is not None and far["round_trip_ms"] is not None and far["calls"]
        per_call = (far["round_trip_ms"] - far["server_ms"]) / far["calls"] if known else None
        ms = lambda value: "-" if value is None else f"{value:.2f} ms"
        lines.append(
            f"| {TITLES[workload]} | {ms(near['latency_ms'])} | {ms(far['latency_ms'])} | {ms(far['server_ms'])} "
            f"| {ms(far['round_trip_ms'])} | {'-' if far['calls'] is None else format(far['calls'], 'g')} "
            f"| {ms(per_call)} |"
        )
    errors = sorted({e for side in (local, remote) for w in side.values() for e in w["errors"]})
    if errors:
        lines += ["", "Requests the local model answered instead: " + "; ".join(errors)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.remote", description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, help="write the report (Markdown) and its figures (.json) here")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # one side, in its own process: "local" or a URL
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(one_side(None if args.side == "local" else args.side, args.runs)))
        return

    from pipelines.core.cpu import detect
    from pipelines.core.settings import Settings
    from pipelines.scale_out.from_app import repository
    from pipelines.scale_out.kserve_server import launch

    def side(which: str) -> dict:
        command = [sys.executable, "-m", "bench.remote", "--side", which, "--runs", str(args.runs)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ).stdout
        return json.loads(output.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repository(Settings.from_env(), repo, cache=str(Path(tmp) / "cache"), sd=False)
        local = side("local")
        port = 18000 + os.getpid() % 1000
        server = launch(repo, port, Path(tmp) / "server.log", timeout_s=300)
        try:
            remote = side(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    text = report(local, remote, f"{detect().describe()}, {os.cpu_count()} logical cores")
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"local": local, "remote": remote}, indent=2) + "\n")


if __name__ == "__main__":
    main()
