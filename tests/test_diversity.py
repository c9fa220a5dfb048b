"""Task types (rules file, word boundaries, real data) and diversity metrics on hand-computed cases."""

import json
import math

import polars as pl
import pytest

from curation.config import TaskTypeConfig
from curation.diversity.metrics import distinct_n, distribution, entropy, metrics, shares
from curation.diversity.task_types import load_rules
from curation.errors import ConfigError
from curation.stages.task_type import TaskTypeStage
from tests.conftest import shared
from tests.helpers import batch_of, chat


def types_of(*convs):
    batch = TaskTypeStage().annotate(batch_of(list(convs)))
    return batch["task_type"].to_pylist()


def test_task_types_from_prompt_and_response():
    assert types_of(
        chat("Write a Python function that reverses a list.", "def rev(x): return x[::-1]"),
        chat("Do this for me", "```js\nconsole.log(1)\n```"),  # a code fence in the answer means code
        chat("Natalia sold clips to 48 friends.", "She sold 48/2 = <<48/2=24>>24 clips."),
        chat("Summarize this article in two sentences: ...", "..."),
        chat("Rewrite this paragraph so it sounds more formal.", "..."),
        chat("Classify the sentiment of this review as positive or negative.", "Positive."),
        chat("Write a haiku about autumn.", "Leaves fall..."),
        chat("Give me some ideas for a birthday party.", "1. ..."),
        chat("Hello! How are you today?", "I'm well."),
        chat("Why is the sky blue?", "Rayleigh scattering."),
        chat("Lorem ipsum dolor sit amet", "..."),
    ) == [
        "code",
        "code",
        "math_reasoning",
        "summarization",
        "rewriting_editing",
        "classification_extraction",
        "creative_writing",
        "brainstorming",
        "chit_chat",
        "question_answering",
        "other",
    ]


def test_word_boundaries_not_substrings():
    # The tutorial heuristic's substring tests call these questions or code; the rules do not.
    assert types_of(
        chat("Whatever happens, stay calm and carry on.", "OK."),
        chat("Showcase the best photos from my trip.", "Sure."),
        chat("Describe a bugle call.", "It is a short tune."),
    ) == ["other", "other", "question_answering"]


def test_rules_file_is_editable_and_errors_name_the_rule(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("types: [greeting, other]\nrules:\n  - type: greeting\n    prompt: ['\\bahoy\\b']\n")
    stage = TaskTypeStage(TaskTypeConfig(rules=str(rules)))
    batch = stage.annotate(batch_of([chat("Ahoy there!", "Hi."), chat("What is 2+2?", "4")]))
    assert batch["task_type"].to_pylist() == ["greeting", "other"]
    rules.write_text("rules:\n  - type: x\n    prompt: ['(unclosed']\n")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.prompt\[0\]"):
        load_rules(rules)
    rules.write_text("rules:\n  - type: x\n    prmpt: ['a']\n")
    with pytest.raises(ConfigError, match="unknown key.*prmpt"):
        load_rules(rules)


def test_task_types_agree_with_mt_bench_categories():
    path = shared("FastChat/question.jsonl")
    from bench.task_types import MT_BENCH

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    df = pl.DataFrame({"prompt": [r["turns"][0] for r in rows], "response": [""] * len(rows)})
    got = load_rules().classify(df).to_list()
    agree = sum(t in MT_BENCH[r["category"]] for r, t in zip(rows, got, strict=True)) / len(rows)
    assert agree >= 0.75  # measured 78.8% (bench/RESULTS.md)
    coding = [t for r, t in zip(rows, got, strict=True) if r["category"] == "coding"]
    assert coding == ["code"] * 10


def test_entropy_hand_computed():
    assert entropy(["a", "a", "b", "b"]) == {"bits": 1.0, "normalized": 1.0, "categories": 2}
    e = entropy(["a", "b", "c", "d"], n_categories=16)
    assert e["bits"] == pytest.approx(2.0) and e["normalized"] == pytest.approx(0.5)
    p = [0.5, 0.25, 0.25]
    assert entropy(["x", "x", "y", "z"])["bits"] == pytest.approx(-sum(q * math.log2(q) for q in p))
    assert entropy(["x"] * 5)["bits"] == 0.0
    assert entropy([])["bits"] == 0.0


def test_distinct_n_hand_computed():
    texts = pl.Series(["the cat sat", "the cat ran"])
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)  # the, cat, sat, ran of 6 words
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # "the cat" twice, "cat sat", "cat ran"
    assert distinct_n(pl.Series(["one"]), 2) == 0.0  # no bigram across documents


def test_distribution_and_shares():
    d = distribution([1, 2, 3, 4, 100])
    assert d["mean"] == 22 and d["p50"] == 3 and d["max"] == 100 and d["count"] == 5
    assert shares(["en", "en", "fr", None]) == {"en": 0.5, "fr": 0.25, "unknown": 0.25}


def test_metrics_of_a_batch():
    batch = TaskTypeStage().annotate(batch_of([chat("Why?", "Because."), chat("Write a poem", "Roses.")]))
    m = metrics(batch, load_rules().types)
    assert m["rows"] == 2
    assert m["task_types"] == {"question_answering": 0.5, "creative_writing": 0.5}
    assert m["task_type_entropy"]["bits"] == pytest.approx(1.0)
    assert m["task_type_entropy"]["normalized"] == pytest.approx(1 / math.log2(10))
    assert m["distinct_1"] == 1.0
