"""Readers on the real public data in ../shared/data (skipped with a reason when absent)."""

import json

import pytest

from curation.config import SourceConfig
from curation.io.reader import read_source
from tests.conftest import shared

pytestmark = pytest.mark.shared_data


def test_fastchat_sharegpt_500_conversations_roles_mapped():
    r = read_source(SourceConfig(name="fc", path=str(shared("FastChat/dummy_conversation.json"))))
    assert r.raw_rows == 500 and r.records.num_rows == 500 and r.quarantine.num_rows == 0
    assert r.inputs[0]["format"] == "sharegpt"
    first = r.records["messages"][0].as_py()
    assert first[0] == {"role": "user", "content": "Who are you?"}
    assert first[1]["role"] == "assistant" and first[1]["content"].startswith("I am Vicuna")
    roles = {m["role"] for conv in r.records["messages"].to_pylist() for m in conv}
    assert roles == {"user", "assistant"}


def test_hh_rlhf_transcripts_split_into_alternating_turns():
    r = read_source(SourceConfig(name="hh", path=str(shared("hh-rlhf/test.jsonl.gz"))))
    assert r.raw_rows == 2312
    assert r.records.num_rows + r.quarantine.num_rows == 2312
    # A few real transcripts have an "Assistant:" turn following another one: quarantined, with the field.
    assert 0 < r.quarantine.num_rows < 20
    assert set(r.quarantine["reason"].to_pylist()) == {"assistant turn after assistant"}
    first = r.records["messages"][0].as_py()
    assert [m["role"] for m in first[:4]] == ["user", "assistant", "user", "assistant"]
    assert first[0]["content"] == "what are some pranks with a pen i can do?"
    assert first[2]["content"] == "yep"
    meta = r.records["meta"][0].as_py()
    assert '"rejected"' in meta  # the unused field is kept verbatim


def test_gsm8k_alpaca_7473_rows():
    r = read_source(SourceConfig(name="gsm", path=str(shared("AlpacaDataCleaned/gsm_8k_train.json"))))
    assert r.records.num_rows == 7473 and r.quarantine.num_rows == 0
    conv = r.records["messages"][0].as_py()
    assert conv[0]["content"].startswith("Natalia sold clips to 48 of her friends")
    assert conv[1]["content"].startswith("Natalia sold 48/2 = 24 clips in May.")


def test_self_instruct_one_conversation_per_instance():
    path = shared("self-instruct/seed_tasks.jsonl")
    instances = sum(len(json.loads(line)["instances"]) for line in path.open())
    r = read_source(SourceConfig(name="si", path=str(path)))
    assert r.raw_rows == 175
    assert r.records.num_rows == instances
    assert r.expanded == instances - 175
    assert r.inputs[0]["format"] == "self_instruct"


def test_humaneval_through_a_column_mapping():
    r = read_source(
        SourceConfig(
            name="he",
            path=str(shared("human-eval/HumanEval.jsonl.gz")),
            columns={"prompt": "prompt", "response": "canonical_solution"},
        )
    )
    assert r.records.num_rows == 164
    conv = r.records["messages"][0].as_py()
    assert conv[0]["content"].startswith("from typing import List\n\n\ndef has_close_elements")
    assert conv[1]["content"].startswith("    for idx, elem in enumerate(numbers):")
    meta = json.loads(r.records["meta"][0].as_py())
    assert meta["task_id"] == "HumanEval/0" and meta["entry_point"] == "has_close_elements"
