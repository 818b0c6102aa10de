"""Write an OpenVINO Model Server repository from IR folders (the layout: `ovms_layout`).

OVMS serves each model from `<name>/<version>/` (one `.xml`/`.bin` pair) as its `config.json` says:
shapes, `plugin_config` (the app's own compile properties: performance hint, precision hint, model
cache) and, for the T5 decoder, `stateful` (its KV cache kept per sequence on the server). A Stable
Diffusion folder is served by OVMS's image generation graph (`graph.pbtxt`, `ImageGenCalculator`,
OpenVINO GenAI inside, OpenAI-style `/v3/images/generations`), reshaped to the app's static size.

Weights are hard-linked into the repository where the file system allows (no copy of a 1.7 GB
UNet), else copied.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.ovms_layout import (
    CONFIG,
    METRICS,
    MODEL_FILE,
    NEXT_TOKENS,
    NEXT_TOKENS_K,
    VERSION,
    served_names,
)


@dataclass(frozen=True)
class TextModel:
    """An app text model as the repository serves it. `max_tokens`: the longest input the app sends;
    `max_batch`: the most texts in one call (zero-shot embeds its label hypotheses in one batch)."""

    key: str
    ir_dir: Path
    translation: bool
    plugin_config: dict[str, str]
    max_tokens: int
    max_batch: int = 1


@dataclass(frozen=True)
class ImageModel:
    """A Stable Diffusion IR folder, served by OVMS's image generation graph at a static size."""

    key: str
    ir_dir: Path
    height: int
    width: int
    guidance_scale: float
    default_steps: int
    max_steps: int
    plugin_config: dict[str, str] = field(default_factory=dict)


def _place(source: Path, target: Path) -> None:
    """`source` at `target`: a hard link when possible, else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _place_ir(xml: Path, version_dir: Path) -> None:
    _place(xml, version_dir / MODEL_FILE)
    _place(xml.with_suffix(".bin"), version_dir / Path(MODEL_FILE).with_suffix(".bin"))


def decoder_with_next_tokens(xml: Path):
    """The stateful T5 decoder with one output more: the `NEXT_TOKENS_K` most likely next tokens
    (int64 ids, best first) at the last position fed."""
    import openvino as ov
    import openvino.opset13 as ops

    model = ov.Core().read_model(xml)
    if not model.get_sinks():
        raise ValueError(f"{xml.name} is not a stateful decoder; export it again with optimum-intel.")
    (hidden,) = [p for p in model.get_parameters() if "encoder_hidden_states" in p.output(0).get_names()]
    readers = {target.get_node().get_type_name() for target in hidden.output(0).get_target_inputs()}
    if readers != {"ReadValue"}:  # what lets `remote` send it once per sequence (see `ovms_layout`)
        raise ValueError(f"{xml.name} reads encoder_hidden_states outside its state's initializer ({readers}).")
    logits = model.output("logits").get_node().input_value(0)  # what the Result node reads
    last = ops.gather(logits, ops.constant(-1, ov.Type.i64), ops.constant(1, ov.Type.i64))  # [batch, vocab]
    top = ops.topk(last, ops.constant(NEXT_TOKENS_K, ov.Type.i64), 1, "max", "value", ov.Type.i64)
    result = ops.result(top.output(1))
    result.output(0).get_tensor().set_names({NEXT_TOKENS})
    model.add_results([result])
    return model


def _input_names(xml: Path) -> list[str]:
    import openvino as ov

    return [port.get_any_name() for port in ov.Core().read_model(xml).inputs]


def _shape(dims: list[str]) -> str:
    return "(" + ",".join(dims) + ")"


def _text_entries(model: TextModel, root: str, max_sequences: int) -> list[tuple[str, dict]]:
    """(name, OVMS model config) of each model the text model is served as."""
    tokens = f"1:{model.max_tokens}"
    batch = "1" if model.max_batch == 1 else f"1:{model.max_batch}"
    names = served_names(model.key, model.translation)
    common = {"target_device": "CPU", "plugin_config": dict(model.plugin_config)}
    if not model.translation:
        shape = {name: _shape([batch, tokens]) for name in _input_names(Path(model.ir_dir) / "openvino_model.xml")}
        return [(names[0], {"base_path": f"{root}/{names[0]}", "shape": shape, **common})]
    encoder, decoder = names
    # The stateful decoder skips the model cache, as the app's does (`t5_openvino.DECODER_UNCACHED`).
    decoder_plugin = {**model.plugin_config, "CACHE_DIR": ""}
    return [
        (
            encoder,
            {
                "base_path": f"{root}/{encoder}",
                "shape": {"input_ids": _shape(["1", tokens]), "attention_mask": _shape(["1", tokens])},
                **common,
            },
        ),
        (
            decoder,
            {
                "base_path": f"{root}/{decoder}",
                "target_device": "CPU",
                "plugin_config": decoder_plugin,
                "stateful": True,
                "idle_sequence_cleanup": True,
                "max_sequence_number": max_sequences,
            },
        ),
    ]


GRAPH = """input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"

