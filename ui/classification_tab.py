"""Classification tab: sentiment, or zero-shot over labels the user types."""

from __future__ import annotations

import gradio as gr

from pipelines.checks import MAX_TEXT_CHARS
from pipelines.classification import Classifier

from .common import BACKENDS, announce_torch_load, handle_errors, latency_line, standin_banner

EXAMPLES = [
    ["I absolutely loved this film; the cast is wonderful.", ""],
    ["The striker scored twice and the team won the league.", "sports, cooking, finance, politics"],
    ["Whisk the eggs with the sugar, then fold in the flour.", "sports, cooking, finance, politics"],
]


def make_classify(classifier: Classifier):
    """The `/classify` handler: (text, labels, backend) -> (scores, timing)."""

    @handle_errors("Classification")
    def classify(text: str, labels: str, backend: str):
        announce_torch_load(classifier.model_for(labels), backend)
        result = classifier(text, labels, backend)
        return result.scores, result.timing

    return classify


def classification_tab(classifier: Classifier) -> None:
    """Render the tab's components and events inside the current `gr.Tab`."""

    if banner := standin_banner(classifier.sentiment.resolved, classifier.embedder.resolved):
        gr.Markdown(banner, elem_classes="standin-banner")
    gr.Markdown(
        "Leave **labels** empty for sentiment (POSITIVE / NEGATIVE). Type two or more comma-separated labels "
        f"for zero-shot classification with {classifier.embedder.spec.title} sentence embeddings."
    )
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=4, max_length=MAX_TEXT_CHARS, value=EXAMPLES[0][0])
            labels = gr.Textbox(label=f"Labels (optional, comma-separated, at most {classifier.max_labels})")
            backend = gr.Radio(BACKENDS, value=BACKENDS[0], label="Backend")
            button = gr.Button("Classify", variant="primary")
        with gr.Column():
            output = gr.Label(label="Scores", num_top_classes=classifier.max_labels, elem_id="classify-scores")
            latency = gr.Markdown(elem_id="classify-latency")
            timing = gr.JSON(label="Timing")
    gr.Examples(EXAMPLES, [text, labels])
    history = gr.State({})

    classify = make_classify(classifier)
    event = button.click(classify, [text, labels, backend], [output, timing], api_name="classify")
    event.success(latency_line, [timing, history], [latency, history], api_visibility="private")
