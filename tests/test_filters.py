"""Each filter with rows it must reject and rows it must keep, multi-turn included."""

import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.config import LanguageConfig, RefusalConfig, TruncationConfig
from curation.stages import (
    LanguageStage,
    NearEmptyStage,
    RefusalCapStage,
    RefusalStage,
    RepetitionStage,
    TruncationStage,
)
from tests.helpers import batch_of, chat, reasons

PARAGRAPH = (
    "Photosynthesis is the process plants use to turn light into chemical energy. They take in carbon "
    "dioxide and water and, using sunlight, produce glucose and release oxygen. The glucose feeds the "
    "plant, and the oxygen is what animals breathe."
)


# -- near-empty -------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["", "   ", "...", "<nooutput>", "N/A", "-"])
def test_near_empty_rejected(answer):
    assert reasons(NearEmptyStage(), [answer]) == ["near_empty_response"]


@pytest.mark.parametrize("answer", ["4", "Yes.", "Paris", PARAGRAPH])
def test_short_real_answers_kept(answer):
    assert reasons(NearEmptyStage(), [answer]) == [None]


def test_near_empty_in_any_assistant_turn():
    assert reasons(NearEmptyStage(), [chat("Hi", "Hello!", "And?", "")]) == ["near_empty_response"]


# -- truncation -------------------------------------------------------------------------------

TRUNCATED = {
    "I can't really tell you a lot about that. There is a lot of overlap between groups, so it's": "mid_sentence",
    "Plants turn light into energy. They take in carbon dioxide and water and, using sunlight, produce gluc": "mid_sentence",
    "Here is the code:\n\n```python\ndef f(x):\n    return x": "unclosed_code_fence",
    "You will need:\n1. Flour\n2. Sugar\n3.": "dangling_list_item",
    "The main reasons are (": "dangling_punctuation",
    "First, preheat the oven to 200 degrees, then mix the flour and the": "mid_sentence",
    "Looking forward to seeing you,": "dangling_punctuation",
    "To install it, open the terminal and run the install com-": "mid_word",
}

COMPLETE = [
    PARAGRAPH,
    "The answer is 42",
    "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n#### 72",
    "Ingredients:\n- Flour\n- Sugar\n- Eggs",
    "def reverse(s):\n    return s[::-1]",
    "SELECT id, name\nFROM users\nORDER BY name",
    "```python\nprint('hi')\n```",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "Canberra",
    "Sincerely,\nJane Doe",
    "She will need to work 138 hours to pay all of her bills",
    "Go to Settings > Appearance and choose Dark. The change applies immediately.",
]


@pytest.mark.parametrize("answer, kind", list(TRUNCATED.items()))
def test_truncated_rejected(answer, kind):
    assert reasons(TruncationStage(), [answer]) == [f"truncated:{kind}"]


@pytest.mark.parametrize("answer", COMPLETE)
def test_complete_answers_kept(answer):
    assert reasons(TruncationStage(), [answer]) == [None]


def test_truncation_in_an_earlier_turn_of_a_multi_turn_chat():
    conv = chat("Hi", "Sure. Let me explain how the process works, starting with the", "Go on", "Done.")
    stage = TruncationStage()
    batch = stage.annotate(batch_of([conv]))
    assert batch["is_truncated"].to_pylist() == [True]
    assert list(stage.decide(batch)) == ["truncated:mid_sentence"]


def test_truncation_tag_only_mode():
    stage = TruncationStage(TruncationConfig(reject=False))
    batch = stage.annotate(batch_of(["Plants turn light into energy. And so the"]))
    assert batch["is_truncated"].to_pylist() == [True]
    assert list(stage.decide(batch)) == [None]


# -- repetition -------------------------------------------------------------------------------

LOOPS = [
    "Sure. " + "The capital of France is Paris. " * 12,
    "Here is the answer " + " ".join(["I am not sure what you mean"] * 15),
    "Steps:\n" + "\n".join(["Click the button and wait for the page to load."] * 8),
]

