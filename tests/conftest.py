"""Shared fixtures: tiny stand-ins built once per session, offline, in a temporary home.

Tests are in three tiers, one folder and one marker each: `unit` (no model built or compiled),
`integration` (the tasks on the session's stand-ins), `e2e` (the launched app, as its clients use it).
`python -m pytest tests/unit` is the quick run; `python -m pytest` runs all three.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipelines.build.export import export
from pipelines.core.registry import ModelSpec, Quantization
from pipelines.core.settings import Settings
from pipelines.serving.backends import DualModel
from pipelines.serving.runtime import Runtime
from pipelines.startup import Services, start


def rule_builds() -> str:
    """`OVDEMO_BUILD` pinning each text model to the build `pipelines.core.cpu`'s rule picks on this CPU: the tests'
    tolerances are set per build, and the tuner that would otherwise pick one is tested on its own
    (`test_tuning.py`)."""
    from pipelines.core.cpu import detect, for_this_cpu
    from pipelines.startup import STARTUP_MODELS

    return ",".join(f"{s.key}={for_this_cpu(s, detect()).quantization.value}" for s in STARTUP_MODELS)


TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items) -> None:
    """Each test marked with its tier: the folder it is in."""
    for item in items:
        tier = Path(item.fspath).parent.name
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(tier)


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    """Tiny stand-ins, f32 precision hint (for comparisons with PyTorch), a fresh cache, the rule's builds."""
    root = tmp_path_factory.mktemp("ovdemo")
    return Settings(
        home=root / "home",
        cache_dir=root / "cache",
        standin_size="tiny",
        precision="f32",
        threads=2,
        build=rule_builds(),
    )


@pytest.fixture(scope="session")
def services(settings) -> Services:
    services = start(settings)
    assert not services.failures, services.failures
    return services


@pytest.fixture(scope="session")
def built_model(services, settings, tmp_path_factory):
    """`built_model(key, quantization)`: the same stand-in weights exported in another build, by the
    app's own export code (every build `cpu.build_for` can pick, on any CPU)."""
    built: dict[tuple[str, Quantization], DualModel] = {}
    runtime = Runtime(dataclasses.replace(settings, cache_dir=None))

    def get(key: str, quantization: Quantization) -> DualModel:
        if (key, quantization) not in built:
            resolved = services.models[key].resolved
            spec: ModelSpec = dataclasses.replace(resolved.spec, quantization=quantization, build_reason="")
            folder = export(spec, resolved.torch_ref, tmp_path_factory.mktemp(key) / quantization.value)
            built[key, quantization] = DualModel(dataclasses.replace(resolved, spec=spec, ir_dir=Path(folder)), runtime)
        return built[key, quantization]

    return get


@pytest.fixture(scope="session")
def fp32_model(built_model):
    """`fp32_model(key)`: the same stand-in weights exported without quantization."""
    return lambda key: built_model(key, Quantization.NONE)


@contextmanager
def launched(services: Services, **kwargs):
    """The app built from `services`, served on loopback for the duration of the block."""
    from app import build_demo, launch_options

    demo = build_demo(services, **kwargs)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options())
    try:
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="session")
def serve():
    """`with serve(services, **build_demo_kwargs) as demo:` runs the app for the block."""
    return launched


@pytest.fixture(scope="module")
def client(services):
    """A gradio_client for the app, one server per test module."""
    from gradio_client import Client

    with launched(services) as demo:
        yield Client(demo.local_url, verbose=False)


@pytest.fixture
def assert_cancel_stops():
    """`assert_cancel_stops(job, action, steps)`: `job` (a gradio_client job of `steps` steps) is
    cancelled once it reports progress; the task must stop before its last step and log so."""
    import logging
    import time

    def check(job, action: str, steps: int) -> None:
        records: list[str] = []
        handler = logging.Handler(logging.INFO)
        handler.emit = lambda record: records.append(record.getMessage())
        logger = logging.getLogger("ui.scaffold")
        logger.addHandler(handler)
        level, logger.level = logger.level, logging.INFO
        try:
            deadline = time.monotonic() + 30
            while not (job.status().progress_data or job.done()) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not job.done(), "the request finished before it could be stopped"
            job.cancel()
            said, deadline = f"{action} stopped after step", time.monotonic() + 30
            while not any(r.startswith(said) for r in records) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        stopped = [r for r in records if r.startswith(said)]
        assert stopped and not stopped[0].endswith(f"step {steps} of {steps}"), records

    return check
