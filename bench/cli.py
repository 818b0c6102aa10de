"""`python -m bench`: every workload on every configuration, each in a fresh process."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core import CONFIGS, REQUEST_PAUSE_S, Repeats

BASE_CONFIGS = ("pytorch-fp32", "pytorch-bf16", "openvino-fp32", "openvino-default")
TEXT_CONFIGS = (*BASE_CONFIGS, "openvino-int8-weights", "openvino-int8")


@dataclass(frozen=True)
class Plan:
    """A workload: the configurations it runs, its result rows, repetitions (normal, quick), and
    `prepare`, which builds what a configuration runs before anything is timed."""

    configs: tuple[str, ...]
    rows: tuple[str, ...]
    repeats: Repeats
    quick: Repeats
    run: Callable[..., list[dict]] | None = None  # None: the workload runs in its own way (startup)
    prepare: Callable[..., None] | None = None


def _nlp(name: str):
    def run(config, args, repeats):
        from . import nlp

        return getattr(nlp, name)(config, args.threads, repeats, args.out, args.standin_size, args.home)

    return run


def _prepare(module: str, *workload: str):
    def prepare(config, args):
        import importlib

        build = importlib.import_module(f"{__package__}.{module}").prepare
        build(*workload, config, args.threads, args.standin_size, args.home)

    return prepare


def _sd(config, args, repeats):
    from . import sd

    pipeline_runs = 1 if args.quick else 3
    return sd.run(config, args.threads, repeats, args.out, args.standin_size, args.home, args.sd_steps, pipeline_runs)


def _controlnet(config, args, repeats):
    from . import controlnet

    return controlnet.run(config, args.threads, repeats, args.out, args.standin_size, args.home)


PLANS: dict[str, Plan] = {
    "classification": Plan(TEXT_CONFIGS, ("classification-short", "classification", "zero-shot-repeat"),
                           Repeats(5, 50, 60, REQUEST_PAUSE_S), Repeats(2, 10, 20, REQUEST_PAUSE_S),
                           _nlp("classification"),
                           _prepare("nlp", "classification")),
    "translation": Plan(TEXT_CONFIGS[:-1], ("translation",), Repeats(3, 30, 60, REQUEST_PAUSE_S),
                        Repeats(1, 5, 20, REQUEST_PAUSE_S),
                        _nlp("translation"), _prepare("nlp", "translation")),
    "sd": Plan((*BASE_CONFIGS, "openvino-int8", "openvino-tome-int8"), ("sd-unet-step", "sd-pipeline"),
               Repeats(1, 5, 60), Repeats(1, 2, 30), _sd, _prepare("sd")),
    "controlnet": Plan((*BASE_CONFIGS, "openvino-int8-weights", "openvino-int8"), ("controlnet-step", "pose-detection"),
                       Repeats(1, 5, 60), Repeats(1, 2, 30), _controlnet, _prepare("controlnet")),
    "startup": Plan((), ("startup",), Repeats(0, 1), Repeats(0, 1)),
    "visit": Plan((), ("visit",), Repeats(0, 1), Repeats(0, 1)),
}  # fmt: skip


def spawn(args: argparse.Namespace, worker: list[str], prepare: bool = False) -> list[dict] | dict:
    """Run `worker` in a fresh interpreter with the benchmark's threads; its JSON, or {"error": ...}.
    `prepare`: only build what it runs, with no time limit (building is not what is measured)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "BENCH_SPAWNED_AT": repr(time.time())}
    command = [sys.executable, "-m", "bench", "--worker", *worker, *common_flags(args)]
    command += ["--prepare"] if prepare else []
    timeout = None if prepare else args.timeout_s
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {args.timeout_s:.0f} s (stopped)"}
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def common_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--threads", str(args.threads), "--standin-size", args.standin_size, "--out", str(args.out)]
    flags += ["--sd-steps", str(args.sd_steps)] + (["--quick"] if args.quick else [])
    return flags + (["--home", str(args.home)] if args.home else [])


def run_worker(args: argparse.Namespace) -> object:
    """In the worker process: one workload on one configuration (or one start of the app)."""
    from .core import set_threads

    workload, target = args.worker
    if workload == "startup":
        from . import startup

        return startup.run(target, args.threads, args.standin_size, args.home)
    if workload == "visit":
        from . import visit

        return visit.run(float(target), args.threads, args.standin_size, args.home)
    plan = PLANS[workload]
    if args.prepare:
        plan.prepare(CONFIGS[target], args)
        return []
    if CONFIGS[target].backend == "PyTorch":  # an OpenVINO configuration's process never imports torch
        set_threads(args.threads)
    return plan.run(CONFIGS[target], args, plan.quick if args.quick else plan.repeats)


