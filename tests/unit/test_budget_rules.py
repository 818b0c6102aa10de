"""The memory budget's rules (`serving.budget`), on made-up holders and sizes."""

from __future__ import annotations

import threading

import pytest

from pipelines.serving.budget import MemoryBudget, weights_mb

STARTUP_MB = 1000.0


def three_models(limit_mb: float):
    """A budget over a startup set of 1000 MB and three optional models of 300 MB, held in the order a, b, c."""
    loaded = {"a": 300.0, "b": 300.0, "c": 300.0}
    released: list[str] = []
    budget = MemoryBudget(limit_mb, lambda: STARTUP_MB + sum(loaded.values()))
    for name in list(loaded):
        budget.hold(name, lambda name=name: released.append(name) or loaded.pop(name), lambda name=name: loaded[name])
    return budget, loaded, released


def test_the_least_recently_used_optional_model_goes_first():
    budget, loaded, released = three_models(limit_mb=2000.0)  # 1900 MB in use
    budget.hold("a", lambda: None, lambda: 0.0)  # a used again: b is now the least recently used
    assert budget.holding() == ["b", "c", "a"]
    budget.make_room(300.0, "Model d")  # 1900 + 300 > 2000: b goes, 1600 + 300 fits
    assert released == ["b"] and set(loaded) == {"a", "c"}
    budget.make_room(50.0, "Model e")  # fits already: nothing goes
    assert released == ["b"]


def test_what_cannot_fit_is_refused_with_a_sentence_and_nothing_is_released_in_vain():
    budget, loaded, released = three_models(limit_mb=2000.0)
    with pytest.raises(ValueError, match=r"needs about 2\.0 GB more memory, which does not fit .* budget of 2\.0 GB"):
        budget.make_room(2048.0, "Model f")  # even with a, b and c gone: 1000 + 2048 > 2000
    assert released == [] and len(loaded) == 3


def test_the_model_asking_is_never_released_for_itself():
    budget, _, released = three_models(limit_mb=1950.0)
    budget.make_room(200.0, "More of c", keep="c")
    assert "c" not in released and released == ["a"]


def test_weights_are_measured_from_local_folders_only(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 2**20)
    (tmp_path / "notes.txt").write_bytes(b"\0" * 2**20)
    assert weights_mb(tmp_path) == 1.0
    assert weights_mb("owner/a-hub-repo") is None and weights_mb(None) is None


def test_two_loads_admitted_at_the_same_moment_cannot_both_pass_against_the_same_memory():
    """1000 MB in use, a 1500 MB budget: one 400 MB load fits, two do not. Both ask at once, before either has
    grown the resident memory; the second counts the first's reservation and is refused, until the first ends."""
    budget = MemoryBudget(1500.0, lambda: STARTUP_MB)
    barrier, outcomes = threading.Barrier(2), []

    def load(name: str) -> None:
        barrier.wait()
        try:
            outcomes.append((name, budget.make_room(400.0, f"Model {name}")))
        except ValueError as exc:
            outcomes.append((name, exc))

    threads = [threading.Thread(target=load, args=(name,)) for name in "xy"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admitted = [o for _, o in outcomes if not isinstance(o, ValueError)]
    refused = [o for _, o in outcomes if isinstance(o, ValueError)]
    assert len(admitted) == 1 and len(refused) == 1, outcomes
    assert "in use or reserved" in str(refused[0]) and budget.reserved_mb() == 400.0
    admitted[0].release()  # the load ended (its memory would now be in use, not reserved)
    assert budget.reserved_mb() == 0.0
    with budget.make_room(400.0, "Model z"):
        assert budget.reserved_mb() == 400.0
    assert budget.reserved_mb() == 0.0
