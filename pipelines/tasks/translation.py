"""English -> French / German / Romanian with T5, on either backend.

Tokenizer (`TextTokenizer`) + greedy `generate()` on numpy arrays, on either backend
(`OVT5Greedy` here, transformers' `generate` in the PyTorch worker).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipelines.core.checks import check_text, quoted, whole_number
from pipelines.core.protocol import Backend, Cancelled, Result, Timing, TwoBackends, holding
from pipelines.serving.backends import DualModel

# T5's own task prefixes, from its pre-training mixture.
LANGUAGES: dict[str, str] = {
    "French": "translate English to French: ",
    "German": "translate English to German: ",
    "Romanian": "translate English to Romanian: ",
}
MAX_NEW_TOKENS = 256
STREAM_EVERY_S = 0.05
"""A streamed translation hands its text out at most this often: a page cannot show more, and each update
costs the serving process a little time (which the latency leaves out)."""


@dataclass(frozen=True)
class TranslationRequest:
    """A checked request. `min_new_tokens` forces a fixed output length (benchmarks)."""

    text: str
    target_language: str
    max_new_tokens: int
    min_new_tokens: int = 0


@dataclass(kw_only=True)
class TranslationTiming(Timing):
    """A translation's timing dict: `Timing`'s fields and these."""

    input_tokens: int
    """Tokens of the prompt (the language prefix and the text, cut to the model's input limit)."""
    new_tokens: int
    """Tokens generated (the decoder start token not counted)."""
    truncated: bool
    """Whether the text was cut to the input limit."""
    tokens_per_s: float = field(init=False)
    """`new_tokens` over the latency as reported (0.0 for none)."""

    def __post_init__(self) -> None:
        seconds = self.latency_ms / 1000
        self.tokens_per_s = round(self.new_tokens / seconds, 1) if self.new_tokens and seconds > 0 else 0.0


class Translator(TwoBackends):
    """The Translation tab's task (see `protocol`): T5 on a `DualModel`; latency covers
    tokenize -> generate -> decode."""

    action = "Translation"

    def __init__(self, model: DualModel):
        self.model = model
        self.max_input_tokens = model.spec.defaults.get("max_input_tokens", 512)
        self.default_new_tokens = model.spec.defaults.get("max_new_tokens", 64)

    def check(
        self, text: str, target_language: str, max_new_tokens: object, min_new_tokens: object = 0
    ) -> TranslationRequest:
        """The endpoint's values as a request, or ValueError with the allowed values."""
        text = check_text(text, "translate")
        if not isinstance(target_language, str) or target_language not in LANGUAGES:
            raise ValueError(f"Unknown target language {quoted(target_language)}; choose one of {list(LANGUAGES)}.")
        max_new = whole_number(max_new_tokens, "Max new tokens", 1, MAX_NEW_TOKENS)
        min_new = whole_number(min_new_tokens, "Min new tokens", 0, MAX_NEW_TOKENS)
        return TranslationRequest(text, target_language, max_new, min(min_new, max_new))

    def first_use_here(self, request: TranslationRequest, backend: Backend) -> str | None:
        return self.model.first_use(backend)

    def run_here(self, request: TranslationRequest, backend: Backend, on_step=None, cancel=None) -> Result:
        """Translate; the output is the translated text. With `on_step`, the text so far after each new
        token (`on_step(tokens, max_new_tokens, text)`); the time that takes is left out of the latency,
        so a streamed request reports what the same request unstreamed does."""
        tokenizer, model = self.model.tokenizer, self.model.model(backend)
        prompt = LANGUAGES[request.target_language] + request.text.strip()
        streamed = {"s": 0.0, "last": 0.0}

        def on_token(tokens: list[int]) -> None:
            """The text so far, at most every `STREAM_EVERY_S`; stops the loop once `cancel` is set."""
            began = time.perf_counter()
            if cancel is not None and cancel.is_set():
                raise Cancelled(len(tokens), request.max_new_tokens)
            if on_step is not None and began - streamed["last"] >= STREAM_EVERY_S:
                on_step(len(tokens), request.max_new_tokens, tokenizer.decode(tokens))
                streamed["last"] = time.perf_counter()
            streamed["s"] += time.perf_counter() - began

        with holding(self.model.lock, cancel, request.max_new_tokens):
            start = time.perf_counter()
            inputs, truncated = tokenizer(prompt)  # cut to `max_input_tokens`
            output = model.generate(
                inputs["input_ids"],
                inputs["attention_mask"],
                max_new_tokens=request.max_new_tokens,
                min_new_tokens=request.min_new_tokens,
                **({} if on_step is None and cancel is None else {"on_token": on_token}),
            )
            translated = tokenizer.decode(output[0])
            latency_ms = (time.perf_counter() - start - streamed["s"]) * 1000

        new_tokens = int(output.shape[-1]) - 1  # minus the decoder start token
        timing = self.model.timing(
            backend,
            latency_ms,
            TranslationTiming,
            task="translate",
            input_tokens=int(inputs["input_ids"].shape[-1]),
            new_tokens=new_tokens,
            truncated=truncated,
        )
        return Result(translated, timing)
