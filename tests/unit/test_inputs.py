"""Every input either checked into a request or refused with a sentence, whatever it is, without a model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.build import __main__ as build_cli
from pipelines.build import convert
from pipelines.core.diffusion import (
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_STEPS,
    MIN_GUIDANCE,
    MIN_STEPS,
    DiffusionRequest,
)
from pipelines.core.folders import MANIFEST, PARTIAL_SUFFIX, building, write_manifest
from pipelines.core.images import load_image
from pipelines.core.resolved import Source
from pipelines.tasks.classification import parse_labels
from tests.support.strategies import NUMBERS, SETTINGS, TEXTS


@SETTINGS
@given(
    prompt=TEXTS,
    negative=st.one_of(st.text(max_size=50), st.just("y" * 5000), st.none()),
    steps=NUMBERS,
    guidance=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 50), st.none(), st.text()),
    seed=st.one_of(st.integers(min_value=-(2**40), max_value=2**40), st.floats(allow_nan=True), st.none()),
)
def test_diffusion_request_is_checked_or_refused(prompt, negative, steps, guidance, seed):
    """Every image endpoint validates through `DiffusionRequest.checked` before any model runs."""
    try:
        checked = DiffusionRequest(prompt, negative, steps, guidance, seed).checked()
    except ValueError as exc:
        assert str(exc).endswith("."), exc
        return
    assert MIN_STEPS <= checked.steps <= MAX_STEPS and 0 <= checked.seed <= MAX_SEED
    assert MIN_GUIDANCE <= checked.guidance_scale <= MAX_GUIDANCE and checked.prompt


@SETTINGS
@given(
    payload=st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda b: b"\x89PNG\r\n\x1a\n" + b, st.binary(max_size=512)),
        st.builds(lambda b: b"\xff\xd8\xff\xe0" + b, st.binary(max_size=512)),
    )
)
def test_any_uploaded_file_is_an_image_or_a_clear_refusal(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("upload") / "upload.bin"
    path.write_bytes(payload)
    try:
        image = load_image(str(path))
    except ValueError as exc:
        assert str(exc).startswith("The "), exc  # a sentence about the upload, not a library's message
        return
    assert image.mode == "RGB" and image.width * image.height > 0


@SETTINGS
@given(
    array=st.one_of(
        st.builds(
            lambda shape, dtype: np.zeros(shape, dtype=dtype),
            st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
            st.sampled_from([np.uint8, np.float32, np.int64, np.bool_]),
        ),
    )
)
def test_any_array_is_an_image_or_a_clear_refusal(array):
    try:
        image = load_image(array)
    except ValueError as exc:
        assert str(exc).startswith("The "), exc  # a sentence about the upload, not a library's message
        return
    assert image.mode == "RGB"


def test_parse_labels():
    assert parse_labels("", 10) == [] and parse_labels(None, 10) == [] and parse_labels([], 10) == []
    assert parse_labels(" sports ,cooking", 10) == ["sports", "cooking"]


def test_convert_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="ratio"):
        convert.SDConversion(tome_ratio=0.9).check()
    with pytest.raises(SystemExit):
        build_cli.main(["sd", str(tmp_path / "out")])  # neither SOURCE nor --standin


def test_baseline_label_never_shows_a_server_path(tmp_path):
    from pipelines.core.registry import SD_TOME_INT8
    from pipelines.core.resolved import ResolvedModel

    folder = tmp_path / "models" / "pytorch"
    hub = ResolvedModel(SD_TOME_INT8, tmp_path, SD_TOME_INT8.torch_repo, Source.HUB_IR)
    standin = ResolvedModel(SD_TOME_INT8, tmp_path, str(folder), Source.STANDIN)
    local = ResolvedModel(SD_TOME_INT8, tmp_path, str(folder), Source.LOCAL)
    assert hub.baseline_label == SD_TOME_INT8.torch_repo
    assert standin.baseline_label == "local stand-in (random weights)"
    assert local.baseline_label == "local folder"
    assert all(str(tmp_path) not in r.baseline_label for r in (standin, local))


def test_building_writes_nothing_final_until_the_block_ends(tmp_path):
    out = tmp_path / "out"
    with building(out) as partial:
        (partial / "a.txt").write_text("a")
        write_manifest(partial, {"what": "test"})
        assert not out.exists()
    assert (out / "a.txt").read_text() == "a" and (out / MANIFEST).is_file()
    with pytest.raises(RuntimeError), building(out) as partial:
        (partial / "b.txt").write_text("b")
        raise RuntimeError("interrupted")
    assert (out / "a.txt").is_file() and not (out / "b.txt").exists()  # the earlier build stays
    assert not list(tmp_path.glob("*" + PARTIAL_SUFFIX))


@pytest.mark.parametrize(("seed", "shape"), [(42, (1, 4, 64, 64)), (0, (1, 4, 8, 8)), (2**32 - 1, (1, 4, 5, 7))])
def test_latents_are_torchs(seed, shape):
    """The OpenVINO side's initial latents are the PyTorch side's, to float rounding (1e-6), tails included."""
    import torch

    from pipelines.core.diffusion import torch_randn

    expected = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)
    np.testing.assert_allclose(torch_randn(seed, shape), expected.numpy(), rtol=0, atol=1e-6)
    assert not np.array_equal(torch_randn(seed, shape), torch_randn((seed + 1) % 2**32, shape))
