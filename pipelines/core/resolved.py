"""What resolving a model gives: the folder its OpenVINO IR is in, where its PyTorch baseline loads from,
and where both came from (`sources.resolve` decides it; everything that serves a model reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pipelines.core.registry import ModelSpec


class Source(str, Enum):
    LOCAL = "local folder"
    HUB_IR = "OpenVINO IR from the Hub"
    HUB_EXPORTED = "exported from the Hub"
    PACKAGED = "packaged weights, exported locally"
    STANDIN = "stand-in (random weights)"


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    ir_dir: Path
    torch_ref: str
    """Where the PyTorch baseline loads from: a folder or a Hub repo id."""
    source: Source
    detail: str = ""

    @property
    def is_standin(self) -> bool:
        return self.source is Source.STANDIN

    def describe(self) -> str:
        """Where the model came from, fit for the browser: a Hub id or a neutral label, never a server path."""
        return f"{self.source.value}: {self.detail or self.spec.key}"

    @property
    def baseline_label(self) -> str:
        """Where the PyTorch baseline comes from, fit for the browser: a Hub repo id, never a server path."""
        if self.torch_ref == self.spec.torch_repo:
            return self.torch_ref
        return {
            Source.STANDIN: "local stand-in (random weights)",
            Source.PACKAGED: f"packaged weights ({self.detail})",
        }.get(self.source, "local folder")
