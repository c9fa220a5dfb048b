"""Language id: ``lang`` and ``lang_score`` of the answers; keep configured languages.

``prompt_lang`` and ``lang_requested`` (the prompt asks for a language or a translation) are
computed where they decide something: the answer's language is not kept, cannot be told, or
slides into another script (null and false elsewhere).

Only the natural-language part is judged: where the answer's head as it is does not give a kept
language with confidence, fenced and inline code, lines that read as code, URLs, LaTeX, markup,
numbers and arithmetic are removed and it is judged again (fastText gives unfenced code, a Sudoku
grid or a worked sum a random language at a low score). A text with fewer than ``min_letters``
letters left, or a prediction under ``min_score``, is ``und`` and kept. The answer's language
is what the model learns; when it cannot be told (a short answer, code, numbers) the prompt's
decides. A row is rejected when its language is not kept, except where the user asked for it:
a translation, or an answer "in French" to an English prompt, is not a wrong language.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.stages.base import Stage
from curation.stages.content import CODE_LINE
from curation.stages.langid import detect_fasttext
from curation.stages.plain_config import config_or_default
from curation.stages.turns import CODE_FENCE_RE, has_letters, role_texts, single_spaced

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import LanguageConfig

# Removed before language id: what is not natural language.
_NOT_LANGUAGE = [
    CODE_FENCE_RE,
    r"(?s)```.*",  # a block left open (or cut off where the text was sliced)
    r"`[^`\n]*`",
    r"https?://\S+|www\.\S+|\S+@\S+\.\w+",
    r"(?s)\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$[^$\n]{1,80}\$|<<[^<>\n]*>>",
    r"<[^>\n]{1,80}>",
    r"\\[a-zA-Z]+(?:\{[^}\n]*\})?",
]
_SYMBOLS = r"[\p{N}\p{P}\p{S}_]+"
# The user asks for another language: a translation, or an answer in a named language.
LANGUAGE_REQUEST = (
    r"(?i)translat|second language|\b(?:in|into|to)\s+(?:french|spanish|german|italian|portuguese|dutch|"
    r"russian|chinese|mandarin|cantonese|japanese|korean|arabic|hindi|turkish|polish|swedish|greek|hebrew|"
    r"latin|vietnamese|thai|indonesian|persian|ukrainian|czech|danish|finnish|norwegian)\b"
)

# Scripts that an English, French or other Latin-script answer does not slip into by accident.
_SCRIPT = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Cyrillic}\p{Arabic}\p{Devanagari}\p{Thai}\p{Hebrew}\p{Greek}]"
_LANGUAGE_NAMED = (
    r"(?i)chinese|mandarin|cantonese|japanese|kanji|hiragana|katakana|korean|hangul|russian|cyrillic|"
    r"arabic|hindi|sanskrit|thai|hebrew|greek|ukrainian|bulgarian|serbian|persian|urdu|emoji|unicode"
)


def natural_text(text: pl.Expr, chars: int) -> pl.Expr:
    """The first ``chars`` characters of ``text``'s natural language: code, URLs, math, markup,
    numbers and punctuation removed, on one line. Each step reads only as much of the text as the
    next one needs (the regexes cost per character)."""
    text = text.str.slice(0, 4 * chars)
    for pattern in _NOT_LANGUAGE:
        text = text.str.replace_all(pattern, " ")
    text = text.str.replace_all("(?m)" + CODE_LINE + "[^\n]*", " ").str.slice(0, 2 * chars)
    return single_spaced(text.str.replace_all(_SYMBOLS, " ")).str.strip_chars().str.slice(0, chars)


class LanguageStage(Stage):
    name = "language"

    def __init__(self, cfg: LanguageConfig | None = None, backend=detect_fasttext):
        self.cfg = config_or_default(cfg, "LanguageConfig")
        self.backend = backend

    def _detect(self, texts: pl.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: language and score of column ``text`` (``und`` / 0 where it cannot be told), and
        whether the text had the letters to be judged at all."""
        langs, scores, judged_rows = np.full(n, "und", dtype=object), np.zeros(n), np.zeros(n, dtype=bool)
        judged = texts.filter(has_letters(pl.col("text"), self.cfg.min_letters))
        if judged.height:
            found, conf = self.backend(judged["text"].to_list())
            rows = judged["row"].to_numpy()
            found = np.asarray(found, dtype=object)
            sure = np.asarray(conf) >= self.cfg.min_score
            langs[rows[sure]] = found[sure]
            scores[rows] = conf
            judged_rows[rows] = True
        return langs, scores, judged_rows

    def score(self, batch):
        n = batch.num_rows
        c = self.cfg
        user, answer = role_texts(batch)
        text = pl.DataFrame({"row": np.arange(n), "a": answer, "u": user}).filter(
            (pl.col("a") != "") | (pl.col("u") != "")
        )
        rows = text["row"].to_numpy()

        # Two passes, cheap first: the answer's head as it is (fenced code removed); then, for the
        # rows whose language that does not settle (not kept, or unsure), its natural language
        # only (code, math, markup and numbers stripped: the regexes that cost).
        quick = single_spaced(pl.col("a").str.slice(0, 2 * c.max_chars).str.replace_all(CODE_FENCE_RE, " "))
        a_lang, a_score, judged = self._detect(
            text.select("row", text=quick.str.strip_chars().str.slice(0, c.max_chars)), n
        )
        settled = np.isin(a_lang, c.keep) if c.keep else a_lang != "und"
        # Stripping adds no letters: a text too short to judge as it is stays undetermined.
        careful = text.filter(pl.Series((judged & ~settled)[rows]))
        if careful.height:
            lang2, score2, _ = self._detect(
                careful.select("row", text=natural_text(pl.col("a"), c.max_chars)), n
            )
            redo = careful["row"].to_numpy()
            a_lang[redo], a_score[redo] = lang2[redo], score2[redo]

        # An answer that slides into another script half-way (chatglm2, Qwen in ../shared/data): the
        # letters of a non-Latin script that the prompt neither uses nor names, as a share of the
        # answer's letters. Only answers with non-ASCII text are searched.
        foreign = np.zeros(n)
        mixed = (
            text.filter(pl.col("a").str.len_bytes() != pl.col("a").str.len_chars())
            .with_columns(script=pl.col("a").str.count_matches(_SCRIPT))
            .filter(pl.col("script") >= c.min_foreign_script_chars)
            .filter(~pl.col("u").str.contains(_SCRIPT) & ~pl.col("u").str.contains(_LANGUAGE_NAMED))
        )
        if mixed.height:
            letters = mixed["a"].str.count_matches(r"\p{L}").to_numpy()
            foreign[mixed["row"].to_numpy()] = mixed["script"].to_numpy() / np.maximum(letters, 1)

        # The prompt matters only where the answer's language is not kept (or cannot be told), or it
        # slides into another script: its own language, and whether it asks for another one.
        need = np.zeros(n, dtype=bool)
        need[rows] = True
        need &= (~np.isin(a_lang, c.keep) if c.keep else a_lang == "und") | (foreign > 0)
        p_lang = np.full(n, None, dtype=object)
        asked = np.zeros(n, dtype=bool)
        asking = text.filter(pl.Series(need[rows]))
        if asking.height:
            at = asking["row"].to_numpy()
            found, _, _ = self._detect(asking.select("row", text=natural_text(pl.col("u"), c.max_chars)), n)
            p_lang[at] = found[at]
            asked[at] = asking["u"].str.contains(LANGUAGE_REQUEST).to_numpy()
        # The answer decides; the prompt where the answer cannot be told.
        lang = np.where(a_lang == "und", p_lang, a_lang)
        lang = np.where(lang == None, "und", lang)  # noqa: E711 (elementwise)
        return {
            "lang": lang.tolist(),
            "lang_score": a_score,
            "prompt_lang": p_lang.tolist(),
            "lang_requested": asked,
            "foreign_script_share": foreign,
        }

    def decide(self, batch):
        if not self.cfg.keep:
            return [None] * batch.num_rows
        keep = [*self.cfg.keep, "und"]
        lang = np.asarray(batch["lang"].to_pylist(), dtype=object)
        prompt = np.asarray(batch["prompt_lang"].to_pylist(), dtype=object)
        asked = batch["lang_requested"].to_numpy(zero_copy_only=False)
        # An answer in another language that the user asked for, in a kept language, stays.
        requested = asked & np.isin(prompt, keep)
        ok = np.isin(lang, keep) | requested
        reasons = np.where(ok, None, "language:" + lang.astype(str))
        mixed = ok & ~asked & (batch["foreign_script_share"].to_numpy() >= self.cfg.min_foreign_script_share)
        reasons[mixed] = "language:mixed_script"
        return reasons
