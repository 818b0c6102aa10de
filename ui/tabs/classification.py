"""Classification tab: sentiment, or zero-shot over labels the user types."""

from __future__ import annotations

import gradio as gr

from pipelines.core.checks import MAX_TEXT_CHARS
from pipelines.tasks.classification import Classifier
from ui.common import handle_errors
from ui.embed import Fields
from ui.scaffold import answer, banner, connect, controls, readout, two_columns

EXAMPLES = [
    ["I absolutely loved this film; the cast is wonderful.", ""],
    ["The striker scored twice and the team won the league.", "sports, cooking, finance, politics"],
    ["Whisk the eggs with the sugar, then fold in the flour.", "sports, cooking, finance, politics"],
]


def classification_tab(classifier: Classifier) -> Fields:
    """Render the tab's components and events inside the current `gr.Tab`; its inputs a URL can fill."""

    @handle_errors(classifier.action)
    def classify(text: str, labels: str, backend: str):
        """`/classify`: (text, labels, backend) -> (scores, timing).
        With backend "Both": OpenVINO's scores, and a timing dict with both runs and both sets of scores."""
        return answer(classifier, backend, (text, labels))

    banner(classifier.sentiment.resolved, classifier.embedder.resolved)
    gr.Markdown(
        "Leave **labels** empty for sentiment (POSITIVE / NEGATIVE). Type two or more comma-separated labels "
        f"for zero-shot classification with {classifier.embedder.spec.title} sentence embeddings."
    )
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(label="Text", lines=4, max_length=MAX_TEXT_CHARS, value=EXAMPLES[0][0])
            labels = gr.Textbox(label=f"Labels (optional, comma-separated, at most {classifier.max_labels})")
            run = controls("Classify")
        with gr.Column():
            output = gr.Label(label="Scores", num_top_classes=classifier.max_labels, elem_id="classify-scores")
            pytorch = gr.Label(num_top_classes=classifier.max_labels, visible=False, elem_id="classify-scores-pytorch")
            shown = readout("classify-latency")
    gr.Examples(EXAMPLES, [text, labels])
    event = connect(
        run.button, classify, [text, labels, run.backend], [output, shown.timing], shown, api_name="classify"
    )
    two_columns(event, shown, output, pytorch, "Scores")
    return {"text": text, "labels": labels, "backend": run.backend}
