"""The timing dict: one typed record per task, the keys the API page lists, None-only keys left out."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pipelines.core.diffusion import DiffusionTiming
from pipelines.core.protocol import Timing
from pipelines.tasks.classification import ClassificationTiming
from pipelines.tasks.controlnet import DetectionTiming, GenerationTiming
from pipelines.tasks.sd import ImageTiming
from pipelines.tasks.translation import TranslationTiming

API = Path(__file__).resolve().parents[2] / "docs" / "api.md"
RECORDS = (TranslationTiming, ClassificationTiming, ImageTiming, DetectionTiming, GenerationTiming)
COMMON = {"backend", "precision", "latency_ms", "memory_mb", "model", "model_source", "standin", "build", "task"}


def made(record: type[Timing], **given) -> Timing:
    """`record` with every field given a value of its type (a number, a word, True)."""
    values = {}
    for each in dataclasses.fields(record):
        if not each.init or each.name == "remote":
            continue
        kind = str(each.type)
        values[each.name] = 3 if "int" in kind else 2.5 if "float" in kind else True if "bool" in kind else "x"
    return record(**{**values, **given})


def documented_keys(record: type[Timing]) -> set[str]:
    """The keys the API page lists in `record`'s row, and in the row every run has."""
    rows = [
        line
        for line in API.read_text().splitlines()
        if line.startswith("|") and (f"(`{record.__name__}`)" in line or "(`Timing`)" in line)
    ]
    return {key for row in rows for key in re.findall(r"`([a-z_]+)`", row.split("|")[2])}


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_every_key_of_every_record_is_on_the_api_page(record):
    keys = set(made(record).to_dict())
    assert keys >= COMMON
    assert keys == documented_keys(record) - {"remote_calls", "round_trip_ms", "server_ms", "server_ms_note"}


def test_a_model_servers_accounting_is_keys_of_their_own():
    remote = {"remote_calls": 2, "round_trip_ms": 3.0, "server_ms": None}
    timing = made(TranslationTiming, remote=remote).to_dict()
    assert "remote" not in timing and timing["server_ms"] is None and timing["remote_calls"] == 2


def test_zero_shot_keys_only_for_zero_shot():
    assert "labels" not in made(ClassificationTiming, labels=None, labels_cached=None).to_dict()
    assert made(ClassificationTiming, labels=4, labels_cached=1).to_dict()["labels"] == 4


def test_tokens_per_second_follow_the_latency_as_reported():
    assert made(TranslationTiming, new_tokens=20, latency_ms=500.0).to_dict()["tokens_per_s"] == 40.0
    assert made(TranslationTiming, new_tokens=0, latency_ms=500.0).to_dict()["tokens_per_s"] == 0.0


def test_both_image_tabs_share_the_diffusion_fields():
    shared = {f.name for f in dataclasses.fields(DiffusionTiming)} - {"remote"}
    assert shared <= set(made(ImageTiming).to_dict()) and shared <= set(made(GenerationTiming).to_dict())
