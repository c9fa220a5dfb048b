"""Language id: ``lang`` and ``lang_score`` from the user and assistant text; keep configured languages.

Code blocks are removed first, and a conversation with too few letters to judge (code, numbers)
gets ``lang = "und"`` and is kept: misdetecting code as some language would drop good rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from curation.langid import detect_fasttext
from curation.plain_config import config_or_default
from curation.stages.base import Stage
from curation.stages.turns import CODE_FENCE_RE, has_letters, single_spaced, turns

if TYPE_CHECKING:  # configs are not imported by modules that only run stages
    from curation.config import LanguageConfig


class LanguageStage(Stage):
    name = "language"

    def __init__(self, cfg: LanguageConfig | None = None, backend=detect_fasttext):
        self.cfg = config_or_default(cfg, "LanguageConfig")
        self.backend = backend

    def score(self, batch):
        n = batch.num_rows
        # The answer first (it is what the model learns), then the prompt: a short answer ("4",
        # "Canberra") is judged together with its question.
        role = pl.col("role")
        text = (
            turns(batch, roles=("user", "assistant"))
            .group_by("row", maintain_order=True)
            .agg(
                a=pl.col("content").filter(role == "assistant").str.join(" "),
                u=pl.col("content").filter(role == "user").str.join(" "),
            )
            .select(
                "row",
                content=pl.concat_str([pl.col("a"), pl.col("u")], separator=" ")
                .str.replace_all(CODE_FENCE_RE, " ")
                .pipe(single_spaced)
                .str.strip_chars()
                .str.slice(0, self.cfg.max_chars),
            )
            .with_columns(enough_letters=has_letters(pl.col("content"), self.cfg.min_letters))
        )
        langs = np.full(n, "und", dtype=object)
        scores = np.zeros(n)
        judged = text.filter(pl.col("enough_letters"))
        if judged.height:
            found, conf = self.backend(judged["content"].to_list())
            rows = judged["row"].to_numpy()
            langs[rows] = found
            scores[rows] = conf
        return {"lang": langs.tolist(), "lang_score": scores}

    def decide(self, batch):
        if not self.cfg.keep:
            return [None] * batch.num_rows
        langs = np.asarray(batch["lang"].to_pylist(), dtype=object)
        ok = np.isin(langs, [*self.cfg.keep, "und"])
        return np.where(ok, None, "language:" + langs.astype(str))
