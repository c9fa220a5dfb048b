"""Repetition on assistant turns: degenerate loops that repeat a sentence, a line or a phrase.

Scores (per assistant turn; the row keeps the worst turn):

* ``rep_unique_word_ratio``: distinct words / words (the tutorial heuristic, on long turns only);
* ``rep_dup_line_frac`` / ``rep_dup_line_char_frac``: lines (chars in lines) that repeat an earlier line;
* ``rep_top_{n}gram_frac`` (n = 2, 3, 4): share of word characters covered by the most frequent n-gram;
* ``rep_dup_{n}gram_frac`` (n = 5..10): share of word characters inside n-grams that occur more than once.

The last three families are Gopher's repetition filters (Rae et al. 2021, "Scaling Language
Models: Methods, Analysis & Insights from Training Gopher", Table A1: dup lines 0.30, dup line
chars 0.20, top 2/3/4-gram 0.20/0.18/0.16, dup 5..10-gram 0.15..0.10). The line thresholds are
Gopher's; the n-gram ones are loosened for short SFT answers (RepetitionConfig says how).

Fenced code blocks are left out (code legitimately repeats tokens) and short turns are not scored,
so lists, tables and code pass while a paragraph that repeats itself does not. The n-gram
statistics are computed with numpy over all words of the batch at once (hashes, sort-based
counting, no per-row Python loop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.plain_config import config_or_default
from curation.stages.base import Stage
from curation.stages.turns import CODE_FENCE_RE, has_words, single_spaced, turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import RepetitionConfig

_MIX = np.uint64(0x9E3779B97F4A7C15)
TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)


def _group_counts(keys: np.ndarray) -> np.ndarray:
    """For each key occurrence: how often that key occurs (hash group-by in polars)."""
    return pl.DataFrame({"k": keys}).select(pl.len().over("k")).to_series().to_numpy()


def repetition_scores(texts: list[str] | pl.Series, min_words: int) -> dict[str, np.ndarray]:
    """Repetition scores for each text (NaN where a text has fewer than min_words words)."""
    n_docs = len(texts)
    docs = pl.DataFrame({"text": pl.Series(texts, dtype=pl.String)}).with_row_index("doc")
    docs = docs.with_columns(pl.col("text").str.replace_all(CODE_FENCE_RE, " "))
    # Only texts long enough to be scored are split into lines and words.
    docs = docs.filter(has_words(pl.col("text"), min_words))
    out = {k: np.full(n_docs, np.nan) for k in _score_names()}

    # Lines.
    lines = (
        docs.select("doc", line=pl.col("text").str.split("\n"))
        .explode("line")
        .with_columns(pl.col("line").str.strip_chars())
        .filter(pl.col("line") != "")
        .with_columns(
            chars=pl.col("line").str.len_chars(), first=pl.struct("doc", "line").is_first_distinct()
        )
    )
    line_stats = lines.group_by("doc").agg(
        n=pl.len(),
        dup=(~pl.col("first")).sum(),
        chars=pl.col("chars").sum(),
        dup_chars=pl.col("chars").filter(~pl.col("first")).sum(),
    )

    # Words, flattened over the batch: doc ids are contiguous and positions ascend within a doc.
    words = (
        docs.select(
            "doc", word=single_spaced(pl.col("text").str.to_lowercase()).str.strip_chars(" ").str.split(" ")
        )
        .explode("word")
        .filter(pl.col("word") != "")
        .with_columns(h=pl.col("word").hash(seed=7), wlen=pl.col("word").str.len_chars())
    )
    doc = words["doc"].to_numpy().astype(np.int64)
    h = words["h"].to_numpy()
    wlen = words["wlen"].to_numpy().astype(np.float64)
    n_words = np.bincount(doc, minlength=n_docs)
    word_chars = np.bincount(doc, weights=wlen, minlength=n_docs)
    scored = n_words >= min_words
    if not scored.any():
        return out
    starts = np.concatenate([[0], np.cumsum(n_words)[:-1]])
    pos = np.arange(len(doc)) - starts[doc]
    remaining = n_words[doc] - pos  # words from this position to the end of the doc
    doc_salt = doc.astype(np.uint64) * _MIX

    # Unique word ratio.
    # One entry per distinct (doc, word); doc-salted 64-bit hashes practically never collide.
    uniq_docs = np.bincount(_doc_of_unique(h, doc, doc_salt), minlength=n_docs)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rep_unique_word_ratio"] = np.where(scored, uniq_docs / np.maximum(n_words, 1), np.nan)

    # Rolling n-gram hashes: g_n[i] = mix(g_{n-1}[i], h[i+n-1]), kept only for the candidate
    # starts i: positions whose n-gram fits in its doc, in docs that still repeat something (a doc
    # with no repeated n-gram has no repeated (n+1)-gram either; most docs drop out after n = 2
    # or 3). Both conditions only ever drop positions, so every array shrinks pass after pass.
    for name in out:
        if name.startswith(("rep_top_", "rep_dup_")) and "line" not in name:
            out[name] = np.where(scored, 0.0, np.nan)
    cand = np.flatnonzero(scored[doc])
    g, gchars = h[cand], wlen[cand]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for n in range(2, max(DUP_NS) + 1):
            fits = remaining[cand] >= n
            cand, g, gchars = cand[fits], g[fits], gchars[fits]
            if len(cand) == 0:
                break
            g = (g * _MIX) ^ h[cand + (n - 1)]
            gchars = gchars + wlen[cand + (n - 1)]
            cand_doc = doc[cand]
            keys = g ^ doc_salt[cand]
            if n in TOP_NS:  # occurrence counts are needed; for the longer n-grams only "repeated"
                counts = _group_counts(keys)
                repeated = counts > 1
            else:
                repeated = pl.Series(keys).is_duplicated().to_numpy()
            rep_docs = cand_doc[repeated]
            if n in TOP_NS:
                # Characters covered by the most frequent n-gram of each doc (Gopher counts
                # occurrences x n-gram characters, for n-grams that occur more than once).
                top = np.zeros(n_docs)
                np.maximum.at(top, rep_docs, counts[repeated] * gchars[repeated])
                out[f"rep_top_{n}gram_frac"] = np.where(scored, np.minimum(top / word_chars, 1.0), np.nan)
            if n in DUP_NS:
                # Words inside a repeated n-gram: the n positions from each repeated start.
                covered = np.zeros(len(doc), dtype=bool)
                starts_rep = cand[repeated]
                for k in range(n):
                    covered[starts_rep + k] = True
                at = np.flatnonzero(covered)
                dup_chars = np.bincount(doc[at], weights=wlen[at], minlength=n_docs)
                out[f"rep_dup_{n}gram_frac"] = np.where(scored, dup_chars / word_chars, np.nan)
            # Only docs with a repeated n-gram go on to n + 1.
            still = np.zeros(n_docs, dtype=bool)
            still[rep_docs] = True
            keep = still[cand_doc]
            cand, g, gchars = cand[keep], g[keep], gchars[keep]

    ls = line_stats.to_dict(as_series=False)
    ldoc = np.asarray(ls["doc"], dtype=np.int64)
    if len(ldoc):
        dup_line = np.full(n_docs, np.nan)
        dup_line_chars = np.full(n_docs, np.nan)
        dup_line[ldoc] = np.asarray(ls["dup"]) / np.asarray(ls["n"])
        dup_line_chars[ldoc] = np.asarray(ls["dup_chars"]) / np.maximum(np.asarray(ls["chars"]), 1)
        out["rep_dup_line_frac"] = np.where(scored, dup_line, np.nan)
        out["rep_dup_line_char_frac"] = np.where(scored, dup_line_chars, np.nan)
    return out


def _doc_of_unique(h: np.ndarray, doc: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """The doc of each distinct (doc, word) key: its first occurrence (a hash pass, no sort)."""
    return doc[pl.Series(h ^ salt).is_first_distinct().to_numpy()]


def _score_names() -> list[str]:
    return [
        "rep_unique_word_ratio",
        "rep_dup_line_frac",
        "rep_dup_line_char_frac",
        *(f"rep_top_{n}gram_frac" for n in TOP_NS),
        *(f"rep_dup_{n}gram_frac" for n in DUP_NS),
    ]


class RepetitionStage(Stage):
    name = "repetition"

    def __init__(self, cfg: RepetitionConfig | None = None):
        self.cfg = config_or_default(cfg, "RepetitionConfig")

    def score(self, batch):
        t = turns(batch)
        scores = repetition_scores(t["content"], self.cfg.min_words)
        rows = t["row"].to_numpy()
        df = pl.DataFrame({"row": rows, **scores})
        # Worst turn per row: lowest unique-word ratio, highest everything else (NaN = not scored).
        df = df.fill_nan(None)
        agg = df.group_by("row").agg(
            pl.col("rep_unique_word_ratio").min(), *(pl.col(c).max() for c in _score_names()[1:])
        )
        result = {}
        for name in _score_names():
            col = np.full(batch.num_rows, np.nan)
            vals = agg[name].fill_null(np.nan).to_numpy()
            col[agg["row"].to_numpy()] = vals
            result[name] = col
        return result

    def decide(self, batch):
        c = self.cfg
        checks = [
            ("rep_dup_line_frac", c.max_dup_line_frac),
            ("rep_dup_line_char_frac", c.max_dup_line_char_frac),
            *((f"rep_top_{n}gram_frac", t) for n, t in sorted(c.max_top_ngram_char_frac.items())),
            *((f"rep_dup_{n}gram_frac", t) for n, t in sorted(c.max_dup_ngram_char_frac.items())),
        ]
        reasons = np.full(batch.num_rows, None, dtype=object)
        ratio = batch["rep_unique_word_ratio"].to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            reasons[ratio < c.min_unique_word_ratio] = "repetition:unique_word_ratio"
            for column, limit in reversed(checks):  # the first failing check in list order wins
                if column in batch.column_names:
                    values = batch[column].to_numpy(zero_copy_only=False)
                    reasons[values > limit] = f"repetition:{column.removeprefix('rep_')}"
        return reasons
