"""Sentiment (SST-2 MiniLM) and zero-shot classification (all-MiniLM-L6-v2 embeddings).

Zero-shot compares the text's sentence embedding with one embedding per label,
written into a hypothesis ("This text is about {label}."). Cosine similarities
become scores with a softmax at scale 20, the temperature all-MiniLM-L6-v2 was
trained with (MultipleNegativesRankingLoss), so scores sum to 1 over the labels.
Each text runs at its own token count (no padding; the IR has a dynamic sequence length),
identically on both backends, which take and return numpy arrays (see `models.text`). The label
hypotheses are embedded in one batched call and kept per label and backend, so a request that
repeats its labels costs one text embedding on either backend; the timing says how many came
from that cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from pipelines.core.checks import check_text, check_unicode, quoted
from pipelines.core.protocol import OMITTED_WHEN_NONE, Backend, Result, Timing, TwoBackends
from pipelines.serving.backends import DualModel

SIMILARITY_SCALE = 20.0
MAX_LABEL_CHARS = 100
CACHED_LABELS = 1024
"""Label embeddings kept per backend (the least recently used go first): 1.5 MB at 384 floats each."""


@dataclass(frozen=True)
class ClassificationRequest:
    """A checked request: no labels means sentiment, two or more mean zero-shot over them."""

    text: str
    labels: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return "zero-shot" if self.labels else "sentiment"


def parse_labels(labels: str | list[str] | None, max_labels: int) -> list[str]:
    """Comma-separated labels -> list; [] means sentiment. Raises ValueError on bad lists."""
    if labels is None or (isinstance(labels, str) and not labels.strip()) or (isinstance(labels, list) and not labels):
        return []
    if isinstance(labels, str):
        labels = labels.split(",")
    elif not isinstance(labels, list):
        raise ValueError(f"Labels must be comma-separated text, got {type(labels).__name__}.")
    parts = [str(label).strip() for label in labels]
    for part in parts:
        check_unicode(part, "labels")
    if not any(parts):
        raise ValueError("The labels are empty: type at least two labels separated by commas, or none for sentiment.")
    if "" in parts:
        raise ValueError("One of the labels is empty (two commas in a row?): remove the extra comma.")
    if len(parts) < 2:
        raise ValueError(f"Zero-shot needs at least two labels to choose between; got only {quoted(parts[0])}.")
    if len(parts) > max_labels:
        raise ValueError(f"Too many labels ({len(parts)}); use at most {max_labels}.")
    if too_long := [p for p in parts if len(p) > MAX_LABEL_CHARS]:
        raise ValueError(f"Label {too_long[0][:20]!r}... is longer than {MAX_LABEL_CHARS} characters.")
    lowered = [p.lower() for p in parts]
    if dupes := sorted({p for p in parts if lowered.count(p.lower()) > 1}):
        raise ValueError(f"Duplicate label {quoted(dupes[0])}: give each label once.")
    return parts


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass(kw_only=True)
class ClassificationTiming(Timing):
    """A classification's timing dict: `Timing`'s fields and these."""

    tokens: int
    """Tokens of the text (cut to the model's input limit)."""
    truncated: bool
    """Whether the text was cut to the input limit."""
    labels: int | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    """Zero-shot only: how many labels were scored."""
    labels_cached: int | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    """Zero-shot only: how many label embeddings came from the cache (the rest were embedded in one batch)."""


class Classifier(TwoBackends):
    """The Classification tab's task (see `protocol`). No labels: sentiment. Two or more: zero-shot."""

    action = "Classification"

    def __init__(self, sentiment: DualModel, embedder: DualModel):
        self.sentiment = sentiment
        self.embedder = embedder
        self.max_labels = embedder.spec.defaults.get("max_labels", 10)
        self.hypothesis = embedder.spec.defaults.get("hypothesis", "{}")
        self._labels: dict[Backend, OrderedDict[str, np.ndarray]] = {b: OrderedDict() for b in Backend}

    def check(self, text: str, labels: str | list[str] | None = None) -> ClassificationRequest:
        """The endpoint's values as a request (labels parsed here, once), or ValueError."""
        text = check_text(text, "classify")
        return ClassificationRequest(text, tuple(parse_labels(labels, self.max_labels)))

    def model_for(self, request: ClassificationRequest) -> DualModel:
        return self.embedder if request.labels else self.sentiment

    def first_use_here(self, request: ClassificationRequest, backend: Backend) -> str | None:
        return self.model_for(request).first_use(backend)

    def run_here(self, request: ClassificationRequest, backend: Backend, on_step=None, cancel=None) -> Result:
        """Scores by label (they sum to 1); no steps to stop between. The latency covers tokenizing,
        the model calls and the scores."""
        dual = self.model_for(request)
        model = dual.model(backend)  # loads PyTorch outside the timed region
        with dual.lock:
            start = time.perf_counter()
            inputs, truncated = dual.tokenizer(request.text)
            extra = {}
            if request.labels:
                query = _embedding(model(**inputs)["last_hidden_state"], inputs["attention_mask"])[0]
                keys, cached = self._label_embeddings(model, backend, request.labels)
                scores = _softmax(SIMILARITY_SCALE * keys @ query)
                extra = {"labels": len(request.labels), "labels_cached": cached}
            else:
                scores = _softmax(model(**inputs)["logits"][0])
            latency_ms = (time.perf_counter() - start) * 1000
        names = request.labels or tuple(self.sentiment.config["id2label"][str(i)] for i in range(len(scores)))
        output = {name: float(p) for name, p in zip(names, scores, strict=True)}
        tokens = int(inputs["input_ids"].shape[-1])
        fields = {"task": request.mode, "tokens": tokens, "truncated": truncated, **extra}
        return Result(output, dual.timing(backend, latency_ms, ClassificationTiming, **fields))

    def _label_embeddings(self, model, backend: Backend, labels: tuple[str, ...]) -> tuple[np.ndarray, int]:
        """One embedding per label (rows in `labels`' order) and how many came from the cache; the others
        are embedded in one batch. The caller holds the embedder's lock."""
        cache = self._labels[backend]
        missing = [label for label in labels if label not in cache]
        if missing:
            inputs = self.embedder.tokenizer.batch([self.hypothesis.format(label) for label in missing])
            vectors = _embedding(model(**inputs)["last_hidden_state"], inputs["attention_mask"])
            cache.update(zip(missing, vectors, strict=True))
        for label in labels:
            cache.move_to_end(label)
        keys = np.stack([cache[label] for label in labels])
        while len(cache) > CACHED_LABELS:
            cache.popitem(last=False)
        return keys, len(labels) - len(missing)


def _embedding(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings (sentence-transformers' recipe), one row per text."""
    weights = mask[:, :, None].astype(np.float32)
    pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
