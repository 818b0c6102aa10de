"""SD-ToMe-INT8 tab: Stable Diffusion (Token Merging + INT8) on OpenVINO vs diffusers PyTorch."""

from __future__ import annotations

import gradio as gr

from pipelines.core.diffusion import MAX_PROMPT_CHARS
from pipelines.core.images import side_by_side as beside
from pipelines.tasks.sd import SDRunner
from ui.common import generated_file, handle_errors
from ui.embed import Fields
from ui.scaffold import answer_in_steps, banner, connect, controls, diffusion_inputs, image_fields, readout, two_columns

CONCURRENCY_ID = "image-generation"
"""Image generation has its own queue: the text tabs keep answering while an image is made."""

EXAMPLES = [
    ["a cute yellow cartoon creature with big ears and red cheeks", "blurry, low quality"],
    ["a blue water turtle with a cannon on its shell", ""],
    ["a green plant dinosaur with a flower on its back, simple background", "text, watermark"],
]


def sd_tab(runner: SDRunner) -> Fields:
    """Render the tab's components and events inside the current `gr.Tab`; its inputs a URL can fill."""
    default_variant = runner.default

    @handle_errors(runner.action)
    def generate(
        prompt: str,
        negative_prompt: str,
        steps: float,
        guidance_scale: float,
        seed: float | None,
        backend: str,
        variant: str = default_variant,
        random_seed: bool = False,
        progress=gr.Progress(),  # noqa: B008 - gradio injects progress through this default
    ):
        """`/generate` -> (image, timing, seed used); Stop or the API's cancel ends it after the current step.
        With backend "Both", the same seed on each: one image with OpenVINO's left and PyTorch's right, and a
        timing dict with both runs."""
        inputs = (prompt, negative_prompt, steps, guidance_scale, seed, variant, random_seed)
        yield from answer_in_steps(
            runner,
            backend,
            inputs,
            progress,
            lambda r: (generated_file(image, r.output), r.timing, r.timing["seed"]),
            lambda ov, pt, timing: (generated_file(image, beside(ov.output, pt.output)), timing, ov.timing["seed"]),
            skips=3,
            show=lambda latest, current, both: (generated_file(image, latest[current]), gr.skip(), gr.skip()),
        )

    @handle_errors("Loading the variant")
    def select_variant(variant: str, progress=gr.Progress()):  # noqa: B008 - gradio's progress injection
        variant = runner.check_variant(variant)
        if runner.is_loaded(variant):
            return f"**{variant}** is compiled and ready."
        progress(0, desc=f"Compiling the {variant} variant (first use only)…")
        loaded = runner.load(variant)
        return f"**{variant}** compiled: {loaded.resolved.describe()}."

    banner(runner.default_variant.resolved)
    height, width = runner.default_variant.height, runner.default_variant.width
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", lines=2, max_length=MAX_PROMPT_CHARS, value=EXAMPLES[0][0])
            negative = gr.Textbox(label="Negative prompt", lines=1, max_length=MAX_PROMPT_CHARS, value="")
            knobs = diffusion_inputs(
                guidance_info="≤ 1 turns classifier-free guidance off (OpenVINO still runs the static batch of 2)"
            )
            random_seed = gr.Checkbox(value=False, label="Random seed")
            variant = gr.Dropdown(
                runner.variant_names, value=default_variant, label="OpenVINO variant (same fine-tune)"
            )
            variant_status = gr.Markdown(f"**{default_variant}** is compiled and ready.")
            run = controls("Generate", stoppable=True)
        with gr.Column():
            image = gr.Image(
                label=f"Image ({width}×{height})", type="pil", interactive=False, format="png", elem_id="sd-image"
            )
            used_seed = gr.Number(label="Seed used", precision=0, interactive=False)
            shown = readout("sd-latency")
    gr.Examples(EXAMPLES, [prompt, negative])

    event = connect(
        run.button,
        generate,
        [prompt, negative, knobs.steps, knobs.guidance, knobs.seed, run.backend, variant, random_seed],
        [image, shown.timing, used_seed],
        shown,
        api_name="generate",
        stop=run.stop,
        concurrency_id=CONCURRENCY_ID,
        concurrency_limit=1,
    )
    two_columns(event, shown, image, None, image.label)
    variant.change(
        select_variant,
        [variant],
        [variant_status],
        api_visibility="private",
        concurrency_id=CONCURRENCY_ID,
        concurrency_limit=1,
    )
    return image_fields(prompt, negative, knobs, run)