NOT_LOOPS = [
    PARAGRAPH,
    "Shopping list:\n- two litres of milk\n- a loaf of rye bread\n- six free-range eggs\n- a bag of apples\n"
    "- some cheddar cheese\n- ground coffee beans\n- washing-up liquid\n- kitchen paper rolls",
    "| Country | Capital | Population |\n|---|---|---|\n| France | Paris | 68 million |\n| Germany | Berlin | 84 million |\n"
    "| Italy | Rome | 59 million |\n| Spain | Madrid | 48 million |\n| Poland | Warsaw | 37 million |",
    "```python\nfor i in range(10):\n    print(i)\nfor i in range(10):\n    print(i)\nfor i in range(10):\n"
    "    print(i)\nfor i in range(10):\n    print(i)\nfor i in range(10):\n    print(i)\n```\nThis prints 0 to 9 five times.",
    "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n"
    "In June she sold 72/3 = 24 clips, so over the three months she sold 72+24 = 96 clips in total.\n#### 96",
]


@pytest.mark.parametrize("answer", LOOPS)
def test_loops_rejected(answer):
    [reason] = reasons(RepetitionStage(), [answer])
    assert reason is not None and reason.startswith("repetition:")


@pytest.mark.parametrize("answer", NOT_LOOPS)
def test_lists_tables_code_prose_kept(answer):
    assert reasons(RepetitionStage(), [answer]) == [None]


def test_repetition_scores_are_columns_and_multi_turn_takes_the_worst_turn():
    stage = RepetitionStage()
    batch = stage.annotate(batch_of([chat("Hi", PARAGRAPH, "More?", LOOPS[0]), PARAGRAPH]))
    dup5 = batch["rep_dup_5gram_frac"].to_pylist()
    assert dup5[0] > 0.6 and dup5[1] == 0.0
    assert list(stage.decide(batch))[1] is None


def test_short_answers_not_scored():
    batch = RepetitionStage().annotate(batch_of(["Yes yes yes."]))
    assert np.isnan(batch["rep_unique_word_ratio"][0].as_py())


# -- refusal ----------------------------------------------------------------------------------

REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "As an AI language model, I don't have personal opinions.",
    "Sure! However, I cannot provide instructions for that.",
    "I’m not able to help with this request.",
    "I apologize, but that is not something I can do.",
]
NOT_REFUSALS = [
    "I cannot stress enough how important sleep is.",
    "Sorry to hear that! Try restarting the app.",
    PARAGRAPH,
    "You can't go wrong with a good book.",
]


@pytest.mark.parametrize("answer", REFUSALS)
def test_refusals_tagged_not_dropped(answer):
    stage = RefusalStage()
    batch = stage.annotate(batch_of([answer]))
    assert batch["is_refusal"].to_pylist() == [True]
    assert list(stage.decide(batch)) == [None]


@pytest.mark.parametrize("answer", NOT_REFUSALS)
def test_non_refusals_not_tagged(answer):
    assert RefusalStage().annotate(batch_of([answer]))["is_refusal"].to_pylist() == [False]


def test_refusal_reject_mode():
    assert reasons(RefusalStage(RefusalConfig(reject=True)), [REFUSALS[0], PARAGRAPH]) == ["refusal", None]


def test_refusal_share_cap_is_exact_and_deterministic():
    answers = [f"I'm sorry, but I can't help with request {i}." for i in range(6)] + [
        f"Answer {i}." for i in range(4)
    ]
    batch = RefusalStage().annotate(batch_of(answers))
    cap = RefusalCapStage(max_share=0.5, seed=1)
    decided = list(cap.decide(batch))
    removed = [r for r in decided if r]
    assert len(removed) == 2  # 4 refusals + 4 others = 50%
    assert decided == list(RefusalCapStage(max_share=0.5, seed=1).decide(batch))


# -- language ---------------------------------------------------------------------------------


