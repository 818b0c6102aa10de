"""Where models come from: local folder first, then the Hub, then offline weights."""

from __future__ import annotations

import dataclasses
import shutil
import time

import pytest

from pipelines.build import standins
from pipelines.core.registry import SENTIMENT, ZERO_SHOT
from pipelines.core.resolved import Source
from pipelines.sources import hub as hub_module
from pipelines.sources import resolve as resolve_module
from pipelines.sources.hub import hub_reachable
from pipelines.sources.resolve import resolve


@pytest.fixture
def no_hub(monkeypatch):
    """A Hub endpoint that refuses connections at once (a closed port on loopback)."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub_reachable.cache_clear()
    yield
    hub_reachable.cache_clear()


def test_local_folder_wins(services, settings, tmp_path):
    ir_dir = services.models[SENTIMENT.key].resolved.ir_dir
    shutil.copytree(ir_dir, tmp_path / SENTIMENT.key)
    found = resolve(SENTIMENT, dataclasses.replace(settings, models_dir=tmp_path))
    assert found.source is Source.LOCAL and found.ir_dir == tmp_path / SENTIMENT.key
    assert found.torch_ref == SENTIMENT.torch_repo  # no pytorch/ sub-folder: baseline from the Hub


def test_local_folder_without_ir_is_skipped(services, settings, tmp_path):
    (tmp_path / SENTIMENT.key).mkdir()
    found = resolve(SENTIMENT, dataclasses.replace(settings, models_dir=tmp_path))
    assert found.source is Source.STANDIN


def test_unreachable_hub_falls_back_within_seconds(services, settings, no_hub):
    start = time.perf_counter()
    found = resolve(SENTIMENT, settings)
    assert time.perf_counter() - start < 5
    assert found.source is Source.STANDIN and found.is_standin


def test_offline_mode_never_touches_the_network(services, settings, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_module, "hub_reachable", lambda *a: pytest.fail("probed the Hub in offline mode"))
    assert resolve(SENTIMENT, settings).source is Source.STANDIN


def test_packaged_weights_come_before_a_standin(services):
    resolved = services.models[ZERO_SHOT.key].resolved
    assert resolved.source is Source.PACKAGED and not resolved.is_standin
    assert resolved.torch_ref == str(standins.packaged_minilm_path())


def test_standin_is_built_once_and_reused(settings, tmp_path, monkeypatch, no_hub):
    calls = []
    build = standins.build
    monkeypatch.setattr(standins, "build", lambda *a: calls.append(a) or build(*a))
    fresh = dataclasses.replace(settings, home=tmp_path)
    first = resolve(SENTIMENT, fresh)
    stamp = (first.ir_dir / "openvino_model.xml").stat().st_mtime_ns
    second = resolve(SENTIMENT, fresh)
    assert len(calls) == 1
    assert second.ir_dir == first.ir_dir and (second.ir_dir / "openvino_model.xml").stat().st_mtime_ns == stamp
    assert not list(tmp_path.rglob("*.partial"))


def test_hub_pytorch_repo_is_exported_once(services, settings, tmp_path, monkeypatch):
    """The Hub branch, with the download served from a local copy of a checkpoint."""
    checkpoint = services.models[SENTIMENT.key].resolved.torch_ref
    downloads, exports = [], []
    monkeypatch.setattr(resolve_module, "hub_snapshot", lambda repo, s: downloads.append(repo) or checkpoint)
    export = resolve_module.export
    monkeypatch.setattr(resolve_module, "export", lambda *a: exports.append(a) or export(*a))
    fresh = dataclasses.replace(settings, home=tmp_path)
    first, second = resolve(SENTIMENT, fresh), resolve(SENTIMENT, fresh)
    assert first.source is second.source is Source.HUB_EXPORTED
    assert first.torch_ref == SENTIMENT.torch_repo
    assert downloads == [SENTIMENT.torch_repo] and len(exports) == 1


def test_a_local_folder_without_the_serving_files_is_served_from_a_linked_copy(services, settings, tmp_path):
    """A folder the app does not own gets no file written into it (nor through a link): the missing
    tokenizer.json goes into a copy of links under home/serving/."""
    source = tmp_path / "models" / SENTIMENT.key
    shutil.copytree(services.models[SENTIMENT.key].resolved.ir_dir, source)
    (source / "tokenizer.json").unlink()
    before = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    local = dataclasses.replace(settings, models_dir=tmp_path / "models", home=tmp_path / "home")
    with pytest.raises(resolve_module.NotBuilt):
        resolve(SENTIMENT, local, build=False)
    found = resolve(SENTIMENT, local)
    assert found.source is Source.LOCAL and found.ir_dir == tmp_path / "home" / "serving" / SENTIMENT.key
    assert (found.ir_dir / "tokenizer.json").is_file() and not (found.ir_dir / "tokenizer.json").is_symlink()
    assert (found.ir_dir / "openvino_model.xml").resolve() == (source / "openvino_model.xml").resolve()
    assert {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()} == before
    assert resolve(SENTIMENT, local, build=False).ir_dir == found.ir_dir  # built once, then found


def test_a_build_that_fails_in_its_child_process_gives_a_sentence(settings, tmp_path):
    from pipelines.sources.prepare import resolve_apart

    broken = dataclasses.replace(SENTIMENT, key="broken-standin", standin="no-such-builder")
    with pytest.raises(ValueError, match=r"Building .* failed: no stand-in named 'no-such-builder'"):
        resolve_apart(broken, dataclasses.replace(settings, home=tmp_path, hub_timeout=0.5))
