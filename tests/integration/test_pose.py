"""ControlNet pose tab: the OpenVINO pipeline against diffusers, pose detection on both
backends, presets, image handling, and both endpoints through gradio_client.

Tiny stand-ins (64×64 images, 8×8 latents), 2 denoising steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

from pipelines.build.controlnet_export import export_controlnet, fp32_variant
from pipelines.core.diffusion import DiffusionRequest
from pipelines.core.protocol import Backend, ask
from pipelines.core.registry import Quantization
from pipelines.models.pose import presets, save_presets
from pipelines.serving.runtime import Runtime
from pipelines.tasks.controlnet import PoseRunner, run_torch_pipeline

# FP32 IR with INFERENCE_PRECISION_HINT=f32 against diffusers fp32: both run the same
# arithmetic in a different order; pixels are in [0, 1].
PIXEL_ATOL = 1e-4
# Body network heatmaps/PAFs, OpenVINO FP32 vs PyTorch.
BODY_ATOL = 1e-4
# ToMe+INT8 (weights and activations) against diffusers fp32, same seed: PSNR of the [0, 1] pixels.
INT8_MIN_PSNR_DB = 30.0


@pytest.fixture(scope="module")
def runner(services) -> PoseRunner:
    assert services.pose is not None, services.failures
    return services.pose


@pytest.fixture(scope="module")
def fp32_runner(runner, settings, tmp_path_factory) -> PoseRunner:
    """The same stand-in with FP32 UNet and ControlNet, compiled with the f32 hint."""
    folder = fp32_variant(runner.resolved.ir_dir, runner.torch_source(), tmp_path_factory.mktemp("pose") / "fp32")
    runtime = Runtime(dataclasses.replace(settings, cache_dir=None, precision="f32"))
    return PoseRunner(dataclasses.replace(runner.resolved, ir_dir=folder), runtime)


@pytest.fixture(scope="module")
def int8_runner(runner, settings, tmp_path_factory) -> PoseRunner:
    """The build picked on CPUs with VNNI or AMX, made by the app's export: Token Merging on the UNet,
    INT8 weights and activations of UNet and ControlNet, calibrated (2 prompts × 2 steps here)."""
    spec = dataclasses.replace(
        runner.spec,
        quantization=Quantization.INT8,
        defaults={**runner.spec.defaults, "calibration_prompts": 2, "calibration_steps": 2},
    )
    folder = export_controlnet(spec, runner.torch_source(), tmp_path_factory.mktemp("pose") / "int8")
    runtime = Runtime(dataclasses.replace(settings, cache_dir=None, precision="f32"))
    return PoseRunner(dataclasses.replace(runner.resolved, spec=spec, ir_dir=folder), runtime)


def _request(seed=7, guidance=7.5, steps=2, negative="blurry") -> DiffusionRequest:
    return DiffusionRequest("a dancer on a beach", negative, steps, guidance, seed).checked()


def _figure(size=96) -> Image.Image:
    """A synthetic person-like drawing: head, body, arms, legs on a light background."""
    image = Image.new("RGB", (size, size), (220, 210, 190))
    draw = ImageDraw.Draw(image)
    s = size / 96
    draw.ellipse([40 * s, 8 * s, 56 * s, 24 * s], fill=(200, 150, 120))
    draw.rectangle([40 * s, 24 * s, 56 * s, 56 * s], fill=(40, 60, 160))
    draw.line([40 * s, 28 * s, 24 * s, 48 * s], fill=(200, 150, 120), width=int(5 * s))
    draw.line([56 * s, 28 * s, 72 * s, 48 * s], fill=(200, 150, 120), width=int(5 * s))
    draw.line([44 * s, 56 * s, 40 * s, 88 * s], fill=(30, 30, 30), width=int(6 * s))
    draw.line([52 * s, 56 * s, 56 * s, 88 * s], fill=(30, 30, 30), width=int(6 * s))
    return image


# --------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_openvino_pipeline_matches_diffusers(fp32_runner, guidance):
    condition = presets(fp32_runner.resolution)["arms raised"]
    request = _request(guidance=guidance)
    ov = fp32_runner.pipelines.ov(condition, request, fp32_runner.new_scheduler())
    pt = run_torch_pipeline(fp32_runner.pipelines.torch(), condition, request, fp32_runner.new_scheduler())
    assert ov.array.shape == pt.array.shape == (fp32_runner.resolution, fp32_runner.resolution, 3)
    assert ov.array.std() > 0.01  # not a blank image
    np.testing.assert_allclose(ov.array, pt.array, atol=PIXEL_ATOL)


def test_tome_int8_build_is_close_to_diffusers(int8_runner, fp32_runner):
    """Same seed, pose and prompt: the ToMe+INT8 image against diffusers fp32, by PSNR."""
    condition = presets(int8_runner.resolution)["arms raised"]
    request = _request()
    ov = int8_runner.pipelines.ov(condition, request, int8_runner.new_scheduler()).array
    pt = run_torch_pipeline(fp32_runner.pipelines.torch(), condition, request, fp32_runner.new_scheduler()).array
    psnr = 10 * np.log10(1.0 / max(float(((ov - pt) ** 2).mean()), 1e-12))
    assert psnr >= INT8_MIN_PSNR_DB, psnr
    assert int8_runner.manifest["tome_ratio"] == int8_runner.spec.defaults["tome_ratio"]
    assert int8_runner.pipelines.label(Backend.OPENVINO) == "OpenVINO ToMe+INT8"


def test_pose_and_seed_drive_the_output(runner):
    size = runner.resolution
    base = runner.pipelines.ov(presets(size)["standing"], _request(seed=1), runner.new_scheduler()).array
    again = runner.pipelines.ov(presets(size)["standing"], _request(seed=1), runner.new_scheduler()).array
    other_pose = runner.pipelines.ov(presets(size)["sitting"], _request(seed=1), runner.new_scheduler()).array
    other_seed = runner.pipelines.ov(presets(size)["standing"], _request(seed=2), runner.new_scheduler()).array
    np.testing.assert_array_equal(base, again)  # deterministic: any difference below is the input's
    # Random-weight ControlNet residuals are small next to the UNet's own activations, so the
    # pose moves pixels by ~2e-5 on the tiny stand-in; zero would mean they never reach the UNet.
    assert np.abs(base - other_pose).max() > 5e-6
    assert np.abs(base - other_seed).max() > 1e-2


def test_int8_runner_generates_with_timing_and_keeps_aspect_ratio(runner):
    wide = presets(512)["walking"].resize((512, 256))
    result = ask(runner.generation, "OpenVINO", wide, "a runner", "", 2, 7.5, 5)
    assert result.output.size == (runner.resolution, runner.resolution // 2)
    timing = result.timing
    assert timing["backend"] == "OpenVINO" and timing["precision"] == "OpenVINO INT8 weights"
    assert timing["seed"] == 5 and timing["steps"] == 2 and 0 < timing["step_ms"] < timing["latency_ms"]
    assert timing["model_source"] == "stand-in (random weights)"


def test_request_checks(runner):
    for request, message in [
        (("", "", 2, 7.5, None), "prompt is empty"),
        (("x", "", 0, 7.5, None), "Steps must be"),
        (("x", "", 20, 99.0, None), "Guidance scale"),
        (("x", "", 20, 7.5, -3), "Seed must be"),
    ]:
        with pytest.raises(ValueError, match=message):
            runner.generation.check(presets(64)["standing"], *request)
    with pytest.raises(ValueError, match="must be 64×64"):
        runner.pipelines.ov(Image.new("RGB", (32, 32)), _request(), runner.new_scheduler())


# --------------------------------------------------------------------------- pose detection


def test_openvino_and_pytorch_pose_detectors_agree(fp32_runner):
    import torch

    from pipelines.core.images import letterbox

    framed = np.asarray(letterbox(_figure(), fp32_runner.resolution).image)
    ov_body = fp32_runner.detectors.ov.detector.body_estimation
    pt_body = fp32_runner.detectors.torch().detector.body_estimation
    x = torch.rand((1, 3, 184, 184), generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.no_grad():
        for ov_out, pt_out in zip(ov_body.model(x), pt_body.model(x), strict=True):
            assert ov_out.shape == pt_out.shape and pt_out.abs().max() > 0
            np.testing.assert_allclose(ov_out.numpy(), pt_out.numpy(), atol=BODY_ATOL, rtol=1e-3)
    # The whole of controlnet_aux's post-processing on a synthetic image: same peaks, same people.
    ov_candidate, ov_subset = ov_body(framed[:, :, ::-1].copy())
    pt_candidate, pt_subset = pt_body(framed[:, :, ::-1].copy())
    np.testing.assert_allclose(ov_candidate, pt_candidate, atol=1e-3)
    np.testing.assert_array_equal(ov_subset, pt_subset)


def test_no_person_found_is_a_clear_message(runner):
    with pytest.raises(ValueError, match="No person was found"):
        ask(runner.detection, "OpenVINO", Image.new("RGB", (120, 80), (128, 128, 128)))


# --------------------------------------------------------------------------- images


# --------------------------------------------------------------------------- API


def test_api_parameters(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = lambda ep: [p["parameter_name"] for p in endpoints[ep]["parameters"]]
    assert names("/pose") == ["pose_image", "prompt", "negative_prompt", "steps", "guidance_scale", "seed", "backend"]
    assert names("/detect_pose")[0] == "image"


@pytest.mark.parametrize("backend", ["OpenVINO", "PyTorch"])
def test_pose_endpoint(client, backend):
    preset = save_presets()["standing"]
    path, timing = client.predict(handle_file(str(preset)), "a dancer", "", 2, 7.5, 11, backend, api_name="/pose")
    assert Image.open(path).size == (64, 64)
    assert timing["backend"] == backend and timing["seed"] == 11 and timing["steps"] == 2
    assert timing["latency_ms"] > 0 and timing["step_ms"] > 0 and timing["model_source"]
    assert timing["memory_mb"] > 0


def test_pose_and_detection_on_both_backends(client):
    preset = handle_file(str(save_presets()["standing"]))
    path, timing = client.predict(preset, "a dancer", "", 2, 7.5, 11, "Both", api_name="/pose")
    assert Image.open(path).size == (128, 64)  # OpenVINO's image left, PyTorch's right
    ov, pt = timing["runs"]
    assert timing["backend"] == "Both" and (ov["backend"], pt["backend"]) == ("OpenVINO", "PyTorch")
    assert ov["seed"] == pt["seed"] == 11 and ov["steps"] == pt["steps"] == 2 and timing["speedup"] > 0
    with pytest.raises(AppError, match="No person was found"):  # the stand-in's body network finds no one
        client.predict(preset, "Both", api_name="/detect_pose")


def test_detect_pose_endpoint(client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (90, 60), (128, 128, 128)).save(blank)
    with pytest.raises(AppError, match="No person was found"):
        client.predict(handle_file(str(blank)), api_name="/detect_pose")
    with pytest.raises(AppError, match="No person was found"):
        client.predict(handle_file(str(blank)), "PyTorch", api_name="/detect_pose")


@pytest.mark.parametrize(
    ("endpoint", "args", "message"),
    [
        ("/detect_pose", ("notes.txt",), "not an image this app can read"),
        ("/pose", ("notes.txt", "a dancer", "", 2, 7.5, 1, "OpenVINO"), "not an image this app can read"),
        ("/pose", ("standing", "   ", "", 2, 7.5, 1, "OpenVINO"), "prompt is empty"),
        ("/pose", ("standing", "a dancer", "", 2.5, 7.5, 1, "OpenVINO"), "whole number"),
        ("/pose", ("standing", "a dancer", "", 2, 7.5, 1, "TensorFlow"), "not in the list of choices"),
        ("/pose", (None, "a dancer", "", 2, 7.5, 1, "OpenVINO"), "No pose image was given"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, tmp_path, endpoint, args, message):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    files = {"notes.txt": handle_file(str(notes)), "standing": handle_file(str(save_presets()["standing"]))}
    args = tuple(files.get(a, a) if isinstance(a, str) else a for a in args)
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=endpoint)
    path, timing = client.predict(files["standing"], "still serving", "", 1, 1.0, 3, "OpenVINO", api_name="/pose")
    assert timing["steps"] == 1 and Image.open(path).size == (64, 64)


def test_stop_cancels_a_running_generation(client, assert_cancel_stops):
    preset = handle_file(str(save_presets()["standing"]))
    job = client.submit(preset, "a long one", "", 50, 7.5, 1, "PyTorch", api_name="/pose")
    assert_cancel_stops(job, "Generation", 50)
