"""Truncated responses: cut off mid-sentence or mid-word, an unclosed code fence, a dangling list
item, an open bracket or a trailing comma/colon at the very end.

Every assistant turn is checked (a turn cut off in the middle of a conversation teaches the
model to stop mid-sentence just as well). Code, lists, tables, headings and answers that end
in a number are not truncations: the sentence rule applies only to a last line that is prose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.plain_config import config_or_default
from curation.stages.base import Stage
from curation.stages.turns import per_row, turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import TruncationConfig

# Words a finished English sentence practically never ends on.
_DANGLING_WORDS = (
    "a|an|the|and|or|but|of|to|in|on|at|for|with|from|by|as|that|which|because|is|are|was|were|"
    "if|then|than|so|such|like|into|about|this|these|their|your|my|its|our|be|will|would|can|could|"
    "should|must|have|has|had|his|her|who|when|where|while|we|they|he|she|i|very|"
    "it['’]s|i['’]m|i['’]d|i['’]ll|you['’]re|we['’]re|they['’]re"
)
# A line that already ended a sentence and then runs on without an end: "... groups. So it's going"
_EARLIER_SENTENCE_END = r"\p{L}{2,}[.!?][\"'”’)]*\s+[\p{Lu}\p{N}\"“]"
_LIST_MARKER = r"^\s*(?:[-*+•]|\d+[.)]|[a-zA-Z][.)])\s"
# Lines that are list items, headings, tables, quotes, indented blocks, code or formulas. Checked
# as separate patterns: each has a literal the regex engine can search for, where one alternation
# of them all made it try every position of every line (~8x slower on the real data).
_NOT_PROSE_START = (
    r"^\s*(?:[-*+•#>|]|\d+[.)]|```|\s{4}|\t)",
    r"^\s*(?:def|return|import|from|class|for|if|while|print|SELECT|FROM|WHERE)\b",
)
_NOT_PROSE_ANYWHERE = (r"\w\(", r"\s=\s")
_NOT_PROSE_LITERALS = ["{", "}", ";", "==", "=>"]


def _not_prose(line: pl.Expr) -> pl.Expr:
    found = line.str.contains_any(_NOT_PROSE_LITERALS)
    for pattern in (*_NOT_PROSE_START, *_NOT_PROSE_ANYWHERE):
        found = found | line.str.contains(pattern)
    return found


class TruncationStage(Stage):
    name = "truncation"

    def __init__(self, cfg: TruncationConfig | None = None):
        self.cfg = config_or_default(cfg, "TruncationConfig")

    def score(self, batch):
        text = pl.col("content").str.strip_chars_end()
        last_line = pl.col("text").str.extract(r"([^\n]*)$", 1).fill_null("")
        t = turns(batch).with_columns(text=text).with_columns(last_line=last_line)
        words = pl.col("last_line").str.count_matches(r"\S+")
        prose_line = ~_not_prose(pl.col("last_line"))
        prose = (
            prose_line
            & (words >= 5)
            & (pl.col("text").str.len_chars() >= self.cfg.min_chars_for_sentence_rule)
        )
        kind = (
            pl.when(pl.col("text").str.count_matches("```") % 2 == 1)
            .then(pl.lit("unclosed_code_fence"))
            .when(pl.col("last_line").str.contains(r"^\s*(?:[-*+•]|\d+[.)])\s*$"))
            .then(pl.lit("dangling_list_item"))
            .when(pl.col("text").str.contains(r"[(\[{,:]$"))
            .then(pl.lit("dangling_punctuation"))
            .when(pl.col("text").str.contains(r"\p{L}[-‐–]$"))
            .then(pl.lit("mid_word"))
            .when(prose_line & (words >= 3) & pl.col("text").str.contains(rf"(?i)\b(?:{_DANGLING_WORDS})$"))
            .then(pl.lit("mid_sentence"))
            .when(
                prose
                & pl.col("text").str.contains(r"\p{L}$")
                & pl.col("last_line").str.contains(_EARLIER_SENTENCE_END)
                & ~pl.col("last_line").str.contains(_LIST_MARKER)
            )
            .then(pl.lit("mid_sentence"))
            .otherwise(None)
        )
        t = t.with_columns(kind=kind).filter(pl.col("kind").is_not_null())
        first = t.group_by("row", maintain_order=True).agg(pl.col("kind").first())
        kinds = per_row(first, "kind", batch.num_rows, None, object)
        return {"is_truncated": kinds != None, "truncation": kinds}  # noqa: E711 (elementwise)

    def decide(self, batch):
        if not self.cfg.reject:
            return [None] * batch.num_rows
        kinds = batch["truncation"].to_numpy(zero_copy_only=False)
        return np.where(
            batch["is_truncated"].to_numpy(zero_copy_only=False), "truncated:" + kinds.astype(str), None
        )
