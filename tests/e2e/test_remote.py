"""The OpenVINO Model Server repository, and the text tabs' OpenVINO inference on a model server.

The server is real: KServe's `ModelServer` (`python -m pipelines.scale_out.kserve_server`) serving the repository
`python -m pipelines.scale_out` wrote, over the V2 REST API, in a process of its own. Remote and local runs of
the same IR must agree exactly (the same tokens) or within float noise (scores, atol 1e-5).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.ovms_layout import MODEL_FILE, NEXT_TOKENS, VERSION, model_entries, read_config
from pipelines.core.protocol import Backend, Cancelled, ask
from pipelines.scale_out.from_app import repository
from pipelines.scale_out.kserve_server import launch
from pipelines.serving.remote import REMOTE, ModelServer, RemoteError
from pipelines.serving.runtime import Runtime
from pipelines.startup import start
from pipelines.tasks.classification import ClassificationTiming
from ui.common import latency_line

TIMEOUT_S = 1.0
"""The model server timeout these tests run with: a down or slow server costs a request at most this."""

# OpenVINO Model Server's config schema (`src/schema.cpp`, MODELS_CONFIG_SCHEMA: the model entry as
# written there; `mediapipe_config_list` and `monitoring` as its parameters documentation gives them).
OVMS_SCHEMA = {
    "type": "object",
    "required": ["model_config_list"],
    "additionalProperties": False,
    "properties": {
        "model_config_list": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["config"],
                "additionalProperties": False,
                "properties": {
                    "config": {
                        "type": "object",
                        "required": ["name", "base_path"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "base_path": {"type": "string"},
                            "batch_size": {"type": ["integer", "string"], "minimum": 0},
                            "model_version_policy": {"type": "object"},
                            "shape": {"type": ["object", "string"]},
                            "nireq": {"type": "integer", "minimum": 0},
                            "target_device": {"type": "string"},
                            "plugin_config": {"type": "object"},
                            "stateful": {"type": "boolean"},
                            "idle_sequence_cleanup": {"type": "boolean"},
                            "low_latency_transformation": {"type": "boolean"},
                            "max_sequence_number": {"type": "integer", "minimum": 0},
                        },
                    }
                },
            },
        },
        "mediapipe_config_list": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "base_path": {"type": "string"},
                    "graph_path": {"type": "string"},
                    "subconfig": {"type": "string"},
                },
            },
        },
        "monitoring": {
            "type": "object",
            "properties": {
                "metrics": {
                    "type": "object",
                    "properties": {
                        "enable": {"type": "boolean"},
                        "metrics_list": {"type": "array", "items": {"type": "string"}},
                    },
                }
            },
        },
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def repo(settings, services, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ovms") / "repo"
    # Two sequences at a time: a translation that left its sequence open would soon make the server refuse.
    repository(settings, out, cache=str(out.parent / "ovms-cache"), sd=True, max_sequences=2)
    return out


def serve_repo(repo: Path, delay_s: float = 0.0):
    """A KServe ModelServer process serving `repo`, and its URL, once every model is ready."""
    port = free_port()
    return launch(repo, port, repo.parent / f"server-{port}.log", delay_s), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(repo):
    process, url = serve_repo(repo)
    yield url
    process.terminate()
    process.wait(timeout=30)


def services_on(settings, url: str):
    """The app's text models, their OpenVINO side sent to the model server at `url`."""
    remote = dataclasses.replace(settings, ovms_url=url, ovms_timeout_s=TIMEOUT_S, torch_worker=False)
    found = start(remote, sd_variants=(), pose=None)
    assert not found.failures, found.failures
    return found


@pytest.fixture(scope="module")
def remote(settings, server):
    return services_on(settings, server)


