"""What an OpenVINO Model Server repository of this app holds, and how its models are called.

Written by `scale_out.repository` (`python -m pipelines.scale_out`), served by OpenVINO Model Server or by
`kserve_server`, called by `remote`: one owner of the names.

    DIR/config.json                 model_config_list (+ mediapipe_config_list, monitoring)
    DIR/minilm-sst2/1/model.xml     one IR per served model, under version 1
    DIR/all-minilm-l6-v2/1/model.xml
    DIR/t5-small-encoder/1/model.xml
    DIR/t5-small-decoder/1/model.xml   stateful: the KV cache stays on the server, per sequence
    DIR/sd-…/graph.pbtxt            the Stable Diffusion folder with OVMS's image generation graph

The T5 decoder gets one output more than the app's: `next_tokens`, the two most likely next tokens
(TopK over the last position's logits, in the graph), so a decoding step sends back 16 bytes instead of
the vocabulary's logits (128 KB for t5-small). Two, not one: greedy decoding with a minimum length takes
the second when the first is the end-of-sequence token, exactly as masking that token's logit would.
Its `encoder_hidden_states` input has one reader, the initializer of the decoder's state (checked when
the repository is written): it counts at a sequence's first step only, so the later steps send a
one-position placeholder instead of the whole encoder output.
"""

from __future__ import annotations

import json
from pathlib import Path

VERSION = 1
"""Every model is served as version 1 (`<model>/1/`)."""
MODEL_FILE = "model.xml"
CONFIG = "config.json"
NEXT_TOKENS = "next_tokens"
NEXT_TOKENS_K = 2
SEQUENCE_ID = "sequence_id"
"""OVMS's stateful-model inputs: `sequence_id` (UINT64, [1]) names the sequence, `sequence_control_input`
(UINT32, [1]) starts (1) or ends (2) it."""
SEQUENCE_CONTROL = "sequence_control_input"
SEQUENCE_START, SEQUENCE_END = 1, 2
METRICS = ("ovms_requests_success", "ovms_requests_fail", "ovms_request_time_us", "ovms_inference_time_us")
"""The metrics the repository turns on; `remote` reads the server-side latency from `ovms_inference_time_us`."""


def served_names(key: str, translation: bool) -> tuple[str, ...]:
    """The names a model of the app is served under: a T5 model as its encoder and its decoder."""
    return (f"{key}-encoder", f"{key}-decoder") if translation else (key,)


def read_config(repository: Path) -> dict:
    """The repository's `config.json`."""
    return json.loads((Path(repository) / CONFIG).read_text())


def model_entries(config: dict) -> list[dict]:
    """The `config` object of each model in `model_config_list`."""
    return [entry["config"] for entry in config.get("model_config_list", [])]
