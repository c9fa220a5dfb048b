"""ASCII word boundaries where they are exact: the same matches as the patterns as written."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.diversity.task_types import load_rules
from curation.stages.refusal import REFUSAL_PATTERN
from curation.stages.word_boundaries import ascii_word_boundaries, ascii_words, identity, select_by_ascii
from tests.conftest import shared


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\bfoo\b", r"(?-u:\b)foo(?-u:\b)"),
        (r"\Bx", r"(?-u:\B)x"),
        (r"(?i)\b(?:a|b)$", r"(?i)(?-u:\b)(?:a|b)$"),
        (r"[\b]x\b", r"[\b]x(?-u:\b)"),  # inside a class it is not a boundary
        (r"\\b", r"\\b"),  # an escaped backslash, then "b"
        (r"\b{start}x", r"\b{start}x"),
        (r"[]\b]\b", r"[]\b](?-u:\b)"),
        (r"[^]a]\b", r"[^]a](?-u:\b)"),
        (r"[[:alpha:]\b]\b", r"[[:alpha:]\b](?-u:\b)"),
        (r"[a-z&&[^b]]\b", r"[a-z&&[^b]](?-u:\b)"),
        (r"no boundary", r"no boundary"),
    ],
)
def test_ascii_word_boundaries_rewrites_only_boundaries(pattern, expected):
    assert ascii_word_boundaries(pattern) == expected


def test_ascii_words_ignores_non_ascii_punctuation_only():
    texts = pl.Series(["it’s “quoted” — fine", "café", "plain", "٣ digits", "a‿b", ""])
    got = pl.DataFrame({"t": texts}).select(ascii_words(pl.col("t"))).to_series().to_list()
    assert got == [True, False, True, False, False, True]


PATTERNS = [
    REFUSAL_PATTERN,
    r"\b(code|api|bug)\b",
    r"\bsum of\b",
    r"(?i)\b(?:the|a)$",
    r"\Bing\b",
    r"^\s*(?:def|return)\b",
]
ALPHABET = list("abcdeinotsu ACI_09'.,\n") + ["é", "ü", "’", "“", "—", "٣", "‿", "東", "Ω", "\u0301"]
WORDS = [
    "code",
    "api",
    "bug",
    "sum of",
    "the",
    "a",
    "sing",
    "def",
    "I cannot help",
    "as an AI",
    "I’m sorry, but",
]


@st.composite
def texts(draw):
    parts = draw(st.lists(st.one_of(st.sampled_from(WORDS), st.text(ALPHABET, max_size=6)), max_size=8))
    return "".join(draw(st.sampled_from(["", " ", "é", "’", "_"])) + p for p in parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=12))
def test_select_by_ascii_finds_what_the_patterns_as_written_find(rows):
    df = pl.DataFrame({"t": rows}, schema={"t": pl.String})

    def exprs(regex):
        return [pl.col("t").str.contains(regex(p)).alias(f"p{i}") for i, p in enumerate(PATTERNS)]

    assert select_by_ascii(df, ascii_words(pl.col("t")), exprs).equals(df.select(exprs(identity)))


def test_select_by_ascii_keeps_row_order_and_nulls():
    df = pl.DataFrame({"t": ["café code", None, "code", "naïve", "the bug"]})
    got = select_by_ascii(df, ascii_words(pl.col("t")), lambda r: [pl.col("t").str.contains(r(r"\bcode\b"))])
    assert got.to_series().to_list() == [True, None, True, False, False]


@pytest.mark.shared_data
def test_task_types_and_refusals_on_the_real_data_equal_the_unicode_patterns(monkeypatch):
    from curation.config import SourceConfig
    from curation.diversity import task_types
    from curation.io.reader import read_source
    from curation.stages import RefusalStage
    from curation.stages import refusal as refusal_module
    from curation.stages.task_type import first_turns

    paths = [
        "FastChat/dummy_conversation.json",
        "hh-rlhf/test.jsonl.gz",
        "AlpacaDataCleaned/gsm_8k_train.json",
    ]
    records = [read_source(SourceConfig(name="real", path=str(shared(p)))).records for p in paths]
    rules = load_rules()

    def labels():
        types = [t for r in records for t in rules.classify(first_turns(r)).to_list()]
        refusals = [x for r in records for x in RefusalStage().score(r)["is_refusal"].tolist()]
        return types, refusals

    fast = labels()
    as_written = lambda d, _mask, exprs: d.select(exprs(identity))  # noqa: E731
    monkeypatch.setattr(task_types, "select_by_ascii", as_written)
    monkeypatch.setattr(refusal_module, "select_by_ascii", as_written)
    assert labels() == fast
    assert len(set(fast[0])) >= 6 and sum(fast[1]) > 10  # real labels, not all the same
