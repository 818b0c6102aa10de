"""The memory budget: the least recently used optional model goes first; what cannot fit is refused with a
sentence, and nothing is released in vain."""

from __future__ import annotations

import pytest

from pipelines.core.protocol import ask


def test_the_app_refuses_a_baseline_that_does_not_fit_and_keeps_serving(services, monkeypatch):
    """A budget no larger than what the startup models use: a PyTorch baseline that is not loaded yet is refused."""
    services.worker.stop("the test starts from none")
    monkeypatch.setattr(services.budget, "limit_mb", services.budget.used_mb() + 1.0)
    translator = services.served.translator
    with pytest.raises(ValueError, match="does not fit in this server's budget"):
        ask(translator, "PyTorch", "Where is the station?", "German", 2)
    assert not services.worker.running
    assert ask(translator, "OpenVINO", "Where is the station?", "German", 2).timing["new_tokens"] <= 2