def test_repository_has_ovms_layout_and_config_schema(repo, services, settings):
    import jsonschema
    import openvino as ov

    config = read_config(repo)
    jsonschema.validate(config, OVMS_SCHEMA)
    entries = {entry["name"]: entry for entry in model_entries(config)}
    assert set(entries) == {"t5-small-encoder", "t5-small-decoder", "minilm-sst2", "all-minilm-l6-v2"}
    runtime, core = Runtime(settings), ov.Core()
    for name, entry in entries.items():
        folder = repo / name
        assert entry["base_path"] == f"/models/{name}"
        assert [p.name for p in folder.iterdir()] == [str(VERSION)]  # one version, numbered
        assert sorted(p.name for p in (folder / str(VERSION)).iterdir()) == ["model.bin", MODEL_FILE]
        model = core.read_model(folder / str(VERSION) / MODEL_FILE)
        inputs = {port.get_any_name() for port in model.inputs}
        assert set(entry.get("shape", {})) <= inputs  # shapes name real inputs only
        # The app's own compile properties, with the server's cache folder (none for the stateful decoder).
        hint = services.models[name.removesuffix("-encoder").removesuffix("-decoder")].spec.precision_hint
        cache = "" if entry.get("stateful") else str(repo.parent / "ovms-cache")
        assert entry["plugin_config"] == {**runtime.ov_config(hint), "CACHE_DIR": cache}
    assert entries["minilm-sst2"]["shape"]["input_ids"] == "(1,1:512)"
    assert entries["all-minilm-l6-v2"]["shape"]["input_ids"] == "(1:10,1:256)"  # a batch of label hypotheses
    decoder = entries["t5-small-decoder"]
    assert decoder["stateful"] is True and decoder["idle_sequence_cleanup"] is True
    outputs = core.read_model(repo / "t5-small-decoder" / "1" / MODEL_FILE).outputs
    assert NEXT_TOKENS in {port.get_any_name() for port in outputs}
    # The sentiment IR is the resolved folder's, linked or copied byte for byte.
    source = Path(services.models["minilm-sst2"].resolved.ir_dir) / "openvino_model.bin"
    assert (repo / "minilm-sst2" / "1" / "model.bin").read_bytes() == source.read_bytes()
    assert config["monitoring"]["metrics"]["enable"] is True


def test_repository_serves_stable_diffusion_with_the_image_generation_graph(repo, services):
    import openvino_genai

    (graph,) = read_config(repo)["mediapipe_config_list"]
    folder = repo / graph["name"]
    text = (folder / "graph.pbtxt").read_text()
    for line in (
        'calculator: "ImageGenCalculator"',
        'input_side_packet: "IMAGE_GEN_NODE_RESOURCES:pipes"',
        'input_stream: "HTTP_REQUEST_PAYLOAD:input"',
        'models_path: "./"',
        f'resolution: "{services.sd.default_variant.width}x{services.sd.default_variant.height}"',
    ):
        assert line in text
    assert json.loads(text.split("plugin_config: '")[1].split("'")[0])["PERFORMANCE_HINT"] == "LATENCY"
    # What OVMS runs the graph with (OpenVINO GenAI) reads the folder as it is in the repository.
    pipe = openvino_genai.Text2ImagePipeline(folder)
    assert pipe.get_generation_config().num_inference_steps > 0


def test_next_tokens_are_the_two_best_of_the_logits(repo, services):
    import openvino as ov

    request = ov.Core().compile_model(repo / "t5-small-decoder" / "1" / MODEL_FILE, "CPU").create_infer_request()
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((1, 5, services.models["t5-small"].config["d_model"])).astype(np.float32)
    request.infer(
        {
            "input_ids": np.array([[0, 7, 9]], dtype=np.int64),
            "encoder_hidden_states": hidden,
            "encoder_attention_mask": np.ones((1, 5), dtype=np.int64),
            "beam_idx": np.zeros(1, dtype=np.int32),
        }
    )
    logits, best = request.get_tensor("logits").data[0, -1], request.get_tensor(NEXT_TOKENS).data[0]
    assert list(best) == list(np.argsort(-logits, kind="stable")[:2])


def _remote_fields_are_consistent(timing: dict, calls: int) -> None:
    assert timing["backend"] == REMOTE and timing["precision"].endswith("(remote)")
    assert timing["remote_calls"] == calls
    assert 0 < timing["server_ms"] <= timing["round_trip_ms"] <= timing["latency_ms"], timing
    assert "remote_error" not in timing