def run_startup(args: argparse.Namespace) -> list[dict]:
    """Cold then warm start with one fresh model cache (models already on disk, so only the
    cache differs: a first start without a cache resolves and builds what is missing)."""
    spawn(args, ["startup", ""])
    cache = Path(tempfile.mkdtemp(prefix="ov-cache-"))
    try:
        rows = []
        for label in ("empty", "warm"):
            outcome = spawn(args, ["startup", str(cache)])
            rows.append({"workload": "startup", "cache": label, **outcome})
            print(json.dumps(rows[-1]), flush=True)
        return rows
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run_visit(args: argparse.Namespace) -> list[dict]:
    """One visit of every tab and backend per memory limit, the budget derived from it as the app does."""
    from pipelines.startup import BUDGET_SHARE

    rows = []
    for limit_gb in args.memory_limits_gb:
        outcome = spawn(args, ["visit", str(BUDGET_SHARE * limit_gb * 1024)])
        rows.append({"workload": "visit", "limit_gb": limit_gb, **outcome})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _span(values: list[float]) -> str:
    return f"{min(values):.1f} to {max(values):.1f}" if values else "-"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    from . import __doc__ as doc

    parser = argparse.ArgumentParser(
        prog="python -m bench", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", nargs="+", choices=list(PLANS), default=list(PLANS))
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=list(CONFIGS),
        default=list(CONFIGS),
        help="run only these configurations (each workload runs those that apply to it)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every backend")
    parser.add_argument(
        "--standin-size",
        choices=("full", "small", "tiny"),
        default="full",
        help="offline stand-ins: full = the real architectures and sizes (default)",
    )
    parser.add_argument("--home", type=Path, help="where models are kept (default: the app's, OVDEMO_HOME)")
    parser.add_argument("--sd-steps", type=int, default=4, help="denoising steps of each timed SD image")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--memory-limits-gb",
        type=float,
        nargs="+",
        default=[16.0, 32.0],
        help="the visit workload: the machine memory each visit's budget is derived from",
    )
    parser.add_argument("--timeout-s", type=float, default=600, help="stop a configuration's process after this")
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench"))
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--merge", type=Path, nargs="+", metavar="BENCH_JSON", help="one report from runs of other workloads"
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.threads < 1 or args.sd_steps < 1 or args.timeout_s <= 0:
        parser.error("--threads, --sd-steps and --timeout-s must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return merge(args.merge, args.out)
    if args.worker:
        print(json.dumps(run_worker(args), default=str))
        return None

    import logging

    from . import report

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log = logging.getLogger("bench")
    results: list[dict] = []
    started = time.time()
    for workload in args.workloads:
        plan = PLANS[workload]
        if plan.run is None:
            results += run_startup(args) if workload == "startup" else run_visit(args)
            continue
        configs = [c for c in plan.configs if c in args.configs]
        for config in configs:  # every missing model built first, outside the time limits
            if isinstance(built := spawn(args, [workload, config], prepare=True), dict):
                log.info("%s on %s could not be built: %s", workload, config, built["error"])
        for config in configs:
            log.info("%s on %s", workload, config)
            outcome = spawn(args, [workload, config])
            if isinstance(outcome, dict):  # the worker failed: one failed row per result it would give
                outcome = [{"workload": name, "config": config, **outcome} for name in plan.rows]
            results += outcome
            for r in outcome:
                log.info("%s", json.dumps({k: v for k, v in r.items() if k != "samples"}))
    report.add_quality(results, args.out)
    from pipelines.core.cpu import detect

    cpu = detect()
    app = report.app_builds(cpu, args.home)
    if not args.quick:  # a quick run's figures are too noisy to choose a build by
        report.record_images(results, cpu, args.home)
    document = {
        "conditions": {
            "machine": report.machine(),
            "int8_units": cpu.int8_units,
            "app_builds": app,
            "workloads": args.workloads,
            "threads": args.threads,
            "quick": args.quick,
            "models": f"{args.standin_size} stand-ins where the Hub is out of reach",
            "sd_steps": args.sd_steps,
            "minutes": round((time.time() - started) / 60, 1),
            "load_avg": _span([r["load_avg_1min"] for r in results if "load_avg_1min" in r]),
        },
        "results": [{k: report.finite(v) for k, v in r.items()} for r in results],
        "targets": report.targets(results, app, vnni=cpu.int8_units is not None),
    }
    return write(document, args.out)


def write(document: dict, out: Path) -> dict:
    """`bench.json`, `bench.md` and `chart.png` of `document` in `out`; prints the markdown."""
    from . import chart, report

    (out / "bench.json").write_text(json.dumps(document, indent=2, default=str))
    text = report.markdown(document)
    (out / "bench.md").write_text(text)
    conditions = document["conditions"]
    chart.draw(document["results"], out / "chart.png", conditions["machine"], conditions.get("app_builds"))
    print(text)
    return document


def merge(paths: list[Path], out: Path) -> dict:
    """One report from the `bench.json` of runs of other workloads on the same machine: every ratio
    still comes from one run (its workload's), and the targets are judged over all of them."""
    from . import report

    documents = [json.loads(Path(path).read_text()) for path in paths]
    conditions = [d["conditions"] for d in documents]
    for name in ("machine", "int8_units", "threads", "models", "sd_steps"):
        if len({json.dumps(c.get(name)) for c in conditions}) > 1:
            raise SystemExit(f"These runs differ in {name}; merge runs made on one machine with one setting.")
    seen = [
        (r["workload"], r.get("config", r.get("cache", r.get("limit_gb")))) for d in documents for r in d["results"]
    ]
    if len(seen) != len(set(seen)):
        raise SystemExit("A workload and configuration appears in more than one run; merge runs of other workloads.")
    results = [r for d in documents for r in d["results"]]
    merged = {
        **conditions[0],
        "minutes": round(sum(c.get("minutes", 0) for c in conditions), 1),
        "quick": any(c.get("quick") for c in conditions),
        "load_avg": " and ".join(c.get("load_avg", "-") for c in conditions),
        "runs": len(documents),
        "workloads": [
            w
            for c, d in zip(conditions, documents, strict=True)
            for w in c.get("workloads") or sorted({r["workload"] for r in d["results"]})
        ],
    }
    app, vnni = merged.get("app_builds") or report.app_builds(), merged.get("int8_units") is not None
    return write({"conditions": merged, "results": results, "targets": report.targets(results, app, vnni)}, out)
