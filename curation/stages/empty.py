"""Near-empty responses: an assistant turn with no real content ("", "...", "<nooutput>", "N/A").

Letters, digits and symbols are content: an answer of emoji to an emoji task ("🐱😻") or of
math or currency symbols is an answer; punctuation and whitespace alone are not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.stages.base import Stage
from curation.stages.plain_config import config_or_default
from curation.stages.turns import per_row, turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import EmptyConfig

# Placeholders that dataset builders leave where an answer is missing (Alpaca has "<nooutput>").
PLACEHOLDERS = [
    "<nooutput>",
    "<no output>",
    "n/a",
    "na",
    "none",
    "null",
    "nan",
    "todo",
    "tbd",
    "no output",
    "-",
]


class NearEmptyStage(Stage):
    name = "empty"

    def __init__(self, cfg: EmptyConfig | None = None):
        self.cfg = config_or_default(cfg, "EmptyConfig")

    def score(self, batch):
        t = turns(batch).with_columns(
            # Letters, digits and symbols (emoji are symbols), counted as all characters minus the
            # others: polars pays per match, and most characters of a text are letters.
            alnum=(
                pl.col("content").str.len_chars() - pl.col("content").str.count_matches(r"[^\p{L}\p{N}\p{S}]")
            ).cast(pl.Int64),
            placeholder=pl.col("content").str.strip_chars().str.to_lowercase().is_in(PLACEHOLDERS),
        )
        t = t.with_columns(alnum=pl.when(pl.col("placeholder")).then(0).otherwise(pl.col("alnum")))
        agg = t.group_by("row").agg(pl.col("alnum").min())
        return {"response_alnum_chars": per_row(agg, "alnum", batch.num_rows, 0, np.int64)}

    def decide(self, batch):
        alnum = batch["response_alnum_chars"].to_numpy()
        return np.where(alnum < self.cfg.min_alnum_chars, "near_empty_response", None)
