"""Content profile: what kind of text each assistant turn is, so that every filter knows what it reads.

``content_kinds`` (one kind per assistant turn, in order) and ``content_type`` (the kind of the
row's longest assistant turn) are kept as columns. The kinds:

* ``code``: a fenced block, or at least ``CODE_LINE_SHARE`` of the lines look like code (braces,
  semicolons, keywords, assignments, markup tags), or (when not math) ``SYMBOL_SHARE`` of the
  characters are punctuation and operators (a regex, a JSON value);
* ``math``: LaTeX markup or worked arithmetic (GSM8K's ``<<48/2=24>>`` and ``#### 72``, lines
  with ``a op b = c``);
* ``table``: markdown or ASCII table rows;
* ``list``: most lines are bullets or numbered items;
* ``verse``: four or more short lines that are not list items (poems, lyrics);
* ``emoji``: emoji or pictographs carry the answer;
* ``short``: under ``SHORT_WORDS`` words;
* ``prose``: everything else.

Filters read the kinds through ``assistant_turns``: the truncation sentence rules do not apply to
code, the line-repetition rule not to verse, tables and code, and so on. The profile is computed
once, by this stage, which runs first; a stage used on its own computes it on the spot.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from curation.stages.base import Stage
from curation.stages.turns import has_words, turns

KINDS = ("code", "math", "table", "list", "verse", "emoji", "short", "prose")
KINDS_COLUMN, TYPE_COLUMN = "content_kinds", "content_type"

# A line that is code in C-like languages, Python, shell, SQL, HTML or CSS.
CODE_LINE = (
    r"^\s*(?:[{}()\[\];]+,?\s*$|(?:def|class|return|import|from|elif|else:|try:|except|with|lambda|"
    r"public|private|protected|static|void|int|float|double|char|bool|string|var|let|const|function|"
    r"func|fn|package|using|namespace|#include|#define|template|SELECT|INSERT|UPDATE|DELETE|CREATE|"
    r"print|console\.|System\.|std::|echo|sudo|pip|npm|git)\b|<\/?[a-zA-Z][\w-]*[^>]*>|"
    r"[\w.\[\]]+\s*(?:[-+*/%]?=|==|!=|=>|->)\s*\S.*|.*[;{]\s*$|(?:for|while|if|switch)\s*\(|"
    r"[.#]?[\w-]+\s*\{|@\w+|//|/\*|\*/)"
)
LIST_LINE = r"^\s*(?:[-*+•‣◦▪]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|\[[ xX]\])\s+\S"
TABLE_LINE = r"^\s*\|?[^|\n]*\|[^|\n]*\|"
MATH = r"\\\[|\\\(|\$\$|\\frac|\\sqrt|\\begin\{|\\cdot|\\times|<<[^<>\n]*=[^<>\n]*>>|(?m)^####\s|\$[^$\n]{1,40}\$"
MATH_LINE = r"\d\s*[-+*/×÷x^]\s*\d[^=\n]*=\s*\$?-?\d"
EMOJI = r"[\x{1F000}-\x{1FAFF}\x{2600}-\x{27BF}\x{2B00}-\x{2BFF}\x{FE0F}]"
# A text this dense in punctuation and operators is code or markup even on one line (a regex, a
# JSON value): prose runs at 2-5%, GSM8K solutions under 10%, the regex answers in ../shared/data
# over 40%.
SYMBOL_SHARE = 0.3
CODE_LINE_SHARE = 0.4  # of non-empty lines (a paragraph with one "x = 3" line stays prose)
LIST_LINE_SHARE = 0.5
SHORT_WORDS = 10
VERSE_MIN_LINES, VERSE_MAX_MEAN_CHARS = 4, 60  # poems: many short lines (real lyrics average ~35)


HEAD_CHARS = 1000  # the line statistics read this much of a text: its kind shows by then


def profile(t: pl.DataFrame, text: str = "content") -> pl.DataFrame:
    """``t`` with a ``kind`` column (one of KINDS) for each text in column ``text``."""
    t = t.with_columns(_head=pl.col(text).str.slice(0, HEAD_CHARS))
    whole, text = text, "_head"
    # Lines that match a pattern, counted over the whole text with multi-line anchors (no split).
    n_lines = (
        pl.col(text).str.count_matches("\n", literal=True)
        + 1
        - pl.col(text).str.count_matches("\n\n", literal=True)
    )

    def share(pattern: str) -> pl.Expr:
        return pl.col(text).str.count_matches("(?m)" + pattern) / pl.max_horizontal(n_lines, 1)

    symbols = pl.col(text).str.slice(0, 400).str.count_matches(r"[\p{P}\p{Sm}\p{Sc}\p{Sk}]")
    mean_chars = pl.col(text).str.strip_chars().str.len_chars() / pl.max_horizontal(n_lines, 1)
    kind = (
        pl.when(pl.col(whole).str.contains("```") | (share(CODE_LINE) >= CODE_LINE_SHARE) & (n_lines >= 2))
        .then(pl.lit("code"))
        .when(pl.col(text).str.contains(MATH) | (share(MATH_LINE) >= 0.2))
        .then(pl.lit("math"))
        .when(symbols >= SYMBOL_SHARE * pl.max_horizontal(pl.col(text).str.slice(0, 400).str.len_chars(), 1))
        .then(pl.lit("code"))
        .when((share(TABLE_LINE) >= 0.3) & (n_lines >= 2))
        .then(pl.lit("table"))
        .when(share(LIST_LINE) >= LIST_LINE_SHARE)
        .then(pl.lit("list"))
        .when(pl.col(text).str.count_matches(EMOJI) >= 1)
        .then(pl.lit("emoji"))
        .when(~has_words(pl.col(text), SHORT_WORDS))
        .then(pl.lit("short"))
        .when((n_lines >= VERSE_MIN_LINES) & (mean_chars <= VERSE_MAX_MEAN_CHARS))
        .then(pl.lit("verse"))
        .otherwise(pl.lit("prose"))
    )
    return t.with_columns(kind=kind).drop("_head")


def assistant_turns(batch: pa.Table) -> pl.DataFrame:
    """The assistant turns (row, turn, role, content) with each one's ``kind``: read from the
    ``content_kinds`` column when the profile stage ran, computed here otherwise."""
    t = turns(batch)
    if KINDS_COLUMN in batch.column_names:
        kinds = pl.from_arrow(batch[KINDS_COLUMN].combine_chunks()).explode().drop_nulls()
        if len(kinds) == t.height:
            return t.with_columns(kind=kinds)
    return profile(t)


class ContentProfileStage(Stage):
    """Tags only: ``content_kinds`` per assistant turn and the row's ``content_type``."""

    name = "content"

    def score(self, batch):
        t = profile(turns(batch)).with_columns(chars=pl.col("content").str.len_chars())
        per_row = t.group_by("row", maintain_order=True).agg(
            kinds=pl.col("kind"), main=pl.col("kind").sort_by("chars", descending=True).first()
        )
        every = pl.DataFrame({"row": np.arange(batch.num_rows, dtype=np.int64)})
        rows = every.join(per_row, on="row", how="left", maintain_order="left")
        return {
            KINDS_COLUMN: rows["kinds"].fill_null(pl.lit([], dtype=pl.List(pl.String))).to_arrow(),
            TYPE_COLUMN: rows["main"].fill_null("short").to_arrow(),
        }
