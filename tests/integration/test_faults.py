"""What happens when things on disk or on the network go wrong: the app still starts and says why."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from app import build_demo
from pipelines.core.protocol import ask
from pipelines.core.registry import SENTIMENT, TRANSLATION, ZERO_SHOT
from pipelines.serving.backends import DualModel
from pipelines.serving.runtime import Runtime
from pipelines.sources.resolve import resolve
from pipelines.startup import start
from pipelines.tasks.classification import Classifier


def test_corrupted_cache_blob_is_recompiled(services, settings, tmp_path):
    resolved = services.models[SENTIMENT.key].resolved
    cache = tmp_path / "cache"
    DualModel(resolved, Runtime(dataclasses.replace(settings, cache_dir=cache)))
    blobs = [p for p in cache.iterdir() if p.suffix == ".blob"]
    assert blobs
    for blob in blobs:
        blob.write_bytes(b"\x00garbage" * 64)

    runtime = Runtime(dataclasses.replace(settings, cache_dir=cache))
    dual = DualModel(resolved, runtime)
    assert runtime.records[SENTIMENT.key].cache_hit is False  # compiled again, blob rewritten
    result = ask(Classifier(dual, services.models[ZERO_SHOT.key]), "OpenVINO", "fine", "")
    assert set(result.output) == {"POSITIVE", "NEGATIVE"}


def test_model_folder_missing_a_file_names_it(services, settings, tmp_path):
    folder = tmp_path / SENTIMENT.key
    shutil.copytree(services.models[SENTIMENT.key].resolved.ir_dir, folder)
    (folder / "openvino_model.bin").unlink()
    with pytest.raises(ValueError, match=r"missing openvino_model\.bin.*Copy the complete OpenVINO IR folder"):
        resolve(SENTIMENT, dataclasses.replace(settings, models_dir=tmp_path))


def test_a_broken_model_leaves_the_rest_of_the_app_serving(services, settings, tmp_path):
    folder = tmp_path / TRANSLATION.key
    shutil.copytree(services.models[TRANSLATION.key].resolved.ir_dir, folder)
    (folder / "openvino_decoder_model.bin").unlink()
    broken = start(dataclasses.replace(settings, models_dir=tmp_path))
    assert TRANSLATION.key in broken.failures and "openvino_decoder_model.bin" in broken.failures[TRANSLATION.key]
    assert broken.translator is None and broken.classifier is not None
    demo = build_demo(broken)  # the Translation tab shows the failure; the others still build
    api_names = {fn.api_name for fn in demo.fns.values()}
    assert "classify" in api_names and "translate" not in api_names


def test_incomplete_standin_is_rebuilt(settings, tmp_path):
    fresh = dataclasses.replace(settings, home=tmp_path)
    first = resolve(SENTIMENT, fresh)
    (first.ir_dir / "openvino_model.bin").unlink()
    again = resolve(SENTIMENT, fresh)
    assert (again.ir_dir / "openvino_model.bin").is_file()


def test_every_offline_model_is_reused_on_the_next_start(services, settings, monkeypatch):
    """A second start must find every stand-in and export complete, and rebuild nothing."""
    from pipelines.sources import resolve as resolve_module

    rebuilt = []
    monkeypatch.setattr(resolve_module, "export", lambda *a, **k: rebuilt.append(a[0].key))
    monkeypatch.setattr(resolve_module.standins, "build", lambda *a, **k: rebuilt.append(a[0]))
    for resolved in services.sources():
        resolve(resolved.spec, settings)
    assert rebuilt == []
