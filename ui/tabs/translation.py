"""Translation tab: English -> French / German / Romanian with T5."""

from __future__ import annotations

import gradio as gr

from pipelines.core.checks import MAX_TEXT_CHARS
from pipelines.core.protocol import Backend
from pipelines.tasks.translation import LANGUAGES, MAX_NEW_TOKENS, Translator
from ui.common import handle_errors, number_input
from ui.embed import Fields
from ui.scaffold import answer_in_steps, banner, connect, controls, readout, two_columns

EXAMPLES = [
    ["The weather is lovely today, so we are going for a walk by the river.", "French"],
    ["Where is the nearest train station?", "German"],
    ["The museum opens at nine in the morning.", "Romanian"],
]


def streamed(latest: dict[Backend, str], current: Backend, both: bool) -> tuple:
    """The translation box while tokens arrive: the text so far (for "Both", OpenVINO's, then PyTorch's under it)."""
    if not both:
        return latest[current], gr.skip()
    ov, pt = latest.get(Backend.OPENVINO, ""), latest.get(Backend.PYTORCH)
    return (ov if pt is None else f"OpenVINO: {ov}\n\nPyTorch: {pt}"), gr.skip()


def translation_tab(translator: Translator) -> Fields:
    """Render the tab's components and events inside the current `gr.Tab`; its inputs a URL can fill."""
    default_new = translator.default_new_tokens

    @handle_errors(translator.action)
    def translate(
        text: str,
        target_language: str,
        backend: str,
        max_new_tokens: float = default_new,
        progress=gr.Progress(),  # noqa: B008 - gradio injects progress through this default
    ):
        """`/translate`: (text, target_language, backend, max_new_tokens) -> (translation, timing), the text
        streamed as it is decoded. With backend "Both": OpenVINO's translation, and a timing dict with both
        runs and both translations."""
        inputs = (text, target_language, max_new_tokens)
        yield from answer_in_steps(
            translator, backend, inputs, progress, show=streamed, unit="tokens", doing="translating"
        )

    banner(translator.model.resolved)
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="English text", lines=4, max_length=MAX_TEXT_CHARS, value=EXAMPLES[0][0])
            language = gr.Dropdown(list(LANGUAGES), value="French", label="Target language", allow_custom_value=True)
            max_new = number_input(gr.Slider(1, MAX_NEW_TOKENS, value=default_new, step=1, label="Max new tokens"))
            run = controls("Translate")
        with gr.Column():
            output = gr.Textbox(label="Translation", lines=4, interactive=False, elem_id="translation-output")
            pytorch = gr.Textbox(lines=4, interactive=False, visible=False, elem_id="translation-output-pytorch")
            shown = readout("translation-latency")
    gr.Examples(EXAMPLES, [text, language])
    event = connect(
        run.button,
        translate,
        [text, language, run.backend, max_new],
        [output, shown.timing],
        shown,
        api_name="translate",
    )
    two_columns(event, shown, output, pytorch, "Translation")
    return {"text": text, "lang": language, "tokens": max_new, "backend": run.backend}
