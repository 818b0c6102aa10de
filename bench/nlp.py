"""The text tabs' requests: sentiment at 128 tokens, and translation of a fixed 20 new tokens."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .core import Config, Repeats, autocast, bench_runtime, bench_settings, measure, row, save_output, weights_mib

SENTENCE = "The weather is lovely today, so we are going for a walk by the river."
TRANSLATION_TOKENS = 20


def dual_model(spec, config: Config, settings):
    """`spec` resolved exactly as the app resolves it (Hub IR, packaged weights, stand-in);
    FP32 configurations get the same weights exported without quantization, once, beside it."""
    from pipelines.export import export, is_complete_ir_folder
    from pipelines.models import DualModel
    from pipelines.registry import Quantization
    from pipelines.resolve import resolve

    resolved = resolve(spec, settings)
    if config.backend == "OpenVINO" and config.build == "fp32" and spec.quantization is not Quantization.NONE:
        spec = dataclasses.replace(spec, quantization=Quantization.NONE)
        folder = resolved.ir_dir.parent / f"{resolved.ir_dir.name}-bench-fp32"
        if not is_complete_ir_folder(folder):
            export(spec, resolved.torch_ref, folder)
        resolved = dataclasses.replace(resolved, spec=spec, ir_dir=folder)
    return DualModel(resolved, bench_runtime(settings))


def _weights(dual, config: Config) -> float | None:
    return weights_mib(dual.resolved.torch_ref if config.backend == "PyTorch" else dual.resolved.ir_dir)


def classification(config: Config, threads: int, repeats: Repeats, out: Path, standin_size: str, home) -> list[dict]:
    """Sentiment of a text longer than the static 1×128 shape, through the app's Classifier."""
    from pipelines.classification import Classifier
    from pipelines.registry import SENTIMENT

    settings = bench_settings(config, threads, standin_size, home)
    dual = dual_model(SENTIMENT, config, settings)
    classifier = Classifier(dual, dual)
    text = " ".join([SENTENCE] * 8)  # over 128 tokens: the static shape is full
    request = classifier.check(text, "")
    run = lambda: classifier.run(request, config.backend)
    with autocast(config):
        samples = measure(run, repeats)
        scores = run().output
    return [
        row(
            "classification",
            config,
            samples,
            1000,
            "ms",
            tokens=SENTIMENT.static_shape[1],
            source=dual.resolved.source.value,
            weights_mib=_weights(dual, config),
            output=save_output(out, "classification", config.name, np.array(list(scores.values()))),
            output_kind="probabilities",
        )
    ]


def translation(config: Config, threads: int, repeats: Repeats, out: Path, standin_size: str, home) -> list[dict]:
    """English -> German, exactly 20 new tokens greedy, through the app's Translator
    (tokenize -> generate -> decode)."""
    from pipelines.registry import TRANSLATION
    from pipelines.translation import Translator

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
