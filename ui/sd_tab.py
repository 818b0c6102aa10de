"""SD-ToMe-INT8 tab: Stable Diffusion (Token Merging + INT8) on OpenVINO vs diffusers PyTorch."""

from __future__ import annotations

import threading

import gradio as gr

from pipelines.diffusion import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
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
from pipelines.sd import SDRunner

from .common import BACKENDS, handle_errors, latency_line, number_input, standin_banner

CONCURRENCY_ID = "image-generation"
"""Image generation has its own queue: the text tabs keep answering while an image is made."""

EXAMPLES = [
    ["a cute yellow cartoon creature with big ears and red cheeks", "blurry, low quality"],
    ["a blue water turtle with a cannon on its shell", ""],
    ["a green plant dinosaur with a flower on its back, simple background", "text, watermark"],
]


def sd_tab(runner: SDRunner) -> None:
    """Render the tab's components and events inside the current `gr.Tab`."""
    cancels: dict[str, threading.Event] = {}
    default_variant = runner.default

    @handle_errors("Image generation")
    def generate(
        prompt: str,
        negative_prompt: str,
        steps: float,
        guidance_scale: float,
        seed: float | None,
        backend: str,
        variant: str = default_variant,
        random_seed: bool = False,
        request: gr.Request = None,
        progress=gr.Progress(),  # noqa: B008 - gradio injects progress through this default
    ):
        if variant not in runner.variant_names:
            raise ValueError(f"Unknown variant {variant!r}; choose one of {runner.variant_names}.")
        seed = None if random_seed else seed
        checked = DiffusionRequest(prompt, negative_prompt, steps, guidance_scale, seed).checked()
        if not runner.is_loaded(variant):
            progress(0, desc=f"Compiling the {variant} variant (first use only)…")
        if Backend.parse(backend) is Backend.PYTORCH and not runner.torch_loaded:
            gr.Info("Loading the PyTorch Stable Diffusion baseline (first use only); this request takes longer.")
        key = request.session_hash if request is not None else ""
        cancel = cancels[key] = threading.Event()
        progress((0, checked.steps), desc="Denoising", unit="steps")
        try:
            result = runner(
                checked,
                variant,
                backend,
                on_step=lambda done, n: progress((done, n), desc="Denoising", unit="steps"),
                cancel=cancel,
            )
        except GenerationCancelled as exc:
            raise gr.Error(f"{exc} Press Generate to start again.", print_exception=False) from None
        finally:
            cancels.pop(key, None)
        return result.image, result.timing, result.timing["seed"]

    def stop(request: gr.Request = None):
        key = request.session_hash if request is not None else ""
        if key in cancels:
            cancels[key].set()

    @handle_errors("Loading the variant")
    def select_variant(variant: str, progress=gr.Progress()):  # noqa: B008 - gradio's progress injection
        if runner.is_loaded(variant):
            return f"**{variant}** is compiled and ready."
        progress(0, desc=f"Compiling the {variant} variant (first use only)…")
        loaded = runner.load(variant)
        return f"**{variant}** compiled: {loaded.resolved.describe()}."

    if banner := standin_banner(runner.default_variant.resolved):
        gr.Markdown(banner, elem_classes="standin-banner")
    height, width = runner.default_variant.height, runner.default_variant.width
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", lines=2, max_length=MAX_PROMPT_CHARS, value=EXAMPLES[0][0])
            negative = gr.Textbox(label="Negative prompt", lines=1, max_length=MAX_PROMPT_CHARS, value="")
            with gr.Row():
                steps = number_input(gr.Slider(MIN_STEPS, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps"))
                guidance = number_input(
                    gr.Slider(
                        MIN_GUIDANCE,
                        MAX_GUIDANCE,
                        value=DEFAULT_GUIDANCE,
                        step=0.5,
                        label="Guidance scale",
                        info="≤ 1 turns classifier-free guidance off (OpenVINO still runs the static batch of 2)",
                    )
                )
            with gr.Row():
                seed = number_input(gr.Number(value=42, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
                random_seed = gr.Checkbox(value=False, label="Random seed")
            variant = gr.Dropdown(
                runner.variant_names, value=default_variant, label="OpenVINO variant (same fine-tune)"
            )
            variant_status = gr.Markdown(f"**{default_variant}** is compiled and ready.")
            with gr.Row():
                backend = gr.Radio(BACKENDS, value=BACKENDS[0], label="Backend")
                latency = gr.Markdown(elem_id="sd-latency")
            with gr.Row():
                button = gr.Button("Generate", variant="primary")
                stop_button = gr.Button("Stop", variant="stop")
        with gr.Column():
            image = gr.Image(label=f"Image ({width}×{height})", type="pil", interactive=False, format="png")
            used_seed = gr.Number(label="Seed used", precision=0, interactive=False)
            timing = gr.JSON(label="Timing")
    gr.Examples(EXAMPLES, [prompt, negative])
    history = gr.State({})

    event = button.click(
        generate,
        [prompt, negative, steps, guidance, seed, backend, variant, random_seed],
        [image, timing, used_seed],
        api_name="generate",
        concurrency_id=CONCURRENCY_ID,
        concurrency_limit=1,
    )
    event.success(latency_line, [timing, history], [latency, history], api_visibility="private")
    stop_button.click(stop, None, None, cancels=[event], api_visibility="private", queue=False)
    variant.change(
        select_variant,
        [variant],
        [variant_status],
        api_visibility="private",
        concurrency_id=CONCURRENCY_ID,
        concurrency_limit=1,
    )
