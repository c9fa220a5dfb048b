"""Refusal tagging: ``is_refusal`` when an assistant turn declines what was asked.

Refusals are tagged, not dropped, by default: safety data needs some, and the right share is a
mixing decision. Refusal phrases ("I can't help with", "I'm sorry, but", "it's not appropriate",
"No, ... is illegal") are matched on word boundaries in the first ``search_chars`` characters of
each assistant turn, and then the whole turn decides: a phrase followed by the answer anyway
("As an AI I can't give medical advice. However, here are some tips: ...") is a disclaimer, not
a refusal. A disclaimer alone ("As an AI, I don't have opinions, but ...") is not a refusal
phrase at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.stages.base import Stage
from curation.stages.plain_config import config_or_default
from curation.stages.turns import has_words, per_row, turns
from curation.stages.word_boundaries import ascii_words, select_by_ascii

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import RefusalConfig

REFUSAL_PATTERN = (
    r"(?i)(?:\b(?:"
    # declining, with an apology or not ("I'm sorry, but I can't help with that")
    r"i(?:'m| am) (?:so |very |really )?sorry,? but|i apologi[sz]e,? but|"
    r"i (?:cannot|can't|can not|won't|will not|must decline to|refuse to|am not going to|'m not going to)"
    r" (?:help (?:you|with)|assist|provide|do (?:that|this|it)|fulfil|comply|answer|create|write|generate|support|"
    r"give|share|engage|discuss|offer|recommend|tell|say|make|encourage|condone|participate|promote|endorse|"
    r"teach|explain)|"
    r"i(?:'m| am) (?:not able|unable) to|unable to (?:help|assist|provide|tell|answer)|"
    r"i(?:'m| am) not (?:comfortable|allowed|permitted|willing)|"
    # judging the request instead of doing it
    r"(?:it(?:'s| is)|that(?:'s| is)|this is|that would be) (?:not appropriate|inappropriate|against (?:my|the|our)|"
    r"not (?:ok|okay|acceptable|ethical|legal)|illegal|unethical)|"
    r"i don't think (?:it(?:'s| is)|that(?:'s| is)|this is) (?:appropriate|a good idea|ethical|right)|"
    r"against my (?:programming|guidelines|policy|principles)|i must (?:decline|refuse)|"
    r"(?:respectfully|politely|humbly) decline|i would (?:not|never) (?:recommend|advise|encourage|help)|"
    # the over-refusal of chat models tuned for caution (llama-2-chat): a lecture in place of the answer
    r"i must (?:respectfully |humbly |kindly )?(?:point out|inform you)|not (?:factually )?coherent|"
    r"(?:lo siento|je suis désolé|es tut mir leid)"
    # "No, robbing people is illegal.": a flat no, judging the act, in the first sentence
    r")|^\s*no[,.!]\s[^.!?\n]{0,80}\b(?:is|are|would be|'s) (?:illegal|unethical|wrong|harmful|dangerous|"
    r"not (?:a good idea|appropriate|safe|ok|okay|legal))\b)"
).replace("'", "['’]")  # straight and curly apostrophes (hh-rlhf uses both)
# What follows a refusal phrase when the answer goes on to help after all ("I can't give medical
# advice. However, here are some general tips: ..."): a disclaimer then the answer, not a refusal.
PIVOT_TO_ANSWER = (
    r"(?i)\b(?:however|but|that said|instead)\b,?\s+(?:here|i can|i'd be happy|you (?:can|could|may)|there are|some)|"
    r"\bhere (?:are|is)\b|:\s*\n\s*(?:[-*•]|1[.)])"
).replace("'", "['’]")
MIN_ANSWER_WORDS = 40  # a pivot counts only when real content follows: a few sentences or a list


class RefusalStage(Stage):
    name = "refusal"

    def __init__(self, cfg: RefusalConfig | None = None):
        self.cfg = config_or_default(cfg, "RefusalConfig")

    def score(self, batch):
        t = turns(batch).select("row", "content", head=pl.col("content").str.slice(0, self.cfg.search_chars))
        hit = select_by_ascii(
            t,
            ascii_words(pl.col("head")),
            lambda pattern: [pl.col("head").str.contains(pattern(REFUSAL_PATTERN))],
        ).to_series()
        # The whole answer decides: a refusal phrase followed by the answer anyway is a disclaimer
        # (looked for in the few turns with a phrase only).
        answers = pl.col("content").str.contains(PIVOT_TO_ANSWER) & has_words(
            pl.col("content"), MIN_ANSWER_WORDS
        )
        agg = t.filter(hit).filter(~answers).group_by("row").agg(hit=pl.lit(True))
        return {"is_refusal": per_row(agg, "hit", batch.num_rows, False, bool)}

    def decide(self, batch):
        if not self.cfg.reject:
            return [None] * batch.num_rows
        return np.where(batch["is_refusal"].to_numpy(zero_copy_only=False), "refusal", None)