def test_classification_on_the_server_matches_the_local_model(remote, services):
    text = "A warm, funny and moving film."
    far, near = ask(remote.classifier, "OpenVINO", text), ask(services.classifier, "OpenVINO", text)
    assert far.output == pytest.approx(near.output, abs=1e-5)
    _remote_fields_are_consistent(far.timing, calls=1)
    labels = "cinema, cooking, football"
    far, near = ask(remote.classifier, "OpenVINO", text, labels), ask(services.classifier, "OpenVINO", text, labels)
    assert far.output == pytest.approx(near.output, abs=1e-5)
    _remote_fields_are_consistent(far.timing, calls=2)  # the text, then the label hypotheses in one batch
    again = ask(remote.classifier, "OpenVINO", "Another film.", labels)
    _remote_fields_are_consistent(again.timing, calls=1)  # the labels' embeddings came from the cache
    assert again.timing["labels_cached"] == 3
    line, _ = latency_line(again.timing, {})
    assert "OpenVINO ran on the model server: server" in line and "1 call." in line


@pytest.mark.parametrize("min_new_tokens", [0, 12])
def test_translation_on_the_server_gives_the_local_tokens(remote, services, min_new_tokens):
    for text in ("The weather is nice today.", "Where is the nearest train station, please?"):
        far = remote.translator.run(remote.translator.check(text, "German", 12, min_new_tokens), "OpenVINO")
        near = services.translator.run(services.translator.check(text, "German", 12, min_new_tokens), "OpenVINO")
        assert far.output == near.output
        assert far.timing["new_tokens"] == near.timing["new_tokens"]
        # The encoder, one decoder step per token, and one more to end a sequence stopped early.
        steps = far.timing["new_tokens"]
        _remote_fields_are_consistent(far.timing, calls=1 + steps + (steps < 12))


def test_every_translation_closes_its_sequence_on_the_server(remote, services, server):
    """The server decodes two sequences at a time (the repository's `max_sequence_number`): one left open
    per request would refuse the third. One token (a start that must still be ended), a stop at the
    end-of-sequence token, a full length, and a request stopped while it streams."""
    translator = remote.translator
    for max_new_tokens in (1, 1, 1, 12, 3, 3):
        result = translator.run(translator.check("See you tomorrow.", "French", max_new_tokens), "OpenVINO")
        assert result.timing["backend"] == REMOTE, result.timing.get("remote_error")
    cancel = threading.Event()

    def stop_after_first(done, total, text):
        cancel.set()

    request = translator.check("A long sentence to translate.", "German", 12, 12)
    for _ in range(3):
        cancel.clear()
        with pytest.raises(Cancelled):
            translator.run(request, "OpenVINO", stop_after_first, cancel)
    result = translator.run(translator.check("See you tomorrow.", "French", 4), "OpenVINO")
    assert result.timing["backend"] == REMOTE, result.timing.get("remote_error")


def test_an_error_the_server_answers_fails_that_request_only(remote, server):
    """A model the server does not have (or inputs it refuses) fails the request that asked, without
    leaving the whole server alone for RETRY_S: the next request goes to it as usual."""
    models = ModelServer(server, TIMEOUT_S)
    with pytest.raises(RemoteError, match="answered with an error"):
        models.infer("no-such-model", {"input_ids": np.zeros((1, 3), np.int64)}, ["logits"])
    assert models.skipped() == ""
    assert ask(remote.classifier, "OpenVINO", "Fine again.").timing["backend"] == REMOTE


def test_a_zero_shot_request_the_server_fails_halfway_is_finished_locally(remote, services, monkeypatch):
    """The text embedded on the server, then its label batch refused: the local model embeds the labels, the
    scores are the same, and the timing says the local model answered the rest."""
    server = remote.model_server
    real, seen = server.infer, []

    def refuse_second(model, arrays, outputs):
        seen.append(model)
        return real("no-such-model" if len(seen) == 2 else model, arrays, outputs)

    monkeypatch.setattr(server, "infer", refuse_second)
    text, labels = "The team won the final.", "sports, weather, music"
    result = ask(remote.classifier, "OpenVINO", text, labels)
    assert seen == ["all-minilm-l6-v2", "all-minilm-l6-v2"]
    assert result.output == pytest.approx(ask(services.classifier, "OpenVINO", text, labels).output, abs=1e-5)
    assert result.timing["backend"] == "OpenVINO"
    assert "answered the rest of this request" in result.timing["remote_error"]
    assert result.timing["remote_wait_ms"] > 0 and server.skipped() == ""


