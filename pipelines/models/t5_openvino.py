"""Greedy T5 decoding straight on OpenVINO infer requests.

optimum-intel's `OVModelForSeq2SeqLM.generate()` goes through transformers'
generation loop, whose per-token Python work (logits processors, stopping criteria,
cache bookkeeping, torch <-> numpy copies) costs more than the t5-small decoder step
itself on a CPU. No library offers a lean seq2seq loop for an OpenVINO T5 (OpenVINO
GenAI has none for encoder-decoder text models), so this one is written here: encoder
once, then the stateful decoder (KV cache inside the model, exported by optimum)
one token at a time, argmax in numpy. The inputs that stay fixed for a request are
bound to the decoder once, and each step only rewrites the one-token input in place.
The cross-attention keys/values are computed by the decoder's first step and kept in
its state (optimum's export), not recomputed per token. It produces exactly the tokens of greedy
`generate()` with the same `max_new_tokens` / `min_new_tokens` (tests check this).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ENCODER, DECODER = "openvino_encoder_model.xml", "openvino_decoder_model.xml"
# The CPU plugin fuses each state's init subgraph (the cross-attention keys and values of the
# encoder output) into one node whose cached form it cannot load back (import fails, the plugin
# compiles again and rewrites the blob): the decoder skips the cache instead of churning it.
DECODER_UNCACHED = "decoder not cacheable: the CPU plugin cannot load back its state-init subgraphs"


def greedy_only(who: str, do_sample: bool = False, num_beams: int = 1) -> None:
    """ValueError unless the decoding asked for is greedy (what this loop and its remote twin do)."""
    if do_sample or num_beams != 1:
        raise ValueError(f"{who} decodes greedily: do_sample=False and num_beams=1 only.")


class CompiledIR:
    """An IR folder that loads like an optimum model: `from_pretrained(folder, device=, ov_config=)`,
    then `compile()` (Runtime times both)."""

    def __init__(self, folder: Path, device: str, ov_config: dict[str, str]):
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, folder, device: str = "CPU", ov_config: dict | None = None, compile: bool = True):
        model = cls(folder, device, ov_config or {})
        if compile:
            model.compile()
        return model

    def compile(self) -> None:
        raise NotImplementedError


class OVT5Greedy(CompiledIR):
    """An exported T5 IR folder, served with a greedy decode loop.

    Loads like an optimum model (`from_pretrained(folder, device=, ov_config=)`, then
    `compile()`), and decodes with `generate(input_ids, attention_mask, max_new_tokens,
    min_new_tokens)`, returning the decoder start token followed by the new tokens, as
    transformers does. One instance serves one request at a time (the caller locks).
    """

    def __init__(self, folder: Path, device: str, ov_config: dict[str, str]):
        import json

        import openvino as ov

        self.folder = Path(folder)
        self.config = json.loads((self.folder / "config.json").read_text())
        self.device, self.ov_config = device, ov_config
        self._core = ov.Core()
        self.encoder_model = self._core.read_model(self.folder / ENCODER)
        self.decoder_model = self._core.read_model(self.folder / DECODER)
        if not self.decoder_model.get_sinks():
            raise ValueError(f"{self.folder / DECODER} is not a stateful decoder; export it again with optimum-intel.")
        self._encoder = self._decoder = None
        self._mask = self._ids = None  # arrays the decoder reads in place (see `_start`)

    @property
    def uncached(self) -> str:
        """Why part of this model compiles without the model cache ("" when all of it is cached)."""
        return DECODER_UNCACHED if self.ov_config.get("CACHE_DIR") else ""

    def compile(self) -> None:
        if self._encoder is None:
            compile_model = self._core.compile_model
            # Keeping that fusion (keys and values computed once per request, not once per token:
            # about 50% of a t5-small step) matters more than 0.4 s of compile at startup.
            decoder_config = {**self.ov_config, "CACHE_DIR": ""}
            self._encoder = compile_model(self.encoder_model, self.device, self.ov_config).create_infer_request()
            self._decoder = compile_model(self.decoder_model, self.device, decoder_config).create_infer_request()

    def _start(self, input_ids, attention_mask) -> None:
        """Encode, empty the decoder's state, and bind the decoder inputs that stay fixed for the request.

        The encoder's output tensor and the attention mask are bound to the decoder once,
        without copies, so each step only runs the decoder: no per-step dict of inputs to
        convert and set (a few percent of a step at t5-small size).
        """
        import openvino as ov

        input_ids, attention_mask = np.asarray(input_ids, np.int64), np.asarray(attention_mask, np.int64)
        if input_ids.shape[0] != 1:
            raise ValueError(f"OVT5Greedy decodes one sequence at a time, got a batch of {input_ids.shape[0]}.")
        self.compile()
        self._encoder.infer({"input_ids": input_ids, "attention_mask": attention_mask}, share_inputs=True)
        self._decoder.reset_state()
        self._mask = np.ascontiguousarray(attention_mask)  # kept alive: the decoder reads it in place
        self._decoder.set_tensor("encoder_hidden_states", self._encoder.get_output_tensor(0))
        self._decoder.set_tensor("encoder_attention_mask", ov.Tensor(self._mask, shared_memory=True))
        self._decoder.set_tensor("beam_idx", ov.Tensor(np.zeros(1, dtype=np.int32)))

    def _bind_decoder_input(self, decoder_input_ids) -> np.ndarray:
        """Bind `decoder_input_ids` (copied to a fresh int64 array) as the decoder's input; return that array."""
        import openvino as ov

        self._ids = np.array(decoder_input_ids, dtype=np.int64, ndmin=2)
        self._decoder.set_tensor("input_ids", ov.Tensor(self._ids, shared_memory=True))
        return self._ids

    def _step(self) -> np.ndarray:
        """Run the decoder on the bound inputs after what its state holds; logits of every position fed."""
        # start_async + wait releases the GIL while the step runs.
        self._decoder.start_async()
        self._decoder.wait()
        return self._decoder.get_output_tensor(0).data

    def __call__(self, input_ids, attention_mask, decoder_input_ids) -> np.ndarray:
        """Logits for a whole decoder prefix at once, as a transformers forward pass returns them."""
        self._start(input_ids, attention_mask)
        self._bind_decoder_input(decoder_input_ids)
        return self._step().copy()

    def generate(
        self, input_ids, attention_mask, max_new_tokens: int, min_new_tokens: int = 0, on_token=None, **decoding
    ) -> np.ndarray:
        """Greedy decoding; `on_token(tokens)` (the ids so far, after the start token) after each new token."""
        greedy_only(type(self).__name__, **decoding)
        eos = self.config["eos_token_id"]
        self._start(input_ids, attention_mask)
        tokens = [self.config["decoder_start_token_id"]]
        last = self._bind_decoder_input([[tokens[-1]]])  # the one-token input, rewritten in place each step
        for n in range(max_new_tokens):
            last[0, 0] = tokens[-1]
            logits = self._step()[0, -1]
            if n < min_new_tokens:  # transformers' MinNewTokensLengthLogitsProcessor
                logits = logits.copy()
                logits[eos] = -np.inf
            tokens.append(int(logits.argmax()))
            if on_token is not None:
                on_token(tokens[1:])
            if tokens[-1] == eos:
                break
        return np.array([tokens], dtype=np.int64)
