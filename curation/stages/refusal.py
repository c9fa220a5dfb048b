"""Refusal tagging: ``is_refusal`` when an assistant turn refuses or hedges as an AI.

Refusals are tagged, not dropped, by default: safety data needs some, and the right share is a
mixing decision. Phrases are matched on word boundaries anywhere in the first ``search_chars``
characters of each assistant turn ("Sure! ... However, I cannot ..." counts), not only at the
very first character as the tutorial heuristic does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.plain_config import config_or_default
from curation.stages.base import Stage
from curation.stages.turns import per_row, turns
from curation.word_boundaries import ascii_words, select_by_ascii

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import RefusalConfig

REFUSAL_PATTERN = (
    r"(?i)\b(?:"
    r"i(?:'m| am)? (?:sorry|afraid),? but|i apologi[sz]e,? but|"
    r"i (?:cannot|can't|can not|won't|will not|must decline to|refuse to)"
    r" (?:help|assist|provide|do|fulfil|comply|answer|create|write|generate|support|give|share|engage|"
    r"discuss|offer|recommend|tell|say|make|encourage)|"
    r"i(?:'m| am) (?:not able|unable) to (?:help|assist|provide|do|fulfil|comply|answer|create|write|generate)|"
    r"i(?:'m| am) not (?:comfortable|allowed|permitted)|"
    r"as an ai\b|as a language model|as an ai language model|i(?:'m| am) (?:just )?an ai\b|"
    r"i don't have (?:personal )?(?:opinions|feelings|the ability)|"
    r"(?:it(?:'s| is)|that(?:'s| is)) (?:not appropriate|inappropriate|against my)|"
    r"against my (?:programming|guidelines|policy)|i must (?:decline|refuse)|"
    r"(?:lo siento|je suis désolé|es tut mir leid)"
    r")"
).replace("'", "['’]")  # straight and curly apostrophes (hh-rlhf uses both)


class RefusalStage(Stage):
    name = "refusal"

    def __init__(self, cfg: RefusalConfig | None = None):
        self.cfg = config_or_default(cfg, "RefusalConfig")

    def score(self, batch):
        t = turns(batch).select("row", head=pl.col("content").str.slice(0, self.cfg.search_chars))
        hit = select_by_ascii(
            t,
            ascii_words(pl.col("head")),
            lambda pattern: [pl.col("head").str.contains(pattern(REFUSAL_PATTERN))],
        )
        agg = t.select("row", hit=hit.to_series()).group_by("row").agg(pl.col("hit").any())
        return {"is_refusal": per_row(agg, "hit", batch.num_rows, False, bool)}

    def decide(self, batch):
        if not self.cfg.reject:
            return [None] * batch.num_rows
        return np.where(batch["is_refusal"].to_numpy(zero_copy_only=False), "refusal", None)
