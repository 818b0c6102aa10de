"""English -> French / German / Romanian with T5, on either backend.

transformers 5 has no translation pipeline, so this is tokenizer + `generate()`,
greedy, with the attention mask passed (the OpenVINO decoder needs it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .checks import check_text
from .models import Backend, DualModel

# T5's own task prefixes, from its pre-training mixture.
LANGUAGES: dict[str, str] = {
    "French": "translate English to French: ",
    "German": "translate English to German: ",
    "Romanian": "translate English to Romanian: ",
}
MAX_NEW_TOKENS = 256


@dataclass(frozen=True)
class Translation:
    text: str
    input_tokens: int
    new_tokens: int
    truncated: bool
    latency_ms: float
    timing: dict


class Translator:
    """Translate with a T5 `DualModel`; latency covers tokenize -> generate -> decode."""

    def __init__(self, model: DualModel):
        self.model = model
        self.max_input_tokens = model.spec.defaults.get("max_input_tokens", 512)
        self.default_new_tokens = model.spec.defaults.get("max_new_tokens", 64)

    def check_inputs(self, text: str, target_language: str, max_new_tokens: int) -> None:
        check_text(text, "translate")
        if target_language not in LANGUAGES:
            raise ValueError(f"Unknown target language {target_language!r}; choose one of {list(LANGUAGES)}.")
        if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(
                f"max_new_tokens must be a whole number from 1 to {MAX_NEW_TOKENS}, got {max_new_tokens!r}."
            )

    def __call__(
        self,
        text: str,
        target_language: str,
        backend: Backend | str = Backend.OPENVINO,
        max_new_tokens: int | None = None,
        min_new_tokens: int = 0,
    ) -> Translation:
        """Translate `text`. `min_new_tokens` forces a fixed length (benchmarks)."""
        import torch

        max_new_tokens = self.default_new_tokens if max_new_tokens is None else max_new_tokens
        self.check_inputs(text, target_language, max_new_tokens)
        backend = Backend.parse(backend)
        tokenizer, model = self.model.tokenizer, self.model.model(backend)
        prompt = LANGUAGES[target_language] + text.strip()

        with self.model.lock, torch.inference_mode():
            start = time.perf_counter()
            full_length = len(tokenizer(prompt).input_ids)
            inputs = tokenizer(prompt, truncation=True, max_length=self.max_input_tokens, return_tensors="pt")
            output = model.generate(
                input_ids=inputs.input_ids,
                attention_mask=inputs.attention_mask,
                max_new_tokens=max_new_tokens,
                min_new_tokens=min(min_new_tokens, max_new_tokens),
                do_sample=False,
                num_beams=1,
            )
            translated = tokenizer.decode(output[0], skip_special_tokens=True)
            latency_ms = (time.perf_counter() - start) * 1000

        new_tokens = int(output.shape[-1]) - 1  # minus the decoder start token
        truncated = full_length > self.max_input_tokens
        timing = self.model.timing(
            backend,
            latency_ms,
            input_tokens=int(inputs.input_ids.shape[-1]),
            new_tokens=new_tokens,
            tokens_per_s=round(new_tokens / (latency_ms / 1000), 1) if new_tokens else 0.0,
            truncated=truncated,
        )
        return Translation(translated, timing["input_tokens"], new_tokens, truncated, latency_ms, timing)
