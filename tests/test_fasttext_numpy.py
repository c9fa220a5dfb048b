"""The batched numpy fastText prediction against fastText's own predict, on the bundled lid model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.stages import fasttext_numpy
from curation.stages.fasttext_numpy import FastTextModel, UnsupportedModel
from curation.stages.langid import _fasttext_model, detect_fasttext, lid_model_path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "¿Cuál es la capital de Francia? La capital de Francia es París.",
    "Quelle est la capitale de l'Allemagne ? C'est Berlin.",
    "Wie viele Einwohner hat Berlin? Etwa 3,7 Millionen.",
    "東京は日本の首都です。人口は約1400万人です。",
    "Привет, как дела? Всё хорошо, спасибо.",
    "مرحبا، كيف حالك؟",
    "Natalia sold 48/2 = 24 clips in May.",
    "def f(x): return x ** 2",
    "",
    "   two  spaces\tand a tab\x0bvertical\x0cform\rreturn\x00nul",
    "first line\nsecond line is ignored by fastText",
    "__label__en looks like a label, </s> like the end of a sentence",
    "a" * 300,
    "🙂 🙃 emoji only 🎉",
]


@pytest.fixture(scope="module")
def model() -> FastTextModel:
    return FastTextModel(lid_model_path())


def native_top2(text: str):
    """fastText's own two best labels and probabilities for one line."""
    return [
        (p, label.removeprefix("__label__"))
        for p, label in _fasttext_model().f.predict(text + "\n", 2, 0.0, "replace")
    ]


def assert_same_as_fasttext(labels, probs, texts):
    for text, label, prob in zip(texts, labels, probs, strict=True):
        top = native_top2(text)
        if not top:
            assert label is None and prob == 0.0
            continue
        (p1, l1), *rest = top
        if label != l1:  # only on a near-tie, where summation order may pick the other label
            assert rest and rest[0][1] == label and abs(p1 - rest[0][0]) < 1e-4, (text, label, top)
        assert prob == pytest.approx(p1, abs=1e-4), (text, prob, top)


def test_matches_fasttext_on_sentences(model):
    labels, probs = model.predict(SENTENCES)
    assert_same_as_fasttext(labels, probs, SENTENCES)
    assert labels[:7] == ["en", "es", "fr", "de", "ja", "ru", "ar"]


def test_word_cache_gives_the_same_result_warm_and_after_a_reset(model, monkeypatch):
    cold = FastTextModel(lid_model_path())
    first = cold.predict(SENTENCES)
    again = cold.predict(SENTENCES[::-1])
    assert first[0] == again[0][::-1]
    np.testing.assert_allclose(first[1], again[1][::-1], rtol=1e-6)
    monkeypatch.setattr(fasttext_numpy, "_CACHE_LIMIT", 20)  # every batch resets the cache
    small = FastTextModel(lid_model_path())
    for _ in range(2):
        labels, probs = small.predict(SENTENCES)
        assert labels == first[0]
        np.testing.assert_allclose(probs, first[1], rtol=1e-6)
    assert len(small._words) <= 20 + len(set(" ".join(SENTENCES).split()))


WORDS = ["the", "de", "la", "und", "of", "__label__en", "</s>", "is", "Paris", "東京", "ü", "x"]
ALPHABET = st.characters(blacklist_categories=("Cs",), max_codepoint=0x1F64F)
TEXT = st.lists(
    st.one_of(
        st.sampled_from(WORDS),
        st.text(ALPHABET, max_size=12),
        st.sampled_from([" ", "  ", "\t", "\n", "\x00"]),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=8))
def test_matches_fasttext_on_random_texts(model, texts):
    labels, probs = model.predict(texts)
    assert_same_as_fasttext(labels, probs, texts)


def test_detect_fasttext_returns_codes_and_bounded_scores():
    langs, scores = detect_fasttext(["Hello, how are you today?", "Hola, ¿cómo estás hoy?"])
    assert langs == ["en", "es"]
    assert ((scores > 0.5) & (scores <= 1.0)).all()


def test_refuses_what_it_does_not_reproduce(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(UnsupportedModel, match="not a fastText model"):
        FastTextModel(bad)
    data = bytearray(lid_model_path().read_bytes())
    data[8 + 5 * 4 : 8 + 6 * 4] = (2).to_bytes(4, "little")  # wordNgrams = 2
    other = tmp_path / "bigrams.ftz"
    other.write_bytes(bytes(data))
    with pytest.raises(UnsupportedModel, match="wordNgrams=2"):
        FastTextModel(other)
