"""ControlNet pose tab: photo -> OpenPose skeleton -> SD 1.5 image in that pose."""

from __future__ import annotations

import secrets

import gradio as gr

from pipelines.core.diffusion import MAX_PROMPT_CHARS, MAX_SEED
from pipelines.core.images import side_by_side as beside
from pipelines.core.protocol import Backend
from pipelines.models.pose import save_presets
from pipelines.tasks.controlnet import PoseRunner
from ui import scaffold
from ui.common import generated_file, handle_errors, image_input, latency_line, runs_of
from ui.embed import Fields
from ui.scaffold import answer, answer_in_steps, banner, connect, controls, readout, two_columns

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
    runs = runs_of(timing)
    first = runs[0]
    if first.get("task") == "generate":
        per_step = " · ".join(f"{_duration(run['step_ms'])} per step on {run['backend']}" for run in runs)
        line = (
            f"**Generation** {line}  \n{first['steps']} steps, {per_step} "
            f"(ControlNet + UNet{', guided' if first['guidance_scale'] > 1 else ''}), seed {first['seed']}"
        )
    else:
        people = " · ".join(f"{run.get('people', 0)} on {run['backend']}" for run in runs)
        line = f"**Pose detection** {line} · person(s) found: {people}"
    return line, history


def pose_tab(runner: PoseRunner) -> Fields:
    """Render the tab's components and events inside the current `gr.Tab`; its inputs a URL can fill."""
    presets = save_presets()  # small PNGs in assets/poses, drawn by controlnet_aux
    detection, generation = runner.detection, runner.generation

    @handle_errors(detection.action)
    def detect_pose(image, backend: str = Backend.OPENVINO.value):
        """`/detect_pose`: (photo, backend) -> (pose image, timing). With backend "Both": OpenVINO's pose (the
        generation's input) and a timing dict with both runs, each with the people it found."""
        return answer(detection, backend, (image,), present_both=lambda ov, pt, timing: (ov.output, timing))

    @handle_errors(generation.action)
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
        """`/pose` -> (image, timing); Stop or the API's cancel ends it after the current step. With backend
        "Both", the same seed on each: one image with OpenVINO's left and PyTorch's right, and both runs."""
        inputs = (pose_image, prompt, negative_prompt, steps, guidance_scale, seed)
        yield from answer_in_steps(
            generation,
            backend,
            inputs,
            progress,
            lambda r: (generated_file(output, r.output), r.timing),
            lambda ov, pt, timing: (generated_file(output, beside(ov.output, pt.output)), timing),
            show=lambda latest, current, both: (generated_file(output, latest[current]), gr.skip()),
        )

    banner(runner.resolved, note=" Pose detection finds no one: pick a preset pose.")
    gr.Markdown(
        f"Upload a photo of a person and press **Detect pose**, or pick a preset; then describe the image. "
        f"Output: {runner.resolution}×{runner.resolution} (your photo's aspect ratio is kept by padding). "
        f"OpenVINO: {runner.pipelines.label(Backend.OPENVINO)} UNet and ControlNet, {runner.scheduler_name}."
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
            knobs = scaffold.diffusion_inputs(steps=runner.spec.defaults.get("steps", 20))
            new_seed = gr.Button("🎲 New seed", size="sm")
            run = controls("Generate", stoppable=True)
        with gr.Column():
            output = gr.Image(label="Generated image", type="pil", format="png", interactive=False)
            shown = readout("pose-latency")
    gr.Examples([[p] for p in EXAMPLE_PROMPTS], [prompt], label="Prompts")

    connect(
        detect_button,
        detect_pose,
        [photo, run.backend],
        [pose, shown.timing],
        shown,
        api_name="detect_pose",
        line=_stage_line,
        concurrency_id=DETECTION_GROUP,
        concurrency_limit=1,
    )
    event = connect(
        run.button,
        generate,
        [pose, prompt, negative, knobs.steps, knobs.guidance, knobs.seed, run.backend],
        [output, shown.timing],
        shown,
        api_name="pose",
        line=_stage_line,
        stop=run.stop,
        concurrency_id=GENERATION_GROUP,
        concurrency_limit=1,
    )
    two_columns(event, shown, output, None, output.label)
    new_seed.click(lambda: secrets.randbelow(MAX_SEED + 1), None, knobs.seed, api_visibility="private")
    return scaffold.image_fields(prompt, negative, knobs, run)
