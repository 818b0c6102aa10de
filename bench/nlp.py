"""The text tabs' requests: sentiment of a typical sentence and at 128 tokens, zero-shot asked again,
and translation of a fixed 20 new tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core import (
    Config,
    Repeats,
    autocast,
    bench_runtime,
    bench_settings,
    measure,
    row,
    save_output,
    spec_for_build,
    weights_mib,
)

SENTENCE = "The weather is lovely today, so we are going for a walk by the river."
TRANSLATION_TOKENS = 20


LONG_TOKENS = 128
ZERO_SHOT_LABELS = "weather, sports, finance, politics"


def resolved_build(spec, config: Config, settings):
    """`spec` in `config`'s build, resolved exactly as the app resolves it (Hub IR, packaged weights,
    stand-in), built by the app's own export when missing."""
    from pipelines.sources.resolve import resolve

    return resolve(spec_for_build(spec, config) if config.backend == "OpenVINO" else spec, settings)


def dual_model(spec, config: Config, settings):
    from pipelines.serving.backends import DualModel

    return DualModel(resolved_build(spec, config, settings), bench_runtime(settings))


def prepare(workload: str, config: Config, threads: int, standin_size: str, home) -> None:
    """Build what `workload` runs on `config`, before anything is timed."""
    from pipelines.core.registry import SENTIMENT, TRANSLATION, ZERO_SHOT

    settings = bench_settings(config, threads, standin_size, home)
    for spec in (SENTIMENT, ZERO_SHOT) if workload == "classification" else (TRANSLATION,):
        resolved_build(spec, config, settings)


def text_of_length(tokenizer, tokens: int) -> str:
    """Words of `SENTENCE` repeated, as many as make at most `tokens` tokens (specials included)."""
    words = " ".join([SENTENCE] * (tokens // 4)).split()
    count = lambda k: tokenizer(" ".join(words[:k]))[0]["input_ids"].shape[-1]
    return " ".join(words[: max(k for k in range(1, len(words) + 1) if count(k) <= tokens)])


def _weights(dual, config: Config) -> float | None:
    return weights_mib(dual.resolved.torch_ref if config.backend == "PyTorch" else dual.resolved.ir_dir)


def classification(config: Config, threads: int, repeats: Repeats, out: Path, standin_size: str, home) -> list[dict]:
    """Through the app's Classifier, three rows: sentiment of a typical sentence at its own length,
    sentiment at 128 tokens, and zero-shot over 4 labels asked again (label embeddings cached)."""
    from pipelines.core.registry import SENTIMENT, ZERO_SHOT
    from pipelines.tasks.classification import Classifier

    settings = bench_settings(config, threads, standin_size, home)
    sentiment, embedder = dual_model(SENTIMENT, config, settings), dual_model(ZERO_SHOT, config, settings)
    classifier = Classifier(sentiment, embedder)
    rows = []
    for workload, text, labels in (
        ("classification-short", SENTENCE, ""),
        ("classification", text_of_length(sentiment.tokenizer, LONG_TOKENS), ""),
        ("zero-shot-repeat", SENTENCE, ZERO_SHOT_LABELS),
    ):
        request = classifier.check(text, labels)
        run = lambda request=request: classifier.run(request, config.backend)
        with autocast(config):
            samples = measure(run, repeats)
            result = run()
        dual = embedder if labels else sentiment
        rows.append(
            row(
                workload,
                config,
                samples,
                1000,
                "ms",
                tokens=result.timing["tokens"],
                labels_cached=result.timing.get("labels_cached"),
                build=dual.spec.precision_label if config.backend == "OpenVINO" else "fp32",
                source=dual.resolved.source.value,
                weights_mib=_weights(dual, config),
                output=save_output(out, workload, config.name, np.array(list(result.output.values()))),
                output_kind="probabilities",
            )
        )
    return rows


def translation(config: Config, threads: int, repeats: Repeats, out: Path, standin_size: str, home) -> list[dict]:
    """English -> German, exactly 20 new tokens greedy, through the app's Translator
    (tokenize -> generate -> decode)."""
    from pipelines.core.registry import TRANSLATION
    from pipelines.tasks.translation import Translator

    settings = bench_settings(config, threads, standin_size, home)
    dual = dual_model(TRANSLATION, config, settings)
    translator = Translator(dual)
    n = TRANSLATION_TOKENS
    request = translator.check(SENTENCE, "German", max_new_tokens=n, min_new_tokens=n)
    run = lambda: translator.run(request, config.backend)
    with autocast(config):
        samples = measure(run, repeats)
        text = run().output
    result = row(
        "translation",
        config,
        samples,
        1000,
        "ms",
        new_tokens=n,
        source=dual.resolved.source.value,
        weights_mib=_weights(dual, config),
        output=save_output(out, "translation", config.name, text),
        output_kind="text",
    )
    result["ms_per_token"] = result["median"] / n
    return [result]
