"""The OpenVINO process serves without torch: its tokenizers give transformers' tokens, its SD latents
are torch's, and the whole serving path (startup, the UI, a request on the text and SD tabs) imports
no torch, transformers, diffusers, optimum or NNCF. The ControlNet tab imports torch, diffusers and
controlnet_aux (its scheduler and OpenPose drawing) with its first request, and says so."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.registry import SENTIMENT, TRANSLATION, ZERO_SHOT
from pipelines.models.text import TextTokenizer

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "The weather is lovely today, so we are going for a walk by the river.",
    "Don't panic: it's only a test, isn't it?",
    "Ünïcödé, émojis 🙂 and\ttabs",
    " ".join(["river"] * 300),  # cut to the maximum length
    "",
]
HEAVY = ("torch", "transformers", "diffusers", "optimum", "nncf", "controlnet_aux")


@pytest.mark.parametrize("key", [TRANSLATION.key, SENTIMENT.key, ZERO_SHOT.key])
def test_tokens_are_those_of_transformers(services, key):
    """`TextTokenizer` (the `tokenizers` library on tokenizer.json) against the transformers tokenizer
    of the same folder, called as the PyTorch pipelines of transformers call it: same ids, mask and
    token types, same truncation, same decoded text."""
    from transformers import AutoTokenizer

    dual = services.models[key]
    ours: TextTokenizer = dual.tokenizer
    theirs = AutoTokenizer.from_pretrained(dual.resolved.ir_dir)
    for text in TEXTS:
        arrays, truncated = ours(text)
        expected = theirs(text, truncation=True, max_length=ours.max_length, return_tensors="np")
        for name in ("input_ids", "attention_mask"):
            np.testing.assert_array_equal(arrays[name], expected[name], err_msg=f"{name} of {text[:30]!r}")
        if "token_type_ids" in expected:
            np.testing.assert_array_equal(arrays["token_type_ids"], expected["token_type_ids"])
        assert truncated == (len(theirs(text).input_ids) > ours.max_length)
        ids = arrays["input_ids"][0]
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)


SERVE = """
import json, pickle, sys
from pipelines.core.protocol import Backend, ask
from pipelines.startup import start

settings, pose_image, heavy = pickle.loads(bytes.fromhex(sys.argv[1]))
imported = lambda: sorted(m for m in heavy if m in sys.modules)
services = start(settings)
assert not services.failures, services.failures
import app
app.build_demo(services)
ask(services.translator, "OpenVINO", "Hello there.", "German", 4)
ask(services.classifier, "OpenVINO", "I love it.", "")
ask(services.classifier, "OpenVINO", "I love it.", "food, sports")
image = ask(services.sd, "OpenVINO", "a cat", "", 2, 7.5, 1, services.sd.default).output
report = {"imported": imported(), "size": list(image.size)}
generation = services.pose.generation
request = generation.check(pose_image, "a dancer", "", 2, 7.5, 1)
report["pose_first_use"] = generation.first_use(request, Backend.OPENVINO)
generation.run(request, "OpenVINO")
report["after_pose"] = imported()
report["pose_second_use"] = generation.first_use(request, Backend.OPENVINO)
print(json.dumps(report))
"""


def test_openvino_serving_imports_no_torch(services, settings):
    """Startup, the UI and an OpenVINO request on the text and SD tabs, in a fresh interpreter (the
    models already built by `services`): none of the PyTorch-side libraries is imported. The first pose
    request imports what the ControlNet tab needs, and says so beforehand."""
    from pipelines.models.pose import PRESETS_DIR

    given = (settings, str(PRESETS_DIR / "standing.png"), HEAVY)
    child = subprocess.run(
        [sys.executable, "-c", SERVE, pickle.dumps(given).hex()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["imported"] == []
    assert report["size"][0] > 0
    assert "first use" in report["pose_first_use"]
    assert {"torch", "diffusers"} <= set(report["after_pose"])  # the scheduler; detection adds controlnet_aux
    assert report["pose_second_use"] is None
