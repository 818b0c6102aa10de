"""ControlNet pose tab: photo -> OpenPose skeleton -> SD 1.5 image in that pose."""

from __future__ import annotations

import logging
import queue
import secrets
import threading

import gradio as gr

from pipelines.controlnet import PoseResult, PoseRunner
from pipelines.diffusion import (
    DEFAULT_GUIDANCE,
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    MIN_GUIDANCE,
    MIN_STEPS,
    DiffusionRequest,
    GenerationCancelled,
)
from pipelines.models import Backend
from pipelines.pose import save_presets

from .common import (
    BACKENDS,
    generated_file,
    handle_errors,
    image_input,
    latency_line,
    number_input,
    standin_banner,
)

logger = logging.getLogger(__name__)

DEFAULT_SEED = 42
GENERATION_GROUP = "pose-generation"
DETECTION_GROUP = "pose-detection"
EXAMPLE_PROMPTS = [
    "a dancer on a beach at sunset, photograph, detailed",
    "an astronaut in a white suit on the moon, cinematic light",
    "a knight in shining armour in a castle courtyard, oil painting",
]
NEGATIVE = "blurry, low quality, deformed hands, extra limbs"


def _duration(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _stage_line(timing: dict, history: dict) -> tuple[str, dict]:
    line, history = latency_line(timing, history)
    if timing.get("task") == "generate":
        line = (
            f"**Generation** {line}  \n{timing['steps']} steps at {_duration(timing['step_ms'])} per step "
            f"(ControlNet + UNet{', guided' if timing['guidance_scale'] > 1 else ''}), seed {timing['seed']}"
        )
    else:
        line = f"**Pose detection** {line} · {timing.get('people', 0)} person(s)"
    return line, history


def pose_tab(runner: PoseRunner) -> None:
    """Render the tab's components and events inside the current `gr.Tab`."""
    presets = save_presets()  # small PNGs in assets/poses, drawn by controlnet_aux

    @handle_errors("Pose detection")
    def detect_pose(image, backend: str = Backend.OPENVINO.value):
        result = runner.detect(image, backend)
        return result.image, result.timing

    @handle_errors("Generation")
    def check_request(prompt, negative_prompt, steps, guidance_scale, seed) -> DiffusionRequest:
        return DiffusionRequest(prompt, negative_prompt, steps, guidance_scale, seed).checked()

    @handle_errors("Generation")
    def finish(outcome: dict) -> PoseResult:
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def generate(
        pose_image,
        prompt,
        negative_prompt,
        steps,
        guidance_scale,
        seed,
        backend,
        progress=gr.Progress(),  # noqa: B008
    ):
        """Runs the request in a worker thread and yields after each step, so Stop (which
        closes this generator) takes effect at the next step boundary."""
        request = check_request(prompt, negative_prompt, steps, guidance_scale, seed)
        if Backend.parse(backend) is Backend.PYTORCH and not runner.torch_loaded:
            gr.Info("Loading the PyTorch baseline (first use only); this request takes longer.")
        cancel, steps_done, outcome, done = threading.Event(), queue.Queue(), {}, [0]

        def on_step(step: int, timestep: int) -> None:
            done[0] = step + 1
            if cancel.is_set():
                raise GenerationCancelled
            steps_done.put(step + 1)

        def work() -> None:
            try:
                outcome["result"] = runner.generate(pose_image, request, backend, on_step)
            except GenerationCancelled:
                logger.info("generation stopped after %d of %d steps", done[0], request.steps)
                outcome["error"] = ValueError("Generation stopped.")
            except Exception as exc:
                outcome["error"] = exc
            finally:
                steps_done.put(None)

        threading.Thread(target=work, name="pose-generation", daemon=True).start()
        try:
            while (step := steps_done.get()) is not None:
                progress((step, request.steps), desc="Denoising")
                yield gr.skip(), gr.skip()
        finally:
            cancel.set()
        result = finish(outcome)
        yield generated_file(output, result.image), result.timing

    if banner := standin_banner(runner.resolved, note=" Pose detection finds no one: pick a preset pose."):
        gr.Markdown(banner, elem_classes="standin-banner")
    gr.Markdown(
        f"Upload a photo of a person and press **Detect pose**, or pick a preset; then describe the image. "
        f"Output: {runner.resolution}×{runner.resolution} (your photo's aspect ratio is kept by padding). "
        f"OpenVINO: {runner.label(Backend.OPENVINO)} UNet and ControlNet, {runner.scheduler_name}."
    )
    with gr.Row():
        with gr.Column():
            photo = image_input(label="Photo of a person", sources=["upload", "clipboard"])
            detect_button = gr.Button("Detect pose")
            pose = image_input(label="Pose (OpenPose skeleton)", sources=["upload"])
            gr.Examples([[str(p)] for p in presets.values()], [pose], label="Preset poses")
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", lines=2, max_length=MAX_PROMPT_CHARS, value=EXAMPLE_PROMPTS[0])
            negative = gr.Textbox(label="Negative prompt", max_length=MAX_PROMPT_CHARS, value=NEGATIVE)
            with gr.Row():
                default_steps = runner.spec.defaults.get("steps", 20)
                steps = number_input(gr.Slider(MIN_STEPS, MAX_STEPS, value=default_steps, step=1, label="Steps"))
                guidance = number_input(
                    gr.Slider(MIN_GUIDANCE, MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5, label="Guidance")
                )
                seed = number_input(
                    gr.Number(value=DEFAULT_SEED, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
                )
                new_seed = gr.Button("🎲 New seed", size="sm")
            backend = gr.Radio(BACKENDS, value=BACKENDS[0], label="Backend")
            with gr.Row():
                generate_button = gr.Button("Generate", variant="primary")
                stop_button = gr.Button("Stop", variant="stop")
            latency = gr.Markdown(elem_id="pose-latency")
        with gr.Column():
            output = gr.Image(label="Generated image", type="pil", format="png", interactive=False)
            timing = gr.JSON(label="Timing")
    gr.Examples([[p] for p in EXAMPLE_PROMPTS], [prompt], label="Prompts")
    history = gr.State({})

    detected = detect_button.click(
        detect_pose,
        [photo, backend],
        [pose, timing],
        api_name="detect_pose",
        concurrency_id=DETECTION_GROUP,
        concurrency_limit=1,
    )
    detected.success(_stage_line, [timing, history], [latency, history], api_visibility="private")
    generated = generate_button.click(
        generate,
        [pose, prompt, negative, steps, guidance, seed, backend],
        [output, timing],
        api_name="pose",
        concurrency_id=GENERATION_GROUP,
        concurrency_limit=1,
    )
    generated.success(_stage_line, [timing, history], [latency, history], api_visibility="private")
    stop_button.click(None, cancels=[generated], api_visibility="private")
    new_seed.click(lambda: secrets.randbelow(MAX_SEED + 1), None, seed, api_visibility="private")
