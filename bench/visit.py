"""Memory as a visitor makes it grow: the app's services started as `python app.py` starts them, then
one request on every tab, on OpenVINO and then on PyTorch (the worker), each SD variant included, under a
given memory budget. After each request: the app process's and the worker's resident memory, what the
budget holds, and any refusal."""

from __future__ import annotations

import time

PROMPT = "a cute yellow cartoon creature with big ears"
TEXT = "The weather is lovely today, so we are going for a walk by the river."


def _visits(services) -> list[tuple[str, str, object, tuple]]:
    """(tab, what, task, inputs) in the order a visitor clicks through the app."""
    from pipelines.models.pose import PRESETS_DIR

    visits = [
        ("Translation", "20 tokens", services.served.translator, (TEXT, "German", 20, 20)),
        ("Classification", "sentiment", services.served.classifier, (TEXT, "")),
        ("Classification", "zero-shot", services.served.classifier, (TEXT, "weather, sports, food")),
    ]
    if services.sd is not None:
        sd = services.served.sd
        for variant in services.sd.variant_names:
            visits.append(("SD", variant, sd, (PROMPT, "", 2, 7.5, 0, variant)))
    if services.pose is not None:
        pose = services.served.pose
        standing = str(PRESETS_DIR / "standing.png")
        visits.append(("ControlNet pose", "detection", pose.detection, (standing,)))
        visits.append(("ControlNet pose", "2 steps", pose.generation, (standing, PROMPT, "", 2, 7.5, 0)))
    return visits


def run(budget_mb: float, threads: int, standin_size: str, home) -> dict:
    from pipelines.core.memory import rss_mb
    from pipelines.core.protocol import ask
    from pipelines.core.settings import Settings
    from pipelines.startup import start

    settings = Settings.from_env(threads=threads, standin_size=standin_size, home=home, memory_budget_mb=budget_mb)
    services = start(settings)
    rows = [{"tab": "startup", "app_rss_mb": rss_mb(), "worker_rss_mb": None, "ready_s": services.ready_s}]
    backends = ("OpenVINO", "PyTorch")
    for tab, what, task, inputs in _visits(services):
        for backend in backends:
            t0, outcome = time.perf_counter(), {}
            try:
                timing = ask(task, backend, *inputs).timing
                outcome = {"latency_ms": timing["latency_ms"], "memory_mb": timing.get("memory_mb")}
            except ValueError as exc:
                outcome = {"refused": str(exc)}
            worker = services.worker.rss_mb() if services.worker else None
            rows.append(
                {
                    "tab": tab,
                    "what": what,
                    "backend": backend,
                    "wall_s": round(time.perf_counter() - t0, 1),
                    **outcome,
                    "app_rss_mb": round(rss_mb(), 1),
                    "worker_rss_mb": round(worker, 1) if worker else None,
                    "held": services.budget.holding(),
                }
            )
    last = rows[-1]
    return {
        "budget_mb": round(services.budget.limit_mb),
        "visits": rows,
        "app_rss_mb": last["app_rss_mb"],
        "worker_rss_mb": last["worker_rss_mb"],
        "peak_total_mb": max(r["app_rss_mb"] + (r["worker_rss_mb"] or 0) for r in rows),
        "failures": dict(services.failures),
    }
