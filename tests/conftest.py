from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SFT_SHARED_DATA", ROOT.parent / "shared" / "data"))

CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France. Berlin is the capital of Germany.",
    "def add(a, b):\n    return a + b\n",
    "Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 clips altogether.",
    "I'm sorry, but I can't help with that. As an AI language model, I cannot do it.",
    "¿Cuál es la capital de Francia? La capital de Francia es París.",
] * 20


def shared(path: str) -> Path:
    """A file in ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA / path
    if not p.exists():
        pytest.skip(f"real data not available: {p} (the shared data folder sits beside the checkout in CI)")
    return p


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A small byte-level BPE tokenizer with a ChatML template, trained here (no downloads)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHATML
    path = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(path)
    fast.name_or_path = str(path)
    return fast


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_tokenizer) -> str:
    return tiny_tokenizer.name_or_path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A 2-layer Llama with the tiny tokenizer, saved as a model folder (random weights)."""
    torch = pytest.importorskip("torch", reason="needs the 'train' extra")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tiny_tokenizer.pad_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
        bos_token_id=tiny_tokenizer.bos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def curated_run(tmp_path_factory, tiny_tokenizer_dir):
    """The bundled sample's support and code sources curated with the tiny tokenizer (no dedup:
    plenty of repetitive rows for the training plumbing tests)."""
    from curation.config import load_config
    from curation.run.pipeline import run_curation

    cfg = load_config(ROOT / "data" / "sample.yaml")
    cfg.stages.length.tokenizer = tiny_tokenizer_dir
    cfg.sources = [s for s in cfg.sources if s.name in ("support", "code")]
    cfg.stages.exact_dedup.enabled = False
    cfg.stages.near_dedup.enabled = False
    out = tmp_path_factory.mktemp("curated") / "tinyrun"
    run_curation(cfg, out=out, workers=1)
    return out
