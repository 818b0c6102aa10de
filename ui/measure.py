"""'Measure on this machine': a short run of the text workloads on both backends, for the Benchmarks tab.

Each workload runs on OpenVINO (in the app's process) and on PyTorch (in its worker process), through the
same tasks the tabs serve: one warm-up run each (which loads the PyTorch baseline on first use), then
`repeats` timed runs; the figure is the median of the timing dicts' `latency_ms`, and the ratio is
PyTorch's median over OpenVINO's. Short by design, so a visitor waits seconds: `python -m bench` is the
measurement with each configuration in a fresh process, the memory, and many more runs.

One measurement at a time for the whole server: a second visitor is told to try again, not queued.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipelines.core.protocol import Backend, Runner

REPEATS = 5
_RUNNING = threading.Lock()
BUSY = "Another measurement is running on this machine right now; try again when it finishes (a few seconds)."


@dataclass(frozen=True)
class Workload:
    name: str
    task: Runner
    inputs: tuple


@dataclass(frozen=True)
class Row:
    workload: str
    openvino_ms: float
    pytorch_ms: float
    runs: int
    openvino: str
    pytorch: str

    @property
    def speedup(self) -> float:
        return self.pytorch_ms / self.openvino_ms if self.openvino_ms > 0 else float("inf")


class Busy(RuntimeError):
    """Raised when a measurement is already running."""


def text_workloads(translator: Runner | None, classifier: Runner | None) -> list[Workload]:
    """The tabs' text requests, as the benchmark's text workloads run them."""
    found = []
    if classifier is not None:
        sentence = "I absolutely loved this film; the cast is wonderful and the story moved me."
        found.append(Workload("Sentiment, a typical sentence", classifier, (sentence, "")))
        labels = "sports, cooking, finance, politics"
        text = "The striker scored twice and the team won the league."
        found.append(Workload("Zero-shot, 4 labels, asked again", classifier, (text, labels)))
    if translator is not None:
        text = "The weather is lovely today, so we are going for a walk by the river."
        found.append(Workload("Translation to German, up to 20 tokens", translator, (text, "German", 20)))
    return found


def measure(
    workloads: Sequence[Workload],
    repeats: int = REPEATS,
    on_run: Callable[[int, int, str], None] = lambda done, total, what: None,
) -> list[Row]:
    """Each workload on each backend: a warm-up, then `repeats` runs; raises `Busy` while another runs."""
    if not _RUNNING.acquire(blocking=False):
        raise Busy(BUSY)
    try:
        total, done, rows = len(workloads) * 2 * (repeats + 1), 0, []
        for workload in workloads:
            request = workload.task.check(*workload.inputs)
            medians, labels = {}, {}
            for backend in (Backend.OPENVINO, Backend.PYTORCH):
                latencies = []
                for i in range(repeats + 1):
                    result = workload.task.run(request, backend)
                    done += 1
                    on_run(done, total, f"{workload.name} on {backend.value}" + (" (warm-up)" if i == 0 else ""))
                    if i:
                        latencies.append(result.timing["latency_ms"])
                medians[backend] = statistics.median(latencies)
                labels[backend] = result.timing["precision"]
            rows.append(
                Row(
                    workload.name,
                    medians[Backend.OPENVINO],
                    medians[Backend.PYTORCH],
                    repeats,
                    labels[Backend.OPENVINO],
                    labels[Backend.PYTORCH],
                )
            )
        return rows
    finally:
        _RUNNING.release()


def table(rows: Sequence[Row], machine: str) -> str:
    """The measurement as markdown, with the machine it ran on."""
    load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"
    lines = [
        f"**Measured just now on this machine**: {machine}. Median of {rows[0].runs if rows else 0} runs per "
        f"backend after a warm-up; PyTorch in its own process; 1-minute load average {load} (other visitors' "
        "requests share these cores).",
        "",
        "| workload | OpenVINO | PyTorch | OpenVINO speed-up |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.workload} | {row.openvino} {row.openvino_ms:.1f} ms | {row.pytorch} {row.pytorch_ms:.1f} ms "
            f"| {row.speedup:.2f}× |"
        )
    if any(row.openvino.endswith("(remote)") for row in rows):
        lines += [
            "",
            "OpenVINO (remote): these requests ran on the model server the app is configured with; their "
            "latencies include the round trips to it.",
        ]
    return "\n".join(lines)
