"""Sentiment (SST-2 MiniLM) and zero-shot classification (all-MiniLM-L6-v2 embeddings).

Zero-shot compares the text's sentence embedding with one embedding per label,
written into a hypothesis ("This text is about {label}."). Cosine similarities
become scores with a softmax at scale 20, the temperature all-MiniLM-L6-v2 was
trained with (MultipleNegativesRankingLoss), so scores sum to 1 over the labels.
Inputs are padded to the registry's static shape, identical for both backends; both take and
return numpy arrays (see `models`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .checks import check_text, check_unicode
from .models import DualModel
from .protocol import Backend, Result

SIMILARITY_SCALE = 20.0
MAX_LABEL_CHARS = 100


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
        raise ValueError(f"Zero-shot needs at least two labels to choose between; got only {parts[0]!r}.")
    if len(parts) > max_labels:
        raise ValueError(f"Too many labels ({len(parts)}); use at most {max_labels}.")
    if too_long := [p for p in parts if len(p) > MAX_LABEL_CHARS]:
        raise ValueError(f"Label {too_long[0][:20]!r}... is longer than {MAX_LABEL_CHARS} characters.")
    lowered = [p.lower() for p in parts]
    if dupes := sorted({p for p in parts if lowered.count(p.lower()) > 1}):
        raise ValueError(f"Duplicate label {dupes[0]!r}: give each label once.")
    return parts


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class Classifier:
    """The Classification tab's task (see `protocol`). No labels: sentiment. Two or more: zero-shot."""

    action = "Classification"

    def __init__(self, sentiment: DualModel, embedder: DualModel):
        self.sentiment = sentiment
        self.embedder = embedder
        self.max_labels = embedder.spec.defaults.get("max_labels", 10)
        self.hypothesis = embedder.spec.defaults.get("hypothesis", "{}")

    def check(self, text: str, labels: str | list[str] | None = None) -> ClassificationRequest:
        """The endpoint's values as a request (labels parsed here, once), or ValueError."""
        text = check_text(text, "classify")
        return ClassificationRequest(text, tuple(parse_labels(labels, self.max_labels)))

    def model_for(self, request: ClassificationRequest) -> DualModel:
        return self.embedder if request.labels else self.sentiment

    def first_use(self, request: ClassificationRequest, backend: Backend) -> str | None:
        return self.model_for(request).first_use(backend)

    def run(self, request: ClassificationRequest, backend: Backend | str, on_step=None, cancel=None) -> Result:
        """Scores by label (they sum to 1); one forward pass per text, no steps to stop between."""
        backend = Backend.parse(backend)
        dual = self.model_for(request)
        model = dual.model(backend)  # loads PyTorch outside the timed region
        with dual.lock:
            start = time.perf_counter()
            if request.labels:
                scores, truncated = self._zero_shot(model, request.text, request.labels)
            else:
                scores, truncated = self._sentiment(model, request.text)
            latency_ms = (time.perf_counter() - start) * 1000
        return Result(scores, dual.timing(backend, latency_ms, task=request.mode, truncated=truncated))

    def _sentiment(self, model, text: str) -> tuple[dict[str, float], bool]:
        inputs, truncated = self.sentiment.tokenizer(text)
        probs = _softmax(model(**inputs)["logits"][0])
        id2label = self.sentiment.config["id2label"]
        return {id2label[str(i)]: float(p) for i, p in enumerate(probs)}, truncated

    def _embed(self, model, text: str) -> tuple[np.ndarray, bool]:
        """Mean-pooled, L2-normalised sentence embedding (sentence-transformers' recipe)."""
        inputs, truncated = self.embedder.tokenizer(text)
        hidden = model(**inputs)["last_hidden_state"][0]
        mask = inputs["attention_mask"][0][:, None].astype(np.float32)
        pooled = (hidden * mask).sum(0) / max(mask.sum(), 1.0)
        return pooled / max(np.linalg.norm(pooled), 1e-12), truncated

    def _zero_shot(self, model, text: str, labels: tuple[str, ...]) -> tuple[dict[str, float], bool]:
        query, truncated = self._embed(model, text)
        keys = np.stack([self._embed(model, self.hypothesis.format(label))[0] for label in labels])
        probs = _softmax(SIMILARITY_SCALE * keys @ query)
        return {label: float(p) for label, p in zip(labels, probs, strict=True)}, truncated