node: {{
  name: "ImageGenExecutor"
  calculator: "ImageGenCalculator"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "IMAGE_GEN_NODE_RESOURCES:pipes"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  node_options: {{
    [type.googleapis.com / mediapipe.ImageGenCalculatorOptions]: {{
      models_path: "./"
      device: "CPU"
      plugin_config: '{plugin_config}'
      resolution: "{width}x{height}"
      num_images_per_prompt: 1
      guidance_scale: {guidance_scale}
      max_resolution: "{width}x{height}"
      default_num_inference_steps: {default_steps}
      max_num_inference_steps: {max_steps}
    }}
  }}
}}
"""


def write_repository(
    out: Path, text: list[TextModel], images: list[ImageModel] = (), root: str = "/models", max_sequences: int = 64
) -> dict:
    """Write the repository to `out` (made if missing; the models named here are replaced) and return
    its `config.json`. `root`: where the repository is mounted in the server's container (`base_path`s);
    `max_sequences`: how many translations a server replica decodes at once (each holds its KV cache)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config: dict = {"model_config_list": [], "mediapipe_config_list": []}
    for model in text:
        for name, entry in _text_entries(model, root, max_sequences):
            version_dir = out / name / str(VERSION)
            if version_dir.exists():
                shutil.rmtree(version_dir)
            version_dir.mkdir(parents=True)
            if not model.translation:
                _place_ir(Path(model.ir_dir) / "openvino_model.xml", version_dir)
            elif name.endswith("-encoder"):
                _place_ir(Path(model.ir_dir) / "openvino_encoder_model.xml", version_dir)
            else:
                import openvino as ov

                decoder = decoder_with_next_tokens(Path(model.ir_dir) / "openvino_decoder_model.xml")
                ov.save_model(decoder, version_dir / MODEL_FILE, compress_to_fp16=False)
            config["model_config_list"].append({"config": {"name": name, **entry}})
    for image in images:
        folder = out / image.key
        if folder.exists():
            shutil.rmtree(folder)
        for source in sorted(Path(image.ir_dir).rglob("*")):
            if source.is_file():
                _place(source, folder / source.relative_to(image.ir_dir))
        plugin = json.dumps(image.plugin_config)
        (folder / "graph.pbtxt").write_text(
            GRAPH.format(
                plugin_config=plugin,
                width=image.width,
                height=image.height,
                guidance_scale=image.guidance_scale,
                default_steps=image.default_steps,
                max_steps=image.max_steps,
            )
        )
        config["mediapipe_config_list"].append({"name": image.key, "base_path": f"{root}/{image.key}"})
    config["monitoring"] = {"metrics": {"enable": True, "metrics_list": list(METRICS)}}
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return config
