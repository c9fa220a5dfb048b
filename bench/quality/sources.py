"""Which files of ``../shared/data`` the quality set draws from, and how each is read.

A labelled row is named by (``file``, ``row``): ``file`` is the path under ``../shared/data`` and
``row`` the index of the conversation in what ``read_source`` returns for that file (for
self-instruct that is one conversation per instance, not per line). ``id`` (the hash of the
normalized conversation) is stored beside it as a check that the row is still the same text.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pyarrow as pa

from curation.config import SourceConfig
from curation.io.reader import read_source

# As in tests/conftest.py: ../shared/data beside the checkout, or SFT_SHARED_DATA.
SHARED_DATA = Path(os.environ.get("SFT_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))

ALPACA_EVAL_MODELS = (
    "alpaca-7b",
    "baize-v2-7b",
    "chatglm2-6b",
    "gemma-2b-it",
    "guanaco-7b",
    "llama-2-7b-chat-hf",
    "minichat-3b",
    "phi-2",
    "pythia-12b-mix-sft",
    "Qwen1.5-1.8B-Chat",
)

# file under ../shared/data -> extra SourceConfig fields (format detection does the rest)
SOURCES: dict[str, dict] = {
    **{f"alpaca_eval_outputs/{m}.json.gz": {} for m in ALPACA_EVAL_MODELS},
    "grade-school-math/test.jsonl.gz": {"columns": {"prompt": "question", "response": "answer"}},
    "AlpacaDataCleaned/gsm_8k_train.json": {},
    "hh-rlhf/test.jsonl.gz": {},
    "FastChat/dummy_conversation.json": {},
    "self-instruct/seed_tasks.jsonl": {},
    "self-instruct/user_oriented_instructions.jsonl": {},
    "human-eval/HumanEval.jsonl.gz": {"columns": {"prompt": "prompt", "response": "canonical_solution"}},
}


def source_name(file: str) -> str:
    """A source name the config accepts, unique per file."""
    stem = file.replace("/", "__")
    for suffix in (".gz", ".jsonl", ".json"):
        stem = stem.removesuffix(suffix)
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in stem)[:64]


@functools.cache
def read_file(file: str, root: Path = SHARED_DATA) -> pa.Table:
    """The conversations of one shared file, as the project's reader returns them."""
    cfg = SourceConfig(name=source_name(file), path=str(root / file), **SOURCES[file])
    return read_source(cfg).records
