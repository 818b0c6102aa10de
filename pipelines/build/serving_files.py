"""The files the OpenVINO process serves a model folder with, besides its IRs.

The OpenVINO process runs without torch, transformers or diffusers (see `docs/architecture.md`):
text models are tokenized by the `tokenizers` library from `tokenizer.json`, and Stable Diffusion
runs in OpenVINO GenAI, which tokenizes inside OpenVINO (`tokenizer/openvino_tokenizer.xml`, made
by openvino-tokenizers' `convert_tokenizer`). Builds write these files (`write_serving_files`, build
time: it imports transformers); checking for them (`missing_serving_files`) imports nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.core.registry import Task

logger = logging.getLogger(__name__)

TEXT_TOKENIZER = "tokenizer.json"
SD_TOKENIZER = "tokenizer/tokenizer.json"
SD_OV_TOKENIZER = "tokenizer/openvino_tokenizer.xml"


def serving_files(task: Task) -> tuple[str, ...]:
    """The files a `task` model's folder needs to be served without torch (relative paths)."""
    if task.is_text:
        return (TEXT_TOKENIZER,)
    if task is Task.TEXT_TO_IMAGE:
        return (SD_TOKENIZER, SD_OV_TOKENIZER, SD_OV_TOKENIZER.replace(".xml", ".bin"))
    return (SD_TOKENIZER,)  # the ControlNet pose pipeline: CLIP tokenized by `tokenizers`


def missing_serving_files(folder: Path, task: Task) -> list[str]:
    return [name for name in serving_files(task) if not (Path(folder) / name).is_file()]


def write_serving_files(folder: Path, task: Task) -> None:
    """Write what `missing_serving_files` lists, from the tokenizer files already in `folder`."""
    folder = Path(folder)
    # Only the missing files are written: the others may be links to files this app does not own.
    missing = set(missing_serving_files(folder, task))
    if not missing:
        return
    from transformers import AutoTokenizer

    if task in (Task.TEXT_TO_IMAGE, Task.CONTROLNET_POSE):
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", use_fast=True)
        if SD_TOKENIZER in missing:
            tokenizer.backend_tokenizer.save(str(folder / SD_TOKENIZER))
    ov_tokenizer = (SD_OV_TOKENIZER, SD_OV_TOKENIZER.replace(".xml", ".bin"))
    if task is Task.TEXT_TO_IMAGE and missing & set(ov_tokenizer):
        import openvino as ov
        from openvino_tokenizers import convert_tokenizer

        for name in ov_tokenizer:  # a link to someone else's file is replaced, never written through
            (folder / name).unlink(missing_ok=True)
        ov.save_model(convert_tokenizer(tokenizer), str(folder / SD_OV_TOKENIZER))
    if TEXT_TOKENIZER in missing:
        AutoTokenizer.from_pretrained(folder, use_fast=True).backend_tokenizer.save(str(folder / TEXT_TOKENIZER))
    logger.info("%s: wrote the files served without torch (%s)", folder, ", ".join(serving_files(task)))
