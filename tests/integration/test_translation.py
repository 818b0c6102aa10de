"""T5 on OpenVINO vs PyTorch, on the tiny stand-in (same weights, f32 precision hint)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time

import numpy as np
import pytest
import torch

from pipelines.build.export import INT8_WEIGHTS_FORMAT, MANIFEST, is_complete_ir_folder
from pipelines.core.checks import MAX_TEXT_CHARS
from pipelines.core.protocol import Backend, Cancelled, ask
from pipelines.core.registry import TRANSLATION
from pipelines.sources.resolve import resolve
from pipelines.tasks.translation import Translator

TEXT = "The weather is lovely today, so we are going for a walk by the river."
# FP32 IR vs PyTorch fp32: the same graph, f32 kernels; differences are summation order.
FP32_ATOL = 1e-4
# Weight-only INT8: per-channel weight rounding; first-step logits stay aligned.
INT8_MIN_COSINE = 0.99


def _first_step_logits(dual, backend: Backend) -> np.ndarray:
    enc, _ = dual.tokenizer("translate English to German: " + TEXT)
    ids, mask, start = enc["input_ids"], enc["attention_mask"], np.zeros((1, 1), dtype=np.int64)
    if backend is Backend.OPENVINO:
        logits = dual.ov(ids, mask, start)
    else:
        with torch.inference_mode():
            inputs = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": start}
            logits = dual.torch().model(**{name: torch.from_numpy(a) for name, a in inputs.items()})
        logits = logits.logits.numpy()
    return np.asarray(logits[0, -1], dtype=np.float32)


def test_fp32_logits_match_pytorch(fp32_model):
    dual = fp32_model(TRANSLATION.key)
    ov, pt = _first_step_logits(dual, Backend.OPENVINO), _first_step_logits(dual, Backend.PYTORCH)
    np.testing.assert_allclose(ov, pt, atol=FP32_ATOL, rtol=0)


def test_fp32_generates_the_same_tokens(fp32_model):
    translator = Translator(fp32_model(TRANSLATION.key))
    request = translator.check(TEXT, "German", 12, 12)
    ov, pt = translator.run(request, Backend.OPENVINO), translator.run(request, Backend.PYTORCH)
    assert ov.timing["new_tokens"] == pt.timing["new_tokens"] == 12
    assert ov.output == pt.output


def test_int8_stays_close_to_pytorch(services):
    dual = services.models[TRANSLATION.key]
    ov, pt = _first_step_logits(dual, Backend.OPENVINO), _first_step_logits(dual, Backend.PYTORCH)
    cosine = float(ov @ pt / (np.linalg.norm(ov) * np.linalg.norm(pt)))
    assert cosine > INT8_MIN_COSINE


def test_lean_loop_matches_optimum_generate(services):
    """The app's decode loop gives exactly the tokens of optimum-intel's generate() on the same INT8 IR."""
    from optimum.intel import OVModelForSeq2SeqLM

    dual = services.models[TRANSLATION.key]
    reference = OVModelForSeq2SeqLM.from_pretrained(dual.resolved.ir_dir, ov_config=dual.ov.ov_config)
    for text, min_new in ((TEXT, 0), ("Where is the station?", 6), ("Good morning.", 16)):
        enc, _ = dual.tokenizer("translate English to French: " + text)
        kwargs = {"max_new_tokens": 16, "min_new_tokens": min_new, "do_sample": False, "num_beams": 1}
        ids, mask = torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"])
        expected = reference.generate(input_ids=ids, attention_mask=mask, **kwargs)
        actual = dual.ov.generate(enc["input_ids"], enc["attention_mask"], **kwargs)
        assert actual.tolist() == expected.tolist()


def test_lean_loop_refuses_what_it_does_not_do(services):
    dual = services.models[TRANSLATION.key]
    enc, _ = dual.tokenizer("a")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with pytest.raises(ValueError, match="greedily"):
        dual.ov.generate(ids, mask, max_new_tokens=2, num_beams=4)
    with pytest.raises(ValueError, match="one sequence at a time"):
        dual.ov.generate(np.concatenate([ids, ids]), np.concatenate([mask, mask]), max_new_tokens=2)


def test_result_reports_timing_and_source(services):
    result = ask(services.translator, "OpenVINO", TEXT, "French", 5, 5)
    timing = result.timing
    assert timing["backend"] == "OpenVINO" and timing["precision"] == "OpenVINO INT8 weights"
    assert "pinned by OVDEMO_BUILD" in timing["build"]  # why this build, for the latency line
    assert timing["latency_ms"] > 0 and timing["new_tokens"] == 5
    assert timing["model_source"] == "stand-in (random weights)" and timing["standin"] is True
    assert timing["truncated"] is False


@pytest.mark.parametrize("backend", [Backend.OPENVINO, Backend.PYTORCH])
def test_tokens_stream_as_they_are_decoded_on_either_backend(services, backend):
    """Both backends report the text after each new token; the last is the result, and the time spent
    reporting is left out of the latency."""
    translator = services.served.translator  # PyTorch in the worker process: the stream crosses the pipe
    request = translator.check(TEXT, "German", 256, 256)
    seen = []

    def on_step(done, total, preview=None):
        seen.append((done, total, preview))
        time.sleep(0.1)  # a slow page: not counted in the latency

    unstreamed = translator.run(request, backend)
    result = translator.run(request, backend, on_step)
    done = [done for done, _, _ in seen]  # the first token, then at most every STREAM_EVERY_S
    assert done[0] == 1 and done == sorted(set(done)) and len(done) >= 2 and {total for _, total, _ in seen} == {256}
    assert all(result.output.startswith(text.strip()) for _, _, text in seen)
    assert unstreamed.output == result.output
    slept = 0.1 * len(seen) * 1000
    assert result.timing["latency_ms"] < unstreamed.timing["latency_ms"] + slept / 2, (slept, result.timing)


@pytest.mark.parametrize("backend", [Backend.OPENVINO, Backend.PYTORCH])
def test_a_cancelled_translation_stops_after_its_current_token(services, backend):
    translator = services.served.translator
    request, cancel, seen = translator.check(TEXT, "German", 50, 50), threading.Event(), []

    def on_step(done, total, preview=None):
        seen.append(done)
        cancel.set()  # the page closed, or the API client cancelled

    with pytest.raises(Cancelled, match="of 50") as stopped:
        translator.run(request, backend, on_step, cancel)
    assert seen[0] == 1 and stopped.value.done < 50  # PyTorch's worker hears of it within its poll interval
    assert translator.run(translator.check(TEXT, "German", 3, 3), backend).timing["new_tokens"] == 3


def test_long_input_is_truncated_and_says_so(services):
    translator = services.translator
    long_text = " ".join(["river"] * 2000)[: MAX_TEXT_CHARS - 1]
    result = ask(translator, "OpenVINO", long_text, "German", 2)
    assert result.timing["truncated"] is True
    assert result.timing["input_tokens"] == translator.max_input_tokens


@pytest.mark.parametrize(
    ("text", "language", "backend", "max_new", "message"),
    [
        ("   ", "German", "OpenVINO", 8, "text is empty"),
        (None, "German", "OpenVINO", 8, "text is empty"),
        ("x" * (MAX_TEXT_CHARS + 1), "German", "OpenVINO", 8, "shorten it"),
        ("Hello", "Klingon", "OpenVINO", 8, "Unknown target language"),
        ("Hello", "German", "TensorFlow", 8, "Unknown backend"),
        ("Hello", "German", "OpenVINO", 0, "Max new tokens must be a whole number from 1 to 256, got 0"),
        ("Hello", "German", "OpenVINO", 10_000, "Max new tokens must be a whole number from 1 to 256"),
    ],
)
def test_bad_input_raises_value_error(services, text, language, backend, max_new, message):
    with pytest.raises(ValueError, match=message):
        ask(services.translator, backend, text, language, max_new)


def _weight_constant_types(folder) -> set[str]:
    import openvino as ov

    model = ov.Core().read_model(folder / "openvino_decoder_model.xml")
    return {
        op.get_output_element_type(0).get_type_name()
        for op in model.get_ops()
        if op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in ("i8", "u8")
    }


def test_int8_weights_are_symmetric(services):
    """Symmetric INT8 weights (i8, no u8 zero points): the faster decompression on the CPU."""
    folder = services.models[TRANSLATION.key].resolved.ir_dir
    assert _weight_constant_types(folder) == {"i8"}
    assert json.loads((folder / MANIFEST).read_text())["weights"] == INT8_WEIGHTS_FORMAT


def test_export_in_an_older_format_is_made_again(services, settings, tmp_path):
    """A T5 folder exported before the weight format was recorded is exported again by resolve()."""
    resolved = services.models[TRANSLATION.key].resolved
    home_settings = dataclasses.replace(settings, home=tmp_path / "home")
    weights = home_settings.home / "standins" / "tiny" / "pytorch" / TRANSLATION.standin
    folder = home_settings.home / "standins" / "tiny" / TRANSLATION.key / f"openvino-{TRANSLATION.quantization.value}"
    shutil.copytree(resolved.torch_ref, weights)
    shutil.copytree(resolved.ir_dir, folder)

    decoder_bin = folder / "openvino_decoder_model.bin"
    copied = decoder_bin.stat().st_mtime_ns
    assert resolve(TRANSLATION, home_settings).ir_dir == folder
    assert decoder_bin.stat().st_mtime_ns == copied  # current format: kept as it is
    assert is_complete_ir_folder(folder, TRANSLATION)

    old = {"source": str(weights), "quantization": TRANSLATION.quantization.value}
    (folder / MANIFEST).write_text(json.dumps(old))
    decoder_bin.write_bytes(b"stale")  # as if written by the old export
    assert is_complete_ir_folder(folder) and not is_complete_ir_folder(folder, TRANSLATION)

    assert resolve(TRANSLATION, home_settings).ir_dir == folder
    assert json.loads((folder / MANIFEST).read_text())["weights"] == INT8_WEIGHTS_FORMAT
    assert decoder_bin.stat().st_size > len(b"stale")
    assert _weight_constant_types(folder) == {"i8"}