def test_translation_streams_from_the_server(remote):
    seen: list[str] = []
    translator = remote.translator
    result = translator.run(
        translator.check("Good morning, my friends.", "French", 8, 8),
        "OpenVINO",
        on_step=lambda done, total, text: seen.append(text),
    )
    # The text so far (at most every `STREAM_EVERY_S`): the first token's at least, each a start of the whole.
    assert seen and all(result.output.startswith(part) for part in seen)
    assert result.timing["backend"] == REMOTE


def test_a_server_that_is_down_costs_a_sentence_and_the_local_model_answers(settings, services):
    down = services_on(settings, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    text = "The service was slow and the food was cold."
    began = time.monotonic()
    result = ask(down.classifier, "OpenVINO", text)
    assert time.monotonic() - began < TIMEOUT_S + 1.0
    assert result.output == pytest.approx(ask(services.classifier, "OpenVINO", text).output, abs=1e-6)
    assert result.timing["backend"] == "OpenVINO" and "server_ms" not in result.timing
    error = result.timing["remote_error"]
    assert "model server" in error and "connection refused" in error and "local OpenVINO model answered" in error
    assert "127.0.0.1" not in error  # the server's address stays in the log
    assert "⚠️" in latency_line(result.timing, {})[0]
    # The next request does not wait for the server again: it is tried after RETRY_S.
    began = time.monotonic()
    translated = ask(down.translator, "OpenVINO", "Thank you very much.", "French", 6)
    assert time.monotonic() - began < 0.5
    assert translated.output == ask(services.translator, "OpenVINO", "Thank you very much.", "French", 6).output
    assert "tries it again in" in translated.timing["remote_error"]


def test_a_slow_server_costs_at_most_the_timeout(settings, services, repo):
    process, url = serve_repo(repo, delay_s=3 * TIMEOUT_S)
    try:
        slow = services_on(settings, url)
        began = time.monotonic()
        result = ask(slow.translator, "OpenVINO", "The museum opens at nine.", "Romanian", 6)
        assert time.monotonic() - began < TIMEOUT_S + 1.0
        expected = ask(services.translator, "OpenVINO", "The museum opens at nine.", "Romanian", 6)
        assert result.output == expected.output
        assert f"did not answer within {TIMEOUT_S:g} s" in result.timing["remote_error"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_server_that_accepts_but_never_answers_costs_at_most_the_timeout(settings, services):
    with socket.socket() as silent:  # the kernel accepts connections; nothing ever reads or answers them
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        hung = services_on(settings, f"http://127.0.0.1:{silent.getsockname()[1]}")
        began = time.monotonic()
        result = ask(hung.classifier, "OpenVINO", "Nobody answers.")
        assert time.monotonic() - began < TIMEOUT_S + 1.0
        assert f"did not answer within {TIMEOUT_S:g} s" in result.timing["remote_error"]
        assert result.output == pytest.approx(ask(services.classifier, "OpenVINO", "Nobody answers.").output, abs=1e-6)


def test_server_time_is_left_out_when_other_clients_share_the_server(remote, server):
    """Calls of another client between the metrics reads: the server's time is not this request's alone."""
    dual = remote.models["minilm-sst2"]
    other = ModelServer(server, TIMEOUT_S)
    inputs, _ = dual.tokenizer("Someone else's request.")
    model = dual.model(Backend.OPENVINO)  # begins the request's accounting
    model(**inputs)
    other.infer("minilm-sst2", {k: inputs[k] for k in dual.ov.input_names}, ["logits"])
    timing = dual.timing(Backend.OPENVINO, 1.0, ClassificationTiming, task="sentiment", tokens=1, truncated=False)
    assert timing["server_ms"] is None and "shared with other clients" in timing["server_ms_note"]
    assert timing["remote_calls"] == 1


def test_the_app_shows_the_server_and_round_trip_times(remote, serve):
    from gradio_client import Client

    with serve(remote) as demo:
        client = Client(demo.local_url, verbose=False)
        _, timing = client.predict("What a lovely day.", "", "Both", api_name="/classify")
        ov, pt = timing["runs"]
        assert ov["backend"] == REMOTE and pt["backend"] == "PyTorch"
        assert ov["server_ms"] <= ov["round_trip_ms"] and timing["speedup"] > 0
        text, timing = client.predict("Good night.", "German", "OpenVINO", 4, api_name="/translate")
        assert timing["backend"] == REMOTE and text
