"""The vectorized repetition scores against a plain per-text reading of their definitions."""

import math
import re
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.stages.repetition import DUP_NS, TOP_NS, _score_names, repetition_scores


def reference_scores(text: str, min_words: int) -> dict[str, float]:
    """Each score for one text, by its definition (Gopher's repetition statistics)."""
    text = re.sub(r"(?s)```.*?```", " ", text)
    words = text.lower().split()
    if len(words) < min_words:
        return dict.fromkeys(_score_names(), math.nan)
    chars = sum(map(len, words))
    out = {"rep_unique_word_ratio": len(set(words)) / len(words)}
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    seen, dup, dup_chars = set(), 0, 0
    for line in lines:
        if line in seen:
            dup, dup_chars = dup + 1, dup_chars + len(line)
        seen.add(line)
    out["rep_dup_line_frac"] = dup / len(lines)
    out["rep_dup_line_char_frac"] = dup_chars / max(sum(map(len, lines)), 1)
    for n in TOP_NS:
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        cover = [c * sum(map(len, g)) for g, c in grams.items() if c > 1]
        out[f"rep_top_{n}gram_frac"] = min(max(cover, default=0) / chars, 1.0)
    for n in DUP_NS:
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        covered = set()
        for i in range(len(words) - n + 1):
            if grams[tuple(words[i : i + n])] > 1:
                covered.update(range(i, i + n))
        out[f"rep_dup_{n}gram_frac"] = sum(len(words[j]) for j in covered) / chars
    return out


VOCAB = ["the", "cat", "sat", "on", "mat", "A", "dog", "ran", "é", "1,2", "Cat."]
SEPARATORS = [" ", " ", " ", "\n", "  ", "\t", "\n\n"]


@st.composite
def answers(draw):
    """Texts with repeated phrases, repeated lines and code fences."""
    phrase = draw(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=6))
    parts = draw(
        st.lists(
            st.one_of(st.sampled_from(VOCAB), st.just(" ".join(phrase)), st.just("```x = 1```")),
            max_size=60,
        )
    )
    return "".join(p + draw(st.sampled_from(SEPARATORS)) for p in parts)


@settings(max_examples=200, deadline=None)
@given(st.lists(answers(), min_size=1, max_size=8), st.sampled_from([1, 5, 20]))
def test_scores_equal_their_definitions(texts, min_words):
    got = repetition_scores(texts, min_words)
    for i, text in enumerate(texts):
        want = reference_scores(text, min_words)
        for name, value in want.items():
            assert np.isclose(got[name][i], value, rtol=1e-9, equal_nan=True), (
                name,
                text,
                got[name][i],
                value,
            )


def test_a_loop_scores_high_and_prose_scores_zero():
    loop = "I think that is the answer. " * 12
    prose = " ".join(f"word{i}" for i in range(60))
    got = repetition_scores([loop, prose], 20)
    assert got["rep_dup_10gram_frac"][0] > 0.8 and got["rep_top_2gram_frac"][0] > 0.1
    assert got["rep_dup_5gram_frac"][1] == 0.0 and got["rep_unique_word_ratio"][1] == 1.0
