"""The PyTorch baselines in their own process: started on first use, same results, a sentence when it dies,
gone when idle, memory measured on both sides."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from PIL import Image

from pipelines.core.protocol import Backend, ask
from pipelines.core.registry import TRANSLATION
from pipelines.serving.worker import Recipe, TorchWorker, WorkerStopped
from pipelines.startup import torch_pose, torch_translator

TEXT = "Where is the nearest train station?"


def test_the_worker_starts_on_the_first_pytorch_request_and_answers_as_in_process(services):
    worker = services.worker
    worker.stop("the test starts from none")
    translator = services.served.translator
    assert not worker.running and "Starting the PyTorch process" in translator.first_use(None, Backend.PYTORCH)
    remote = ask(translator, "PyTorch", TEXT, "German", 6, 6)
    assert worker.running and worker.pid != os.getpid()
    local = ask(services.translator, "PyTorch", TEXT, "German", 6, 6)  # the same task, in this process
    assert remote.output == local.output
    assert remote.timing["new_tokens"] == local.timing["new_tokens"] == 6
    assert remote.timing["memory_mb"] > 0 and worker.rss_mb() > 100  # a process with torch imported
    assert translator.first_use(None, Backend.PYTORCH) is None  # loaded: no notice
    openvino = ask(translator, "OpenVINO", TEXT, "German", 6, 6)  # never goes to the worker
    assert openvino.timing["memory_mb"] > 0 and openvino.timing["backend"] == "OpenVINO"


def test_a_worker_killed_mid_request_gives_a_sentence_and_the_next_request_starts_a_new_one(services):
    generator, worker = services.served.sd, services.worker
    request = generator.check("a long one", "", 50, 7.5, 1, generator.default)
    stepping, outcome = threading.Event(), {}

    def run() -> None:
        try:
            outcome["result"] = generator.run(request, "PyTorch", lambda done, total, preview=None: stepping.set())
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    assert stepping.wait(120), "the generation never reported a step"
    starts = worker.starts
    os.kill(worker.pid, signal.SIGKILL)
    thread.join(60)
    assert isinstance(outcome.get("error"), WorkerStopped), outcome
    assert "stopped during this request" in str(outcome["error"]) and "OpenVINO backend is not affected" in str(
        outcome["error"]
    )
    assert ask(services.served.sd, "OpenVINO", "a cat", "", 1, 7.5, 3, generator.default).output.size == (64, 64)
    again = ask(services.served.sd, "PyTorch", "a cat", "", 1, 7.5, 3, generator.default)
    assert worker.starts == starts + 1 and again.output.size == (64, 64)


def test_an_idle_worker_exits_and_frees_its_memory(settings, services):
    worker = TorchWorker(threads=1, idle_s=1.0)
    recipe = Recipe(torch_translator, (settings, TRANSLATION))
    translator = services.translator
    result = worker.run(recipe, translator.check(TEXT, "German", 2), None, None)
    assert result.timing["backend"] == "PyTorch" and worker.running
    deadline = time.monotonic() + 30
    while worker.running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker.running and worker.rss_mb() is None


def test_a_refused_request_is_a_value_error_and_the_worker_keeps_serving(settings, services):
    worker = TorchWorker(threads=1, idle_s=60.0)
    try:
        recipe = Recipe(torch_pose, (settings, services.pose.spec), "detection")
        blank = services.pose.detection.check(Image.new("RGB", (90, 60), (128, 128, 128)))
        with pytest.raises(ValueError, match="No person was found"):
            worker.run(recipe, blank, None, None)
        assert worker.running
        translator = Recipe(torch_translator, (settings, TRANSLATION))
        assert worker.run(translator, services.translator.check(TEXT, "German", 2)).timing["new_tokens"] <= 2
    finally:
        worker.stop()


def test_the_worker_side_builder_has_no_openvino_side(settings):
    translator = torch_translator(settings, TRANSLATION)
    assert translator.model.ov is None and not translator.model.torch_loaded


def test_a_pytorch_image_request_compiles_nothing_in_the_app_process(services):
    """The variant a PyTorch request names is resolved here first (built, if it must be, so the worker finds
    it) and not compiled: only an OpenVINO request compiles a variant."""
    from pipelines.core.registry import SD_VARIANTS
    from pipelines.sources.prepare import resolve_apart
    from pipelines.startup import sd_served
    from pipelines.tasks.sd import SDRunner

    runner = SDRunner(SD_VARIANTS, services.runtime, resolver=resolve_apart)  # the default variant compiled
    served = sd_served(runner, services)
    other = next(v for v in served.variant_names if v != served.default)
    result = ask(served, "PyTorch", "a cat", "", 1, 7.5, 3, other)
    assert result.timing["backend"] == "PyTorch" and result.output.size == (64, 64)
    assert not runner.is_loaded(other) and not served.is_loaded(other)
    assert ask(served, "OpenVINO", "a cat", "", 1, 7.5, 3, other).timing["variant"] == other
    assert runner.is_loaded(other)  # the twin and the runner share their variants
