"""Stable Diffusion: OpenVINO vs PyTorch, static shapes, guidance <= 1, the convert command, the API.

Tiny stand-ins (64x64 images, 32x32 latents), 2 denoising steps, f32 precision hint.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.build import __main__ as build_cli
from pipelines.build import convert
from pipelines.core.diffusion import PREVIEW_SIDE
from pipelines.core.folders import read_manifest
from pipelines.core.protocol import Cancelled, Steps

STEPS = 2
PROMPT = "a cute yellow creature with big ears"
# Same seed, same scheduler, same weights: OpenVINO f32 and PyTorch fp32 images agree to
# within rounding of the uint8 pixels. OpenVINO GenAI truncates to uint8 where diffusers rounds:
# about half the pixels differ by one level for that alone.
MAX_MEAN_ABS_DIFF = 1.0  # of 255
MAX_ABS_DIFF = 4


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


@pytest.fixture(scope="module")
def sd(services):
    assert services.sd is not None, services.failures
    return services.sd


@pytest.fixture(scope="module")
def fp32(sd):
    """The FP32 variant; compiled on first use, from the FP32 export the default variant made."""
    return sd.load("FP32")


def run(sd, variant="FP32", backend="OpenVINO", prompt=PROMPT, seed=7, guidance_scale=7.5):
    """The result (image and timing) of a checked request."""
    return sd.run(sd.check(prompt, "", STEPS, guidance_scale, seed, variant), backend)


def test_default_variant_compiled_at_startup_at_the_tiny_static_size(sd, services):
    variant = sd.default_variant
    assert sd.default == "ToMe+INT8" and sd.is_loaded("ToMe+INT8")
    assert (variant.height, variant.width) == (64, 64)
    assert services.runtime.records[variant.spec.key].compile_s > 0
    assert variant.resolved.is_standin
    assert read_manifest(variant.resolved.ir_dir)["tome_ratio"] == 0.4


def test_compiled_pipelines_are_static(sd, fp32):
    """Reshaped before compiling: each variant serves its own size and refuses another (the models'
    inputs are static, so the plugin cannot take other shapes)."""
    for variant in (sd.default_variant, fp32):
        image = variant.pipe.generate(PROMPT, num_inference_steps=1, height=64, width=64, guidance_scale=7.5)
        assert image.data.shape == (1, 64, 64, 3)
        with pytest.raises(RuntimeError):
            variant.pipe.generate(PROMPT, num_inference_steps=1, height=128, width=128, guidance_scale=7.5)


def test_openvino_fp32_matches_pytorch_with_the_same_seed(sd, fp32):
    ov, pt = run(sd, backend="OpenVINO"), run(sd, backend="PyTorch")
    diff = np.abs(pixels(ov.output) - pixels(pt.output))
    assert ov.output.size == pt.output.size == (64, 64)
    assert diff.mean() <= MAX_MEAN_ABS_DIFF and diff.max() <= MAX_ABS_DIFF, (diff.mean(), diff.max())
    assert ov.timing["seed"] == pt.timing["seed"] == 7
    assert ov.timing["scheduler"] == pt.timing["scheduler"]
    other_seed = run(sd, seed=8)
    assert np.abs(pixels(other_seed.output) - pixels(ov.output)).mean() > 5 * MAX_MEAN_ABS_DIFF


@pytest.mark.parametrize("guidance", [1.0, 0.0])
def test_guidance_at_most_one_is_served_by_the_static_unet(sd, fp32, guidance):
    ov = run(sd, backend="OpenVINO", guidance_scale=guidance)
    pt = run(sd, backend="PyTorch", guidance_scale=guidance)  # diffusers: UNet batch 1, no CFG
    diff = np.abs(pixels(ov.output) - pixels(pt.output))
    assert diff.mean() <= MAX_MEAN_ABS_DIFF and diff.max() <= MAX_ABS_DIFF
    assert ov.timing["guidance"].startswith("off")
    guided = run(sd, backend="OpenVINO", guidance_scale=7.5)
    assert np.abs(pixels(guided.output) - pixels(ov.output)).mean() > MAX_MEAN_ABS_DIFF


def test_tome_int8_stays_close_to_fp32(sd, fp32):
    """INT8 (+ToMe) vs FP32 on the same seed: much closer than two FP32 images of different seeds."""
    reference = pixels(run(sd, "FP32").output)
    quantized = pixels(run(sd, "ToMe+INT8").output)
    other_seed = pixels(run(sd, "FP32", seed=8).output)
    quantization_error = np.abs(quantized - reference).mean()
    assert quantization_error < 0.5 * np.abs(other_seed - reference).mean()


def test_long_prompt_is_truncated_and_said_so(sd):
    long = " ".join(["a very cute and colourful creature"] * 20)
    assert run(sd, "ToMe+INT8", prompt=long).timing["truncated"] is True
    assert run(sd, "ToMe+INT8").timing["truncated"] is False


def test_previews_of_the_image_so_far_on_both_backends_agree(sd, fp32):
    """Every 2nd step (not the last) brings a rough preview, decoded from the latents without the VAE; on
    the same seed OpenVINO's and PyTorch's previews show the same latents (FP32: within 2 levels of 255)."""
    request = sd.check(PROMPT, "", 5, 7.5, 3, "FP32")
    previews = {}
    for backend in ("OpenVINO", "PyTorch"):
        seen = []
        sd.run(request, backend, on_step=lambda done, total, preview=None, seen=seen: seen.append((done, preview)))
        # 5 steps, or 6 callbacks: PNDM's PLMS warm-up runs its first timestep twice, and GenAI counts both
        assert [done for done, _ in seen][:5] == [1, 2, 3, 4, 5]
        previews[backend] = {done: preview for done, preview in seen if preview is not None}
        assert set(previews[backend]) == {2, 4}
        assert all(p.size == (PREVIEW_SIDE, PREVIEW_SIDE) and p.mode == "RGB" for p in previews[backend].values())
    for step in (2, 4):
        ov, pt = (np.asarray(previews[b][step], dtype=np.float64) for b in ("OpenVINO", "PyTorch"))
        assert np.abs(ov - pt).mean() < 2.0, step
    assert np.abs(np.asarray(previews["OpenVINO"][2], float) - np.asarray(previews["OpenVINO"][4], float)).mean() > 0


def test_no_preview_is_made_when_no_one_watches(sd):
    steps = Steps(4, None, None)
    assert not any(steps.wants_preview() or steps() for _ in range(4))


def test_stop_cancels_after_the_current_step_and_the_runner_keeps_serving(sd):
    cancel, steps_seen = threading.Event(), []

    def on_step(done, total, preview=None):
        steps_seen.append(done)
        cancel.set()

    with pytest.raises(Cancelled, match="after step 1 of 5"):
        sd.run(sd.check(PROMPT, "", 5, 7.5, 1, "ToMe+INT8"), "OpenVINO", on_step=on_step, cancel=cancel)
    assert steps_seen == [1]
    assert run(sd, "ToMe+INT8").output.size == (64, 64)


def test_convert_command_yields_a_loadable_ir_folder_and_int8_is_smaller(sd, tmp_path):
    from optimum.intel import OVStableDiffusionPipeline

    # The export itself ran at startup (same `convert_sd`); --fp32-base reuses it, so this
    # checks the command line and the folder it writes without exporting twice.
    variant = sd.default_variant
    base = next((variant.resolved.ir_dir.parent.parent / ".sd-fp32").iterdir())
    out = tmp_path / "sd-fp32"
    build_cli.main(["sd", variant.resolved.torch_ref, str(out), "--fp32-base", str(base)])
    assert convert.is_sd_ir_folder(out) and not out.with_name("sd-fp32.partial").exists()
    pipe = OVStableDiffusionPipeline.from_pretrained(out, compile=False)
    pipe.reshape(batch_size=1, height=64, width=64, num_images_per_prompt=1)
    pipe.compile()
    image = pipe(PROMPT, num_inference_steps=1, output_type="np").images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()
    int8_unet = sd.default_variant.resolved.ir_dir / "unet"
    assert convert.folder_bytes(int8_unet) < 0.5 * convert.folder_bytes(out / "unet")
    assert convert.folder_bytes(sd.default_variant.resolved.ir_dir) < convert.folder_bytes(out)


def test_a_variant_that_fails_to_load_reports_and_the_runner_keeps_serving(sd, monkeypatch):
    def broken(spec, settings):
        raise OSError("disk full")

    monkeypatch.setattr(sd, "_resolver", broken)
    monkeypatch.delitem(sd.variants, "INT8", raising=False)
    with pytest.raises(ValueError, match="INT8 variant could not be loaded"):
        sd.load("INT8")
    assert "disk full" in sd.failures["INT8"]
    assert run(sd, "ToMe+INT8").output.size == (64, 64)


# -- through the app's API ------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(services, fp32, serve):
    with serve(services) as demo:
        yield Client(demo.local_url, verbose=False)


def test_generate_api_order_and_result(client):
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]["parameters"]
    names = [p["parameter_name"] for p in params]
    assert names[:6] == ["prompt", "negative_prompt", "steps", "guidance_scale", "seed", "backend"]
    assert names[6] == "variant"
    image, timing, seed = client.predict(PROMPT, "", STEPS, 7.5, 11, "OpenVINO", api_name="/generate")
    assert image and seed == 11
    for key in ("backend", "variant", "latency_ms", "step_ms", "seed", "model_source"):
        assert key in timing
    assert timing["variant"] == "ToMe+INT8" and timing["model_source"] == "stand-in (random weights)"
    assert timing["pytorch_from"] == "local stand-in (random weights)"  # never a server path
    assert timing["latency_ms"] > 0 and timing["step_ms"] > 0 and timing["seed"] == 11


@pytest.mark.parametrize("backend", ["OpenVINO", "PyTorch"])
def test_generate_api_both_backends_and_random_seed(client, backend):
    _, timing, seed = client.predict(PROMPT, "blurry", STEPS, 5.0, 0, backend, "FP32", True, api_name="/generate")
    assert timing["backend"] == backend and timing["variant"] == "FP32"
    assert seed == timing["seed"] and 0 <= seed < 2**32


def test_generate_on_both_backends_gives_both_images_side_by_side(client):
    path, timing, seed = client.predict(PROMPT, "", STEPS, 7.5, 11, "Both", "FP32", api_name="/generate")
    ov, pt = timing["runs"]
    assert timing["backend"] == "Both" and (ov["backend"], pt["backend"]) == ("OpenVINO", "PyTorch")
    assert seed == ov["seed"] == pt["seed"] == 11 and ov["variant"] == pt["variant"] == "FP32"
    both = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    alone, _, _ = client.predict(PROMPT, "", STEPS, 7.5, 11, "OpenVINO", "FP32", api_name="/generate")
    alone = np.asarray(Image.open(alone).convert("RGB"), dtype=np.float64)
    height, width, _ = alone.shape
    assert both.shape == (height, 2 * width, 3)
    assert np.abs(both[:, :width] - alone).mean() < 1.0  # OpenVINO's left: the same request as alone
    assert np.abs(both[:, width:] - alone).mean() < 8.0  # PyTorch's right, same seed: FP32 IR vs fp32, 8/255


def test_the_api_streams_previews_before_the_image(client):
    job = client.submit(PROMPT, "", 6, 7.5, 5, "OpenVINO", "FP32", api_name="/generate")
    image, timing, _ = job.result()
    partial = [out[0] for out in job.outputs()[:-1] if isinstance(out, list | tuple) and isinstance(out[0], str)]
    sizes = [Image.open(path).size for path in partial]  # the others: skips (no new image)
    assert (PREVIEW_SIDE, PREVIEW_SIDE) in sizes, job.outputs()  # steps 2 and 4 of 6
    assert Image.open(image).size == (64, 64) and timing["steps"] == 6


def test_the_api_cancel_stops_a_running_generation_and_the_app_keeps_serving(client, assert_cancel_stops):
    """The same mechanism as the Stop button, which cancels the same event."""
    job = client.submit(PROMPT, "", 50, 7.5, 1, "PyTorch", "FP32", api_name="/generate")
    assert_cancel_stops(job, "Image generation", 50)
    _, timing, _ = client.predict(PROMPT, "", 1, 7.5, 3, "OpenVINO", api_name="/generate")
    assert timing["steps"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((PROMPT, "", 0, 7.5, 1, "OpenVINO"), "Steps must be a whole number from 1 to 50"),
        ((PROMPT, "", 2.5, 7.5, 1, "OpenVINO"), "Steps must be a whole number"),
        ((PROMPT, "", 2, 25.0, 1, "OpenVINO"), "Guidance scale must be from 0.0 to 20.0"),
        ((PROMPT, "", 2, 7.5, -3, "OpenVINO"), "Seed must be a whole number from 0 to 4294967295"),
        (("   ", "", 2, 7.5, 1, "OpenVINO"), "prompt is empty"),
        ((PROMPT, "x" * 5000, 2, 7.5, 1, "OpenVINO"), "negative prompt is 5,000 characters"),
        ((PROMPT, "", 2, 7.5, 1, "OpenVINO", "FP64"), "not in the list of choices"),
        ((PROMPT, "", 2, 7.5, 1, "TensorFlow"), "not in the list of choices"),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/generate")
    _, timing, _ = client.predict(PROMPT, "", 1, 7.5, 3, "OpenVINO", api_name="/generate")
    assert timing["steps"] == 1
