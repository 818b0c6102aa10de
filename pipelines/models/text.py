"""The text models' parts that run on either backend: the tokenizer, an encoder IR, T5's PyTorch side.

A text model takes and returns numpy arrays on both backends: `OVEncoder` (a compiled IR) or
`OVT5Greedy` (`t5_openvino`) on OpenVINO, `TorchEncoder` or `TorchSeq2Seq` (transformers, in the PyTorch
worker) on PyTorch, with one call signature, so the task code is written once and the backend is a swap
of the model object. Both tokenize with `TextTokenizer` from the same `tokenizer.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines.core.registry import Task
from pipelines.models.t5_openvino import CompiledIR


def read_json(path: Path) -> dict:
    """A JSON file of a model folder; {} when it is not there."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


class TextTokenizer:
    """A model's `tokenizer.json`, run by the `tokenizers` library (Rust, no torch): the engine
    transformers' fast tokenizers run, configured as a transformers call with `truncation=True,
    max_length=max_length` (and `padding="max_length"` when `pad`) would."""

    def __init__(self, folder: Path, max_length: int, pad: bool = False):
        from tokenizers import Tokenizer

        config = read_json(Path(folder) / "special_tokens_map.json") | read_json(Path(folder) / "tokenizer_config.json")
        self._tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length, direction=config.get("truncation_side", "right"))
        self._tokenizer.no_padding()
        token = config.get("pad_token")
        token = token.get("content") if isinstance(token, dict) else token
        pad_id = self._tokenizer.token_to_id(token) if token else None
        # A batch is padded to its longest text (transformers' `padding=True`); without a padding token,
        # with id 0: padded positions are masked, so what they hold does not count.
        self._batch = Tokenizer.from_str(self._tokenizer.to_str())
        side = config.get("padding_side", "right")
        self._batch.enable_padding(direction=side, pad_id=pad_id or 0, pad_token=token or "[PAD]")
        if pad:
            if pad_id is None:
                raise ValueError(f"The tokenizer in {Path(folder).name} names no padding token.")
            side = config.get("padding_side", "right")
            self._tokenizer.enable_padding(direction=side, pad_id=pad_id, pad_token=token, length=max_length)
        self.clean_up = bool(config.get("clean_up_tokenization_spaces", False))
        self.max_length = max_length

    def __call__(self, text: str) -> tuple[dict[str, np.ndarray], bool]:
        """The model inputs of `text` (batch of one) and whether it was cut to `max_length` tokens."""
        encoding = self._tokenizer.encode(text)
        return _arrays([encoding]), bool(encoding.overflowing)

    def batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The model inputs of `texts` in one batch, padded to the longest (each cut to `max_length`)."""
        return _arrays(self._batch.encode_batch(texts))

    def decode(self, ids) -> str:
        """Text of `ids`, special tokens skipped, cleaned up as the model's transformers tokenizer does."""
        text = self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
        if self.clean_up:  # transformers' `clean_up_tokenization`, for checkpoints that ask for it
            for before, after in CLEAN_UP:
                text = text.replace(before, after)
        return text


def _arrays(encodings) -> dict[str, np.ndarray]:
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


CLEAN_UP = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)  # fmt: skip


class OVEncoder(CompiledIR):
    """An encoder IR (`openvino_model.xml`: classification logits, or hidden states for embeddings),
    compiled with one infer request, called with numpy arrays and returning numpy arrays by output
    name (`logits`, `last_hidden_state`). Loads as `OVT5Greedy` does. The caller locks."""

    def __init__(self, folder: Path, device: str, ov_config: dict[str, str]):
        import openvino as ov

        self.folder = Path(folder)
        self.device, self.ov_config = device, ov_config
        self._core = ov.Core()
        self.model = self._core.read_model(self.folder / "openvino_model.xml")
        self._request = None

    @property
    def input_names(self) -> set[str]:
        self.compile()
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        self.compile()
        return self._outputs

    def compile(self) -> None:
        if self._request is None:
            compiled = self._core.compile_model(self.model, self.device, self.ov_config)
            self._inputs = {port.get_any_name() for port in compiled.inputs}
            self._outputs = [port.get_any_name() for port in compiled.outputs]
            self._request = compiled.create_infer_request()

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        self.compile()
        # start_async + wait releases the GIL while the model runs.
        self._request.start_async({name: arrays[name] for name in self._inputs}, share_inputs=True)
        self._request.wait()
        return {name: self._request.get_output_tensor(i).data.copy() for i, name in enumerate(self._outputs)}


class TorchEncoder:
    """A transformers encoder with `OVEncoder`'s numpy call (in the PyTorch worker)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            outputs = self.model(**{name: torch.from_numpy(value) for name, value in arrays.items()})
        return {name: value.float().numpy() for name, value in outputs.items() if isinstance(value, torch.Tensor)}


class TorchSeq2Seq:
    """A transformers seq2seq model with `OVT5Greedy`'s numpy `generate` (in the PyTorch worker)."""

    def __init__(self, model):
        self.model = model

    def generate(
        self, input_ids, attention_mask, max_new_tokens: int, min_new_tokens: int = 0, on_token=None
    ) -> np.ndarray:
        """transformers' greedy `generate`; `on_token(tokens)` after each new token, through its streamer."""
        import torch

        with torch.inference_mode():
            output = self.model.generate(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                do_sample=False,
                num_beams=1,
                streamer=None if on_token is None else token_streamer(on_token),
            )
        return output.numpy()


def token_streamer(on_token):
    """A transformers streamer calling `on_token(tokens)` with the new tokens so far after each step
    (`generate` puts the decoder start token first, then each new token). Made on first use: transformers
    is imported lazily."""
    from transformers.generation.streamers import BaseStreamer

    class TokenStreamer(BaseStreamer):
        def __init__(self):
            self.tokens: list[int] | None = None

        def put(self, value) -> None:
            if self.tokens is None:  # the decoder start token
                self.tokens = []
                return
            self.tokens.extend(int(t) for t in value.reshape(-1))
            on_token(list(self.tokens))

        def end(self) -> None:
            pass

    return TokenStreamer()


def input_limit(spec, config: dict) -> int:
    """The most tokens a text model is given: the app's limit for it, or fewer if the model takes fewer."""
    return min(spec.defaults.get("max_input_tokens", 512), config.get("max_position_embeddings", 1 << 30))


def serving_class(task: Task):
    """The class that serves an exported IR folder on OpenVINO."""
    if task is Task.TRANSLATION:
        from pipelines.models.t5_openvino import OVT5Greedy

        return OVT5Greedy
    return OVEncoder
