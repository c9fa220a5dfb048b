"""Truncated responses: an answer cut off before it was finished (at a token limit, mostly).

Every assistant turn is checked (a turn cut off in the middle of a conversation teaches the model
to stop mid-sentence just as well). What a cut looks like depends on what was being written, so
the rules read the content profile (curation/stages/content.py) and the last line:

* ``unclosed_code_fence``: an odd number of fences, and the text ends inside the last block (not
  on a fence or after a closing sentence: an answer that opens with unfenced code and closes
  it with a fence is complete);
* ``dangling_punctuation``: the text ends in an opening bracket or quote, a comma, or a colon
  (not a line of code: a requested signature "def add(a, b):" is complete);
* ``unbalanced_bracket``: the last line opens a bracket or a quote it never closes ("(fen129) at
  (2", 'which means "'), in prose, lists and code alike;
* ``dangling_list_item``: an empty list marker, or a last item without an end where the other
  items of the list end in punctuation ("g. Storing the certificates" after "f. ...;");
* ``table_row``: the last table row stops before its closing bar;
* ``mid_word``: a word broken by a hyphen at the very end;
* ``mid_sentence``: prose or a list item ending on a word no finished sentence ends on ("the",
  "of", "was", "don't");
* ``run_on``: a prose line that ended a sentence and runs on to a lower-case word without an end
  ("... wrong. So if I spin it fast enough, it'll end"); abbreviations ("Mr."), hashtags, math
  and code lines do not count. Tagged, not rejected, by default (``tag_only``): as often as
  one in six it is a finished sentence that only lacks its period;
* ``ellipsis``: a trailing "..." that the prompt did not use ("Let me check Wikipedia...").

An answer that only lacks its final period ("... 20 sheep", a tweet ending in hashtags, a
requested function signature) is complete: none of the rules fires on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.stages.base import Stage
from curation.stages.content import CODE_LINE, assistant_turns
from curation.stages.plain_config import config_or_default
from curation.stages.turns import has_words, per_row, turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import TruncationConfig

# Words a finished English sentence practically never ends on: articles, prepositions,
# conjunctions, auxiliaries and possessives (the function words of any English grammar).
_DANGLING_WORDS = (
    "a|an|the|and|or|but|nor|of|to|in|on|at|for|with|from|by|as|that|which|because|is|are|was|were|"
    "if|then|than|so|such|like|into|about|this|these|those|their|your|my|its|our|be|been|being|will|would|"
    "can|could|should|must|have|has|had|his|her|who|whose|when|where|while|we|they|he|she|i|very|"
    "towards?|through|between|among|during|without|within|including|every|"
    "may|might|shall|whom|whether|am|"
    "it['’]s|i['’]m|i['’]d|i['’]ll|you['’]re|we['’]re|they['’]re|don['’]t|doesn['’]t|didn['’]t|"
    "can['’]t|won['’]t|isn['’]t|aren['’]t|wasn['’]t|weren['’]t|couldn['’]t|wouldn['’]t|shouldn['’]t"
)
_LIST_ITEM = r"^\s*(?:[-*+•]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+"
# A line that ended a sentence and then runs on without an end: "... groups. So it's going". Common
# abbreviations are masked first ("Mr. Bodhi needs 20 sheep" is one finished sentence).
_EARLIER_SENTENCE_END = r"\p{L}{2,}[.!?][\"'”’)]*\s+[\p{Lu}\p{N}\"“]"
_ABBREVIATION = r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Jr|Mt|vs|etc|e\.g|i\.e|Inc|Ltd|Co|No|Fig|approx|U\.S)\."
_CODE_LINE_START = (
    r"^\s*(?:def|return|import|from|class|for|if|while|print|SELECT|FROM|WHERE)\b|^\s*[#>|]|^\s{4}|^\t"
)


class TruncationStage(Stage):
    name = "truncation"

    def __init__(self, cfg: TruncationConfig | None = None):
        self.cfg = config_or_default(cfg, "TruncationConfig")

    def score(self, batch):
        t = assistant_turns(batch)
        # Whether the prompt itself uses "...", asked only for answers that end in one.
        ends_dotted = t.filter(pl.col("content").str.contains(r"(?:\.\.\.|…)\s*$"))["row"]
        prompts = (
            turns(batch, roles=("user",))
            .filter(pl.col("row").is_in(ends_dotted.implode()))
            .group_by("row")
            .agg(prompt_ellipsis=pl.col("content").str.contains(r"(?:\.\.\.|…)").any())
        )
        t = t.join(prompts, on="row", how="left").with_columns(pl.col("prompt_ellipsis").fill_null(False))
        text = pl.col("content").str.strip_chars_end()
        t = t.with_columns(text=text).with_columns(
            last_line=pl.col("text").str.split("\n").list.last().fill_null("")
        )
        last = pl.col("last_line")
        item_text = last.str.replace(_LIST_ITEM, "")
        is_item = last.str.contains(_LIST_ITEM)
        # The list's own style: its items that end in punctuation (counted over the whole text with
        # multi-line anchors; the last line, when it is an item without an end, adds nothing).
        items = pl.col("text").str.count_matches("(?m)" + _LIST_ITEM) - is_item.cast(pl.UInt32)
        items_ended = pl.col("text").str.count_matches("(?m)" + _LIST_ITEM + r".*[.;!?][^\S\n]*$")
        code = pl.col("kind") == "code"
        fences_closed = pl.col("text").str.count_matches("```") % 2 == 0
        # The last line is words, not code: after a closed fence a code answer's closing sentence
        # counts too ("This code will sort the").
        words_line = (pl.col("kind") != "math") & fences_closed & ~last.str.contains(CODE_LINE)
        # Table rows: the last one has fewer cells than the table's first row (its header).
        cells = lambda line: line.str.strip_chars().str.strip_chars("|").str.count_matches(r"\|") + 1  # noqa: E731
        header = pl.col("text").str.extract(r"(?m)^[^\S\n]*(\|.*\|)", 1)  # a table's first row

        def words(n: int) -> pl.Expr:  # the last line has n words or more
            return has_words(last, n)

        opens = lambda o, c: last.str.count_matches(o) > last.str.count_matches(c)  # noqa: E731
        unbalanced = (
            opens(r"\(", r"\)")
            | opens(r"\[", r"\]")
            | (last.str.count_matches('"') % 2 == 1)
            | opens("“", "”")
        )
        kind = (
            pl.when(
                (pl.col("text").str.count_matches("```") % 2 == 1)
                & ~pl.col("text").str.contains(r"(?:[.!?]|```)$")
            )
            .then(pl.lit("unclosed_code_fence"))
            .when(last.str.contains(r"^\s*(?:[-*+•]|\d+[.)])\s*$"))
            .then(pl.lit("dangling_list_item"))
            .when(
                pl.col("text").str.contains(r"(?:[(\[{,:]|\s[\"“])$")
                & ~((code | last.str.contains(_CODE_LINE_START)) & pl.col("text").str.contains(r":$"))
            )
            .then(pl.lit("dangling_punctuation"))
            .when(unbalanced & ~pl.col("text").str.contains(r"[.!?)\]”\"]$") & words(2))
            .then(pl.lit("unbalanced_bracket"))
            .when(
                last.str.contains(r"^\s*\|.*\|")
                & (~last.str.contains(r"\|\s*$") | (cells(last) < cells(header).fill_null(0)))
                & ~pl.col("text").str.contains(r"[.!?]$")
            )
            .then(pl.lit("table_row"))
            .when(pl.col("text").str.contains(r"\s#$"))
            .then(pl.lit("dangling_punctuation"))
            .when(
                is_item
                & (items_ended >= 2)
                & (items_ended >= 0.6 * items)
                & item_text.str.contains(r"[\p{L}\p{N}]$")
            )
            .then(pl.lit("dangling_list_item"))
            .when(pl.col("text").str.contains(r"\p{L}[-‐–]$"))
            .then(pl.lit("mid_word"))
            .when(
                words_line
                & ~last.str.contains(_CODE_LINE_START)
                & words(2)
                & pl.col("text").str.contains(rf"(?i)\b(?:{_DANGLING_WORDS})$")
            )
            .then(pl.lit("mid_sentence"))
            .when(
                (pl.col("kind") == "prose")
                & ~is_item
                & ~last.str.contains(_CODE_LINE_START)
                & words(5)
                & (pl.col("text").str.len_chars() >= self.cfg.min_chars_for_sentence_rule)
                & pl.col("text").str.contains(r"\p{Ll}$")
                & ~last.str.contains(r"#\w+\s*$")
                & last.str.replace_all(_ABBREVIATION, "X").str.contains(_EARLIER_SENTENCE_END)
            )
            .then(pl.lit("run_on"))
            .when(
                pl.col("text").str.contains(r"\p{L}\s*(?:\.\.\.|…)$")
                & ~pl.col("text").str.contains(r"(?i)(?:etc|so on|so forth)\s*(?:\.\.\.|…)$")
                & ~pl.col("prompt_ellipsis")
                & (pl.col("text").str.len_chars() >= self.cfg.min_chars_for_sentence_rule)
            )
            .then(pl.lit("ellipsis"))
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
        rejected = batch["is_truncated"].to_numpy(zero_copy_only=False) & ~np.isin(kinds, self.cfg.tag_only)
        return np.where(rejected, "truncated:" + kinds.astype(str), None)
