"""A task for the PyTorch worker's own tests: `steps` steps of `step_s` seconds each, its output the steps done.
Built by the worker from a `Recipe` naming this module, like the app's own builders."""

from __future__ import annotations

import time

from pipelines.core.protocol import Result, Steps


class Sleeper:
    action = "Sleeping"

    def __init__(self, step_s: float):
        self.step_s = step_s

    def check(self, steps: int) -> int:
        return steps

    def first_use(self, request: int, backend) -> None:
        return None

    def run(self, request: int, backend, on_step=None, cancel=None) -> Result:
        steps = Steps(request, on_step, cancel)
        steps.check()
        for _ in range(request):
            time.sleep(self.step_s)
            steps()
        return Result(steps.done, {"backend": "PyTorch", "latency_ms": request * self.step_s * 1000})


def sleeper(step_s: float) -> Sleeper:
    return Sleeper(step_s)
