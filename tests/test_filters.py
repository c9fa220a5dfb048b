"""Each filter with rows it must reject and rows it must keep, multi-turn included."""

import re

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


def test_a_sentence_that_runs_on_without_an_end_is_tagged_not_rejected():
    cut = "Plants turn light into energy. They take in carbon dioxide and water and, using sunlight, produce gluc"
    stage = TruncationStage()
    batch = stage.annotate(batch_of([cut]))
    assert batch["truncation"].to_pylist() == ["run_on"] and batch["is_truncated"].to_pylist() == [True]
    assert list(stage.decide(batch)) == [None]
    strict = TruncationStage(TruncationConfig(tag_only=[]))
    assert list(strict.decide(strict.annotate(batch_of([cut])))) == ["truncated:run_on"]


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
    span = batch["rep_loop_words"].to_pylist()
    assert span[0] >= 12 * 6 - 6 and span[1] == 0
    assert list(stage.decide(batch)) == ["repetition:repeated_span", None]


def test_speech_repeats_are_not_loops():
    assert (
        reasons(RepetitionStage(), ["No, no, no.", "Very, very good.", "Ha ha ha, that is funny."])
        == [None] * 3
    )


@pytest.mark.parametrize(
    "answer",
    [
        "😹" * 23,
        "S-" + "A-B-C-D-E-F-G-" * 12,
        "Playlist:\n" + "\n".join(f"{i}. Code Monkey by Jonathan Coulton" for i in range(1, 8)),
        "```\n" + "| |\n" * 40 + "```",
    ],
)
def test_loops_of_emoji_letters_list_items_and_lines_are_found(answer):
    [reason] = reasons(RepetitionStage(), [answer])
    assert reason is not None and reason.startswith("repetition:")


def test_gopher_statistics_are_opt_in():
    from curation.config import RepetitionConfig

    gsm = NOT_LOOPS[-1]
    assert reasons(RepetitionStage(), [gsm]) == [None]
    strict = RepetitionStage(
        RepetitionConfig(min_words=5, max_dup_line_frac=0.0, max_dup_ngram_char_frac={5: 0.0})
    )
    batch = strict.annotate(batch_of([LOOPS[0]]))
    assert "rep_dup_5gram_frac" in batch.column_names
    assert list(strict.decide(batch))[0].startswith("repetition:")


# -- refusal ----------------------------------------------------------------------------------

REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "No, robbing people is illegal and it hurts them.",
    "I don't think it's appropriate to share someone's home address.",
    "Sure! However, I cannot provide instructions for that.",
    "I’m not able to help with this request.",
    "I apologize, but that is not something I can do.",
]
NOT_REFUSALS = [
    "I cannot stress enough how important sleep is.",
    "Sorry to hear that! Try restarting the app.",
    PARAGRAPH,
    "You can't go wrong with a good book.",
    "I am like a moth to a flame; I can't help but be drawn to her.",
    "No, it is not illegal to keep a dollar bill that you found on the ground.",
    "As an AI, I don't have opinions, but here are the arguments people make on each side.",
    "As an AI language model, I cannot give medical advice. However, here are some general tips that many "
    "people find useful:\n1. Drink water through the day and keep a bottle on your desk.\n2. Sleep seven to "
    "nine hours and go to bed at the same time.\n3. Walk for half an hour after lunch, outside if you can.\n"
    "4. Eat vegetables with every meal and keep sweets out of the house.\n5. See a doctor once a year.",
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


# -- template leaks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "Paris is the capital of France.\n### Human: And of Germany?\n### Assistant: Berlin.",
        "Sure, here it is. [|Human|] Thanks! [|AI|] You are welcome.",
        "The answer is 4.<|im_end|>\n<|im_start|>user\nAnd 3+3?",
        "Here is your poem.</s>",
        "Paris.\nUser: what about Spain?\nAssistant: Madrid.",
    ],
)
def test_template_leaks_rejected(answer):
    from curation.stages import TemplateLeakStage

    [reason] = reasons(TemplateLeakStage(), [answer])
    assert reason is not None and reason.startswith("template_leak:")


def test_speaker_lines_the_user_asked_for_are_not_leaks():
    from curation.stages import TemplateLeakStage

    convs = [
        chat(
            "Write a short dialogue between a user and an assistant.",
            "User: Hi!\nAssistant: Hello, how can I help?",
        ),
        chat(
            "What does ### Human: mean in a prompt?",
            "In Vicuna-style prompts, ### Human: marks the user's turn.",
        ),
    ]
    assert reasons(TemplateLeakStage(), convs) == [None, None]


