"""Sentiment and zero-shot on OpenVINO vs PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.protocol import Backend, ask
from pipelines.core.registry import PRECISION_LABELS, SENTIMENT, ZERO_SHOT, Quantization
from pipelines.models.text import TextTokenizer
from pipelines.tasks import classification
from pipelines.tasks.classification import Classifier

TEXT = "I absolutely loved this film; the cast is wonderful."
# FP32 IR vs PyTorch fp32 under the f32 hint: probabilities agree to float rounding.
FP32_ATOL = 1e-5
# INT8 (full, or weights only) on the random-weight stand-in: probabilities within 0.05.
INT8_ATOL = 0.05
# A label embedding (unit length) in a padded batch against the same one alone: padded positions are
# masked, so only the order of float sums differs (and, with INT8 activations, their rounding).
BATCH_ATOL = 1e-3

OBVIOUS = [
    ("The striker scored twice and the team won the league.", "sports"),
    ("Whisk the eggs with the sugar, then fold in the flour.", "cooking"),
    ("The central bank raised interest rates again to fight inflation.", "finance"),
    ("Parliament voted on the new immigration bill after a heated debate.", "politics"),
]
LABELS = "sports, cooking, finance, politics"


def _probs(classifier: Classifier, backend: Backend, labels: str = "") -> np.ndarray:
    return np.array(list(ask(classifier, backend, TEXT, labels).output.values()))


def test_sentiment_fp32_matches_pytorch(fp32_model, services):
    classifier = Classifier(fp32_model(SENTIMENT.key), services.models[ZERO_SHOT.key])
    ov, pt = _probs(classifier, Backend.OPENVINO), _probs(classifier, Backend.PYTORCH)
    np.testing.assert_allclose(ov, pt, atol=FP32_ATOL)


def test_sentiment_app_build_close_to_pytorch(services):
    """The build the app picked on this CPU (`cpu.build_for`)."""
    classifier = services.classifier
    ov, pt = _probs(classifier, Backend.OPENVINO), _probs(classifier, Backend.PYTORCH)
    np.testing.assert_allclose(ov, pt, atol=INT8_ATOL)
    assert set(ask(classifier, "OpenVINO", TEXT, "").output) == {"POSITIVE", "NEGATIVE"}


@pytest.mark.parametrize("quantization", [Quantization.INT8, Quantization.INT8_WEIGHTS])
def test_every_build_the_rule_can_pick_is_close_to_pytorch(built_model, services, quantization):
    """Whatever this CPU is, both quantized builds are made by the app's export and compared."""
    classifier = Classifier(built_model(SENTIMENT.key, quantization), services.models[ZERO_SHOT.key])
    ov, pt = _probs(classifier, Backend.OPENVINO), _probs(classifier, Backend.PYTORCH)
    np.testing.assert_allclose(ov, pt, atol=INT8_ATOL)
    assert ask(classifier, "OpenVINO", TEXT, "").timing["precision"] == f"OpenVINO {PRECISION_LABELS[quantization]}"


@pytest.mark.parametrize("backend", list(Backend))
def test_text_runs_at_its_own_length(services, backend):
    """No padding: the token count is the text's own, whatever the backend."""
    short = ask(services.classifier, backend, "Great.", "").timing["tokens"]
    longer = ask(services.classifier, backend, TEXT, "").timing["tokens"]
    expected = services.models[SENTIMENT.key].tokenizer(TEXT)[0]["input_ids"].shape[-1]
    assert short < longer == expected < 40


