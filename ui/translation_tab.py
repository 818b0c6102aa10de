"""Translation tab: English -> French / German / Romanian with T5."""

from __future__ import annotations

import gradio as gr

from pipelines.checks import MAX_TEXT_CHARS, whole_number
from pipelines.translation import LANGUAGES, MAX_NEW_TOKENS, Translator

from .common import BACKENDS, announce_torch_load, handle_errors, latency_line, number_input, standin_banner

EXAMPLES = [
    ["The weather is lovely today, so we are going for a walk by the river.", "French"],
    ["Where is the nearest train station?", "German"],
    ["The museum opens at nine in the morning.", "Romanian"],
]


def make_translate(translator: Translator):
    """The `/translate` handler: (text, target_language, backend, max_new_tokens) -> (text, timing)."""

    @handle_errors("Translation")
    def translate(text: str, target_language: str, backend: str, max_new_tokens: float = translator.default_new_tokens):
        max_new_tokens = whole_number(max_new_tokens, "Max new tokens", 1, MAX_NEW_TOKENS)
        announce_torch_load(translator.model, backend)
        result = translator(text, target_language, backend, max_new_tokens)
        return result.text, result.timing

    return translate


def translation_tab(translator: Translator) -> None:
    """Render the tab's components and events inside the current `gr.Tab`."""
    default_new = translator.default_new_tokens

    if banner := standin_banner(translator.model.resolved):
        gr.Markdown(banner, elem_classes="standin-banner")
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="English text", lines=4, max_length=MAX_TEXT_CHARS, value=EXAMPLES[0][0])
            language = gr.Dropdown(list(LANGUAGES), value="French", label="Target language", allow_custom_value=True)
            max_new = number_input(gr.Slider(1, MAX_NEW_TOKENS, value=default_new, step=1, label="Max new tokens"))
            backend = gr.Radio(BACKENDS, value=BACKENDS[0], label="Backend")
            button = gr.Button("Translate", variant="primary")
        with gr.Column():
            output = gr.Textbox(label="Translation", lines=4, interactive=False, elem_id="translation-output")
            latency = gr.Markdown(elem_id="translation-latency")
            timing = gr.JSON(label="Timing")
    gr.Examples(EXAMPLES, [text, language])
    history = gr.State({})

    event = button.click(
        make_translate(translator), [text, language, backend, max_new], [output, timing], api_name="translate"
    )
    event.success(latency_line, [timing, history], [latency, history], api_visibility="private")
