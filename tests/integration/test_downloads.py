"""Partial downloads and builds never stick: each is found, reported in the log, and redone.

The Hub is a real HTTP server on loopback (`fake_hub.FakeHub`) that huggingface_hub talks to
as it talks to the Hub; "dies mid-file" means the connection drops inside a file body.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from pipelines.build import standins
from pipelines.core.folders import PARTIAL_SUFFIX, damaged_files
from pipelines.core.registry import SENTIMENT
from pipelines.core.resolved import Source
from pipelines.sources.hub import hub_reachable, hub_snapshot
from pipelines.sources.resolve import resolve, standin_weights
from tests.support.fake_hub import FakeHub


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty huggingface_hub cache, online mode, and a fresh reachability probe."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub_reachable.cache_clear()
    yield tmp_path / "hf-cache"
    hub_reachable.cache_clear()


@pytest.fixture
def sentiment_repo(services):
    """The tiny sentiment checkpoint, served as the Hub's PyTorch repo of the sentiment model."""
    return {SENTIMENT.torch_repo: services.models[SENTIMENT.key].resolved.torch_ref}


def point_at(monkeypatch, url: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", url)
    hub_reachable.cache_clear()


def test_a_download_that_dies_mid_file_is_never_used_and_is_redone(
    settings, tmp_path, hub_cache, sentiment_repo, monkeypatch, caplog
):
    fresh = dataclasses.replace(settings, home=tmp_path / "home")
    caplog.set_level(logging.WARNING)

    # 1. The Hub drops the connection inside every file larger than 1 kB: the app falls back.
    with FakeHub(sentiment_repo) as hub:
        hub.cut_after = 1024
        point_at(monkeypatch, hub.url)
        assert resolve(SENTIMENT, fresh).source is Source.STANDIN
        assert any("Could not download" in r.message and SENTIMENT.torch_repo in r.message for r in caplog.records)
    snapshot = next((hub_cache).rglob("snapshots/*"))
    assert (snapshot / "config.json").is_file() and not (snapshot / "model.safetensors").is_file()

    # 2. Next start, Hub out of reach: huggingface_hub's offline lookup finds that snapshot;
    #    the app sees it is unfinished, says so, and does not use it.
    caplog.clear()
    point_at(monkeypatch, "http://127.0.0.1:9")
    assert hub_snapshot(SENTIMENT.torch_repo, fresh) is None
    assert any("did not finish" in r.message for r in caplog.records)
    assert resolve(SENTIMENT, fresh).source is Source.STANDIN

    # 3. Next start, Hub healthy: the download is finished and the model exported from it.
    with FakeHub(sentiment_repo) as hub:
        point_at(monkeypatch, hub.url)
        found = resolve(SENTIMENT, fresh)
    assert found.source is Source.HUB_EXPORTED and found.torch_ref == SENTIMENT.torch_repo
    assert (snapshot / "model.safetensors").is_file()

    # 4. Offline again: the completed snapshot is used as it is...
    point_at(monkeypatch, "http://127.0.0.1:9")
    assert hub_snapshot(SENTIMENT.torch_repo, fresh) == snapshot
    # ...until a file of it is cut short on disk.
    blob = (snapshot / "model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:100])
    caplog.clear()
    assert hub_snapshot(SENTIMENT.torch_repo, fresh) is None
    assert any("truncated" in r.message for r in caplog.records)

    # 5. Online again: the server's sizes, not the cache's, decide; the cut file is fetched again.
    with FakeHub(sentiment_repo) as hub:
        point_at(monkeypatch, hub.url)
        assert hub_snapshot(SENTIMENT.torch_repo, fresh) == snapshot
    served = Path(sentiment_repo[SENTIMENT.torch_repo]) / "model.safetensors"
    assert (snapshot / "model.safetensors").read_bytes() == served.read_bytes()


def test_an_http_error_or_a_missing_repo_leads_to_the_next_source(settings, tmp_path, hub_cache, monkeypatch):
    with FakeHub({}) as hub:  # knows no repo: 404 for everything
        point_at(monkeypatch, hub.url)
        found = resolve(SENTIMENT, dataclasses.replace(settings, home=tmp_path / "home"))
        assert any(SENTIMENT.torch_repo in r for r in hub.requests)
    assert found.source is Source.STANDIN


def test_a_snapshot_fetched_by_other_tools_is_trusted_unless_unfinished(settings, tmp_path, hub_cache, sentiment_repo,
                                                                        monkeypatch):  # fmt: skip
    from huggingface_hub import snapshot_download

    with FakeHub(sentiment_repo) as hub:
        folder = snapshot_download(SENTIMENT.torch_repo, endpoint=hub.url)  # as `hf download` would
    point_at(monkeypatch, "http://127.0.0.1:9")
    fresh = dataclasses.replace(settings, home=tmp_path / "home")
    assert str(hub_snapshot(SENTIMENT.torch_repo, fresh)) == folder
    blobs = hub_cache / f"models--{SENTIMENT.torch_repo.replace('/', '--')}" / "blobs"
    (blobs / "0123.incomplete").write_bytes(b"half a file")
    assert hub_snapshot(SENTIMENT.torch_repo, fresh) is None


class Interrupted(BaseException):
    """What a Ctrl-C or a stopped container does to a build: not an error the build handles."""


def test_an_interrupted_standin_build_is_redone_on_the_next_start(settings, tmp_path, monkeypatch, caplog):
    fresh = dataclasses.replace(settings, home=tmp_path / "home")
    build = standins.BUILDERS["minilm-sst2"]

    def dies_halfway(size, out_dir):
        build(size, out_dir)
        (out_dir / "model.safetensors").unlink()  # the weights were still being written
        raise Interrupted

    monkeypatch.setitem(standins.BUILDERS, "minilm-sst2", dies_halfway)
    with pytest.raises(Interrupted):
        resolve(SENTIMENT, fresh)
    weights = fresh.home / "standins" / "tiny" / "pytorch" / "minilm-sst2"
    assert not weights.exists()  # nothing that looks finished is left behind

    # A build killed outright leaves its partial folder: the next start reports and clears it.
    partial = weights.with_name(weights.name + PARTIAL_SUFFIX)
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("{}")  # written in place, this alone once counted as finished
    monkeypatch.setitem(standins.BUILDERS, "minilm-sst2", build)
    caplog.set_level(logging.WARNING)
    found = resolve(SENTIMENT, fresh)
    assert found.source is Source.STANDIN and (weights / "model.safetensors").is_file()
    assert not partial.exists() and any("interrupted" in r.message for r in caplog.records)


def test_a_damaged_build_is_found_by_its_manifest_and_rebuilt(settings, tmp_path, caplog):
    fresh = dataclasses.replace(settings, home=tmp_path / "home")
    first = resolve(SENTIMENT, fresh)
    weights = standin_weights(SENTIMENT, fresh)
    assert not damaged_files(first.ir_dir) and not damaged_files(weights)

    # Truncate one file of each: both are detected, logged and built again.
    for path in (first.ir_dir / "openvino_model.bin", weights / "model.safetensors"):
        path.write_bytes(path.read_bytes()[:64])
    caplog.set_level(logging.WARNING)
    again = resolve(SENTIMENT, fresh)
    assert (again.ir_dir / "openvino_model.bin").stat().st_size > 64
    assert (weights / "model.safetensors").stat().st_size > 64
    assert sum("is incomplete" in r.message for r in caplog.records) >= 2