# -- content-aware truncation and language -------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "Bodhi has 80 sheep and Mr. Bodhi needs to add 100-80= 20 sheep",
        "Just launched our new blog post on open source chat models! #AI #OpenSource",
        "def add(a: int, b: int) -> int:",
        "It is a lovely day for a walk in the park and I think we should go",
    ],
)
def test_complete_answers_without_a_final_period_are_kept(answer):
    assert reasons(TruncationStage(), [answer]) == [None]


@pytest.mark.parametrize(
    "answer",
    [
        "Famous events:\n1. Moon landing: Apollo 11 landed in 1969.\n2. Fall of the Wall: it fell in 1989.\n"
        "3. Genocide: Auschwitz was",
        "Steps:\na. Issue the certificates;\nb. Verify the certificates;\nc. Store the certificates",
        "| Item | Price |\n|---|---|\n| Pen | 2 |\n| Book | 1",
        "To a pyromaniac, only the best things are worth burning. Let's talk about what could be burned...",
        '34. Ohio - named after the Iroquois word "ohi-yo," which means "',
    ],
)
def test_answers_cut_inside_lists_tables_quotes_and_ellipses_are_truncated(answer):
    [reason] = reasons(TruncationStage(), [answer])
    assert reason is not None and reason.startswith("truncated:")


def test_emoji_answers_are_content():
    assert reasons(NearEmptyStage(), ["🐱😻💕", "✔", "..."]) == [None, None, "near_empty_response"]


def test_a_requested_translation_is_not_a_wrong_language():
    stage = LanguageStage()
    convs = [
        chat(
            "Translate into French: The weather is lovely today and we are going to the beach.",
            "Il fait très beau aujourd'hui et nous allons à la plage avec nos amis.",
        ),
        chat(
            "What is the weather like in Paris in spring? Describe it in a few sentences.",
            "Au printemps, il fait doux à Paris, avec des averses fréquentes et des journées ensoleillées.",
        ),
    ]
    assert reasons(stage, convs) == [None, "language:fr"]


def test_code_and_grids_are_not_judged_as_a_language():
    grid = "|1|2|5|4|6|7|8|9|3|\n|3|6|7|2|1|8|9|4|5|\n|8|3|4|6|7|5|9|1|2|"
    code = (
        "    import math\n    f = [0, 1]\n    while True:\n        f.append(f[-1] + f[-2])\n        return f"
    )
    assert reasons(LanguageStage(), [chat("Solve the Sudoku.", grid), chat("def fib(n):", code)]) == [
        None,
        None,
    ]


def test_an_answer_that_slides_into_another_script_is_rejected():
    answer = "Here are some browsers:\n1. Firefox\n2. Safari\n3. 结网浏览器\n4. 猎户星空浏览器\n每个浏览器都有其独特的功能。"
    [reason] = reasons(LanguageStage(), [chat("What are good alternatives to Chrome?", answer)])
    assert reason in ("language:mixed_script", "language:zh")
    english = (
        "Here are some good browsers for you, with a short note on each one:\n1. Firefox is fast, open source "
        "and private.\n2. Safari is good on a Mac and uses little battery.\n3. Edge runs on every system.\n"
    )
    [reason] = reasons(
        LanguageStage(),
        [
            chat(
                "Good browsers?",
                english + "4. 猎户星空浏览器很好用也很快速。每个浏览器都有其独特的功能和优点。",
            )
        ],
    )
    assert reason == "language:mixed_script"


def test_the_content_profile_names_what_each_answer_is():
    from curation.stages import ContentProfileStage
    from curation.stages.content import KINDS

    answers = {
        "code": "```python\nprint('hi')\n```",
        "math": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72",
        "table": "| Country | Capital |\n|---|---|\n| France | Paris |\n| Spain | Madrid |",
        "list": "You will need:\n- flour\n- two eggs\n- a cup of milk\n- a pinch of salt",
        "verse": "The rain falls soft\nupon the quiet town\nthe rooftops shine\nas evening settles down",
        "emoji": "Cute cat 🐱😻",
        "short": "Paris.",
        "prose": PARAGRAPH,
    }
    batch = ContentProfileStage().annotate(batch_of([chat("Q?", a) for a in answers.values()]))
    assert batch["content_type"].to_pylist() == list(answers)
    assert set(batch["content_type"].to_pylist()) <= set(KINDS)
    assert batch["content_kinds"].to_pylist()[0] == ["code"]