@pytest.mark.parametrize("backend", list(Backend))
def test_label_embeddings_are_batched_cached_and_the_same(services, backend):
    """A repeated label comes from the cache; a new label is embedded; a batch padded to its longest
    hypothesis gives the embeddings of one hypothesis at a time."""
    classifier = Classifier(services.models[SENTIMENT.key], services.models[ZERO_SHOT.key])
    labels = ("sports", "quantum chromodynamics", "the history of medieval european trade routes")
    first = ask(classifier, backend, TEXT, ", ".join(labels))
    again = ask(classifier, backend, TEXT, ", ".join([labels[2], "politics", labels[0], labels[1]]))
    assert (first.timing["labels"], first.timing["labels_cached"]) == (3, 0)
    assert (again.timing["labels"], again.timing["labels_cached"]) == (4, 3)
    for label in labels:
        assert again.output[label] / again.output[labels[0]] == pytest.approx(
            first.output[label] / first.output[labels[0]], rel=1e-4
        )
    model = services.models[ZERO_SHOT.key].model(backend)
    with services.models[ZERO_SHOT.key].lock:
        batched, _ = Classifier(services.models[SENTIMENT.key], services.models[ZERO_SHOT.key])._label_embeddings(
            model, backend, labels
        )
        alone = [
            Classifier(services.models[SENTIMENT.key], services.models[ZERO_SHOT.key])._label_embeddings(
                model, backend, (label,)
            )[0][0]
            for label in labels
        ]
    lengths = {len(services.models[ZERO_SHOT.key].tokenizer(f"This text is about {label}.")[0]["input_ids"][0])
               for label in labels}  # fmt: skip
    assert len(lengths) == 3  # the batch was padded
    np.testing.assert_allclose(batched, np.stack(alone), atol=BATCH_ATOL)


def test_a_batch_pads_even_without_a_padding_token(services, tmp_path):
    """A tokenizer that names no padding token still batches: padded positions are masked (id 0)."""
    (tmp_path / "tokenizer.json").write_bytes(
        (services.models[ZERO_SHOT.key].resolved.ir_dir / "tokenizer.json").read_bytes()
    )
    tokenizer = TextTokenizer(tmp_path, 64)
    batch = tokenizer.batch(["short", "a much longer text than the first one"])
    longer = tokenizer("a much longer text than the first one")[0]["input_ids"].shape[-1]
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, longer)
    short = int(batch["attention_mask"][0].sum())
    assert short < longer and not batch["attention_mask"][0, short:].any() and not batch["input_ids"][0, short:].any()


def test_label_cache_keeps_the_most_recently_used(services, monkeypatch):
    monkeypatch.setattr(classification, "CACHED_LABELS", 3)
    classifier = Classifier(services.models[SENTIMENT.key], services.models[ZERO_SHOT.key])
    ask(classifier, "OpenVINO", TEXT, "a, b")
    ask(classifier, "OpenVINO", TEXT, "c, d")  # 4 labels: "a" goes
    assert ask(classifier, "OpenVINO", TEXT, "b, c, d").timing["labels_cached"] == 3
    assert ask(classifier, "OpenVINO", TEXT, "a, b").timing["labels_cached"] == 1


def test_zero_shot_fp32_matches_pytorch(fp32_model, services):
    classifier = Classifier(services.models[SENTIMENT.key], fp32_model(ZERO_SHOT.key))
    ov, pt = _probs(classifier, Backend.OPENVINO, LABELS), _probs(classifier, Backend.PYTORCH, LABELS)
    np.testing.assert_allclose(ov, pt, atol=1e-4)


@pytest.mark.parametrize("backend", list(Backend))
@pytest.mark.parametrize(("text", "expected"), OBVIOUS)
def test_zero_shot_real_minilm_picks_the_obvious_label(services, backend, text, expected):
    """all-MiniLM-L6-v2 ships with real weights, so here the answer must be right (INT8 included)."""
    assert services.models[ZERO_SHOT.key].resolved.source.name == "PACKAGED"
    result = ask(services.classifier, backend, text, LABELS)
    scores = result.output
    assert result.timing["task"] == "zero-shot"
    assert max(scores, key=scores.get) == expected
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_long_text_is_truncated_and_says_so(services):
    result = ask(services.classifier, "OpenVINO", "wonderful " * 600, "")
    assert result.timing["truncated"] is True


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (" , , ", "labels are empty"),
        ("a,,b", "One of the labels is empty"),
        ("sports", "at least two labels"),
        ("a, b, A", "Duplicate label"),
        (",".join(f"l{i}" for i in range(11)), "Too many labels"),
        ("a, " + "b" * 101, "longer than"),
        (42, "comma-separated text"),
    ],
)
def test_bad_labels_raise_value_error(services, labels, message):
    with pytest.raises(ValueError, match=message):
        services.classifier.check(TEXT, labels)


def test_empty_text_raises_value_error(services):
    with pytest.raises(ValueError, match="text is empty"):
        services.classifier.check(" \n ", "")