def test_language_keeps_configured_languages():
    answers = [
        PARAGRAPH,
        "La capital de Francia es París, una ciudad famosa por la Torre Eiffel y sus cafés.",
        "Eine Wärmepumpe entzieht der Umgebung Wärme und hebt sie auf ein höheres Temperaturniveau.",
    ]
    convs = [
        chat(q, a)
        for q, a in zip(
            ["Explain photosynthesis.", "¿Cuál es la capital?", "Wie geht das?"], answers, strict=True
        )
    ]
    stage = LanguageStage()
    batch = stage.annotate(batch_of(convs))
    assert batch["lang"].to_pylist() == ["en", "es", "de"]
    assert all(s > 0.5 for s in batch["lang_score"].to_pylist())
    assert list(stage.decide(batch)) == [None, "language:es", "language:de"]


def test_code_only_conversations_are_undetermined_and_kept():
    batch = LanguageStage().annotate(
        batch_of([chat("f(x)=?", "```python\ndef f(x):\n    return x * 2\n```")])
    )
    assert batch["lang"].to_pylist() == ["und"]
    assert list(LanguageStage().decide(batch)) == [None]


def test_empty_keep_list_keeps_everything():
    stage = LanguageStage(LanguageConfig(keep=[]))
    assert reasons(stage, ["La capital de Francia es París, una ciudad famosa por la Torre Eiffel."]) == [
        None
    ]


# -- the one-pass regex helpers the stages use, against the per-match forms they replace ---------

spaced_text = st.text(
    alphabet=st.sampled_from(list("ab é東\t\n\r\x0b\x0c\x85\xa0\u2003\u3000  1.,!")), min_size=0, max_size=40
)


# The single alternation the truncation stage's "not prose" check used to be (the oracle).
NOT_PROSE_ONE_REGEX = (
    r"^\s*(?:[-*+•#>|]|\d+[.)]|```|\s{4}|\t)|[{};]|==|=>|\w\(|\s=\s|"
    r"^\s*(?:def|return|import|from|class|for|if|while|print|SELECT|FROM|WHERE)\b"
)
code_line = st.lists(
    st.sampled_from(
        [
            "def",
            "return",
            "if",
            "SELECT",
            "x",
            "é",
            " ",
            "  ",
            "    ",
            "\t",
            "(",
            ")",
            "=",
            "==",
            "=>",
            "{",
            "}",
            ";",
            "-",
            "*",
            "#",
            ">",
            "|",
            "1",
            "2.",
            "3)",
            "```",
            "f(",
            "a = b",
            "print",
            "defer",
            ".",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(code_line, min_size=1, max_size=10))
def test_truncation_not_prose_check_equals_the_single_regex(lines):
    from curation.stages.truncation import _not_prose

    df = pl.DataFrame({"l": pl.Series(lines, dtype=pl.String)})
    split = df.select(_not_prose(pl.col("l"))).to_series().to_list()
    assert split == df.select(pl.col("l").str.contains(NOT_PROSE_ONE_REGEX)).to_series().to_list()


@settings(max_examples=200, deadline=None)
@given(st.lists(spaced_text, min_size=1, max_size=8), st.integers(0, 70))
def test_one_pass_text_helpers_equal_the_per_match_forms(texts, n):
    from curation.stages.turns import has_letters, has_words, single_spaced

    s = pl.Series("t", texts, dtype=pl.String)
    df = pl.DataFrame({"t": s})
    assert df.select(single_spaced(pl.col("t")))["t"].to_list() == [re.sub(r"\s+", " ", t) for t in texts]
    assert df.select(has_words(pl.col("t"), n)).to_series().to_list() == [len(t.split()) >= n for t in texts]
    letters = [sum(ch.isalpha() for ch in t) for t in texts]
    alnum = df.select(pl.col("t").str.len_chars() - pl.col("t").str.count_matches(r"[^\p{L}\p{N}]"))
    assert (
        alnum.to_series().to_list()
        == df.select(pl.col("t").str.count_matches(r"[\p{L}\p{N}]")).to_series().to_list()
    )
    assert df.select(has_letters(pl.col("t"), n)).to_series().to_list() == [k >= n for k in letters]
